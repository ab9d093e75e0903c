package storetest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protoc-gen-eda/eda/runtime"
)

var outboxTests = []test{
	{"RelayOrderAndFields", testOutboxRelayOrder},
	{"KeptAfterPublishError", testOutboxPublishError},
	{"Limit", testOutboxLimit},
	{"StreamOrder", testOutboxStreamOrder},
	{"ConcurrentRelays", func(t *testing.T, b Backend) { testOutboxConcurrentRelays(t, b, false) }},
	{"ConcurrentRelaysWithFailures", func(t *testing.T, b Backend) { testOutboxConcurrentRelays(t, b, true) }},
	{"Notifier", testOutboxNotifier},
	{"Delayed", testOutboxDelayed},
	{"DelayedPast", testOutboxDelayedPast},
	{"DelayedSurvivesReopen", testOutboxDelayedReopen},
}

// Sizes of the outbox tests.
const (
	orderStreams      = 4
	orderAppendsEach  = 25
	orderRelayBatch   = 7
	relayMessages     = 200
	relayGoroutines   = 8
	relayBatch        = 9
	relayFailEvery    = 4 // ConcurrentRelaysWithFailures fails every 4th publish
	notifierAppends   = 50
	relayPublishDelay = 200 * time.Microsecond
	// outboxDelay is how long the delayed messages of the Delayed tests
	// wait: long enough that relaying the others surely ends before it,
	// short enough to keep the tests quick.
	outboxDelay = 300 * time.Millisecond
	// duePoll is how often the Delayed tests relay while they wait.
	duePoll = 5 * time.Millisecond
	// dueWithin bounds how late a delayed message may be relayed: far
	// more than a relay takes, far less than Timeout, so that a lost
	// message fails the test quickly.
	dueWithin = 10 * time.Second
)

// testOutboxRelayOrder relays the messages of several appends: they come in
// write order with every field intact, and are gone once published.
func testOutboxRelayOrder(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	stream := newStream()
	var want []runtime.OutboxMessage
	for i, n := range []int{1, 3, 1} {
		msgs := make([]runtime.OutboxMessage, n)
		for j := range msgs {
			msgs[j] = newMessage(fmt.Sprintf("append %d message %d", i, j))
		}
		want = append(want, msgs...)
		mustAppend(t, ctx, s, runtime.AppendRequest{Stream: stream, ExpectedVersion: uint64(i), Events: newEvents(1), Outbox: msgs})
	}
	// Nil metadata and an empty payload round-trip too.
	last := runtime.OutboxMessage{Topic: "storetest.v1.other", UUID: newID()}
	mustAppend(t, ctx, s, runtime.AppendRequest{Stream: stream, ExpectedVersion: 3, Events: newEvents(1), Outbox: []runtime.OutboxMessage{last}})
	want = append(want, last)

	var got []runtime.OutboxMessage
	calls := 0
	n, err := s.RelayOutbox(ctx, 100, func(msgs []runtime.OutboxMessage) error {
		calls++
		got = cloneMessages(msgs)
		return nil
	})
	if err != nil {
		t.Fatalf("RelayOutbox: %v", err)
	}
	if n != len(want) || len(got) != len(want) || calls != 1 {
		t.Fatalf("RelayOutbox returned %d after %d publish calls with %d messages, want one call with %d", n, calls, len(got), len(want))
	}
	for i := range got {
		checkMessage(t, got[i], want[i])
	}
	checkIncreasing(t, "outbox", messagePositions(got))

	// Published messages are deleted. Whether publish is called with an
	// empty batch is the backend's choice; it must not get messages.
	n, err = s.RelayOutbox(ctx, 100, func(msgs []runtime.OutboxMessage) error {
		if len(msgs) > 0 {
			t.Errorf("published messages relayed again: %d", len(msgs))
		}
		return nil
	})
	if err != nil || n != 0 {
		t.Errorf("RelayOutbox of an empty outbox = %d, %v; want 0, nil", n, err)
	}
}

