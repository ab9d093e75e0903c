package storetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protoc-gen-eda/eda/runtime"
)

var lifecycleTests = []test{
	{"MethodsAfterClose", testMethodsAfterClose},
	{"CloseWhileBusy", testCloseWhileBusy},
	{"CloseOneHandle", testCloseOneHandle},
	{"CancelledContext", testCancelledContext},
	{"CancelDuringRead", testCancelDuringRead},
}

// closeWhileBusyWorkers is the number of goroutines using a store while it
// is closed.
const closeWhileBusyWorkers = 8

// method is one EventStore call for tests that call them all. called
// reports whether fn or publish ran.
type method struct {
	name string
	call func(ctx context.Context, s runtime.EventStore, stream runtime.StreamID) (called bool, err error)
}

var methods = []method{
	{"Append", func(ctx context.Context, s runtime.EventStore, stream runtime.StreamID) (bool, error) {
		_, err := s.Append(ctx, runtime.AppendRequest{Stream: stream, ExpectedVersion: runtime.AnyVersion, Events: newEvents(1), Outbox: []runtime.OutboxMessage{newMessage("m")}})
		return false, err
	}},
	{"ReadStream", func(ctx context.Context, s runtime.EventStore, stream runtime.StreamID) (called bool, err error) {
		err = s.ReadStream(ctx, stream, 0, func(*runtime.EventRecord) error { called = true; return nil })
		return called, err
	}},
	{"ReadAll", func(ctx context.Context, s runtime.EventStore, _ runtime.StreamID) (called bool, err error) {
		err = s.ReadAll(ctx, 0, 0, func(*runtime.EventRecord) error { called = true; return nil })
		return called, err
	}},
	{"SaveSnapshot", func(ctx context.Context, s runtime.EventStore, stream runtime.StreamID) (bool, error) {
		return false, s.SaveSnapshot(ctx, newSnapshot(stream, 1, "state"))
	}},
	{"LoadSnapshot", func(ctx context.Context, s runtime.EventStore, stream runtime.StreamID) (bool, error) {
		_, err := s.LoadSnapshot(ctx, stream)
		return false, err
	}},
	{"RelayOutbox", func(ctx context.Context, s runtime.EventStore, _ runtime.StreamID) (called bool, err error) {
		_, err = s.RelayOutbox(ctx, 10, func([]runtime.OutboxMessage) error { called = true; return nil })
		return called, err
	}},
}

// populate gives stream events, a snapshot and outbox messages, so that
// every method has something to act on.
func populate(t *testing.T, ctx context.Context, s runtime.EventStore, stream runtime.StreamID) {
	t.Helper()
	mustAppend(t, ctx, s, runtime.AppendRequest{Stream: stream, Events: newEvents(3), Outbox: []runtime.OutboxMessage{newMessage("m")}})
	if err := s.SaveSnapshot(ctx, newSnapshot(stream, 2, "state")); err != nil {
		t.Fatalf("SaveSnapshot: %v", err)
	}
}

// testMethodsAfterClose closes a store holding data: every method returns
// an error wrapping ErrStoreClosed without calling fn or publish, and
// nothing panics, a second Close included.
func testMethodsAfterClose(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	stream := newStream()
	populate(t, ctx, s, stream)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, m := range methods {
		var called bool
		var err error
		noPanic(t, m.name+" after Close", func() { called, err = m.call(ctx, s, stream) })
		if !errors.Is(err, runtime.ErrStoreClosed) {
			t.Errorf("%s after Close: err = %v, want one wrapping ErrStoreClosed", m.name, err)
		}
		if called {
			t.Errorf("%s after Close called its callback", m.name)
		}
	}
	if n, ok := s.(runtime.OutboxNotifier); ok {
		noPanic(t, "OutboxReady after Close", func() { n.OutboxReady() })
	}
	// The contract puts Close among the methods that fail after Close; nil
	// is accepted too, as io.Closer implementations commonly return it.
	noPanic(t, "second Close", func() {
		if err := s.Close(); err != nil && !errors.Is(err, runtime.ErrStoreClosed) {
			t.Errorf("second Close: %v, want nil or ErrStoreClosed", err)
		}
	})
}

