package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/postgres"
)

// Sizes of TestRelaySurvivesFailures.
const (
	relayStreams      = 10
	relayEventsEach   = 50
	relayBatch        = 50
	relayPartialBatch = 25 // messages "published" before a failure strikes
)

// TestRelaySurvivesFailures relays an outbox that writers fill
// concurrently, and breaks the relay mid-batch three ways: its connection is
// terminated by the server while publish is blocked, its context is
// cancelled, and publish fails. Then relaying restarts. Every message must
// arrive (duplicates allowed, none lost) and, per stream, the first arrivals
// must be in sequence order.
func TestRelaySurvivesFailures(t *testing.T) {
	f := newFixture(t)
	cfg := postgres.Config{Schema: freshSchema(t, f.url)}
	writer := f.openConfig(t, cfg)
	// The relay has its own pool, named so that only its connections are
	// terminated.
	app := "edatest-relay-" + newID(t)[len(t.Name()):]
	relay := f.openURL(t, withAppName(t, f.url, app), cfg)
	killer := f.pool(t, nil)
	ctx := testContext(t)

	// Writers: one goroutine per stream, appends of 1 to 3 events, one
	// outbox message per event with the event's id as UUID.
	type origin struct {
		stream string
		seq    int
	}
	var (
		originMu sync.Mutex
		origins  = map[string]origin{}
		writers  sync.WaitGroup
	)
	writeErrs := make(chan error, relayStreams)
	for s := range relayStreams {
		writers.Go(func() {
			stream := runtime.StreamID{Type: "relay.v1.Order", ID: fmt.Sprintf("order-%d", s)}
			for seq := 1; seq <= relayEventsEach; {
				n := min(1+(seq+s)%3, relayEventsEach-seq+1)
				req := runtime.AppendRequest{Stream: stream, ExpectedVersion: uint64(seq - 1)}
				for i := range n {
					e := event(t, seq+i)
					req.Events = append(req.Events, e)
					req.Outbox = append(req.Outbox, runtime.OutboxMessage{Topic: "orders", UUID: e.ID, Payload: e.Data})
					originMu.Lock()
					origins[e.ID] = origin{stream.ID, seq + i}
					originMu.Unlock()
				}
				if _, err := writer.Append(ctx, req); err != nil {
					writeErrs <- err
					return
				}
				seq += n
			}
		})
	}

	var (
		arrivalsMu sync.Mutex
		arrivals   []string
	)
	deliver := func(msgs []runtime.OutboxMessage) {
		arrivalsMu.Lock()
		defer arrivalsMu.Unlock()
		for _, m := range msgs {
			arrivals = append(arrivals, m.UUID)
		}
	}
	waitOutbox := func(atLeast int) {
		eventually(t, testTimeout, fmt.Sprintf("outbox never held %d messages", atLeast), func() bool {
			var n int
			err := killer.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %q.eda_outbox`, cfg.Schema)).Scan(&n)
			return err == nil && n >= atLeast
		})
	}

	// 1. The server terminates the relay's connection while publish is
	// blocked after delivering part of the batch.
	waitOutbox(relayBatch)
	blocked, release := make(chan struct{}), make(chan struct{})
	result := make(chan error, 1)
	go func() {
		_, err := relay.RelayOutbox(ctx, relayBatch, func(msgs []runtime.OutboxMessage) error {
			deliver(msgs[:relayPartialBatch])
			close(blocked)
			<-release
			return nil
		})
		result <- err
	}()
	<-blocked
	if n := terminate(t, killer, app); n == 0 {
		t.Fatal("no relay connection to terminate")
	}
	close(release)
	if err := <-result; err == nil {
		t.Fatal("RelayOutbox on a terminated connection returned nil")
	} else {
		t.Logf("terminated: %v", err)
	}

	// 2. The relay's context is cancelled mid-batch.
	cctx, cancel := context.WithCancel(ctx)
	_, err := relay.RelayOutbox(cctx, relayBatch, func(msgs []runtime.OutboxMessage) error {
		deliver(msgs[:min(relayPartialBatch, len(msgs))])
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("RelayOutbox with its context cancelled mid-batch = %v, want context.Canceled", err)
	}

	// 3. publish fails after delivering part of the batch.
	boom := errors.New("broker down")
	if _, err := relay.RelayOutbox(ctx, relayBatch, func(msgs []runtime.OutboxMessage) error {
		deliver(msgs[:min(relayPartialBatch, len(msgs))])
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("RelayOutbox with a failing publish = %v, want the publish error", err)
	}

	// 4. Relay normally until the writers are done and the outbox is empty.
	writers.Wait()
	close(writeErrs)
	for err := range writeErrs {
		t.Fatalf("writer: %v", err)
	}
	for {
		n, err := relay.RelayOutbox(ctx, relayBatch, func(msgs []runtime.OutboxMessage) error {
			deliver(msgs)
			return nil
		})
		if err != nil {
			t.Fatalf("RelayOutbox after the failures: %v", err)
		}
		if n == 0 {
			break
		}
	}

	total := relayStreams * relayEventsEach
	if len(origins) != total {
		t.Fatalf("%d events written, want %d", len(origins), total)
	}
	seen := map[string]bool{}
	next := map[string]int{} // stream -> next sequence expected to arrive first
	for _, uuid := range arrivals {
		if seen[uuid] {
			continue
		}
		seen[uuid] = true
		o, ok := origins[uuid]
		if !ok {
			t.Fatalf("unknown message %s arrived", uuid)
		}
		if want := next[o.stream] + 1; o.seq != want {
			t.Fatalf("stream %s: event %d arrived first before event %d", o.stream, o.seq, want)
		}
		next[o.stream] = o.seq
	}
	if len(seen) != total {
		t.Fatalf("%d distinct messages arrived, want all %d", len(seen), total)
	}
	// The failures must have caused redelivery, or the test tested nothing.
	if dups := len(arrivals) - total; dups < 2*relayPartialBatch {
		t.Errorf("%d duplicate arrivals, want at least %d from the interrupted batches", dups, 2*relayPartialBatch)
	}
}

// TestRelayDeadlineWhilePublishing checks that a relay whose publish
// outlives the context returns an error (the rows stay) instead of hanging.
func TestRelayDeadlineWhilePublishing(t *testing.T) {
	f := newFixture(t)
	s := f.open(t)
	stream := runtime.StreamID{Type: "t", ID: "1"}
	e := event(t, 1)
	mustAppend(t, s, runtime.AppendRequest{Stream: stream, Events: []runtime.EventRecord{e},
		Outbox: []runtime.OutboxMessage{{Topic: "t", UUID: e.ID, Payload: e.Data}}})
	ctx, cancel := context.WithTimeout(testContext(t), 100*time.Millisecond)
	defer cancel()
	_, err := s.RelayOutbox(ctx, 10, func([]runtime.OutboxMessage) error {
		<-ctx.Done()
		return nil
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RelayOutbox = %v, want context.DeadlineExceeded", err)
	}
	var got []string
	if _, err := s.RelayOutbox(testContext(t), 10, func(msgs []runtime.OutboxMessage) error {
		for _, m := range msgs {
			got = append(got, m.UUID)
		}
		return nil
	}); err != nil || len(got) != 1 || got[0] != e.ID {
		t.Fatalf("relay after the deadline = %v, %v; want the message again", got, err)
	}
}
