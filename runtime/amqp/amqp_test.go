package amqp_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	streadway "github.com/streadway/amqp"

	ordersv1 "github.com/protoc-gen-eda/eda/examples/orders/gen/shop/orders/v1"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/amqp"
	"github.com/protoc-gen-eda/eda/runtime/brokertest"
)

// deleteTopology deletes the queues and exchanges tests created, over a
// connection of its own.
func deleteTopology(t *testing.T, rawURL string, exchanges, queues []string) {
	t.Helper()
	conn, err := streadway.Dial(rawURL)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	defer ch.Close()
	for _, q := range queues {
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			t.Errorf("delete queue %s: %v", q, err)
			return
		}
	}
	for _, e := range exchanges {
		if err := ch.ExchangeDelete(e, false, false); err != nil {
			t.Errorf("delete exchange %s: %v", e, err)
			return
		}
	}
}

// created records the exchanges and queues the suite's Pub/Subs declare,
// to delete them when it ends.
type created struct {
	mu        sync.Mutex
	exchanges map[string]bool
	queues    map[string]bool
}

func (c *created) add(topic, group string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.exchanges[topic] = true
	if group != "" {
		c.queues[amqp.QueueName(topic, group)] = true
	}
}

func (c *created) lists() (exchanges, queues []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := range c.exchanges {
		exchanges = append(exchanges, e)
	}
	for q := range c.queues {
		queues = append(queues, q)
	}
	return exchanges, queues
}

type recordingPublisher struct {
	message.Publisher
	rec *created
}

func (p recordingPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.rec.add(topic, "")
	return p.Publisher.Publish(topic, msgs...)
}

type recordingSubscriber struct {
	message.Subscriber
	group string
	rec   *created
}

func (s recordingSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.rec.add(topic, s.group)
	return s.Subscriber.Subscribe(ctx, topic)
}

// SubscribeInitialize declares the group's queue, as the suite asks
// subscribers that can, so that it holds what is published before
// Subscribe.
func (s recordingSubscriber) SubscribeInitialize(topic string) error {
	s.rec.add(topic, s.group)
	return s.Subscriber.(message.SubscribeInitializer).SubscribeInitialize(topic)
}

// TestPubSub runs Watermill's universal Pub/Sub suite, as watermill-amqp
// runs it for its durable Pub/Sub configuration: the plain constructor's
// subscribers share one group (one queue per topic), so that a queue
// declared by SubscribeInitialize keeps messages for later subscribers.
func TestPubSub(t *testing.T) {
	base := edatest.ServiceURL(t, edatest.AMQPURLEnv)
	prefix := "eda-amqp-suite-" + watermill.NewShortUUID() + "-"
	rec := &created{exchanges: map[string]bool{}, queues: map[string]bool{}}
	t.Cleanup(func() {
		exchanges, queues := rec.lists()
		deleteTopology(t, base, exchanges, queues)
	})

	newPubSub := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		b, err := runtime.OpenBroker(context.Background(), base, runtime.BrokerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sub, err := b.NewSubscriber(group)
		if err != nil {
			t.Fatal(err)
		}
		// The suite closes the publisher and subscriber itself; Close is
		// idempotent.
		t.Cleanup(func() { _ = b.Close() })
		return recordingPublisher{b.Publisher, rec}, recordingSubscriber{sub, group, rec}
	}
	tests.TestPubSub(t,
		tests.Features{
			ConsumerGroups: true,
			// A nack requeues; a lost ack redelivers.
			ExactlyOnceDelivery: false,
			// One queue delivers in order, also to competing consumers.
			GuaranteedOrder:                     true,
			GuaranteedOrderWithSingleSubscriber: true,
			Persistent:                          true,
			// A queue holds only what was published after it was declared.
			NewSubscriberReceivesOldMessages: false,
			GenerateTopicFunc: func(tctx tests.TestContext) string {
				return prefix + string(tctx.TestID)
			},
			// RestartServiceCommand is unset: the tests cannot restart the
			// shared RabbitMQ, so TestReconnect is skipped.
		},
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			return newPubSub(t, "test")
		},
		newPubSub,
	)
}

// TestGeneratedRoundTrip publishes with a generated publisher to routers
// running generated handlers: two instances of one consumer group share the
// messages, each handled once, another group gets every one, and the
// envelope arrives intact.
func TestGeneratedRoundTrip(t *testing.T) {
	base := edatest.ServiceURL(t, edatest.AMQPURLEnv)
	run := "rt-" + watermill.NewShortUUID() + "-"
	groupA, groupB := "eda-test-"+run+"a", "eda-test-"+run+"b"
	t.Cleanup(func() {
		deleteTopology(t, base, nil, []string{
			amqp.QueueName(ordersv1.OrderEventsTopic, groupA),
			amqp.QueueName(ordersv1.OrderEventsTopic, groupB),
		})
	})

	brokertest.GroupRoundTrip(t, base, run, groupA, groupB, "amqp-test")
}

// TestNewSubscriberNeedsGroup: without a group there is no queue to name.
func TestNewSubscriberNeedsGroup(t *testing.T) {
	b := brokertest.OpenBroker(t, edatest.ServiceURL(t, edatest.AMQPURLEnv))
	if _, err := b.NewSubscriber(""); err == nil || !strings.Contains(err.Error(), "needs a consumer group") {
		t.Errorf("NewSubscriber(\"\") = %v, want an error asking for a group", err)
	}
}