// testOutboxPublishError fails publish: RelayOutbox returns the error, and
// the messages stay and are relayed again, unchanged and in order.
func testOutboxPublishError(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	want := []runtime.OutboxMessage{newMessage("a"), newMessage("b"), newMessage("c")}
	mustAppend(t, ctx, s, runtime.AppendRequest{Stream: newStream(), Events: newEvents(1), Outbox: want})
	broker := errors.New("storetest: broker down")
	var failed []runtime.OutboxMessage
	n, err := s.RelayOutbox(ctx, 10, func(msgs []runtime.OutboxMessage) error {
		failed = cloneMessages(msgs)
		return broker
	})
	if !errors.Is(err, broker) {
		t.Errorf("RelayOutbox with a failing publish: err = %v, want one wrapping publish's error", err)
	}
	if n != 0 {
		t.Errorf("RelayOutbox with a failing publish returned %d, want 0 published", n)
	}
	if len(failed) != len(want) {
		t.Fatalf("failing publish got %d messages, want %d", len(failed), len(want))
	}
	got := relayAll(t, ctx, s, 10)
	if len(got) != len(want) {
		t.Fatalf("relay after the failure published %d messages, want all %d again", len(got), len(want))
	}
	for i := range got {
		checkMessage(t, got[i], want[i])
		if got[i].Position != failed[i].Position {
			t.Errorf("message %d moved from position %d to %d", i, failed[i].Position, got[i].Position)
		}
	}
}

// testOutboxLimit relays in batches no larger than limit.
func testOutboxLimit(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	var want []runtime.OutboxMessage
	for i := range 5 {
		want = append(want, newMessage(strconv.Itoa(i)))
	}
	mustAppend(t, ctx, s, runtime.AppendRequest{Stream: newStream(), Events: newEvents(1), Outbox: want})
	var sizes []int
	var got []runtime.OutboxMessage
	for range 4 {
		n, err := s.RelayOutbox(ctx, 2, func(msgs []runtime.OutboxMessage) error {
			if len(msgs) > 0 {
				sizes = append(sizes, len(msgs))
			}
			got = append(got, cloneMessages(msgs)...)
			return nil
		})
		if err != nil {
			t.Fatalf("RelayOutbox: %v", err)
		}
		if n > 2 {
			t.Errorf("RelayOutbox with limit 2 returned %d", n)
		}
	}
	if fmt.Sprint(sizes) != "[2 2 1]" {
		t.Errorf("batch sizes with limit 2 = %v, want [2 2 1]", sizes)
	}
	if len(got) != len(want) {
		t.Fatalf("relayed %d messages, want %d", len(got), len(want))
	}
	for i := range got {
		checkMessage(t, got[i], want[i])
	}
}

// testOutboxStreamOrder appends to several streams at once, one message per
// append, and relays in small batches: within each stream the messages come
// in commit order, each exactly once.
func testOutboxStreamOrder(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	hs := handles(t, b, s)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range orderStreams {
		wg.Go(func() {
			<-start
			h, stream := hs[w%len(hs)], newStream()
			for i := range orderAppendsEach {
				_, err := h.Append(ctx, runtime.AppendRequest{
					Stream: stream, ExpectedVersion: uint64(i), Events: newEvents(1),
					Outbox: []runtime.OutboxMessage{newMessage(fmt.Sprintf("%d:%d", w, i))},
				})
				if err != nil {
					t.Errorf("stream %d append %d: %v", w, i, err)
					return
				}
			}
		})
	}
	close(start)
	wait(t, &wg)
	if t.Failed() {
		return
	}
	got := relayAll(t, ctx, s, orderRelayBatch)
	if len(got) != orderStreams*orderAppendsEach {
		t.Fatalf("relayed %d messages, want %d", len(got), orderStreams*orderAppendsEach)
	}
	checkIncreasing(t, "outbox", messagePositions(got))
	next := make([]int, orderStreams)
	for _, m := range got {
		w, i, _ := strings.Cut(string(m.Payload), ":")
		wi, _ := strconv.Atoi(w)
		ii, _ := strconv.Atoi(i)
		if ii != next[wi] {
			t.Fatalf("stream %d: message %d relayed where %d was due", wi, ii, next[wi])
		}
		next[wi]++
	}
}

