package sagatest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/protoc-gen-eda/eda/runtime"
)

// The tests of this file drive a saga with Handle, as a router would, and
// read what it sent from the store's outbox: they control exactly when
// each message is handled, redelivered or raced.

// discard is a message.Publisher that drops everything.
type discard struct{}

func (discard) Publish(string, ...*message.Message) error { return nil }
func (discard) Close() error                              { return nil }

// newMessage returns a message of type typ for order, as a service
// publishes it.
func newMessage(t *testing.T, typ *runtime.MessageType, order string) *message.Message {
	t.Helper()
	p, err := runtime.NewPublisher(discard{}, runtime.PublisherConfig{Source: "sagatest.services"})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := p.NewMessage(t.Context(), typ, runtime.Outgoing{Subject: order, Message: newOrder(order)})
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// handle hands msg to s and fails the test on an error.
func handle(t *testing.T, s *orderSaga, msg *message.Message) {
	t.Helper()
	if err := s.Handle(t.Context(), msg); err != nil {
		t.Fatalf("Handle %s: %v", msg.Metadata.Get(runtime.MetaType), err)
	}
}

// drain relays store's due outbox messages and returns their types.
func drain(t *testing.T, store runtime.EventStore) []string {
	t.Helper()
	var types []string
	for {
		n, err := store.RelayOutbox(t.Context(), 100, func(msgs []runtime.OutboxMessage) error {
			for _, m := range msgs {
				md, err := runtime.DecodeMetadata(m.Metadata)
				if err != nil {
					return err
				}
				types = append(types, md[runtime.MetaType])
			}
			return nil
		})
		if err != nil {
			t.Fatalf("RelayOutbox: %v", err)
		}
		if n == 0 {
			return types
		}
	}
}

// testRedelivery handles every message twice, as a broker redelivers one
// whose acknowledgement was lost after the transition committed: the
// second is stale, and nothing is sent twice.
func testRedelivery(t *testing.T, b Backend) {
	store := open(t, b)
	s := newSaga(t, store, specOptions{})
	start := newMessage(t, orderPlaced, "o-1")
	handle(t, s, start)
	handle(t, s, start)
	reply := newMessage(t, stockReserved, "o-1")
	handle(t, s, reply)
	handle(t, s, reply)
	if got, want := drain(t, store), names(reserveStock, capturePayment); !slices.Equal(got, want) {
		t.Errorf("outbox = %v, want %v: each command once", got, want)
	}
	if n := streamLength(t, store, "o-1"); n != 2 {
		t.Errorf("stream holds %d transitions, want 2", n)
	}
	if st := s.Stats(); st.Started != 1 || st.Stale != 2 {
		t.Errorf("stats = %+v, want 1 started and 2 stale", st)
	}
}

// redeliveries is how many copies of one message testConcurrentRedelivery
// handles at once.
const redeliveries = 8

// testConcurrentRedelivery handles copies of one message at the same
// moment, as two consumers given the same message do: one transition is
// stored, and its command is in the outbox once. (Copies that reach the
// store together repeat its append, which the store ignores by id; the
// others find the instance moved on.)
func testConcurrentRedelivery(t *testing.T, b Backend) {
	store := open(t, b)
	s := newSaga(t, store, specOptions{})
	handle(t, s, newMessage(t, orderPlaced, "o-1"))
	reply := newMessage(t, stockReserved, "o-1")
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range redeliveries {
		wg.Go(func() {
			<-start
			if err := s.Handle(t.Context(), reply.Copy()); err != nil {
				t.Errorf("Handle: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if got, want := drain(t, store), names(reserveStock, capturePayment); !slices.Equal(got, want) {
		t.Errorf("outbox = %v, want %v: each command once", got, want)
	}
	if n := streamLength(t, store, "o-1"); n != 2 {
		t.Errorf("stream holds %d transitions, want 2", n)
	}
}

// testCrashResume has a first process start an instance and take its
// first step, then die before relaying the second step's command. A new
// process (new saga, relay and router on the same data) relays it and
// finishes the instance.
func testCrashResume(t *testing.T, b Backend) {
	store := open(t, b)
	first := newSaga(t, store, specOptions{})
	handle(t, first, newMessage(t, orderPlaced, "o-1"))
	if got := drain(t, store); !slices.Equal(got, names(reserveStock)) {
		t.Fatalf("first process relayed %v, want the first command", got)
	}
	handle(t, first, newMessage(t, stockReserved, "o-1"))
	// The first process dies here: CapturePayment waits in the outbox.

	w := newWorld(t, reopen(t, b, store), specOptions{})
	inst := w.waitStatus("o-1", runtime.SagaCompleted)
	w.waitCommands("o-1", capturePayment, shipOrder)
	if got, want := logOf(inst.State), names(orderPlaced, stockReserved, paymentCaptured, orderShipped); !slices.Equal(got, want) {
		t.Errorf("state log = %v, want %v", got, want)
	}
	if st := w.saga.Stats(); st.Completed != 1 {
		t.Errorf("new process's stats = %+v, want 1 completed", st)
	}
}

// durableTimeout is testDurableTimeout's step timeout: long enough that
// the first process surely stops before it.
const durableTimeout = 400 * time.Millisecond

// testDurableTimeout arms a step's timeout in a first process, which dies
// right after relaying the step's command. The timeout waits in the
// store: a new process relays it when due, and the step fails.
func testDurableTimeout(t *testing.T, b Backend) {
	opts := specOptions{stepTimeouts: map[string]time.Duration{stepReserve: durableTimeout}}
	store := open(t, b)
	first := newSaga(t, store, opts)
	armed := time.Now()
	handle(t, first, newMessage(t, orderPlaced, "o-1"))
	got := drain(t, store)
	if time.Since(armed) >= durableTimeout {
		t.Skipf("starting and relaying took over %v: the machine is too slow for this test", durableTimeout)
	}
	if !slices.Equal(got, names(reserveStock)) {
		t.Fatalf("first process relayed %v, want only the command: the timeout is not due", got)
	}
	// The first process dies; the reply to ReserveStock is lost with it.

	w := newWorld(t, reopen(t, b, store), opts)
	inst := w.waitStatus("o-1", runtime.SagaCompensated)
	if inst.Failure != "timeout of step reserve" {
		t.Errorf("compensated because %q, want the step's timeout", inst.Failure)
	}
	if elapsed := time.Since(armed); elapsed < durableTimeout {
		t.Errorf("step failed %v after its timeout was armed, before its %v timeout", elapsed, durableTimeout)
	}
	// The timed-out step is compensated: its command was sent.
	w.waitCommands("o-1", releaseStock)
}

// hookStore wraps a store to run before and after (when set) around
// every append, and counts the concurrency conflicts appends meet.
type hookStore struct {
	runtime.EventStore
	before    func(req runtime.AppendRequest) error
	after     func(err error) error
	conflicts atomic.Int32
}

func (h *hookStore) Append(ctx context.Context, req runtime.AppendRequest) (runtime.AppendResult, error) {
	if h.before != nil {
		if err := h.before(req); err != nil {
			return runtime.AppendResult{}, err
		}
	}
	res, err := h.EventStore.Append(ctx, req)
	if errors.Is(err, runtime.ErrConcurrency) {
		h.conflicts.Add(1)
	}
	if h.after != nil {
		err = h.after(err)
	}
	return res, err
}

// testLostAppendResult commits a transition but loses the store's answer,
// as a connection dropping after the commit does: Handle fails, and the
// router delivers the message again, which finds its transition stored
// and sends nothing twice.
func testLostAppendResult(t *testing.T, b Backend) {
	store := open(t, b)
	lost := errors.New("sagatest: connection lost after commit")
	var appends atomic.Int32
	hs := &hookStore{EventStore: store, after: func(err error) error {
		if appends.Add(1) == 1 && err == nil {
			return lost
		}
		return err
	}}
	s := newSaga(t, hs, specOptions{})
	start := newMessage(t, orderPlaced, "o-1")
	if err := s.Handle(t.Context(), start); !errors.Is(err, lost) || runtime.IsPermanent(err) {
		t.Fatalf("Handle with the append's result lost: %v, want the store's error, to retry", err)
	}
	handle(t, s, start)
	if got := drain(t, store); !slices.Equal(got, names(reserveStock)) {
		t.Errorf("outbox = %v, want the first command once", got)
	}
	if n := streamLength(t, store, "o-1"); n != 1 {
		t.Errorf("stream holds %d transitions, want 1", n)
	}
	if st := s.Stats(); st.Stale != 1 {
		t.Errorf("stats = %+v, want the redelivery stale", st)
	}
}

// testConflictRetried makes the first append of a transition meet a
// concurrency conflict: the saga reloads, decides again and stores it.
func testConflictRetried(t *testing.T, b Backend) {
	store := open(t, b)
	var appends atomic.Int32
	hs := &hookStore{EventStore: store, before: func(req runtime.AppendRequest) error {
		if appends.Add(1) == 1 {
			return &runtime.ConcurrencyError{Stream: req.Stream, Expected: req.ExpectedVersion, Actual: req.ExpectedVersion}
		}
		return nil
	}}
	s := newSaga(t, hs, specOptions{})
	handle(t, s, newMessage(t, orderPlaced, "o-1"))
	if appends.Load() != 2 {
		t.Errorf("%d appends, want 2: the conflict, then the retry", appends.Load())
	}
	inst, err := s.Load(t.Context(), "o-1")
	if err != nil || inst.StepName != stepReserve || inst.Version != 1 {
		t.Fatalf("after a retried conflict: %+v, %v; want step %q at version 1", inst, err, stepReserve)
	}
	if got := drain(t, store); !slices.Equal(got, names(reserveStock)) {
		t.Errorf("outbox = %v, want the first command once", got)
	}
}

// testConcurrentEvents races a step's success and failure events for one
// instance: the success loads the instance, then the failure commits
// before the success appends. The success's append conflicts; the saga
// reloads, finds the step failed, and acknowledges it as stale. Nothing is
// overwritten: the failure's transition stands, with its compensation and
// without the next step's command.
func testConcurrentEvents(t *testing.T, b Backend) {
	store := open(t, b)
	atAppend := make(chan struct{})
	failureDone := make(chan struct{})
	var once sync.Once
	hs := &hookStore{EventStore: store, before: func(req runtime.AppendRequest) error {
		md, err := runtime.DecodeMetadata(req.Events[0].Metadata)
		if err != nil {
			return err
		}
		// The success moves the instance to step "ship".
		if md["eda_saga_step"] == stepShip {
			once.Do(func() {
				close(atAppend)
				<-failureDone
			})
		}
		return nil
	}}
	s := newSaga(t, hs, specOptions{})
	handle(t, s, newMessage(t, orderPlaced, "o-1"))
	handle(t, s, newMessage(t, stockReserved, "o-1"))

	successErr := make(chan error, 1)
	go func() { successErr <- s.Handle(t.Context(), newMessage(t, paymentCaptured, "o-1")) }()
	select {
	case <-atAppend:
	case <-time.After(Timeout):
		t.Fatal("the success event never reached its append")
	}
	handle(t, s, newMessage(t, paymentDeclined, "o-1"))
	close(failureDone)
	if err := <-successErr; err != nil {
		t.Fatalf("Handle of the success that lost the race: %v", err)
	}

	if hs.conflicts.Load() != 1 {
		t.Errorf("%d conflicts, want 1", hs.conflicts.Load())
	}
	inst, err := s.Load(t.Context(), "o-1")
	if err != nil || inst.Status != runtime.SagaCompensated || inst.Failure != paymentDeclined.Name || inst.Version != 3 {
		t.Fatalf("instance = %v because %q at version %d (%v), want compensated because %s at version 3", inst.Status, inst.Failure, inst.Version, err, paymentDeclined.Name)
	}
	if got, want := drain(t, store), names(reserveStock, capturePayment, releaseStock); !slices.Equal(got, want) {
		t.Errorf("outbox = %v, want %v", got, want)
	}
	if st := s.Stats(); st.Stale != 1 || st.Compensated != 1 || st.Completed != 0 {
		t.Errorf("stats = %+v, want the success stale and the instance compensated", st)
	}
}
