package main

import (
	"context"
	"errors"
	"fmt"

	ordersv1 "github.com/protoc-gen-eda/eda/examples/orders/gen/shop/orders/v1"
)

// Domain errors of the Order aggregate. The repository returns them wrapped
// with runtime.Permanent, so the bus dead-letters the command at once.
var (
	errNoItems    = errors.New("an order needs at least one item")
	errExists     = errors.New("the order exists already")
	errNoOrder    = errors.New("there is no such order")
	errShipped    = errors.New("the order has shipped")
	errNotPlaced  = errors.New("only a placed order can ship")
	errNoCarrier  = errors.New("a shipment needs a carrier")
	errWasEnded   = errors.New("the order is cancelled")
	errNoQuantity = errors.New("every item needs a quantity")
)

// order is the Order aggregate's behaviour: the Apply methods build the
// state from events, the Handle methods decide what a command causes. Both
// are pure functions, which makes them easy to test with
// ordersv1.OrderScenario (see order_test.go).
type order struct{}

// Compile-time check that every event and command of the schema is handled:
// adding one to orders.proto makes this line fail until it is.
var _ ordersv1.OrderAggregate = order{}

func (order) ApplyOrderPlaced(s *ordersv1.Order, e *ordersv1.OrderPlaced) {
	s.OrderId, s.CustomerId, s.Items = e.GetOrderId(), e.GetCustomerId(), e.GetItems()
	s.Status = ordersv1.OrderStatus_ORDER_STATUS_PLACED
}

func (order) ApplyOrderShipped(s *ordersv1.Order, _ *ordersv1.OrderShipped) {
	s.Status = ordersv1.OrderStatus_ORDER_STATUS_SHIPPED
}

func (order) ApplyOrderCancelled(s *ordersv1.Order, _ *ordersv1.OrderCancelled) {
	s.Status = ordersv1.OrderStatus_ORDER_STATUS_CANCELLED
}

func (order) HandlePlaceOrder(_ context.Context, s *ordersv1.Order, c *ordersv1.PlaceOrder) ([]ordersv1.OrderEvent, error) {
	if s.GetOrderId() != "" {
		return nil, errExists
	}
	if len(c.GetItems()) == 0 {
		return nil, errNoItems
	}
	var total int64
	for _, item := range c.GetItems() {
		if item.GetQuantity() == 0 {
			return nil, fmt.Errorf("%w: %s", errNoQuantity, item.GetSku())
		}
		total += int64(item.GetQuantity()) * item.GetUnitPriceCents()
	}
	return []ordersv1.OrderEvent{&ordersv1.OrderPlaced{
		OrderId: c.GetOrderId(), CustomerId: c.GetCustomerId(), Items: c.GetItems(), TotalCents: total,
	}}, nil
}

func (order) HandleShipOrder(_ context.Context, s *ordersv1.Order, c *ordersv1.ShipOrder) ([]ordersv1.OrderEvent, error) {
	switch {
	case s.GetOrderId() == "":
		return nil, errNoOrder
	case s.GetStatus() == ordersv1.OrderStatus_ORDER_STATUS_SHIPPED:
		// Shipping twice is a retry of the same intent: nothing new happens.
		return nil, nil
	case s.GetStatus() != ordersv1.OrderStatus_ORDER_STATUS_PLACED:
		return nil, errNotPlaced
	case c.GetCarrier() == "":
		return nil, errNoCarrier
	}
	return []ordersv1.OrderEvent{&ordersv1.OrderShipped{OrderId: c.GetOrderId(), Carrier: c.GetCarrier()}}, nil
}

func (order) HandleCancelOrder(_ context.Context, s *ordersv1.Order, c *ordersv1.CancelOrder) ([]ordersv1.OrderEvent, error) {
	switch s.GetStatus() {
	case ordersv1.OrderStatus_ORDER_STATUS_UNSPECIFIED:
		return nil, errNoOrder
	case ordersv1.OrderStatus_ORDER_STATUS_SHIPPED:
		return nil, errShipped
	case ordersv1.OrderStatus_ORDER_STATUS_CANCELLED:
		return nil, errWasEnded
	}
	return []ordersv1.OrderEvent{&ordersv1.OrderCancelled{OrderId: c.GetOrderId(), Reason: c.GetReason()}}, nil
}
