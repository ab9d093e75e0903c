package runtime_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	names "github.com/protoc-gen-eda/eda/golden/names"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	edaruntime "github.com/protoc-gen-eda/eda/runtime"
)

type received[T any] struct {
	msg T
	env *edaruntime.Envelope
	at  time.Time
}

func record[T any](ctx context.Context, ch chan<- received[T], m T) {
	env, _ := edaruntime.EnvelopeFrom(ctx)
	ch <- received[T]{msg: m, env: env, at: time.Now()}
}

type contexts struct {
	strconvs chan received[*names.Strconv]
	inners   chan received[*names.Outer_Inner]
}

func (c *contexts) HandleStrconv(ctx context.Context, e *names.Strconv) error {
	record(ctx, c.strconvs, e)
	return nil
}

func (c *contexts) HandleOuter_Inner(ctx context.Context, e *names.Outer_Inner) error {
	record(ctx, c.inners, e)
	return nil
}

// flaky fails its first Time event and handles the retry.
type flaky struct {
	names.UnimplementedPublisherEventHandler
	calls atomic.Int32
	times chan received[*names.Time]
}

func (f *flaky) HandleTime(ctx context.Context, e *names.Time) error {
	n := f.calls.Add(1)
	record(ctx, f.times, e)
	if n == 1 {
		return errors.New("transient")
	}
	return nil
}

var (
	_ names.ContextEventHandler   = (*contexts)(nil)
	_ names.PublisherEventHandler = (*flaky)(nil)
)

func TestEventsNamedLikeImports(t *testing.T) {
	c := &contexts{
		strconvs: make(chan received[*names.Strconv], 16),
		inners:   make(chan received[*names.Outer_Inner], 16),
	}
	h := edatest.Start(t, func(r *edaruntime.Router) error {
		return names.RegisterContextEventHandler(r, c)
	})
	pub := names.NewContextEventPublisher(h.Publisher)
	ctx := context.Background()

	if err := pub.PublishStrconv(ctx, &names.Strconv{Id: "ctx-1"}); err != nil {
		t.Fatal(err)
	}
	if err := pub.PublishOuter_Inner(ctx, &names.Outer_Inner{Id: "ctx-2"}); err != nil {
		t.Fatal(err)
	}
	s := edatest.Receive(t, c.strconvs)
	if s.msg.GetId() != "ctx-1" || s.env == nil || s.env.Type != names.StrconvEventType ||
		s.env.Subject != "ctx-1" || s.env.AggregateType != names.ContextAggregateType {
		t.Errorf("Strconv handled = %v, envelope %+v", s.msg, s.env)
	}
	in := edatest.Receive(t, c.inners)
	if in.msg.GetId() != "ctx-2" || in.env == nil || in.env.Type != "golden.names.Outer.Inner" ||
		in.env.Subject != "ctx-2" || in.env.AggregateType != names.ContextAggregateType {
		t.Errorf("Outer.Inner handled = %v, envelope %+v", in.msg, in.env)
	}
}

func TestTimeRetriedAfterItsInitialBackoff(t *testing.T) {
	f := &flaky{times: make(chan received[*names.Time], 16)}
	h := edatest.Start(t, func(r *edaruntime.Router) error {
		return names.RegisterPublisherEventHandler(r, f)
	})
	dead := h.Subscribe(t, edaruntime.DefaultDeadLetterTopic)

	if err := names.NewPublisherEventPublisher(h.Publisher).PublishTime(context.Background(), &names.Time{Id: -3}); err != nil {
		t.Fatal(err)
	}
	first := edatest.Receive(t, f.times)
	second := edatest.Receive(t, f.times)
	for _, got := range []received[*names.Time]{first, second} {
		if got.msg.GetId() != -3 || got.env == nil || got.env.Type != names.TimeEventType ||
			got.env.Subject != "-3" || got.env.AggregateType != names.PublisherAggregateType {
			t.Errorf("Time handled = %v, envelope %+v", got.msg, got.env)
		}
	}
	if first.env != nil && second.env != nil && first.env.ID != second.env.ID {
		t.Errorf("retry handled message %s, first attempt %s: want the same message", second.env.ID, first.env.ID)
	}
	// The schema's initial_backoff of 1500ms, not the runtime's 100ms default.
	if wait := second.at.Sub(first.at); wait < 1400*time.Millisecond {
		t.Errorf("retried after %s, want the schema's initial backoff of 1.5s", wait)
	}

	if got := f.calls.Load(); got != 2 {
		t.Errorf("HandleTime called %d times, want 2", got)
	}
	deadline := time.Now().Add(edatest.Timeout)
	for h.Router.Stats().Handled != 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if s := h.Router.Stats(); s.Retried != 1 || s.Handled != 1 || s.DeadLettered != 0 {
		t.Errorf("stats = %+v, want 1 retry then handled", s)
	}
	if len(dead) != 0 || len(f.times) != 0 {
		t.Errorf("%d dead letters, %d extra calls", len(dead), len(f.times))
	}
}
