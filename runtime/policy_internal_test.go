package runtime

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBackoffSequence(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name   string
		policy DeliveryPolicy
		want   []time.Duration // want[i] is backoff(i+1)
	}{
		{
			name:   "defaults",
			policy: DeliveryPolicy{}.withDefaults(""),
			want:   []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 6400 * ms, 10 * time.Second, 10 * time.Second},
		},
		{
			name:   "capped",
			policy: DeliveryPolicy{InitialBackoff: 100 * ms, BackoffMultiplier: 2, MaxBackoff: time.Second},
			want:   []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second, time.Second},
		},
		{
			name:   "fractional multiplier",
			policy: DeliveryPolicy{InitialBackoff: 10 * ms, BackoffMultiplier: 1.5, MaxBackoff: time.Second},
			want:   []time.Duration{10 * ms, 15 * ms, 22500 * time.Microsecond},
		},
		{
			name:   "multiplier 1 is constant",
			policy: DeliveryPolicy{InitialBackoff: 30 * ms, BackoffMultiplier: 1, MaxBackoff: time.Second},
			want:   []time.Duration{30 * ms, 30 * ms, 30 * ms},
		},
		{
			name:   "initial above max",
			policy: DeliveryPolicy{InitialBackoff: 5 * time.Second, BackoffMultiplier: 2, MaxBackoff: time.Second},
			want:   []time.Duration{time.Second, time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, want := range tt.want {
				if got := tt.policy.backoff(i + 1); got != want {
					t.Errorf("backoff(%d) = %v, want %v", i+1, got, want)
				}
			}
		})
	}
	// A long run does not overflow: it stays at the cap.
	p := DeliveryPolicy{InitialBackoff: time.Second, BackoffMultiplier: 10, MaxBackoff: time.Hour}
	if got := p.backoff(1000); got != time.Hour {
		t.Errorf("backoff(1000) = %v, want the cap", got)
	}
}

func TestDeliveryPolicyWithDefaults(t *testing.T) {
	got := DeliveryPolicy{}.withDefaults("router.dlq")
	want := DeliveryPolicy{
		MaxAttempts: DefaultMaxAttempts, InitialBackoff: DefaultInitialBackoff, MaxBackoff: DefaultMaxBackoff,
		BackoffMultiplier: DefaultBackoffMultiplier, DeadLetterTopic: "router.dlq",
	}
	if got != want {
		t.Errorf("withDefaults = %+v, want %+v", got, want)
	}
	set := DeliveryPolicy{MaxAttempts: 1, InitialBackoff: time.Millisecond, MaxBackoff: time.Minute, BackoffMultiplier: 3,
		DeadLetterTopic: "own.dlq", MaxPerSecond: 7, ConsumerGroup: "g"}
	if got := set.withDefaults("router.dlq"); got != set {
		t.Errorf("withDefaults changed set fields: %+v, want %+v", got, set)
	}
}

func TestThrottle(t *testing.T) {
	if newThrottle(0) != nil || newThrottle(-3) != nil {
		t.Error("a non-positive rate must mean no throttle")
	}
	var unlimited *throttle
	if err := unlimited.wait(context.Background()); err != nil {
		t.Errorf("nil throttle wait: %v", err)
	}

	th := newThrottle(100) // 10ms apart
	start := time.Now()
	for range 6 {
		if err := th.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if elapsed := time.Since(start); elapsed < 50*time.Millisecond {
		t.Errorf("6 waits at 100/s took %v, want at least 50ms", elapsed)
	}

	slow := newThrottle(1)
	_ = slow.wait(context.Background()) // takes the free slot
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := slow.wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("wait on a cancelled context = %v, want context.Canceled", err)
	}
}
