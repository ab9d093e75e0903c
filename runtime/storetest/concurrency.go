package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/protoc-gen-eda/eda/runtime"
)

var concurrencyTests = []test{
	{"SameVersionOneWins", testConcurrentSameVersion},
	{"RetryLoopLosesNothing", testConcurrentRetryLoop},
	{"ManyStreams", testConcurrentManyStreams},
	{"ReadAllPollerSeesEverything", testConcurrentPoller},
	{"IdenticalRetriesRace", testConcurrentIdenticalRetries},
	{"DuplicateIDRace", testConcurrentDuplicateID},
}

// Sizes of the concurrency tests: enough goroutines to collide on every
// backend, few enough events to stay fast on a database under -race.
const (
	sameVersionWriters = 16
	retryWriters       = 16
	retryEventsEach    = 5
	manyStreams        = 32
	manyStreamsEvents  = 50
	pollerWriters      = 16
	pollerEventsEach   = 100
	pollerPageSize     = 17 // odd, so that pages end in the middle of appends
	racers             = 8
)

// testConcurrentSameVersion starts writers together at one version: exactly
// one wins and the others get a ConcurrencyError saying the stream is at the
// winner's version.
func testConcurrentSameVersion(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	hs := handles(t, b, s)
	stream := newStream()
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, sameVersionWriters)
		evs   = newEvents(sameVersionWriters)
	)
	for i := range sameVersionWriters {
		wg.Go(func() {
			<-start
			_, errs[i] = hs[i%len(hs)].Append(ctx, runtime.AppendRequest{Stream: stream, ExpectedVersion: 0, Events: evs[i : i+1]})
		})
	}
	close(start)
	wait(t, &wg)
	winner := -1
	for i, err := range errs {
		var ce *runtime.ConcurrencyError
		switch {
		case err == nil && winner >= 0:
			t.Errorf("writers %d and %d both appended at version 0", winner, i)
		case err == nil:
			winner = i
		case !errors.As(err, &ce):
			t.Errorf("losing writer %d: err = %v, want a *runtime.ConcurrencyError", i, err)
		case ce.Expected != 0 || ce.Actual != 1 || ce.Stream != stream:
			t.Errorf("losing writer %d: ConcurrencyError{Stream %v, Expected %d, Actual %d}, want {%v, 0, 1}", i, ce.Stream, ce.Expected, ce.Actual, stream)
		}
	}
	if winner < 0 {
		t.Fatal("no writer appended")
	}
	checkStream(t, ctx, s, stream, evs[winner:winner+1])
}

// testConcurrentRetryLoop has writers append one event at a time, retrying
// at the version a ConcurrencyError reports: every event lands exactly once
// and the stream has no gaps.
func testConcurrentRetryLoop(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	hs := handles(t, b, s)
	stream := newStream()
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		evs   = newEvents(retryWriters * retryEventsEach)
	)
	for w := range retryWriters {
		wg.Go(func() {
			<-start
			h := hs[w%len(hs)]
			version := uint64(0)
			for i := range retryEventsEach {
				ev := evs[w*retryEventsEach+i]
				for {
					res, err := h.Append(ctx, runtime.AppendRequest{Stream: stream, ExpectedVersion: version, Events: []runtime.EventRecord{ev}})
					if err == nil {
						version = res.Version
						break
					}
					var ce *runtime.ConcurrencyError
					if !errors.As(err, &ce) {
						t.Errorf("writer %d: %v", w, err)
						return
					}
					if ce.Actual == version {
						t.Errorf("writer %d: ConcurrencyError with Actual = Expected = %d", w, version)
						return
					}
					version = ce.Actual
				}
			}
		})
	}
	close(start)
	wait(t, &wg)
	if t.Failed() {
		return
	}
	got := readStream(t, ctx, s, stream, 0)
	if len(got) != len(evs) {
		t.Fatalf("stream holds %d events, want %d", len(got), len(evs))
	}
	seen := make(map[string]bool, len(got))
	for i, e := range got {
		if e.Sequence != uint64(i+1) {
			t.Fatalf("event %d has sequence %d: sequences must be 1..N without gaps", i+1, e.Sequence)
		}
		seen[e.ID] = true
	}
	for _, e := range evs {
		if !seen[e.ID] {
			t.Errorf("event %s was lost", e.ID)
		}
	}
	checkIncreasing(t, "ReadStream", eventPositions(got))
}

// testConcurrentManyStreams appends to many streams at once: ReadAll sees
// every event exactly once in increasing positions, and each stream holds
// its events in order.
func testConcurrentManyStreams(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	hs := handles(t, b, s)
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		streams = make([]runtime.StreamID, manyStreams)
		evs     = make([][]runtime.EventRecord, manyStreams)
	)
	for w := range manyStreams {
		streams[w], evs[w] = newStream(), newEvents(manyStreamsEvents)
		wg.Go(func() {
			<-start
			h := hs[w%len(hs)]
			// Batches of 1 to 3 events: appends of several events must
			// take consecutive sequences too.
			for i := 0; i < manyStreamsEvents; {
				n := min(w%3+1, manyStreamsEvents-i)
				_, err := h.Append(ctx, runtime.AppendRequest{Stream: streams[w], ExpectedVersion: uint64(i), Events: evs[w][i : i+n]})
				if err != nil {
					t.Errorf("stream %d: append at version %d: %v", w, i, err)
					return
				}
				i += n
			}
		})
	}
	close(start)
	wait(t, &wg)
	if t.Failed() {
		return
	}
	all := readAll(t, ctx, s, 0, 0)
	if len(all) != manyStreams*manyStreamsEvents {
		t.Fatalf("ReadAll returned %d events, want %d", len(all), manyStreams*manyStreamsEvents)
	}
	checkIncreasing(t, "ReadAll", eventPositions(all))
	seen := make(map[string]int, len(all))
	for _, e := range all {
		seen[e.ID]++
	}
	for w := range manyStreams {
		for _, e := range evs[w] {
			if seen[e.ID] != 1 {
				t.Fatalf("event %s of stream %d seen %d times by ReadAll, want once", e.ID, w, seen[e.ID])
			}
		}
		checkStream(t, ctx, hs[len(hs)-1], streams[w], evs[w])
	}
}

