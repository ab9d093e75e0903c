package sqlbroker_test

import (
	"context"
	"errors"
	"net/url"
	"testing"

	ordersv1 "github.com/protoc-gen-eda/eda/examples/orders/gen/shop/orders/v1"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/brokertest"
	"github.com/protoc-gen-eda/eda/runtime/postgres"
)

// placeOnly is an Order aggregate that only places orders.
type placeOnly struct{}

var errNotHere = errors.New("not in this test")

func (placeOnly) ApplyOrderPlaced(s *ordersv1.Order, e *ordersv1.OrderPlaced) {
	s.OrderId = e.GetOrderId()
}
func (placeOnly) ApplyOrderShipped(*ordersv1.Order, *ordersv1.OrderShipped)     {}
func (placeOnly) ApplyOrderCancelled(*ordersv1.Order, *ordersv1.OrderCancelled) {}
func (placeOnly) HandlePlaceOrder(_ context.Context, _ *ordersv1.Order, c *ordersv1.PlaceOrder) ([]ordersv1.OrderEvent, error) {
	return []ordersv1.OrderEvent{&ordersv1.OrderPlaced{OrderId: c.GetOrderId(), CustomerId: c.GetCustomerId()}}, nil
}
func (placeOnly) HandleShipOrder(context.Context, *ordersv1.Order, *ordersv1.ShipOrder) ([]ordersv1.OrderEvent, error) {
	return nil, errNotHere
}
func (placeOnly) HandleCancelOrder(context.Context, *ordersv1.Order, *ordersv1.CancelOrder) ([]ordersv1.OrderEvent, error) {
	return nil, errNotHere
}

// TestOutboxRelayPublishesIntoBroker runs the event store's outbox and this
// broker in one PostgreSQL schema: a command's event, appended with its
// outbox row, reaches a handler through the relay and the broker.
func TestOutboxRelayPublishesIntoBroker(t *testing.T) {
	rawURL := edatest.PostgresSchemaURL(t, "sqlbroker_outbox")
	b := brokertest.OpenBroker(t, rawURL+testParams)

	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	schema := q.Get("schema")
	q.Del("schema")
	u.RawQuery = q.Encode()
	ctx := context.Background()
	store, err := postgres.Open(ctx, u.String(), postgres.Config{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })

	h := placed{got: make(chan edatest.Received[*ordersv1.OrderPlaced], 1)}
	startRouter(t, b, func(r *runtime.Router) error { return ordersv1.RegisterOrderEventHandler(r, h) })
	relay, err := runtime.NewRelay(store, runtime.RelayConfig{Publisher: b.Publisher})
	if err != nil {
		t.Fatal(err)
	}
	relayCtx, stop := context.WithCancel(ctx)
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay.Run(relayCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-relayDone; err != nil {
			t.Errorf("relay: %v", err)
		}
	})

	orders, err := ordersv1.NewOrderRepository(store, placeOnly{}, runtime.RepositoryConfig{Source: "sqlbroker-outbox-test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := orders.Execute(ctx, &ordersv1.PlaceOrder{OrderId: "order-9", CustomerId: "carol", Items: []*ordersv1.LineItem{{Sku: "pen", Quantity: 1}}}); err != nil {
		t.Fatal(err)
	}
	got := edatest.Receive(t, h.got)
	if got.Msg.GetOrderId() != "order-9" || got.Env == nil || got.Env.Sequence != 1 || got.Env.AggregateType != ordersv1.OrderAggregateType || got.Env.Source != "sqlbroker-outbox-test" {
		t.Errorf("relayed event %v with envelope %+v, want order-9 at sequence 1 of an Order", got.Msg, got.Env)
	}
}
