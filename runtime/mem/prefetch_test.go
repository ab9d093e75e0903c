package mem_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/protoc-gen-eda/eda/runtime/mem"
)

func next(t *testing.T, ch <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message delivered")
		return nil
	}
}

func none(t *testing.T, ch <-chan *message.Message) {
	t.Helper()
	select {
	case m := <-ch:
		t.Fatalf("message %s delivered, want none", m.UUID)
	case <-time.After(20 * time.Millisecond):
	}
}

// TestSubscribePrefetch checks that up to n messages are delivered before
// the first is acked, a nacked one comes again, and a confirmation is
// released only once the message and every older one are acked.
func TestSubscribePrefetch(t *testing.T) {
	ps := newPubSub(t, mem.Config{RedeliveryDelay: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := ps.SubscribePrefetch(ctx, "t", 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ps.SubscribePrefetch(ctx, "t", 0); err == nil {
		t.Error("SubscribePrefetch(0) succeeded, want an error")
	}
	c := ps.NewConfirmation()
	for _, id := range []string{"1", "2", "3"} {
		if err := c.Publish("t", message.NewMessage(id, nil)); err != nil {
			t.Fatal(err)
		}
	}
	m1, m2 := next(t, ch), next(t, ch)
	if m1.UUID != "1" || m2.UUID != "2" {
		t.Fatalf("delivered %s, %s; want 1, 2", m1.UUID, m2.UUID)
	}
	none(t, ch) // two in flight: 3 waits

	m2.Nack()
	if again := next(t, ch); again.UUID != "2" {
		t.Fatalf("after a nack delivered %s, want 2 again", again.UUID)
	} else {
		again.Ack()
	}
	none(t, ch) // 1 is still unacked, so the window is full
	m1.Ack()
	m3 := next(t, ch)
	if m3.UUID != "3" {
		t.Fatalf("delivered %s, want 3", m3.UUID)
	}
	wait, stop := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer stop()
	if err := c.Wait(wait); err == nil {
		t.Fatal("confirmation released with message 3 unacked")
	}
	m3.Ack()
	wait2, stop2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop2()
	if err := c.Wait(wait2); err != nil {
		t.Fatalf("confirmation once every message was acked: %v", err)
	}
	none(t, ch)
}