// testConcurrentPoller reads the global log from its last seen position in
// a loop while writers append, as a projection does. It must see every
// event exactly once, in increasing positions: a store that lets a later
// position become visible before an earlier one commits makes the poller
// skip the earlier event for good.
func testConcurrentPoller(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	hs := handles(t, b, s)
	reader := hs[len(hs)-1]
	const total = pollerWriters * pollerEventsEach
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		written = make(chan struct{})
	)
	// Two writers per stream, so that AnyVersion appends contend too.
	streams := make([]runtime.StreamID, pollerWriters/2)
	for i := range streams {
		streams[i] = newStream()
	}
	for w := range pollerWriters {
		wg.Go(func() {
			<-start
			h, stream := hs[w%len(hs)], streams[w/2]
			for i := 0; i < pollerEventsEach; {
				n := min(w%2+1, pollerEventsEach-i)
				_, err := h.Append(ctx, runtime.AppendRequest{Stream: stream, ExpectedVersion: runtime.AnyVersion, Events: newEvents(n)})
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				i += n
			}
		})
	}
	go func() {
		wg.Wait()
		close(written)
	}()

	seen := make(map[string]bool, total)
	var last uint64
	poll := func() int {
		n := 0
		err := reader.ReadAll(ctx, last, pollerPageSize, func(r *runtime.EventRecord) error {
			if r.Position <= last {
				return fmt.Errorf("ReadAll after %d returned position %d", last, r.Position)
			}
			if seen[r.ID] {
				return fmt.Errorf("event %s at position %d seen twice", r.ID, r.Position)
			}
			seen[r.ID] = true
			last = r.Position
			n++
			return nil
		})
		if err != nil {
			t.Fatalf("poll: %v", err)
		}
		return n
	}
	close(start)
	for done := false; !done; {
		select {
		case <-written:
			done = true
		case <-ctx.Done():
			t.Fatalf("writers still running after %v", Timeout)
		default:
			poll()
		}
	}
	// Every append has returned, so everything is committed: read on until
	// a poll comes back empty.
	for poll() > 0 {
	}
	if t.Failed() {
		return
	}
	if len(seen) != total {
		t.Fatalf("the poller saw %d events, %d were appended: it skipped events that became visible after a higher position", len(seen), total)
	}
	if all := readAll(t, ctx, s, 0, 0); len(all) != total {
		t.Fatalf("ReadAll from the start returned %d events, want %d", len(all), total)
	}
}

// testConcurrentIdenticalRetries sends one append several times at once, as
// a client whose first attempt timed out but is still in flight does: every
// attempt succeeds with the same result, and the events and outbox messages
// are stored once. A backend that checks for stored ids before taking its
// write lock, or maps the unique-key violation of a concurrent twin to an
// error, fails here.
func testConcurrentIdenticalRetries(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	hs := handles(t, b, s)
	stream := newStream()
	evs := newEvents(3)
	req := runtime.AppendRequest{Stream: stream, Events: evs, Outbox: []runtime.OutboxMessage{newMessage("once")}}
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		results = make([]runtime.AppendResult, racers)
		errs    = make([]error, racers)
	)
	for i := range racers {
		wg.Go(func() {
			<-start
			results[i], errs[i] = hs[i%len(hs)].Append(ctx, req)
		})
	}
	close(start)
	wait(t, &wg)
	for i := range racers {
		if errs[i] != nil {
			t.Errorf("attempt %d: %v", i, errs[i])
		} else if results[i] != results[0] {
			t.Errorf("attempt %d returned %+v, attempt 0 %+v", i, results[i], results[0])
		}
	}
	checkStream(t, ctx, s, stream, evs)
	if msgs := relayAll(t, ctx, s, 10); len(msgs) != 1 {
		t.Errorf("outbox held %d messages, want 1", len(msgs))
	}
}

// testConcurrentDuplicateID appends one event to several new streams at
// once: exactly one append succeeds and the others fail with
// ErrDuplicateEvent.
func testConcurrentDuplicateID(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	hs := handles(t, b, s)
	ev := newEvent(1)
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		streams = make([]runtime.StreamID, racers)
		errs    = make([]error, racers)
	)
	for i := range racers {
		streams[i] = newStream()
		wg.Go(func() {
			<-start
			_, errs[i] = hs[i%len(hs)].Append(ctx, runtime.AppendRequest{Stream: streams[i], Events: []runtime.EventRecord{ev}})
		})
	}
	close(start)
	wait(t, &wg)
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("event %s stored in the streams of attempts %d and %d", ev.ID, winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, runtime.ErrDuplicateEvent):
			t.Errorf("attempt %d: err = %v, want ErrDuplicateEvent", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no attempt stored the event")
	}
	for i, st := range streams {
		var want []runtime.EventRecord
		if i == winner {
			want = []runtime.EventRecord{ev}
		}
		checkStream(t, ctx, s, st, want)
	}
}
