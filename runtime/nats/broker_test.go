package nats_test

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
	natsgo "github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	ordersv1 "github.com/protoc-gen-eda/eda/examples/orders/gen/shop/orders/v1"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/brokertest"
	edanats "github.com/protoc-gen-eda/eda/runtime/nats"
)

// testURL returns the test server's URL with a prefix of its own and the
// given extra parameters, and deletes the prefix's streams when the test
// ends.
func testURL(t *testing.T, extra string) string {
	t.Helper()
	base := edatest.ServiceURL(t, edatest.NATSURLEnv)
	prefix := fmt.Sprintf("edatest_%d", time.Now().UnixNano())
	t.Cleanup(func() { deleteStreams(t, base, prefix) })
	u := base + "?prefix=" + prefix
	if extra != "" {
		u += "&" + extra
	}
	return u
}

func deleteStreams(t *testing.T, base, prefix string) {
	conn, err := natsgo.Connect(base)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	js, err := conn.JetStream()
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	for name := range js.StreamNames() {
		if strings.HasPrefix(name, prefix+"_") {
			if err := js.DeleteStream(name); err != nil {
				t.Errorf("cleanup: delete stream %s: %v", name, err)
			}
		}
	}
}

func openBroker(t *testing.T, rawURL string) *runtime.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), edatest.Timeout)
	defer cancel()
	b, err := runtime.OpenBroker(ctx, rawURL, runtime.BrokerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	return b
}

func TestConfigFromURL(t *testing.T) {
	u, _ := url.Parse("nats://alice:secret@n1:4222,n2:4223?prefix=staging&provision=false&storage=memory&replicas=3" +
		"&max_age=720h&duplicate_window=1m&dedup=false&ack_wait=1m&max_ack_pending=50&subscribers=4&ack_async=true" +
		"&max_publish_pending=64&connect_timeout=2s&name=orders&tls=true")
	cfg, err := edanats.ConfigFromURL(u)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(cfg.Servers, ","), "nats://n1:4222,nats://n2:4223"; got != want {
		t.Errorf("Servers = %s, want %s", got, want)
	}
	if cfg.Prefix != "staging" || !cfg.NoProvision || cfg.Storage != natsgo.MemoryStorage || cfg.Replicas != 3 ||
		cfg.MaxAge != 720*time.Hour || cfg.DuplicateWindow != time.Minute || !cfg.NoDedup || cfg.AckWaitTimeout != time.Minute ||
		cfg.MaxAckPending != 50 || cfg.SubscribersCount != 4 || !cfg.AckAsync || cfg.ConnectTimeout != 2*time.Second ||
		cfg.MaxPublishPending != 64 {
		t.Errorf("parsed %+v", cfg)
	}
	// user info, name, tls
	if len(cfg.Options) != 3 {
		t.Errorf("got %d connection options, want 3 (credentials, name, tls)", len(cfg.Options))
	}
	for _, s := range cfg.Servers {
		if strings.Contains(s, "secret") {
			t.Errorf("server %s carries the password; it belongs in an option", s)
		}
	}
}

func TestConfigFromURLErrors(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"nats://h:4222?ackwait=1s", `unknown parameter "ackwait" (known: prefix, provision,`},
		{"nats://h:4222?ack_wait=soon", `ack_wait="soon": want a positive Go duration such as 30s or 5m`},
		{"nats://h:4222?ack_wait=-1s", `ack_wait="-1s": want a positive Go duration`},
		{"nats://h:4222?storage=disk", `storage="disk": want file or memory`},
		{"nats://h:4222?replicas=7", "Replicas 7: want 1 to 5"},
		{"nats://h:4222?subscribers=0", `subscribers="0": want a positive count`},
		{"nats://h:4222?max_publish_pending=none", `max_publish_pending="none": want a positive count`},
		{"nats://h:4222?provision=maybe", `provision="maybe": want true or false`},
		{"nats://h:4222?prefix=a..b", `Prefix "a..b": has an empty token`},
		{"nats://h:4222?prefix=a.*", `has the wildcard "*"`},
		{"nats://h:4222/orders", `path "/orders": a NATS URL has none`},
		{"nats://h1:4222,,h2:4222", "empty host in the host list"},
		{"nats:///", "no host"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			_, err = edanats.ConfigFromURL(u)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	err := edanats.Config{Replicas: -1, MaxAckPending: -2, AckWaitTimeout: -time.Second}.Validate()
	for _, want := range []string{"Servers is required", "Replicas -1", "MaxAckPending -2", "AckWaitTimeout -1s"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to contain %q", err, want)
		}
	}
}

