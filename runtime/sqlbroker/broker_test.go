package sqlbroker_test

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

	ordersv1 "github.com/protoc-gen-eda/eda/examples/orders/gen/shop/orders/v1"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/brokertest"
	"github.com/protoc-gen-eda/eda/runtime/sqlbroker"
)

// testParams make delivery quick in tests.
const testParams = "&poll_interval=10ms&resend_interval=10ms"

// startRouter runs a router on b with the handlers register adds, until the
// test ends.
func startRouter(t *testing.T, b *runtime.Broker, register func(*runtime.Router) error) {
	t.Helper()
	r, err := runtime.NewRouter(runtime.RouterConfig{NewSubscriber: b.NewSubscriber, Publisher: b.Publisher, CloseTimeout: edatest.Timeout})
	if err != nil {
		t.Fatal(err)
	}
	if err := register(r); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-r.Running():
	case err := <-done:
		cancel()
		t.Fatalf("router stopped before running: %v", err)
	case <-time.After(edatest.Timeout):
		cancel()
		t.Fatal("router did not start")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("router: %v", err)
		}
	})
}

// placed records the OrderPlaced events a handler receives.
type placed struct {
	ordersv1.UnimplementedOrderEventHandler
	got chan edatest.Received[*ordersv1.OrderPlaced]
}

func (h placed) HandleOrderPlaced(ctx context.Context, e *ordersv1.OrderPlaced) error {
	return edatest.Record(ctx, h.got, e)
}

func newPublisher(t *testing.T, b *runtime.Broker) *ordersv1.OrderEventPublisher {
	t.Helper()
	pub, err := runtime.NewPublisher(b.Publisher, runtime.PublisherConfig{Source: "sqlbroker-test"})
	if err != nil {
		t.Fatal(err)
	}
	return ordersv1.NewOrderEventPublisher(pub)
}

