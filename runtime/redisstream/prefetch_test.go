package redisstream_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/brokertest"
)

// TestOrderedConcurrency checks that a handler with MaxInFlight above 1
// handles messages of different keys at once on Redis Streams, each key's in
// order.
func TestOrderedConcurrency(t *testing.T) {
	base := edatest.ServiceURL(t, edatest.RedisURLEnv)
	run := watermill.NewShortUUID()
	client := rawClient(t, base)
	t.Cleanup(func() { deleteKeys(t, client, "brokertest.ordered."+run) })
	brokertest.OrderedConcurrency(t, brokertest.WithParams(t, base, "block=20ms"), run)
}

// prefetchSubscriber opens a broker on rawURL and returns a subscriber of
// group that delivers ahead.
func prefetchSubscriber(t *testing.T, rawURL, group string) (*runtime.Broker, runtime.PrefetchSubscriber) {
	t.Helper()
	b := brokertest.OpenBroker(t, rawURL)
	sub, err := b.NewSubscriber(group)
	if err != nil {
		t.Fatal(err)
	}
	ps, ok := sub.(runtime.PrefetchSubscriber)
	if !ok {
		t.Fatalf("%T does not implement runtime.PrefetchSubscriber", sub)
	}
	return b, ps
}

// prefetchTopic returns a fresh stream name, deleted after the test, and a
// client to look at it.
func prefetchTopic(t *testing.T, base, name string) (string, *redis.Client) {
	topic := "eda-redisstream-" + name + "-" + watermill.NewShortUUID()
	client := rawClient(t, base)
	t.Cleanup(func() { deleteKeys(t, client, topic) })
	return topic, client
}

func pendingCount(t *testing.T, c *redis.Client, topic, group string) int64 {
	t.Helper()
	p, err := c.XPending(context.Background(), topic, group).Result()
	if err != nil {
		t.Fatal(err)
	}
	return p.Count
}

