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

type contexts struct {
	strconvs chan edatest.Received[*names.Strconv]
	inners   chan edatest.Received[*names.Outer_Inner]
}

func (c *contexts) HandleStrconv(ctx context.Context, e *names.Strconv) error {
	return edatest.Record(ctx, c.strconvs, e)
}

func (c *contexts) HandleOuter_Inner(ctx context.Context, e *names.Outer_Inner) error {
	return edatest.Record(ctx, c.inners, e)
}

// flaky fails its first Time event and handles the retry.
type flaky struct {
	names.UnimplementedPublisherEventHandler
	calls atomic.Int32
	times chan edatest.Received[*names.Time]
}

func (f *flaky) HandleTime(ctx context.Context, e *names.Time) error {
	n := f.calls.Add(1)
	if err := edatest.Record(ctx, f.times, e); err != nil {
		return err
	}
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
		strconvs: make(chan edatest.Received[*names.Strconv], 16),
		inners:   make(chan edatest.Received[*names.Outer_Inner], 16),
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
	if s.Msg.GetId() != "ctx-1" || s.Env == nil || s.Env.Type != names.StrconvEventType ||
		s.Env.Subject != "ctx-1" || s.Env.AggregateType != names.ContextAggregateType {
		t.Errorf("Strconv handled = %v, envelope %+v", s.Msg, s.Env)
	}
	in := edatest.Receive(t, c.inners)
	if in.Msg.GetId() != "ctx-2" || in.Env == nil || in.Env.Type != "golden.names.Outer.Inner" ||
		in.Env.Subject != "ctx-2" || in.Env.AggregateType != names.ContextAggregateType {
		t.Errorf("Outer.Inner handled = %v, envelope %+v", in.Msg, in.Env)
	}
}

func TestTimeRetriedAfterItsInitialBackoff(t *testing.T) {
	f := &flaky{times: make(chan edatest.Received[*names.Time], 16)}
	h := edatest.Start(t, func(r *edaruntime.Router) error {
		return names.RegisterPublisherEventHandler(r, f)
	})
	dead := h.Subscribe(t, edaruntime.DefaultDeadLetterTopic)

	if err := names.NewPublisherEventPublisher(h.Publisher).PublishTime(context.Background(), &names.Time{Id: -3}); err != nil {
		t.Fatal(err)
	}
	first := edatest.Receive(t, f.times)
	second := edatest.Receive(t, f.times)
	for _, got := range []edatest.Received[*names.Time]{first, second} {
		if got.Msg.GetId() != -3 || got.Env == nil || got.Env.Type != names.TimeEventType ||
			got.Env.Subject != "-3" || got.Env.AggregateType != names.PublisherAggregateType {
			t.Errorf("Time handled = %v, envelope %+v", got.Msg, got.Env)
		}
	}
	if first.Env != nil && second.Env != nil && first.Env.ID != second.Env.ID {
		t.Errorf("retry handled message %s, first attempt %s: want the same message", second.Env.ID, first.Env.ID)
	}
	// The schema's initial_backoff of 1500ms, not the runtime's 100ms default.
	if wait := second.At.Sub(first.At); wait < 1400*time.Millisecond {
		t.Errorf("retried after %s, want the schema's initial backoff of 1.5s", wait)
	}

	if got := f.calls.Load(); got != 2 {
		t.Errorf("HandleTime called %d times, want 2", got)
	}
	edatest.Eventually(t, "the retry to be handled", func() bool { return h.Router.Stats().Handled == 1 })
	if s := h.Router.Stats(); s.Retried != 1 || s.Handled != 1 || s.DeadLettered != 0 {
		t.Errorf("stats = %+v, want 1 retry then handled", s)
	}
	if len(dead) != 0 || len(f.times) != 0 {
		t.Errorf("%d dead letters, %d extra calls", len(dead), len(f.times))
	}
}