// testCloseWhileBusy closes a store while goroutines call every method:
// nothing panics or hangs, calls in flight may fail any way, and every call
// that starts after Close returned fails with ErrStoreClosed.
func testCloseWhileBusy(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	stream := newStream()
	populate(t, ctx, s, stream)
	var (
		closed  atomic.Bool
		calls   atomic.Int64
		wg      sync.WaitGroup
		running = make(chan struct{}, closeWhileBusyWorkers)
	)
	for w := range closeWhileBusyWorkers {
		wg.Go(func() {
			m := methods[w%len(methods)]
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s panicked around Close: %v", m.name, r)
				}
			}()
			for i := 0; ctx.Err() == nil; i++ {
				after := closed.Load()
				_, err := m.call(ctx, s, stream)
				calls.Add(1)
				if i == 0 {
					running <- struct{}{}
				}
				if after {
					if !errors.Is(err, runtime.ErrStoreClosed) {
						t.Errorf("%s started after Close returned: err = %v, want ErrStoreClosed", m.name, err)
					}
					return
				}
			}
		})
	}
	for range closeWhileBusyWorkers { // every worker is in its loop
		select {
		case <-running:
		case <-time.After(Timeout):
			t.Fatal("workers did not start")
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close while busy: %v", err)
	}
	closed.Store(true)
	wait(t, &wg)
	if calls.Load() < 2*closeWhileBusyWorkers {
		t.Errorf("only %d calls ran", calls.Load())
	}
}

// testCloseOneHandle closes one handle of shared data: the other keeps
// working and sees everything.
func testCloseOneHandle(t *testing.T, b Backend) {
	if b.Share == nil {
		t.Skip("backend has no Share")
	}
	ctx := testContext(t)
	s := open(t, b)
	s2 := share(t, b, s)
	stream := newStream()
	evs := newEvents(3)
	mustAppend(t, ctx, s2, runtime.AppendRequest{Stream: stream, Events: evs[:2]})
	if err := s2.Close(); err != nil {
		t.Fatalf("Close of the second handle: %v", err)
	}
	mustAppend(t, ctx, s, runtime.AppendRequest{Stream: stream, ExpectedVersion: 2, Events: evs[2:]})
	checkStream(t, ctx, s, stream, evs)
	if err := s2.ReadAll(ctx, 0, 0, func(*runtime.EventRecord) error { return nil }); !errors.Is(err, runtime.ErrStoreClosed) {
		t.Errorf("ReadAll on the closed handle: err = %v, want ErrStoreClosed", err)
	}
}

// testCancelledContext calls every method with a cancelled and with an
// expired context: each returns the context's error, calls no callback,
// and an append stores nothing.
func testCancelledContext(t *testing.T, b Backend) {
	live := testContext(t)
	cancelled, cancel := context.WithCancel(live)
	cancel()
	expired, cancel2 := context.WithDeadline(live, time.Now().Add(-time.Second))
	defer cancel2()
	ctxs := []struct {
		name string
		ctx  context.Context
		want error
	}{
		{"Cancelled", cancelled, context.Canceled},
		{"Expired", expired, context.DeadlineExceeded},
	}
	for _, c := range ctxs {
		t.Run(c.name, func(t *testing.T) {
			s := open(t, b)
			stream := newStream()
			populate(t, live, s, stream)
			for _, m := range methods {
				var called bool
				var err error
				noPanic(t, m.name, func() { called, err = m.call(c.ctx, s, stream) })
				// Wrapping the context's error lets callers tell a
				// cancellation from a store failure.
				if !errors.Is(err, c.want) {
					t.Errorf("%s with a %s context: err = %v, want one wrapping %v", m.name, c.name, err, c.want)
				}
				if called {
					t.Errorf("%s with a %s context called its callback", m.name, c.name)
				}
			}
			if evs := readAll(t, live, s, 0, 0); len(evs) != 3 {
				t.Errorf("store holds %d events, want the 3 appended before", len(evs))
			}
			if msgs := relayAll(t, live, s, 10); len(msgs) != 1 {
				t.Errorf("outbox held %d messages, want the 1 appended before", len(msgs))
			}
		})
	}
}

// testCancelDuringRead cancels the context from fn: the read stops with the
// context's error instead of delivering the rest.
func testCancelDuringRead(t *testing.T, b Backend) {
	live := testContext(t)
	s := open(t, b)
	stream := newStream()
	const total = 200
	mustAppend(t, live, s, runtime.AppendRequest{Stream: stream, Events: newEvents(total)})
	reads := map[string]func(ctx context.Context, fn func(*runtime.EventRecord) error) error{
		"ReadStream": func(ctx context.Context, fn func(*runtime.EventRecord) error) error {
			return s.ReadStream(ctx, stream, 0, fn)
		},
		"ReadAll": func(ctx context.Context, fn func(*runtime.EventRecord) error) error {
			return s.ReadAll(ctx, 0, 0, fn)
		},
	}
	for name, read := range reads {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(live)
			defer cancel()
			calls := 0
			err := read(ctx, func(*runtime.EventRecord) error {
				calls++
				cancel()
				return nil
			})
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s cancelled from fn after %d events: err = %v, want context.Canceled", name, calls, err)
			}
		})
	}
}
