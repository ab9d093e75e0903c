package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/sqlite"
)

// broker records what relays publish.
type broker struct {
	mu       sync.Mutex
	arrivals []runtime.OutboxMessage
	inFlight atomic.Int32
	overlaps atomic.Int32
}

// publishOne records one message.
func (b *broker) publishOne(m runtime.OutboxMessage) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.arrivals = append(b.arrivals, m)
}

// enter and leave bracket a publish call, counting overlapping calls.
func (b *broker) enter() {
	if b.inFlight.Add(1) > 1 {
		b.overlaps.Add(1)
	}
}
func (b *broker) leave() { b.inFlight.Add(-1) }

// counts returns how often each UUID arrived.
func (b *broker) counts() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := make(map[string]int)
	for _, m := range b.arrivals {
		c[m.UUID]++
	}
	return c
}

// checkFirstArrivals checks that every message of want arrived and that
// within each stream the first arrivals came in append order. Payloads are
// "stream/index".
func (b *broker) checkFirstArrivals(t *testing.T, want []runtime.OutboxMessage) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	seen := make(map[string]bool)
	next := make(map[string]int)
	for _, m := range b.arrivals {
		if seen[m.UUID] {
			continue
		}
		seen[m.UUID] = true
		stream, idx, _ := strings.Cut(string(m.Payload), "/")
		i, _ := strconv.Atoi(idx)
		if i != next[stream] {
			t.Fatalf("stream %s: message %d arrived first where %d was due", stream, i, next[stream])
		}
		next[stream]++
	}
	for _, m := range want {
		if !seen[m.UUID] {
			t.Errorf("message %s (%s) never arrived", m.UUID, m.Payload)
		}
	}
}

// fillOutbox appends to streams streams in turn, msgsPer outbox messages
// per append, until each stream has appends appends; it returns the
// messages in append order. Safe on any goroutine.
func fillOutbox(ctx context.Context, s runtime.EventStore, streams, appends, msgsPer int) ([]runtime.OutboxMessage, error) {
	var all []runtime.OutboxMessage
	for a := range appends {
		for st := range streams {
			stream := runtime.StreamID{Type: "test.v1.Thing", ID: "s" + strconv.Itoa(st)}
			msgs := make([]runtime.OutboxMessage, msgsPer)
			for i := range msgs {
				msgs[i] = runtime.OutboxMessage{
					Topic:   "things",
					UUID:    fmt.Sprintf("m-%d-%d-%d", st, a, i),
					Payload: fmt.Appendf(nil, "%d/%d", st, a*msgsPer+i),
				}
			}
			if _, err := s.Append(ctx, runtime.AppendRequest{
				Stream: stream, ExpectedVersion: uint64(a),
				Events: testEvents(fmt.Sprintf("ev-%d-%d", st, a), 1), Outbox: msgs,
			}); err != nil {
				return nil, fmt.Errorf("append %d to %s: %w", a, stream, err)
			}
			all = append(all, msgs...)
		}
	}
	return all, nil
}

// mustFill is fillOutbox on the test's goroutine.
func mustFill(t *testing.T, s runtime.EventStore, streams, appends, msgsPer int) []runtime.OutboxMessage {
	t.Helper()
	msgs, err := fillOutbox(testContext(t), s, streams, appends, msgsPer)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// TestRelayInterrupted interrupts publish mid-batch (cancelled context,
// failing broker, success under a cancelled context), then restarts the
// store and relays the rest through a broker failing now and then: every
// message arrives, none is lost, first arrivals keep each stream's order,
// and a batch published successfully is not published again.
func TestRelayInterrupted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.db")
	s := openStore(t, path, sqlite.Config{})
	want := mustFill(t, s, 5, 40, 2) // 400 messages
	var b broker
	errBroker := errors.New("broker unavailable")
	const batch = 50

	// 1. Shutdown after 20 messages: publish sees its context cancelled.
	ctx, cancel := context.WithCancel(testContext(t))
	n, err := s.RelayOutbox(ctx, batch, func(msgs []runtime.OutboxMessage) error {
		for i, m := range msgs {
			if i == 20 {
				cancel()
				return ctx.Err()
			}
			b.publishOne(m)
		}
		return nil
	})
	if n != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("relay cancelled mid-batch = %d, %v; want 0 and context.Canceled", n, err)
	}

	// 2. The broker fails after 10 messages.
	n, err = s.RelayOutbox(testContext(t), batch, func(msgs []runtime.OutboxMessage) error {
		for _, m := range msgs[:10] {
			b.publishOne(m)
		}
		return errBroker
	})
	if n != 0 || !errors.Is(err, errBroker) {
		t.Fatalf("relay with a failing broker = %d, %v; want 0 and the broker's error", n, err)
	}

	// 3. The whole batch goes out, but the context ends meanwhile: the
	// messages are out, so they are deleted all the same.
	ctx, cancel = context.WithCancel(testContext(t))
	n, err = s.RelayOutbox(ctx, batch, func(msgs []runtime.OutboxMessage) error {
		for _, m := range msgs {
			b.publishOne(m)
		}
		cancel()
		return nil
	})
	if n != batch || err != nil {
		t.Fatalf("relay whose context ended after a successful publish = %d, %v; want %d, nil", n, err, batch)
	}

	// Restart, and relay the rest with every third publish failing halfway.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, path, sqlite.Config{})
	calls := 0
	for {
		n, err := s.RelayOutbox(testContext(t), 37, func(msgs []runtime.OutboxMessage) error {
			calls++
			for i, m := range msgs {
				if calls%3 == 0 && i == len(msgs)/2 {
					return errBroker
				}
				b.publishOne(m)
			}
			return nil
		})
		if err != nil && !errors.Is(err, errBroker) {
			t.Fatalf("relay after restart: %v", err)
		}
		if err == nil && n == 0 {
			break
		}
		if calls > 100 {
			t.Fatalf("outbox not empty after %d publish calls", calls)
		}
	}
	b.checkFirstArrivals(t, want)
	counts := b.counts()
	for i, m := range want[:batch] {
		wantCount := 1 // published by step 3 only
		switch {
		case i < 10:
			wantCount = 3 // steps 1, 2 and 3
		case i < 20:
			wantCount = 2 // steps 1 and 3
		}
		if counts[m.UUID] != wantCount {
			t.Errorf("message %d of the first batch arrived %d times, want %d", i, counts[m.UUID], wantCount)
		}
	}
}

