package amqp_test

import (
	"context"
	"fmt"
	"net"
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
)

// withParams adds query parameters to the test URL.
func withParams(t *testing.T, raw, params string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if u.RawQuery != "" && params != "" {
		u.RawQuery += "&"
	}
	u.RawQuery += params
	return u.String()
}

func openBroker(t *testing.T, rawURL string) *runtime.Broker {
	t.Helper()
	b, err := runtime.OpenBroker(context.Background(), rawURL, runtime.BrokerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close broker: %v", err)
		}
	})
	return b
}

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

// placedRecorder handles OrderPlaced events of one test run, recording
// them; events of other runs, on the shared exchange, are acknowledged
// and ignored.
type placedRecorder struct {
	ordersv1.UnimplementedOrderEventHandler
	run string
	ch  chan edatest.Received[*ordersv1.OrderPlaced]
}

func (h *placedRecorder) HandleOrderPlaced(ctx context.Context, e *ordersv1.OrderPlaced) error {
	if !strings.HasPrefix(e.GetOrderId(), h.run) {
		return nil
	}
	// Long enough that both consumers of a group get a share.
	time.Sleep(5 * time.Millisecond)
	return edatest.Record(ctx, h.ch, e)
}

// startRouter runs a router on b with the order event handler in
// consumer group group.
func startRouter(t *testing.T, b *runtime.Broker, group string, h *placedRecorder) {
	t.Helper()
	router, err := runtime.NewRouter(runtime.RouterConfig{NewSubscriber: b.NewSubscriber, Publisher: b.Publisher, CloseTimeout: edatest.Timeout})
	if err != nil {
		t.Fatal(err)
	}
	if err := ordersv1.RegisterOrderEventHandler(router, h, runtime.WithName(group)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- router.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("router: %v", err)
		}
	})
	select {
	case <-router.Running():
	case err := <-done:
		t.Fatalf("router stopped: %v", err)
	case <-time.After(edatest.Timeout):
		t.Fatal("router did not start")
	}
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

	// Each broker is a service instance with its own connection.
	const n = 20
	a1 := &placedRecorder{run: run, ch: make(chan edatest.Received[*ordersv1.OrderPlaced], n)}
	a2 := &placedRecorder{run: run, ch: make(chan edatest.Received[*ordersv1.OrderPlaced], n)}
	bb := &placedRecorder{run: run, ch: make(chan edatest.Received[*ordersv1.OrderPlaced], n)}
	startRouter(t, openBroker(t, base), groupA, a1)
	startRouter(t, openBroker(t, base), groupA, a2)
	startRouter(t, openBroker(t, base), groupB, bb)

	pb := openBroker(t, base)
	pub, err := runtime.NewPublisher(pb.Publisher, runtime.PublisherConfig{Source: "amqp-test"})
	if err != nil {
		t.Fatal(err)
	}
	events := ordersv1.NewOrderEventPublisher(pub)
	ctx := runtime.WithCorrelationID(context.Background(), run+"corr")
	for i := range n {
		if err := events.PublishOrderPlaced(ctx, &ordersv1.OrderPlaced{OrderId: fmt.Sprintf("%s%02d", run, i), CustomerId: "alice"}); err != nil {
			t.Fatal(err)
		}
	}

	checkGroups(t, n, run, [][]chan edatest.Received[*ordersv1.OrderPlaced]{{a1.ch, a2.ch}, {bb.ch}})
}

// checkGroups receives n events for each group, from its instances' channels, checks
// each event arrived once per group with its envelope, and that every
// instance of a group got a share.
func checkGroups(t *testing.T, n int, run string, groups [][]chan edatest.Received[*ordersv1.OrderPlaced]) {
	t.Helper()
	for gi, instances := range groups {
		seen := map[string]int{}
		perInstance := make([]int, len(instances))
		deadline := time.After(2 * edatest.Timeout)
		for got := 0; got < n; got++ {
			var r edatest.Received[*ordersv1.OrderPlaced]
			var from int
			select {
			case r = <-instances[0]:
			case r = <-orNil(instances, 1):
				from = 1
			case <-deadline:
				t.Fatalf("group %d: %d of %d events received", gi, got, n)
			}
			seen[r.Msg.GetOrderId()]++
			perInstance[from]++
			checkEnvelope(t, r, run)
		}
		// Anything more within a moment is a duplicate.
		for _, ch := range instances {
			select {
			case r := <-ch:
				t.Errorf("group %d: %s handled again", gi, r.Msg.GetOrderId())
			case <-time.After(300 * time.Millisecond):
			}
		}
		for id, c := range seen {
			if c != 1 {
				t.Errorf("group %d: %s handled %d times, want once", gi, id, c)
			}
		}
		if len(seen) != n {
			t.Errorf("group %d: %d distinct events, want %d", gi, len(seen), n)
		}
		for i, c := range perInstance {
			if c == 0 {
				t.Errorf("group %d: instance %d handled none of %d events: consumers do not share", gi, i, n)
			}
		}
	}
}

func orNil[T any](chs []chan T, i int) chan T {
	if i < len(chs) {
		return chs[i]
	}
	return nil
}

func checkEnvelope(t *testing.T, r edatest.Received[*ordersv1.OrderPlaced], run string) {
	t.Helper()
	env := r.Env
	if env == nil {
		t.Fatalf("%s: no envelope in the handler's context", r.Msg.GetOrderId())
	}
	if env.Type != ordersv1.OrderPlacedEventType || env.Source == "" || env.ID == "" ||
		env.CorrelationID != run+"corr" || env.Subject != r.Msg.GetOrderId() ||
		env.PartitionKey != "alice" || env.ContentType != runtime.ContentTypeProtobuf ||
		env.AggregateType != ordersv1.OrderAggregateType || env.Time.IsZero() {
		t.Errorf("%s: envelope %+v lost metadata", r.Msg.GetOrderId(), env)
	}
}

// TestNewSubscriberNeedsGroup: without a group there is no queue to name.
func TestNewSubscriberNeedsGroup(t *testing.T) {
	b := openBroker(t, edatest.ServiceURL(t, edatest.AMQPURLEnv))
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

	b := openBroker(t, base)
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
	b := openBroker(t, withParams(t, base, "prefetch=100"))
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
		{withParams(t, base, "prefetch=lots"), `prefetch="lots": want a count`},
		{withParams(t, base, "prefetch=0"), `prefetch="0"`},
		{withParams(t, base, "heartbeat=soon"), `heartbeat="soon": want a positive Go duration`},
		{withParams(t, base, "connect_timeout=-1s"), `connect_timeout="-1s"`},
		{withParams(t, base, "fast=1"), `no parameter "fast" (this package knows prefetch`},
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
	addr := silentServer(t)
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

// silentServer listens on a local port, accepts connections and never
// answers, as a hung server does.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String()
}