func TestRoundTripCarriesEnvelope(t *testing.T) {
	b := brokertest.OpenBroker(t, edatest.PostgresSchemaURL(t, "sqlbroker_rt")+testParams)
	h := placed{got: make(chan edatest.Received[*ordersv1.OrderPlaced], 1)}
	startRouter(t, b, func(r *runtime.Router) error { return ordersv1.RegisterOrderEventHandler(r, h) })

	ctx := runtime.WithCorrelationID(context.Background(), "checkout-7")
	sent := &ordersv1.OrderPlaced{OrderId: "order-1", CustomerId: "alice", Items: []*ordersv1.LineItem{{Sku: "book", Quantity: 2, UnitPriceCents: 1250}}}
	if err := newPublisher(t, b).PublishOrderPlaced(ctx, sent); err != nil {
		t.Fatal(err)
	}
	got := edatest.Receive(t, h.got)
	if got.Msg.GetOrderId() != "order-1" || got.Msg.GetCustomerId() != "alice" || len(got.Msg.GetItems()) != 1 || got.Msg.GetItems()[0].GetUnitPriceCents() != 1250 {
		t.Errorf("payload = %v, want %v", got.Msg, sent)
	}
	env := got.Env
	if env == nil {
		t.Fatal("no envelope in the handler's context")
	}
	for _, c := range []struct{ name, got, want string }{
		{"Type", env.Type, ordersv1.OrderPlacedEventType},
		{"Source", env.Source, "sqlbroker-test"},
		{"Subject", env.Subject, "order-1"},
		{"PartitionKey", env.PartitionKey, "alice"},
		{"CorrelationID", env.CorrelationID, "checkout-7"},
		{"AggregateType", env.AggregateType, ordersv1.OrderAggregateType},
	} {
		if c.got != c.want {
			t.Errorf("envelope %s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if env.ID == "" || env.Time.IsZero() || env.ContentType == "" {
		t.Errorf("envelope lacks id, time or content type: %+v", env)
	}
}

// TestConsumerGroups runs two instances of one handler (one group) and one
// of another group: the first two share the events, the third gets all.
func TestConsumerGroups(t *testing.T) {
	rawURL := edatest.PostgresSchemaURL(t, "sqlbroker_groups") + testParams
	const events = 40
	shared := make(chan edatest.Received[*ordersv1.OrderPlaced], events*2)
	other := make(chan edatest.Received[*ordersv1.OrderPlaced], events*2)
	var instances []*runtime.Broker
	for range 2 {
		b := brokertest.OpenBroker(t, rawURL)
		instances = append(instances, b)
		startRouter(t, b, func(r *runtime.Router) error { return ordersv1.RegisterOrderEventHandler(r, placed{got: shared}) })
	}
	startRouter(t, brokertest.OpenBroker(t, rawURL), func(r *runtime.Router) error {
		return ordersv1.RegisterOrderEventHandler(r, placed{got: other}, runtime.WithName("audit"))
	})

	pub := newPublisher(t, instances[0])
	for i := range events {
		if err := pub.PublishOrderPlaced(context.Background(), &ordersv1.OrderPlaced{OrderId: fmt.Sprint("order-", i), CustomerId: "c"}); err != nil {
			t.Fatal(err)
		}
	}
	for name, ch := range map[string]chan edatest.Received[*ordersv1.OrderPlaced]{"shared group": shared, "audit group": other} {
		seen := map[string]bool{}
		for len(seen) < events {
			seen[edatest.Receive(t, ch).Msg.GetOrderId()] = true
		}
		// Delivery is at least once, but without failures the group's
		// offset lock makes it once: a second copy would be a bug.
		select {
		case dup := <-ch:
			t.Errorf("%s: %s delivered twice", name, dup.Msg.GetOrderId())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func TestLongTopicNames(t *testing.T) {
	b := brokertest.OpenBroker(t, edatest.PostgresSchemaURL(t, "sqlbroker_long")+testParams)
	// Both names exceed PostgreSQL's 63 bytes once prefixed and share
	// their first 63: truncation would put them in one table.
	long := "com.example.a.rather.long.package.name.v1.SomeAggregate.events"
	topics := []string{long + ".one", long + ".two"}
	sub, err := b.NewSubscriber("g")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, topic := range topics {
		if err := b.Publisher.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte(topic))); err != nil {
			t.Fatal(err)
		}
	}
	for _, topic := range topics {
		ch, err := sub.Subscribe(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		msg := edatest.Receive(t, ch)
		msg.Ack()
		if string(msg.Payload) != topic {
			t.Errorf("topic %s delivered %q", topic, msg.Payload)
		}
	}
}

func TestSkipInitializeSchema(t *testing.T) {
	b := brokertest.OpenBroker(t, edatest.PostgresSchemaURL(t, "sqlbroker_noinit")+"&initialize_schema=false")
	err := b.Publisher.Publish("orders", message.NewMessage("1", nil))
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("publish without tables and initialize_schema=false = %v, want a missing-table error", err)
	}
	if err := b.Publisher.Publish("bad topic!", message.NewMessage("1", nil)); err == nil || !strings.Contains(err.Error(), "letters, digits") {
		t.Errorf("publish to an invalid topic = %v, want the topic rule", err)
	}
}

func TestOpenErrors(t *testing.T) {
	base := edatest.ServiceURL(t, edatest.PostgresURLEnv)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), "s3cret")
	withPassword := u.String()
	sep := "?"
	if strings.Contains(withPassword, "?") {
		sep = "&"
	}
	tests := []struct{ url, want string }{
		{withPassword + sep + "poll_interval=soon", "poll_interval"},
		{withPassword + sep + "poll_interval=-1s", "positive duration"},
		{withPassword + sep + "ack_deadline=0s", "ack_deadline"},
		{withPassword + sep + "resend_interval=1", "resend_interval"},
		{withPassword + sep + "batch_size=0", "batch_size"},
		{withPassword + sep + "batch_size=many", "positive count"},
		{withPassword + sep + "initialize_schema=maybe", "true or false"},
		{withPassword + sep + "schema=", "schema"},
		{withPassword + sep + "schema=" + strings.Repeat("s", 64), "longer than 63"},
		{"postgres://app:s3cret@127.0.0.1:1/test?connect_timeout=2", "connect to 127.0.0.1:1/test"},
		{"postgres://app:s3cret@127.0.0.1:99999/test", "parse the connection URL"},
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
			t.Errorf("OpenBroker(%q) took %s to fail", tt.url, d)
		}
	}
}

func TestNewSubscriberAfterClose(t *testing.T) {
	// postgresql:// is the other spelling OpenBroker accepts.
	rawURL := strings.Replace(edatest.PostgresSchemaURL(t, "sqlbroker_close"), "postgres://", "postgresql://", 1)
	if !strings.HasPrefix(rawURL, "postgresql://") {
		t.Fatalf("test URL %q is not postgres://", rawURL)
	}
	b, err := runtime.OpenBroker(context.Background(), rawURL, runtime.BrokerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if _, err := b.NewSubscriber("g"); err != sqlbroker.ErrClosed {
		t.Errorf("NewSubscriber after Close = %v, want ErrClosed", err)
	}
}

// TestConcurrentStart starts publishers and subscribers of a new topic
// together: table creation must not race.
func TestConcurrentStart(t *testing.T) {
	rawURL := edatest.PostgresSchemaURL(t, "sqlbroker_race")
	const n = 6
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		b := brokertest.OpenBroker(t, rawURL)
		wg.Go(func() { errs <- b.Publisher.Publish("fresh", message.NewMessage(fmt.Sprint(i), nil)) })
		wg.Go(func() {
			sub, err := b.NewSubscriber("g")
			if err == nil {
				err = sub.(message.SubscribeInitializer).SubscribeInitialize("fresh")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