// TestRelayConcurrentHandles relays from two goroutines on each of two
// Stores on one file while appends go on: no two publish calls overlap, and
// with a broker that never fails every message arrives exactly once, each
// stream's in order.
func TestRelayConcurrentHandles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.db")
	hs := []*sqlite.Store{openStore(t, path, sqlite.Config{}), openStore(t, path, sqlite.Config{})}
	ctx := testContext(t)
	const streams, appends = 6, 50
	total := int64(streams * appends)
	var b broker
	var published atomic.Int64
	var wg sync.WaitGroup
	var want []runtime.OutboxMessage
	wg.Go(func() {
		var err error
		if want, err = fillOutbox(ctx, hs[0], streams, appends, 1); err != nil {
			t.Error(err)
			published.Store(total) // stop the relays
		}
	})
	for g := range 4 {
		h := hs[g%2]
		wg.Go(func() {
			for published.Load() < total && ctx.Err() == nil {
				n, err := h.RelayOutbox(ctx, 7, func(msgs []runtime.OutboxMessage) error {
					b.enter()
					defer b.leave()
					for _, m := range msgs {
						b.publishOne(m)
					}
					// A broker round trip, so that the relays overlap in time.
					time.Sleep(200 * time.Microsecond)
					return nil
				})
				if err != nil {
					t.Errorf("relay %d: %v", g, err)
					return
				}
				published.Add(int64(n))
				if n == 0 {
					// Empty or claimed: wait for an append rather than spin.
					select {
					case <-h.OutboxReady():
					case <-time.After(time.Millisecond):
					}
				}
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("published %d of %d messages before the deadline", published.Load(), total)
	}
	if o := b.overlaps.Load(); o != 0 {
		t.Errorf("%d publish calls overlapped another", o)
	}
	for id, c := range b.counts() {
		if c != 1 {
			t.Errorf("message %s arrived %d times, want once: no publish failed", id, c)
		}
	}
	b.checkFirstArrivals(t, want)
}

// setLease writes the outbox lease row as a relay that died holding it
// would have left it.
func setLease(t *testing.T, path, owner string, expires time.Time) {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`INSERT OR REPLACE INTO eda_outbox_lease (name, owner, expires_at) VALUES ('outbox', ?, ?)`, owner, expires.UnixNano()); err != nil {
		t.Fatal(err)
	}
}

// TestRelayDeadLease leaves a lease behind as a dead relay would: other
// relays publish nothing until it expires, then take over.
func TestRelayDeadLease(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.db")
	s := openStore(t, path, sqlite.Config{})
	want := mustFill(t, s, 2, 3, 1)
	const lease = 300 * time.Millisecond
	expires := time.Now().Add(lease)
	setLease(t, path, "dead-relay", expires)
	var b broker
	publish := func(msgs []runtime.OutboxMessage) error {
		for _, m := range msgs {
			b.publishOne(m)
		}
		return nil
	}
	ctx := testContext(t)
	n, err := s.RelayOutbox(ctx, 100, publish)
	if n != 0 || err != nil {
		t.Fatalf("relay while a live lease is held = %d, %v; want 0, nil", n, err)
	}
	deadline := time.Now().Add(testTimeout)
	for n == 0 && err == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling, as a relay does
		n, err = s.RelayOutbox(ctx, 100, publish)
	}
	if err != nil || n != len(want) {
		t.Fatalf("relay after the lease expired = %d, %v; want %d, nil", n, err, len(want))
	}
	if now := time.Now(); now.Before(expires) {
		t.Errorf("relay took over %v before the dead relay's lease expired", expires.Sub(now))
	}
	b.checkFirstArrivals(t, want)
}

