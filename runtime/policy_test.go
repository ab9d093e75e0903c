package runtime_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/protoc-gen-eda/eda/runtime"
)

func TestDeliveryPolicyValidate(t *testing.T) {
	tests := []struct {
		name    string
		policy  runtime.DeliveryPolicy
		wantSub []string // empty: valid
	}{
		{name: "zero is valid (defaults)", policy: runtime.DeliveryPolicy{}},
		{name: "full valid policy", policy: runtime.DeliveryPolicy{
			MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: time.Second, BackoffMultiplier: 1,
			DeadLetterTopic: "dlq", MaxInFlight: 4, MaxPerSecond: 10, ConsumerGroup: "g", Ordering: runtime.OrderingTopic,
			DedupWindow: time.Minute,
		}},
		{name: "negative MaxAttempts", policy: runtime.DeliveryPolicy{MaxAttempts: -1}, wantSub: []string{"MaxAttempts"}},
		{name: "negative InitialBackoff", policy: runtime.DeliveryPolicy{InitialBackoff: -time.Second}, wantSub: []string{"negative"}},
		{name: "negative MaxBackoff", policy: runtime.DeliveryPolicy{MaxBackoff: -time.Second}, wantSub: []string{"negative"}},
		{name: "negative DedupWindow", policy: runtime.DeliveryPolicy{DedupWindow: -time.Second}, wantSub: []string{"negative"}},
		{name: "multiplier below 1", policy: runtime.DeliveryPolicy{BackoffMultiplier: 0.5}, wantSub: []string{"BackoffMultiplier"}},
		{name: "negative multiplier", policy: runtime.DeliveryPolicy{BackoffMultiplier: -2}, wantSub: []string{"BackoffMultiplier"}},
		{name: "negative MaxPerSecond", policy: runtime.DeliveryPolicy{MaxPerSecond: -1}, wantSub: []string{"MaxPerSecond"}},
		{name: "negative MaxInFlight", policy: runtime.DeliveryPolicy{MaxInFlight: -1}, wantSub: []string{"MaxInFlight"}},
		{name: "every error is reported", policy: runtime.DeliveryPolicy{MaxAttempts: -1, BackoffMultiplier: 0.1, MaxPerSecond: -5},
			wantSub: []string{"MaxAttempts", "BackoffMultiplier", "MaxPerSecond"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Validate()
			if len(tt.wantSub) == 0 {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error mentioning %v", tt.wantSub)
			}
			for _, s := range tt.wantSub {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Validate() = %q, does not mention %q", err, s)
				}
			}
		})
	}
}

// A NaN multiplier compares false with everything, so `< 1` lets it through;
// backoff then converts NaN to a Duration (math.MinInt64 on amd64), and
// retries happen with no wait at all.
func TestDeliveryPolicyValidateRejectsNaNMultiplier(t *testing.T) {
	if err := (runtime.DeliveryPolicy{BackoffMultiplier: math.NaN()}).Validate(); err == nil {
		t.Error("Validate accepted BackoffMultiplier NaN")
	}
}

func TestDeliveryPolicyDefaults(t *testing.T) {
	if runtime.DefaultMaxAttempts != 5 || runtime.DefaultInitialBackoff != 100*time.Millisecond ||
		runtime.DefaultMaxBackoff != 10*time.Second || runtime.DefaultBackoffMultiplier != 2 {
		t.Errorf("defaults = %d, %v, %v, %g; want 5, 100ms, 10s, 2", runtime.DefaultMaxAttempts,
			runtime.DefaultInitialBackoff, runtime.DefaultMaxBackoff, runtime.DefaultBackoffMultiplier)
	}
	if runtime.DefaultDeadLetterTopic != "eda.dead_letter" {
		t.Errorf("DefaultDeadLetterTopic = %q", runtime.DefaultDeadLetterTopic)
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("bad input")
	if runtime.Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
	p := runtime.Permanent(base)
	if !errors.Is(p, base) || p.Error() != base.Error() {
		t.Errorf("Permanent(err) = %v; want it to wrap err and keep its text", p)
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", base, false},
		{"permanent", p, true},
		{"wrapped permanent", fmt.Errorf("handling: %w", p), true},
		{"unimplemented", runtime.ErrUnimplemented, true},
		{"wrapped unimplemented", fmt.Errorf("PlaceOrder: %w", runtime.ErrUnimplemented), true},
		{"joined", errors.Join(base, p), true},
	}
	for _, tt := range tests {
		if got := runtime.IsPermanent(tt.err); got != tt.want {
			t.Errorf("IsPermanent(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
}