// testOutboxConcurrentRelays runs relays on several goroutines (and
// handles, when the backend can share): publish never runs twice at once,
// and every message is published successfully exactly once. With failures,
// every fourth publish fails and its messages must come again.
func testOutboxConcurrentRelays(t *testing.T, b Backend, failures bool) {
	ctx := testContext(t)
	s := open(t, b)
	hs := handles(t, b, s)
	want := make(map[string]bool, relayMessages)
	stream := newStream()
	for i := 0; i < relayMessages; i += 10 {
		msgs := make([]runtime.OutboxMessage, 10)
		for j := range msgs {
			msgs[j] = newMessage(strconv.Itoa(i + j))
			want[msgs[j].UUID] = true
		}
		mustAppend(t, ctx, s, runtime.AppendRequest{Stream: stream, ExpectedVersion: runtime.AnyVersion, Events: newEvents(1), Outbox: msgs})
	}
	var (
		inFlight, calls, published atomic.Int64
		mu                         sync.Mutex
		succeeded                  = make(map[string]int, relayMessages)
		lastPosition               uint64
		wg                         sync.WaitGroup
		start                      = make(chan struct{})
		errFailed                  = errors.New("storetest: publish failed")
	)
	publish := func(msgs []runtime.OutboxMessage) error {
		if inFlight.Add(1) != 1 {
			t.Error("two relays ran publish at the same time")
		}
		defer inFlight.Add(-1)
		// Stay in publish a moment, as a broker round trip does, so that an
		// unclaimed outbox lets another relay in.
		time.Sleep(relayPublishDelay)
		if failures && calls.Add(1)%relayFailEvery == 0 {
			return errFailed
		}
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			succeeded[m.UUID]++
			if m.Position <= lastPosition {
				t.Errorf("message at position %d published after position %d", m.Position, lastPosition)
			}
			lastPosition = m.Position
		}
		return nil
	}
	for g := range relayGoroutines {
		wg.Go(func() {
			<-start
			h := hs[g%len(hs)]
			for published.Load() < relayMessages && ctx.Err() == nil {
				n, err := h.RelayOutbox(ctx, relayBatch, publish)
				switch {
				case err != nil && !(failures && errors.Is(err, errFailed)):
					t.Errorf("relay %d: %v", g, err)
					return
				case n > relayBatch:
					t.Errorf("relay %d published %d messages with limit %d", g, n, relayBatch)
					return
				case n == 0:
					// Another relay holds the claim: poll again shortly.
					time.Sleep(time.Millisecond)
				}
				published.Add(int64(n))
			}
		})
	}
	close(start)
	wait(t, &wg)
	if ctx.Err() != nil {
		t.Fatalf("relays published %d of %d messages within %v", published.Load(), relayMessages, Timeout)
	}
	if published.Load() != relayMessages {
		t.Errorf("relays reported %d messages published, want %d", published.Load(), relayMessages)
	}
	for id := range want {
		if n := succeeded[id]; n != 1 {
			t.Errorf("message %s published successfully %d times, want once", id, n)
		}
	}
	if len(succeeded) != len(want) {
		t.Errorf("published %d distinct messages, want %d", len(succeeded), len(want))
	}
}

