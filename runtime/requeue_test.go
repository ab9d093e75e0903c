package runtime_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/mem"
)

func TestRequeue(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bus, err := mem.New(mem.Config{Replay: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	dead := func(id, topic, typ string) *message.Message {
		m := message.NewMessage(id, []byte(id))
		m.Metadata.Set(runtime.MetaType, typ)
		if topic != "" {
			m.Metadata.Set(runtime.MetaDeadLetterTopic, topic)
			m.Metadata.Set(runtime.MetaDeadLetterReason, "boom")
			m.Metadata.Set(runtime.MetaDeadLetterHandler, "h")
			m.Metadata.Set(runtime.MetaDeadLetterAttempt, "5")
		}
		return m
	}
	for _, m := range []*message.Message{
		dead("1", "orders", "shop.OrderPlaced"),
		dead("2", "orders", "shop.OrderShipped"),
		dead("3", "payments", "shop.PaymentCaptured"),
		dead("4", "", "shop.Unknown"), // no original topic: kept
	} {
		if err := bus.Publish(runtime.DefaultDeadLetterTopic, m); err != nil {
			t.Fatal(err)
		}
	}
	orders, err := bus.Subscribe(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	stats, err := runtime.Requeue(ctx, bus, bus, runtime.DefaultDeadLetterTopic, runtime.RequeueOptions{
		Filter: func(m *message.Message) bool { return m.Metadata.Get(runtime.MetaType) != "shop.PaymentCaptured" },
		Idle:   200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Requeued != 2 || stats.Kept < 2 || stats.ByTopic["orders"] != 2 {
		t.Errorf("stats = %+v, want 2 requeued to orders and 2 kept", stats)
	}
	for _, want := range []string{"1", "2"} {
		select {
		case m := <-orders:
			m.Ack()
			if m.UUID != want {
				t.Errorf("requeued %s, want %s (same id, in order)", m.UUID, want)
			}
			if m.Metadata.Get(runtime.MetaDeadLetterReason) != "" || m.Metadata.Get(runtime.MetaDeadLetterTopic) != "" {
				t.Errorf("requeued message keeps dead-letter metadata: %v", m.Metadata)
			}
			if m.Metadata.Get(runtime.MetaRequeued) != "1" || m.Metadata.Get(runtime.MetaType) == "" {
				t.Errorf("requeued metadata = %v", m.Metadata)
			}
		case <-ctx.Done():
			t.Fatal("requeued message did not arrive")
		}
	}
}