// TestPublishRefused: a publish the broker refuses (the exchange exists
// with another type) fails with the reason, and the next publish, on a
// fresh channel, succeeds.
func TestPublishRefused(t *testing.T) {
	base := edatest.ServiceURL(t, edatest.AMQPURLEnv)
	bad := "eda-amqp-direct-" + watermill.NewShortUUID()
	good := "eda-amqp-good-" + watermill.NewShortUUID()
	t.Cleanup(func() { deleteTopology(t, base, []string{bad, good}, []string{amqp.QueueName(good, "g")}) })
	conn, err := streadway.Dial(base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(bad, "direct", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}

	b := brokertest.OpenBroker(t, base)
	err = b.Publisher.Publish(bad, message.NewMessage("m1", nil))
	if err == nil || !strings.Contains(err.Error(), "declare exchange") || !strings.Contains(err.Error(), "PRECONDITION_FAILED") {
		t.Errorf("Publish to a direct exchange = %v, want a refused declaration", err)
	}
	sub, err := b.NewSubscriber("g")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := sub.Subscribe(context.Background(), good)
	if err != nil {
		t.Fatal(err)
	}
	m := message.NewMessage("m2", []byte("x"))
	m.Metadata.Set("k", "v")
	if err := b.Publisher.Publish(good, m); err != nil {
		t.Fatalf("publish after a refused one: %v", err)
	}
	got := edatest.Receive(t, msgs)
	got.Ack()
	if got.UUID != "m2" || got.Metadata.Get("k") != "v" {
		t.Errorf("got %s %v, want m2 with its metadata", got.UUID, got.Metadata)
	}
}

// TestPublishBatch publishes more messages in one call than one confirm
// batch holds.
func TestPublishBatch(t *testing.T) {
	base := edatest.ServiceURL(t, edatest.AMQPURLEnv)
	topic := "eda-amqp-batch-" + watermill.NewShortUUID()
	t.Cleanup(func() { deleteTopology(t, base, []string{topic}, []string{amqp.QueueName(topic, "g")}) })
	b := brokertest.OpenBroker(t, brokertest.WithParams(t, base, "prefetch=100"))
	sub, err := b.NewSubscriber("g")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	const n = 600
	var batch []*message.Message
	for i := range n {
		batch = append(batch, message.NewMessage(fmt.Sprint(i), nil))
	}
	if err := b.Publisher.Publish(topic, batch...); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		m := edatest.Receive(t, msgs)
		m.Ack()
		if m.UUID != fmt.Sprint(i) {
			t.Fatalf("message %d is %s: out of order", i, m.UUID)
		}
	}
}

func TestParseURL(t *testing.T) {
	cfg, err := amqp.ParseURL(mustParse(t, "amqps://u:p@host:5671/vh?prefetch=3&connect_timeout=2s&heartbeat=5s"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.URL != "amqps://u:p@host:5671/vh" || cfg.Prefetch != 3 || cfg.ConnectTimeout != 2*time.Second || cfg.Heartbeat != 5*time.Second {
		t.Errorf("ParseURL = %+v", cfg)
	}
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestOpenErrors(t *testing.T) {
	base := edatest.ServiceURL(t, edatest.AMQPURLEnv)
	tests := []struct{ url, want string }{
		{brokertest.WithParams(t, base, "prefetch=lots"), `prefetch="lots": want a count`},
		{brokertest.WithParams(t, base, "prefetch=0"), `prefetch="0"`},
		{brokertest.WithParams(t, base, "heartbeat=soon"), `heartbeat="soon": want a positive Go duration`},
		{brokertest.WithParams(t, base, "connect_timeout=-1s"), `connect_timeout="-1s"`},
		{brokertest.WithParams(t, base, "fast=1"), `no parameter "fast" (this package knows prefetch`},
		{"amqp://127.0.0.1:port/", `invalid port`},
		// Nothing listens on port 1: refused at once.
		{"amqp://guest:s3cret@127.0.0.1:1/", "amqp://guest:xxxxx@127.0.0.1:1/: AMQP server at 127.0.0.1:1 unreachable"},
		// The server refuses the credentials.
		{"amqp://guest:s3cret@" + mustParse(t, base).Host + "/", "username or password not allowed"},
	}
	for _, tt := range tests {
		start := time.Now()
		_, err := runtime.OpenBroker(context.Background(), tt.url, runtime.BrokerOptions{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("OpenBroker(%q) = %v, want an error containing %q", tt.url, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("OpenBroker(%q): the error shows the password: %v", tt.url, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("OpenBroker(%q) took %s", tt.url, d)
		}
	}
}

// TestOpenUnreachableIsBounded: a server that accepts connections and
// never answers fails Open within connect_timeout, the password redacted.
func TestOpenUnreachableIsBounded(t *testing.T) {
	addr := brokertest.SilentServer(t)
	u := "amqp://user:s3cret@" + addr + "/?connect_timeout=500ms"
	start := time.Now()
	_, err := runtime.OpenBroker(context.Background(), u, runtime.BrokerOptions{})
	took := time.Since(start)
	if err == nil {
		t.Fatal("opened a broker on a server that never answers")
	}
	if !strings.Contains(err.Error(), "unreachable") || !strings.Contains(err.Error(), "user:xxxxx@"+addr) {
		t.Errorf("error %q: want it to say the server is unreachable, with the URL redacted", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error shows the password: %v", err)
	}
	if took < 400*time.Millisecond || took > 3*time.Second {
		t.Errorf("took %s with connect_timeout=500ms", took)
	}
}