// TestRelayLeaseRenewed keeps publish running for several lease durations:
// the lease is renewed meanwhile, so another Store on the file publishes
// nothing; once the first relay is done, the lease is released at once.
func TestRelayLeaseRenewed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.db")
	const lease = 150 * time.Millisecond
	a := openStore(t, path, sqlite.Config{OutboxLease: lease})
	other := openStore(t, path, sqlite.Config{OutboxLease: lease})
	want := mustFill(t, a, 1, 3, 1)
	ctx := testContext(t)
	entered, release := make(chan struct{}), make(chan struct{})
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := a.RelayOutbox(ctx, 100, func([]runtime.OutboxMessage) error {
			close(entered)
			<-release
			return nil
		})
		done <- result{n, err}
	}()
	<-entered
	for end := time.Now().Add(4 * lease); time.Now().Before(end); {
		n, err := other.RelayOutbox(ctx, 100, func([]runtime.OutboxMessage) error {
			t.Error("a second relay published while the first still held the outbox")
			return nil
		})
		if n != 0 || err != nil {
			t.Fatalf("second relay = %d, %v; want 0, nil", n, err)
		}
		time.Sleep(lease / 10)
	}
	close(release)
	if r := <-done; r.n != len(want) || r.err != nil {
		t.Fatalf("first relay = %d, %v; want %d, nil", r.n, r.err, len(want))
	}
	mustAppend(t, a, runtime.AppendRequest{
		Stream: runtime.StreamID{Type: "test.v1.Thing", ID: "later"}, Events: testEvents("later", 1),
		Outbox: []runtime.OutboxMessage{{Topic: "things", UUID: "later", Payload: []byte("later/0")}},
	})
	n, err := other.RelayOutbox(ctx, 100, func([]runtime.OutboxMessage) error { return nil })
	if n != 1 || err != nil {
		t.Errorf("relay right after the first released the outbox = %d, %v; want 1, nil", n, err)
	}
}

// TestRelayPublishPanics: a panicking publish keeps its messages and
// releases the lease, so the next relay publishes them at once.
func TestRelayPublishPanics(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "relay.db"), sqlite.Config{})
	want := mustFill(t, s, 1, 4, 1)
	ctx := testContext(t)
	func() {
		defer func() {
			if recover() == nil {
				t.Error("publish's panic did not reach the caller")
			}
		}()
		s.RelayOutbox(ctx, 100, func([]runtime.OutboxMessage) error { panic("broker client bug") })
	}()
	var b broker
	n, err := s.RelayOutbox(ctx, 100, func(msgs []runtime.OutboxMessage) error {
		for _, m := range msgs {
			b.publishOne(m)
		}
		return nil
	})
	if n != len(want) || err != nil {
		t.Fatalf("relay after a panic = %d, %v; want %d, nil", n, err, len(want))
	}
	b.checkFirstArrivals(t, want)
}

// TestRelayCloseDuringPublish closes the store while publish runs: Close
// does not wait for the broker, RelayOutbox then reports the closed store,
// and the messages, not deleted, are published again after a restart, once
// the closed relay's lease has expired (the closed store cannot release it,
// and releasing it in Close would let another relay publish the batch while
// the first still does).
func TestRelayCloseDuringPublish(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.db")
	cfg := sqlite.Config{OutboxLease: 200 * time.Millisecond}
	s, err := sqlite.Open(context.Background(), path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := mustFill(t, s, 1, 2, 1)
	ctx := testContext(t)
	entered, release := make(chan struct{}), make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		_, err := s.RelayOutbox(ctx, 100, func([]runtime.OutboxMessage) error {
			close(entered)
			<-release
			return nil
		})
		errc <- err
	}()
	<-entered
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Close waited for publish")
	}
	close(release)
	if err := <-errc; !errors.Is(err, runtime.ErrStoreClosed) {
		t.Errorf("RelayOutbox across Close: %v, want ErrStoreClosed", err)
	}
	s2 := openStore(t, path, cfg)
	var b broker
	publish := func(msgs []runtime.OutboxMessage) error {
		for _, m := range msgs {
			b.publishOne(m)
		}
		return nil
	}
	n, err := s2.RelayOutbox(ctx, 100, publish)
	for deadline := time.Now().Add(testTimeout); n == 0 && err == nil && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond) // polling, as a relay does
		n, err = s2.RelayOutbox(ctx, 100, publish)
	}
	if n != len(want) || err != nil {
		t.Fatalf("relay after restart = %d, %v; want %d, nil", n, err, len(want))
	}
	b.checkFirstArrivals(t, want)
}
