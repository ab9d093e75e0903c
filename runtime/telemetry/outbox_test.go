package telemetry_test

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/trace"

	ordersv1 "github.com/protoc-gen-eda/eda/examples/orders/gen/shop/orders/v1"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/memstore"
)

// order is the smallest Order aggregate: placing decides OrderPlaced.
type order struct{}

func (order) ApplyOrderPlaced(s *ordersv1.Order, e *ordersv1.OrderPlaced)   { s.OrderId = e.GetOrderId() }
func (order) ApplyOrderShipped(*ordersv1.Order, *ordersv1.OrderShipped)     {}
func (order) ApplyOrderCancelled(*ordersv1.Order, *ordersv1.OrderCancelled) {}
func (order) HandlePlaceOrder(_ context.Context, _ *ordersv1.Order, c *ordersv1.PlaceOrder) ([]ordersv1.OrderEvent, error) {
	return []ordersv1.OrderEvent{&ordersv1.OrderPlaced{OrderId: c.GetOrderId(), CustomerId: c.GetCustomerId()}}, nil
}
func (order) HandleShipOrder(context.Context, *ordersv1.Order, *ordersv1.ShipOrder) ([]ordersv1.OrderEvent, error) {
	return nil, nil
}
func (order) HandleCancelOrder(context.Context, *ordersv1.Order, *ordersv1.CancelOrder) ([]ordersv1.OrderEvent, error) {
	return nil, nil
}

// The events a command decides reach the broker through the outbox, long
// after the command's handling, from a relay with no span: their publish is
// still the child of the command's process span, whose context the outbox
// stored with them.
func TestOutboxContinuesTheTrace(t *testing.T) {
	store := memstore.New()
	placed := make(chan struct{}, 1)
	s := startService(t, func(r *runtime.Router, _ message.Publisher) error {
		repo, err := ordersv1.NewOrderRepository(store, order{}, runtime.RepositoryConfig{Source: "telemetry-test"})
		if err != nil {
			return err
		}
		if err := ordersv1.RegisterOrderCommandHandler(r, repo); err != nil {
			return err
		}
		return ordersv1.RegisterOrderEventHandler(r, handlerFunc{placed: func(context.Context, *ordersv1.OrderPlaced) error {
			placed <- struct{}{}
			return nil
		}})
	})
	relay, err := runtime.NewRelay(store, runtime.RelayConfig{Publisher: s.traced})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	if err := ordersv1.NewOrderCommandBus(s.pub).SendPlaceOrder(context.Background(), &ordersv1.PlaceOrder{OrderId: "order-1", CustomerId: "alice"}); err != nil {
		t.Fatal(err)
	}
	edatest.Receive(t, placed)
	spans := s.ended(t, 4)
	sendCommand := span(t, spans, "publish "+ordersv1.OrderCommandsTopic)
	processCommand := span(t, spans, "process "+ordersv1.OrderCommandsTopic)
	relayEvent := span(t, spans, "publish "+ordersv1.OrderEventsTopic)
	processEvent := span(t, spans, "process "+ordersv1.OrderEventsTopic)
	childOf(t, processCommand, sendCommand, true)
	childOf(t, relayEvent, processCommand, false)
	childOf(t, processEvent, relayEvent, true)
	if relayEvent.SpanKind() != trace.SpanKindProducer {
		t.Errorf("relay publish kind %v", relayEvent.SpanKind())
	}
	// The event continues the command's conversation.
	wantAttrs(t, processEvent, map[string]any{"messaging.message.conversation_id": attrs(sendCommand)["messaging.message.id"].AsString()})
}