func TestOpenBrokerErrors(t *testing.T) {
	ctx := context.Background()
	_, err := runtime.OpenBroker(ctx, "nats://bob:hunter2@127.0.0.1:4222?ack_wait=x", runtime.BrokerOptions{})
	if err == nil || !strings.Contains(err.Error(), `ack_wait="x"`) {
		t.Fatalf("error %v, want the bad parameter named", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error shows the password: %v", err)
	}

	// Nothing listens on port 1: the error names the server, fast.
	start := time.Now()
	_, err = runtime.OpenBroker(ctx, "nats://bob:hunter2@127.0.0.1:1?connect_timeout=1s", runtime.BrokerOptions{})
	if err == nil || !strings.Contains(err.Error(), "connect to NATS at nats://127.0.0.1:1") {
		t.Fatalf("error %v, want it to name the server", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error shows the password: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("failing to connect took %s, want about connect_timeout (1s) at most", d)
	}

	// A context deadline shortens the connection attempt to a server that
	// does not answer (a non-routable address).
	ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = runtime.OpenBroker(ctx, "nats://10.255.255.1:4222", runtime.BrokerOptions{})
	if err == nil || !strings.Contains(err.Error(), "connect to NATS at nats://10.255.255.1:4222") {
		t.Fatalf("error %v, want it to name the server", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("failing to connect took %s, want about the context's 300ms", d)
	}
}

func TestTopicErrors(t *testing.T) {
	b := openBroker(t, testURL(t, ""))
	err := b.Publisher.Publish("orders events", message.NewMessage(watermill.NewUUID(), nil))
	if err == nil || !strings.Contains(err.Error(), `topic "orders events" cannot be a NATS subject: contains white space`) {
		t.Errorf("error %v", err)
	}
	noProvision := openBroker(t, testURL(t, "provision=false"))
	err = noProvision.Publisher.Publish("shop.missing", message.NewMessage(watermill.NewUUID(), nil))
	if err == nil || !strings.Contains(err.Error(), "no JetStream stream captures subject") || !strings.Contains(err.Error(), "provision=false") {
		t.Errorf("error %v", err)
	}
	sub, err := noProvision.NewSubscriber("g")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Subscribe(context.Background(), "shop.missing"); err == nil || !strings.Contains(err.Error(), "no JetStream stream captures subject") {
		t.Errorf("error %v", err)
	}
}

// TestPubSub runs Watermill's universal Pub/Sub suite with the features
// watermill-nats' own JetStream tests declare, in short mode (ForceShort:
// 100 messages where the suite would send up to 10,000) so that it takes
// well under a minute.
func TestPubSub(t *testing.T) {
	rawURL := testURL(t, "storage=memory&ack_wait=2s")
	open := func(t *testing.T) *runtime.Broker {
		b, err := runtime.OpenBroker(context.Background(), rawURL, runtime.BrokerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	tests.TestPubSub(t,
		tests.Features{
			ConsumerGroups:                      true,
			ExactlyOnceDelivery:                 false,
			GuaranteedOrder:                     true,
			GuaranteedOrderWithSingleSubscriber: true,
			Persistent:                          true,
			RestartServiceCommand:               nil,
			NewSubscriberReceivesOldMessages:    true,
			ForceShort:                          true,
		},
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			b := open(t)
			sub, err := b.NewSubscriber("")
			if err != nil {
				t.Fatal(err)
			}
			return b.Publisher, sub
		},
		func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
			b := open(t)
			sub, err := b.NewSubscriber(group)
			if err != nil {
				t.Fatal(err)
			}
			return b.Publisher, sub
		},
	)
}

// recorder is an OrderEventHandler that records the OrderPlaced events it
// handles, with their envelopes.
type recorder struct {
	ordersv1.UnimplementedOrderEventHandler
	name string
	ch   chan edatest.Received[*ordersv1.OrderPlaced]
}

func newRecorder(name string) *recorder {
	return &recorder{name: name, ch: make(chan edatest.Received[*ordersv1.OrderPlaced], 1024)}
}

func (r *recorder) HandleOrderPlaced(ctx context.Context, e *ordersv1.OrderPlaced) error {
	return edatest.Record(ctx, r.ch, e)
}

// startRouter runs a router on b with the handlers register adds, until the
// test ends.
func startRouter(t *testing.T, b *runtime.Broker, register func(*runtime.Router) error) {
	t.Helper()
	router, err := runtime.NewRouter(runtime.RouterConfig{NewSubscriber: b.NewSubscriber, Publisher: b.Publisher, CloseTimeout: edatest.Timeout})
	if err != nil {
		t.Fatal(err)
	}
	if err := register(router); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- router.Run(ctx) }()
	select {
	case <-router.Running():
	case err := <-done:
		cancel()
		t.Fatalf("router stopped: %v", err)
	case <-time.After(edatest.Timeout):
		cancel()
		t.Fatal("router did not start")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

func TestGeneratedRoundTrip(t *testing.T) {
	b := openBroker(t, testURL(t, "ack_wait=5s"))
	pub, err := runtime.NewPublisher(b.Publisher, runtime.PublisherConfig{Source: "nats-test"})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder("notifier")
	startRouter(t, b, func(r *runtime.Router) error { return ordersv1.RegisterOrderEventHandler(r, rec) })

	ctx := runtime.WithCorrelationID(context.Background(), "checkout-7")
	placed := &ordersv1.OrderPlaced{OrderId: "order-1", CustomerId: "alice", TotalCents: 2500,
		Items: []*ordersv1.LineItem{{Sku: "book", Quantity: 2, UnitPriceCents: 1250}}}
	if err := ordersv1.NewOrderEventPublisher(pub).PublishOrderPlaced(ctx, placed); err != nil {
		t.Fatal(err)
	}
	got := edatest.Receive(t, rec.ch)
	if got.Msg.GetOrderId() != "order-1" || got.Msg.GetTotalCents() != 2500 || len(got.Msg.GetItems()) != 1 {
		t.Errorf("handled %v", got.Msg)
	}
	env := got.Env
	if env == nil {
		t.Fatal("no envelope in the handler's context")
	}
	if env.Type != ordersv1.OrderPlacedEventType || env.Subject != "order-1" || env.Source != "nats-test" ||
		env.CorrelationID != "checkout-7" || env.PartitionKey != "alice" || env.ContentType == "" || env.Time.IsZero() {
		t.Errorf("envelope %+v", env)
	}
	if len(env.ID) != 36 || env.ID[14] != '7' {
		t.Errorf("envelope id %q, want a UUIDv7", env.ID)
	}
}

// TestBatchPipelined publishes through a generated publisher over a
// runtime.Batch: one Flush of more messages than max_publish_pending lets
// through at once stores them all, in order, once each.
func TestBatchPipelined(t *testing.T) {
	rawURL := testURL(t, "max_publish_pending=16")
	b := openBroker(t, rawURL)
	batch := runtime.NewBatch(b.Publisher)
	pub, err := runtime.NewPublisher(batch, runtime.PublisherConfig{Source: "nats-test"})
	if err != nil {
		t.Fatal(err)
	}
	events := ordersv1.NewOrderEventPublisher(pub)
	ctx := context.Background()
	const n = 500
	for i := range n {
		if err := events.PublishOrderPlaced(ctx, &ordersv1.OrderPlaced{OrderId: fmt.Sprint(i), CustomerId: "c"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Flush(); err != nil {
		t.Fatal(err)
	}

	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := natsgo.Connect(edatest.ServiceURL(t, edatest.NATSURLEnv))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	js, err := conn.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	subject := u.Query().Get("prefix") + "." + ordersv1.OrderEventsTopic
	sub, err := js.SubscribeSync(subject, natsgo.OrderedConsumer())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	for i := range n {
		m, err := sub.NextMsg(edatest.Timeout)
		if err != nil {
			t.Fatalf("message %d of %d: %v", i, n, err)
		}
		var e ordersv1.OrderPlaced
		if err := proto.Unmarshal(m.Data, &e); err != nil {
			t.Fatal(err)
		}
		if e.GetOrderId() != fmt.Sprint(i) {
			t.Fatalf("message %d is order %q: out of order", i, e.GetOrderId())
		}
	}
	if m, err := sub.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("a message more than the %d published: %s", n, m.Header.Get(natsgo.MsgIdHdr))
	}
}

// TestConsumerGroups checks that the subscribers of one group share the
// messages, each handled once, and that every group gets every message.
func TestConsumerGroups(t *testing.T) {
	rawURL := testURL(t, "")
	shared1, shared2 := newRecorder("shared1"), newRecorder("shared2")
	other := newRecorder("other")
	// Three brokers, as three processes would have: two instances of the
	// same handler (group "shop.orders.v1.Order.events"), and a handler of
	// another name (group "audit").
	for _, rec := range []*recorder{shared1, shared2} {
		startRouter(t, openBroker(t, rawURL), func(r *runtime.Router) error { return ordersv1.RegisterOrderEventHandler(r, rec) })
	}
	startRouter(t, openBroker(t, rawURL), func(r *runtime.Router) error {
		return ordersv1.RegisterOrderEventHandler(r, other, runtime.WithName("audit"))
	})

	b := openBroker(t, rawURL)
	pub, err := runtime.NewPublisher(b.Publisher, runtime.PublisherConfig{Source: "nats-test"})
	if err != nil {
		t.Fatal(err)
	}
	events := ordersv1.NewOrderEventPublisher(pub)
	const n = 60
	for i := range n {
		if err := events.PublishOrderPlaced(context.Background(), &ordersv1.OrderPlaced{OrderId: fmt.Sprint("order-", i)}); err != nil {
			t.Fatal(err)
		}
	}

	seen := map[string]string{} // order id -> recorder of the shared group
	counts := map[string]int{}
	for len(seen) < n {
		var got edatest.Received[*ordersv1.OrderPlaced]
		var from string
		select {
		case got = <-shared1.ch:
			from = "shared1"
		case got = <-shared2.ch:
			from = "shared2"
		case <-time.After(edatest.Timeout):
			t.Fatalf("the shared group handled %d of %d messages", len(seen), n)
		}
		id := got.Msg.GetOrderId()
		if prev, dup := seen[id]; dup {
			t.Errorf("%s handled by %s and %s", id, prev, from)
		}
		seen[id] = from
		counts[from]++
	}
	if counts["shared1"] == 0 || counts["shared2"] == 0 {
		t.Errorf("one subscriber of the group handled everything: %v", counts)
	}
	ids := map[string]bool{}
	for len(ids) < n {
		ids[edatest.Receive(t, other.ch).Msg.GetOrderId()] = true
	}
	// Nothing more arrives: each message was handled once per group.
	select {
	case got := <-shared1.ch:
		t.Errorf("extra message %s", got.Msg.GetOrderId())
	case got := <-shared2.ch:
		t.Errorf("extra message %s", got.Msg.GetOrderId())
	case got := <-other.ch:
		t.Errorf("extra message %s", got.Msg.GetOrderId())
	case <-time.After(500 * time.Millisecond):
	}
	t.Logf("shared group split %v", counts)
}

// TestGroupResumes checks that a group keeps its position when its last
// subscriber goes away, and that a batch publish is stored in order.
func TestGroupResumes(t *testing.T) {
	rawURL := testURL(t, "")
	b := openBroker(t, rawURL)
	const topic = "shop.resume.v1"
	publish := func(ids ...string) {
		t.Helper()
		msgs := make([]*message.Message, len(ids))
		for i, id := range ids {
			msgs[i] = message.NewMessage(id, []byte(id))
			msgs[i].Metadata.Set(runtime.MetaType, "test.Resume")
		}
		if err := b.Publisher.Publish(topic, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	receive := func(ch <-chan *message.Message, want ...string) {
		t.Helper()
		for _, id := range want {
			msg := edatest.Receive(t, ch)
			if msg.UUID != id || string(msg.Payload) != id || msg.Metadata.Get(runtime.MetaType) != "test.Resume" {
				t.Fatalf("got message %s (%q, %v), want %s", msg.UUID, msg.Payload, msg.Metadata, id)
			}
			msg.Ack()
		}
	}
	publish("m1", "m2", "m3")

	sub, err := b.NewSubscriber("shop.resume.Handler")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	receive(ch, "m1", "m2", "m3")
	cancel()
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}

	// Published again within the duplicate window, in a batch or alone:
	// dropped.
	publish("m3", "m4", "m5")
	publish("m4")
	sub, err = b.NewSubscriber("shop.resume.Handler")
	if err != nil {
		t.Fatal(err)
	}
	ch, err = sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	receive(ch, "m4", "m5")
	select {
	case msg := <-ch:
		t.Errorf("extra message %s", msg.UUID)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestNack checks that a message the handler nacks is delivered again, with
// its metadata, and with max_ack_pending=1 before the next one.
func TestNack(t *testing.T) {
	b := openBroker(t, testURL(t, "max_ack_pending=1"))
	var mu sync.Mutex
	var order []string
	sub, err := b.NewSubscriber("nacker")
	if err != nil {
		t.Fatal(err)
	}
	ch, err := sub.Subscribe(context.Background(), "shop.nack")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		msg := message.NewMessage(id, nil)
		msg.Metadata.Set("k", "v-"+id)
		if err := b.Publisher.Publish("shop.nack", msg); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ {
		msg := edatest.Receive(t, ch)
		mu.Lock()
		order = append(order, msg.UUID+":"+msg.Metadata.Get("k"))
		mu.Unlock()
		if i == 0 {
			msg.Nack()
		} else {
			msg.Ack()
		}
	}
	if got := strings.Join(order, " "); got != "a:v-a a:v-a b:v-b" {
		t.Errorf("delivered %s, want a nacked a again before b", got)
	}
}

// TestOrderedConcurrency checks that a handler with MaxInFlight above 1
// handles messages of different keys at once on JetStream, each key's in
// order.
func TestOrderedConcurrency(t *testing.T) {
	brokertest.OrderedConcurrency(t, testURL(t, "ack_wait=10s"), fmt.Sprint(time.Now().UnixNano()))
}
