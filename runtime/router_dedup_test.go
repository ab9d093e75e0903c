package runtime_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/memstore"
)

// TestRouterDeduplicates: a message delivered twice is handled once; a
// message that failed every attempt is dead-lettered with its claim
// released, so its replay is handled again.
func TestRouterDeduplicates(t *testing.T) {
	h := newHarness(t, nil, func(c *runtime.RouterConfig) { c.DedupStore = memstore.NewDedupStore() })
	p := fastPolicy
	p.DedupWindow = time.Hour
	typ := greetingType(p)
	var failing atomic.Bool
	failing.Store(true)
	g := newGreeter(func(string) error {
		if failing.Load() {
			return errors.New("boom")
		}
		return nil
	})
	h.add(t, g.spec("greeter", typ))
	dlq := collect(t, h.bus, p.DeadLetterTopic)
	runRouter(t, h.router)
	ctx := context.Background()
	good := h.publish(t, ctx, typ, "good")
	h.publishRaw(t, typ.Topic, good.Copy())
	bad := h.publish(t, ctx, typ, "bad")
	dead := recv(t, dlq, "the dead letter")
	if dead.UUID != bad.UUID {
		t.Fatalf("dead-lettered %s, want %s", dead.UUID, bad.UUID)
	}
	eventually(t, "the duplicate", func() bool { return h.router.Stats().Duplicates == 1 })
	if n := g.calls.Load(); n != 1+int32(p.MaxAttempts) {
		t.Errorf("handler called %d times, want 1 for good (not its duplicate) and %d for bad", n, p.MaxAttempts)
	}
	failing.Store(false)
	h.publishRaw(t, typ.Topic, bad.Copy())
	eventually(t, "the replay", func() bool { return g.calls.Load() == 2+int32(p.MaxAttempts) })
	h.publishRaw(t, typ.Topic, bad.Copy())
	eventually(t, "the replay's duplicate", func() bool { return h.router.Stats().Duplicates == 2 })
	if st := h.router.Stats(); st.Handled != 2 || st.DeadLettered != 1 {
		t.Errorf("Stats = %+v, want 2 handled, 1 dead-lettered", st)
	}
}

// RouterConfig.DedupLease reaches the Deduplicator: an invalid one fails
// NewRouter with the Deduplicator's own error.
func TestRouterDedupLease(t *testing.T) {
	bus := newGoChannel(t)
	_, err := runtime.NewRouter(runtime.RouterConfig{Subscriber: bus, Publisher: bus, DedupStore: memstore.NewDedupStore(), DedupLease: -time.Second})
	if err == nil || !strings.Contains(err.Error(), "Lease") {
		t.Fatalf("NewRouter with a negative DedupLease: %v, want the lease named", err)
	}
	if _, err := runtime.NewRouter(runtime.RouterConfig{Subscriber: bus, Publisher: bus, DedupStore: memstore.NewDedupStore(), DedupLease: time.Second}); err != nil {
		t.Fatal(err)
	}
}
