package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
)

func TestDLQUsage(t *testing.T) {
	tests := []struct {
		args   []string
		stderr string
	}{
		{[]string{"--broker", "mem://"}, "give the subcommand: eda dlq requeue"},
		{[]string{"requeue"}, "--broker is required"},
		{[]string{"requeue", "--broker", "mem://", "--max", "-1"}, "--max must not be negative"},
		{[]string{"requeue", "--broker", "pigeon://coop"}, "unknown broker scheme"},
		{[]string{"requeue", "--broker", "mem://", "--bogus"}, "unknown flag: --bogus"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		if code := runDLQ(tt.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tt.stderr) {
			t.Errorf("eda dlq %q: exit status %d, stderr %q; want 2 and %q", tt.args, code, stderr.String(), tt.stderr)
		}
	}
	// On the embedded bus the topic is empty (it lives in this process):
	// the run ends idle, having requeued nothing.
	var stdout, stderr bytes.Buffer
	if code := runDLQ([]string{"requeue", "--broker", "mem://", "--idle", "50ms"}, &stdout, &stderr); code != 0 || stdout.String() != "requeued 0, left on eda.dead_letter 0\n" {
		t.Errorf("eda dlq requeue on mem://: exit status %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}

// TestDLQRequeueRedis requeues dead letters on a real broker: each comes
// back on its original topic, with its id, and the filtered one stays.
func TestDLQRequeueRedis(t *testing.T) {
	url := edatest.ServiceURL(t, "EDA_TEST_REDIS_URL")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := runtime.OpenBroker(ctx, url, runtime.BrokerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	suffix := watermill.NewShortUUID()
	dlqTopic, orders := "dlq-"+suffix, "orders-"+suffix
	for i, typ := range []string{"shop.OrderPlaced", "shop.OrderPlaced", "shop.Audit"} {
		m := message.NewMessage(fmt.Sprintf("%s-%d", suffix, i), []byte("x"))
		m.Metadata.Set(runtime.MetaType, typ)
		m.Metadata.Set(runtime.MetaDeadLetterTopic, orders)
		m.Metadata.Set(runtime.MetaDeadLetterReason, "boom")
		if err := b.Publisher.Publish(dlqTopic, m); err != nil {
			t.Fatal(err)
		}
	}
	var stdout, stderr bytes.Buffer
	code := runDLQ([]string{"requeue", "--broker", url, "--topic", dlqTopic, "--type", "shop.OrderPlaced", "--idle", "1s"}, &stdout, &stderr)
	want := orders + "\t2\nrequeued 2, left on " + dlqTopic + " 1\n"
	if code != 0 || stdout.String() != want {
		t.Fatalf("eda dlq requeue: exit status %d, stdout %q, stderr %q; want %q", code, stdout.String(), stderr.String(), want)
	}
	sub, err := b.NewSubscriber("check-" + suffix)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := sub.Subscribe(ctx, orders)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		select {
		case m := <-msgs:
			m.Ack()
			if m.UUID != fmt.Sprintf("%s-%d", suffix, i) || m.Metadata.Get(runtime.MetaRequeued) != "1" || m.Metadata.Get(runtime.MetaDeadLetterReason) != "" {
				t.Errorf("requeued message %s, metadata %v", m.UUID, m.Metadata)
			}
		case <-ctx.Done():
			t.Fatal("requeued messages did not arrive")
		}
	}
}
