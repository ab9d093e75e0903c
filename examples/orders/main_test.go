package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"order placed: order-1 by alice, total 2500 cents (correlation checkout-42)",
		"order placed: order-2 by bob",
		"order cancelled: order-2 (changed my mind)",
		"dead letter: shop.orders.v1.CancelOrder: order order-404 does not exist or has shipped",
		"handled 6 messages, dead-lettered 1",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}
