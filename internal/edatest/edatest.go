// Package edatest runs generated code against the embedded bus in tests: a
// mem bus, a runtime.Publisher and a running runtime.Router, closed when the
// test ends. It also has the plumbing handlers and tests share: Record, to
// hand what a handler was called with to the test, and Receive and
// Eventually, to wait for it.
package edatest

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/mem"
)

// Timeout bounds every wait in tests that use this package.
const Timeout = 10 * time.Second

// Harness is a running embedded bus with a publisher and a router.
type Harness struct {
	Bus       *mem.PubSub
	Publisher *runtime.Publisher
	Router    *runtime.Router
}

// Start creates the bus, publisher and router, lets register add handlers,
// runs the router and waits until it is subscribed. The router and bus are
// closed when the test ends.
func Start(t testing.TB, register func(r *runtime.Router) error) *Harness {
	t.Helper()
	bus, err := mem.New(mem.Config{RedeliveryDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := runtime.NewPublisher(bus, runtime.PublisherConfig{Source: "edatest"})
	if err != nil {
		t.Fatal(err)
	}
	router, err := runtime.NewRouter(runtime.RouterConfig{Subscriber: bus, Publisher: bus, CloseTimeout: Timeout})
	if err != nil {
		t.Fatal(err)
	}
	if err := register(router); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- router.Run(ctx) }()
	select {
	case <-router.Running():
	case err := <-done:
		cancel()
		t.Fatalf("router stopped before running: %v", err)
	case <-time.After(Timeout):
		cancel()
		t.Fatal("router did not start")
	}
	t.Cleanup(func() {
		cancel()
		<-done
		_ = bus.Close()
	})
	return &Harness{Bus: bus, Publisher: pub, Router: router}
}

// Subscribe returns the messages published on topic from now on, for
// watching a dead-letter topic, say.
func (h *Harness) Subscribe(t testing.TB, topic string) <-chan *message.Message {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := h.Bus.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan *message.Message, 1024)
	go func() {
		for msg := range ch {
			msg.Ack()
			out <- msg
		}
	}()
	return out
}

// Receive waits for one value from ch, failing the test after Timeout.
func Receive[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(Timeout):
		t.Fatalf("nothing received within %s", Timeout)
		var zero T
		return zero
	}
}

// Received is one message a handler was called with, the envelope its
// context carried (nil if none) and when the handler was called.
type Received[T any] struct {
	Msg T
	Env *runtime.Envelope
	At  time.Time
}

// Record sends m, with the envelope of ctx and the time now, to ch, for the
// test to Receive. It waits while ch is full and returns ctx.Err() if ctx
// ends first; otherwise it returns nil, so that a handler can return what
// Record returns.
func Record[T any](ctx context.Context, ch chan<- Received[T], m T) error {
	env, _ := runtime.EnvelopeFrom(ctx)
	r := Received[T]{Msg: m, Env: env, At: time.Now()}
	select {
	case ch <- r:
		return nil
	default:
	}
	select {
	case ch <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Eventually polls cond every millisecond until it holds, failing the test
// with "timed out waiting for " what if it does not within Timeout.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