// TestPrefetchBound: n messages are delivered before any is acknowledged,
// in stream order with their metadata, the next only once one is acked,
// and each ack reaches Redis on its own.
func TestPrefetchBound(t *testing.T) {
	base := edatest.ServiceURL(t, edatest.RedisURLEnv)
	topic, client := prefetchTopic(t, base, "bound")
	b, sub := prefetchSubscriber(t, brokertest.WithParams(t, base, "block=10ms"), "g")
	brokertest.PublishNumbered(t, b.Publisher, topic, 5)

	if _, err := sub.SubscribePrefetch(context.Background(), topic, 0); err == nil {
		t.Error("SubscribePrefetch with n=0 succeeded")
	}
	msgs, err := sub.SubscribePrefetch(context.Background(), topic, 3)
	if err != nil {
		t.Fatal(err)
	}
	var got []*message.Message
	for i := range 3 {
		m := edatest.Receive(t, msgs)
		if want := fmt.Sprintf("m%d", i); m.UUID != want || m.Metadata.Get("index") != fmt.Sprint(i) || string(m.Payload) != "payload "+fmt.Sprint(i) {
			t.Fatalf("message %d: %s %v %q, want %s with its metadata and payload", i, m.UUID, m.Metadata, m.Payload, want)
		}
		got = append(got, m)
	}
	brokertest.NoMessage(t, msgs, 300*time.Millisecond, "a 4th message delivered with 3 unacknowledged and n=3")
	if n := pendingCount(t, client, topic, "g"); n != 3 {
		t.Errorf("%d entries pending, want the 3 delivered", n)
	}

	// Ack the middle one: it is acknowledged on its own, and frees a slot.
	got[1].Ack()
	if m := edatest.Receive(t, msgs); m.UUID != "m3" {
		t.Fatalf("after an ack got %s, want m3", m.UUID)
	} else {
		got = append(got, m)
	}
	brokertest.NoMessage(t, msgs, 200*time.Millisecond, "a 5th message delivered with 3 unacknowledged")
	entries, err := client.XRange(context.Background(), topic, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint([]string{entries[0].ID, entries[2].ID, entries[3].ID})
	edatest.Eventually(t, "m1 alone acknowledged", func() bool {
		return fmt.Sprint(pendingIDs(t, client, topic, "g")) == want
	})
	for _, m := range got {
		m.Ack()
	}
	if m := edatest.Receive(t, msgs); m.UUID != "m4" {
		t.Fatalf("got %s, want m4", m.UUID)
	} else {
		m.Ack()
	}
	edatest.Eventually(t, "every entry acknowledged", func() bool { return pendingCount(t, client, topic, "g") == 0 })
}

// pendingIDs returns the ids of the entries pending in group, in order.
func pendingIDs(t *testing.T, c *redis.Client, topic, group string) []string {
	t.Helper()
	pending, err := c.XPendingExt(context.Background(), &redis.XPendingExtArgs{Stream: topic, Group: group, Start: "-", End: "+", Count: 100}).Result()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range pending {
		ids = append(ids, p.ID)
	}
	return ids
}

// TestPrefetchNack: a nacked message is delivered again.
func TestPrefetchNack(t *testing.T) {
	base := edatest.ServiceURL(t, edatest.RedisURLEnv)
	topic, client := prefetchTopic(t, base, "nack")
	b, sub := prefetchSubscriber(t, brokertest.WithParams(t, base, "block=10ms"), "g")
	brokertest.PublishNumbered(t, b.Publisher, topic, 2)
	msgs, err := sub.SubscribePrefetch(context.Background(), topic, 1)
	if err != nil {
		t.Fatal(err)
	}
	m := edatest.Receive(t, msgs)
	if m.UUID != "m0" {
		t.Fatalf("got %s, want m0", m.UUID)
	}
	m.Nack()
	again := edatest.Receive(t, msgs)
	if again.UUID != "m0" || again.Metadata.Get("index") != "0" {
		t.Fatalf("after a nack got %s, want m0 again", again.UUID)
	}
	again.Ack()
	if m := edatest.Receive(t, msgs); m.UUID != "m1" {
		t.Fatalf("got %s, want m1", m.UUID)
	} else {
		m.Ack()
	}
	edatest.Eventually(t, "every entry acknowledged", func() bool { return pendingCount(t, client, topic, "g") == 0 })
}

// TestPrefetchCloseRedelivers: messages delivered and not acknowledged when
// the subscriber closes go to the next subscriber of the group; those
// acknowledged, even just before Close, do not. The channel is closed.
func TestPrefetchCloseRedelivers(t *testing.T) {
	base := edatest.ServiceURL(t, edatest.RedisURLEnv)
	topic, client := prefetchTopic(t, base, "close")
	rawURL := brokertest.WithParams(t, base, "block=10ms&claim_interval=100ms&max_idle=500ms")
	first, sub := prefetchSubscriber(t, rawURL, "g")
	brokertest.PublishNumbered(t, first.Publisher, topic, 6)
	msgs, err := sub.SubscribePrefetch(context.Background(), topic, 4)
	if err != nil {
		t.Fatal(err)
	}
	var got []*message.Message
	for range 4 {
		got = append(got, edatest.Receive(t, msgs))
	}
	got[0].Ack()
	got[2].Ack()
	// The ack right before Close must reach Redis all the same.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case m, ok := <-msgs:
		if ok {
			t.Fatalf("got %s after Close", m.UUID)
		}
	case <-time.After(edatest.Timeout):
		t.Fatal("channel not closed by Close")
	}
	// m1 and m3 are pending, m0 and m2 not; m4 and m5 may be, if they were
	// read after the acks freed slots.
	entries, err := client.XRange(context.Background(), topic, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	pending := map[string]bool{}
	for _, id := range pendingIDs(t, client, topic, "g") {
		pending[id] = true
	}
	for i, want := range []bool{false, true, false, true} {
		if pending[entries[i].ID] != want {
			t.Errorf("after Close, m%d pending: %t, want %t", i, !want, want)
		}
	}

	_, sub2 := prefetchSubscriber(t, rawURL, "g")
	msgs2, err := sub2.SubscribePrefetch(context.Background(), topic, 8)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for range 4 {
		m := edatest.Receive(t, msgs2)
		seen[m.UUID]++
		m.Ack()
	}
	for _, id := range []string{"m1", "m3", "m4", "m5"} {
		if seen[id] != 1 {
			t.Errorf("second subscriber got %s %d times, want once (got %v)", id, seen[id], seen)
		}
	}
	brokertest.NoMessage(t, msgs2, time.Second, "an acknowledged message delivered again")
	edatest.Eventually(t, "every entry acknowledged", func() bool { return pendingCount(t, client, topic, "g") == 0 })
}

// TestPrefetchResubscribe: a subscription that ends leaves what it did not
// acknowledge pending with the consumer; the subscriber's next
// subscription reads it again at once, long before max_idle.
func TestPrefetchResubscribe(t *testing.T) {
	base := edatest.ServiceURL(t, edatest.RedisURLEnv)
	topic, client := prefetchTopic(t, base, "resub")
	b, sub := prefetchSubscriber(t, brokertest.WithParams(t, base, "block=10ms&max_idle=1h"), "g")
	brokertest.PublishNumbered(t, b.Publisher, topic, 2)
	ctx, cancel := context.WithCancel(context.Background())
	msgs, err := sub.SubscribePrefetch(ctx, topic, 2)
	if err != nil {
		t.Fatal(err)
	}
	if m := edatest.Receive(t, msgs); m.UUID != "m0" {
		t.Fatalf("got %s, want m0", m.UUID)
	}
	// m0 is left unacknowledged.
	if m := edatest.Receive(t, msgs); m.UUID != "m1" {
		t.Fatalf("got %s, want m1", m.UUID)
	} else {
		m.Ack()
	}
	cancel()
	for range msgs {
	}
	edatest.Eventually(t, "m1's ack to reach Redis", func() bool { return pendingCount(t, client, topic, "g") == 1 })
	m2 := message.NewMessage("m2", nil)
	if err := b.Publisher.Publish(topic, m2); err != nil {
		t.Fatal(err)
	}

	msgs, err = sub.SubscribePrefetch(context.Background(), topic, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"m0", "m2"} {
		m := edatest.Receive(t, msgs)
		if m.UUID != want {
			t.Fatalf("got %s, want %s", m.UUID, want)
		}
		m.Ack()
	}
	brokertest.NoMessage(t, msgs, 300*time.Millisecond, "a message delivered twice")
	edatest.Eventually(t, "every entry acknowledged", func() bool { return pendingCount(t, client, topic, "g") == 0 })
}

// TestPrefetchAfterClose: a closed subscriber does not subscribe.
func TestPrefetchAfterClose(t *testing.T) {
	base := edatest.ServiceURL(t, edatest.RedisURLEnv)
	topic, _ := prefetchTopic(t, base, "closed")
	_, sub := prefetchSubscriber(t, base, "g")
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.SubscribePrefetch(context.Background(), topic, 1); err == nil {
		t.Error("SubscribePrefetch on a closed subscriber succeeded")
	}
	if _, err := sub.Subscribe(context.Background(), topic); err == nil {
		t.Error("Subscribe on a closed subscriber succeeded")
	}
}