// testOutboxNotifier checks OutboxReady, for stores that implement
// runtime.OutboxNotifier: a value arrives after an append with outbox
// messages, and appends never block on an unread channel.
func testOutboxNotifier(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	notifier, ok := s.(runtime.OutboxNotifier)
	if !ok {
		t.Skip("store does not implement runtime.OutboxNotifier")
	}
	ready := notifier.OutboxReady()
	if ready == nil {
		t.Fatal("OutboxReady returned a nil channel")
	}
	select { // a value may be pending from before; only new ones count
	case <-ready:
	default:
	}
	stream := newStream()
	mustAppend(t, ctx, s, runtime.AppendRequest{Stream: stream, Events: newEvents(1), Outbox: []runtime.OutboxMessage{newMessage("m")}})
	select {
	case <-ready:
	case <-time.After(Timeout):
		t.Fatal("no value on OutboxReady after an append with outbox messages")
	}

	// Nobody reads the channel while these appends run: they must not block.
	done := make(chan error, 1)
	go func() {
		for i := range notifierAppends {
			_, err := s.Append(ctx, runtime.AppendRequest{Stream: stream, ExpectedVersion: uint64(i + 1), Events: newEvents(1), Outbox: []runtime.OutboxMessage{newMessage("m")}})
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
	case <-time.After(Timeout):
		t.Fatal("appends blocked on an unread OutboxReady channel")
	}
	select {
	case <-ready:
	case <-time.After(Timeout):
		t.Fatal("no value on OutboxReady after appends with outbox messages")
	}
}

// delayedMessage returns a message delivered at at.
func delayedMessage(payload string, at time.Time) runtime.OutboxMessage {
	m := newMessage(payload)
	m.DeliverAt = at
	return m
}

// checkDeliverAt checks that a relayed message carries the DeliverAt it was
// written with, to the microsecond (PostgreSQL's precision), in UTC.
func checkDeliverAt(t *testing.T, got runtime.OutboxMessage, want time.Time) {
	t.Helper()
	if want.IsZero() {
		if !got.DeliverAt.IsZero() {
			t.Errorf("message %s written without DeliverAt comes back with %v", got.UUID, got.DeliverAt)
		}
		return
	}
	if d := got.DeliverAt.Sub(want); d < -time.Microsecond || d > time.Microsecond || got.DeliverAt.Location() != time.UTC {
		t.Errorf("message %s: DeliverAt %v, want %v in UTC", got.UUID, got.DeliverAt, want.UTC())
	}
}

// relayUntil relays in batches of batch, every duePoll, until it has n
// messages, and returns them with the time publish got each. It fails the
// test if they are not all relayed within dueWithin after outboxDelay.
func relayUntil(t *testing.T, s runtime.EventStore, batch, n int) ([]runtime.OutboxMessage, []time.Time) {
	t.Helper()
	ctx := testContext(t)
	deadline := time.Now().Add(outboxDelay + dueWithin)
	var got []runtime.OutboxMessage
	var published []time.Time
	for len(got) < n {
		if time.Now().After(deadline) {
			t.Fatalf("relayed %d of %d delayed messages within %v of their time: were they deleted, or are they never due?", len(got), n, dueWithin)
		}
		if _, err := s.RelayOutbox(ctx, batch, func(msgs []runtime.OutboxMessage) error {
			now := time.Now()
			for _, m := range cloneMessages(msgs) {
				got = append(got, m)
				published = append(published, now)
			}
			return nil
		}); err != nil {
			t.Fatalf("RelayOutbox: %v", err)
		}
		time.Sleep(duePoll)
	}
	return got, published
}

// checkNotEarly checks that a delayed message reached publish no earlier
// than its DeliverAt: the store read its clock before it called publish.
func checkNotEarly(t *testing.T, published, at time.Time) {
	t.Helper()
	if early := at.Sub(published); early > clockTolerance {
		t.Errorf("delayed message published %v before its DeliverAt", early)
	}
}

// testOutboxDelayed writes a delayed message between messages to deliver
// at once and one whose DeliverAt has passed: those are relayed at once, in
// batches smaller than all of them (the delayed one does not hold them
// back, and deleting a batch around it does not delete it); the delayed
// one is not relayed before its DeliverAt, and is relayed after it with
// its fields intact.
func testOutboxDelayed(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	stream := newStream()
	at := time.Now().Add(outboxDelay)
	first := []runtime.OutboxMessage{newMessage("a"), delayedMessage("delayed", at), delayedMessage("past", time.Now().Add(-time.Minute)), newMessage("b")}
	mustAppend(t, ctx, s, runtime.AppendRequest{Stream: stream, Events: newEvents(1), Outbox: first})
	later := newMessage("c")
	mustAppend(t, ctx, s, runtime.AppendRequest{Stream: stream, ExpectedVersion: 1, Events: newEvents(1), Outbox: []runtime.OutboxMessage{later}})

	got := relayAll(t, ctx, s, 2)
	if time.Now().After(at) {
		t.Skipf("relaying 4 messages took longer than %v: the machine is too slow for this test", outboxDelay)
	}
	if len(got) != 4 {
		t.Fatalf("before the delayed message is due, relayed %d messages, want the 4 others", len(got))
	}
	for i, want := range []runtime.OutboxMessage{first[0], first[2], first[3], later} {
		checkMessage(t, got[i], want)
		checkDeliverAt(t, got[i], want.DeliverAt)
	}
	checkIncreasing(t, "outbox", messagePositions(got))

	delayed, published := relayUntil(t, s, 10, 1)
	if len(delayed) != 1 {
		t.Fatalf("relayed %d messages once due, want the delayed one", len(delayed))
	}
	checkMessage(t, delayed[0], first[1])
	checkDeliverAt(t, delayed[0], at)
	checkNotEarly(t, published[0], at)
	if rest := relayAll(t, ctx, s, 10); len(rest) != 0 {
		t.Errorf("%d messages relayed again after the delayed one", len(rest))
	}
}

// clockTolerance is how far a store's reading of DeliverAt may be ahead of
// the test's clock: the granularity of a stored time, or a clock of a
// database server kept in step with this machine's.
const clockTolerance = 5 * time.Millisecond

// testOutboxDelayedPast writes messages whose DeliverAt has passed: they
// are due at once and come in position order with the others.
func testOutboxDelayedPast(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	past := time.Now().Add(-time.Hour)
	want := []runtime.OutboxMessage{newMessage("a"), delayedMessage("past", past), newMessage("b"), delayedMessage("long past", past.Add(-time.Hour))}
	mustAppend(t, ctx, s, runtime.AppendRequest{Stream: newStream(), Events: newEvents(1), Outbox: want})
	got := relayAll(t, ctx, s, 100)
	if len(got) != len(want) {
		t.Fatalf("relayed %d messages, want all %d: their time has passed", len(got), len(want))
	}
	for i := range got {
		checkMessage(t, got[i], want[i])
		checkDeliverAt(t, got[i], want[i].DeliverAt)
	}
}

// testOutboxDelayedReopen writes a delayed message, closes the store and
// relays it through a second handle on the same data (a restarted
// process) once it is due: the delay is durable.
func testOutboxDelayedReopen(t *testing.T, b Backend) {
	if b.Share == nil {
		t.Skip("the backend cannot reopen a store's data (Backend.Share is nil)")
	}
	ctx := testContext(t)
	s := open(t, b)
	s2 := share(t, b, s)
	at := time.Now().Add(outboxDelay)
	want := delayedMessage("durable", at)
	mustAppend(t, ctx, s, runtime.AppendRequest{Stream: newStream(), Events: newEvents(1), Outbox: []runtime.OutboxMessage{want}})
	if got := relayAll(t, ctx, s, 10); len(got) != 0 {
		if time.Now().Before(at) {
			t.Fatalf("relayed %d messages before the delayed one was due", len(got))
		}
		t.Skipf("appending and relaying took longer than %v: the machine is too slow for this test", outboxDelay)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got, published := relayUntil(t, s2, 10, 1)
	checkMessage(t, got[0], want)
	checkDeliverAt(t, got[0], at)
	checkNotEarly(t, published[0], at)
}
