package mem

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

func TestSetDefaults(t *testing.T) {
	var c Config
	c.setDefaults()
	if c.RedeliveryDelay != DefaultRedeliveryDelay || c.MaxQueued != 0 || c.Replay {
		t.Fatalf("defaults: %+v", c)
	}
	if _, ok := c.Logger.(watermill.NopLogger); !ok {
		t.Fatalf("default logger %T, want watermill.NopLogger", c.Logger)
	}

	logger := watermill.NewStdLogger(false, false)
	c = Config{RedeliveryDelay: time.Second, MaxQueued: 3, Logger: logger}
	c.setDefaults()
	if c.RedeliveryDelay != time.Second || c.MaxQueued != 3 || c.Logger != logger {
		t.Fatalf("explicit values overwritten: %+v", c)
	}
}

// TestTopicRemovedWhenUnused guards against a leak: a topic entry must not
// outlive its last subscription (without Replay), and a topic dropped that
// way must come back to life for a later Subscribe.
func TestTopicRemovedWhenUnused(t *testing.T) {
	ps, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	topics := func() int {
		ps.mu.RLock()
		defer ps.mu.RUnlock()
		return len(ps.topics)
	}
	for range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		ch, err := ps.Subscribe(ctx, "t")
		if err != nil {
			t.Fatal(err)
		}
		if n := topics(); n != 1 {
			t.Fatalf("%d topics while subscribed, want 1", n)
		}
		cancel()
		for range ch {
		}
		deadline := time.Now().Add(10 * time.Second)
		for topics() != 0 {
			if time.Now().After(deadline) {
				t.Fatal("topic not removed after its last subscription ended")
			}
			time.Sleep(time.Millisecond)
		}
	}
}

func TestRingWrapsAndShrinks(t *testing.T) {
	var r ring
	envs := make([]envelope, 3000)
	next, popped := 0, 0
	// Interleave pushes and pops so the head wraps around several times.
	for round := range 50 {
		for range round % 7 {
			r.push(&envs[next%len(envs)])
			next++
		}
		for range round % 5 {
			if r.len() == 0 {
				break
			}
			if r.peek() != &envs[popped%len(envs)] {
				t.Fatalf("round %d: FIFO order broken at %d", round, popped)
			}
			r.pop()
			popped++
		}
	}
	for range len(envs) { // enough to grow past shrinkAbove
		r.push(&envs[next%len(envs)])
		next++
	}
	for r.len() > 0 {
		if r.peek() != &envs[popped%len(envs)] {
			t.Fatalf("FIFO order broken at %d after growth", popped)
		}
		r.pop()
		popped++
	}
	if popped != next {
		t.Fatalf("popped %d of %d", popped, next)
	}
	if r.buf != nil {
		t.Fatalf("drained queue still holds a %d-slot buffer", len(r.buf))
	}
}
