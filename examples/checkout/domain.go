package main

import (
	"context"
	"errors"
	"strings"

	checkoutv1 "github.com/protoc-gen-eda/eda/examples/checkout/gen/shop/checkout/v1"
)

// Domain errors. The repositories return them wrapped with runtime.Permanent,
// so the bus dead-letters the command at once with the error as reason.
var (
	errNotFound   = errors.New("there is no such order")
	errNotPlaced  = errors.New("only a placed order can be accepted")
	errNotAllowed = errors.New("the order is not in a state that allows this")
	errNoCapture  = errors.New("only a captured payment can be refunded")
)

// The three services of the checkout, each an aggregate behaviour: pure
// functions of state and command (Handle) and of state and event (Apply).
type (
	orders    struct{}
	payments  struct{ limitCents int64 }
	shipments struct{}
)

var (
	_ checkoutv1.OrderAggregate    = orders{}
	_ checkoutv1.PaymentAggregate  = payments{}
	_ checkoutv1.ShipmentAggregate = shipments{}
)

func (orders) ApplyOrderPlaced(s *checkoutv1.Order, e *checkoutv1.OrderPlaced) {
	s.OrderId, s.CustomerId, s.TotalCents, s.Address = e.GetOrderId(), e.GetCustomerId(), e.GetTotalCents(), e.GetAddress()
	s.Status = checkoutv1.OrderStatus_ORDER_STATUS_PLACED
}

func (orders) ApplyOrderAccepted(s *checkoutv1.Order, _ *checkoutv1.OrderAccepted) {
	s.Status = checkoutv1.OrderStatus_ORDER_STATUS_ACCEPTED
}

func (orders) ApplyOrderCompleted(s *checkoutv1.Order, _ *checkoutv1.OrderCompleted) {
	s.Status = checkoutv1.OrderStatus_ORDER_STATUS_COMPLETED
}

func (orders) ApplyOrderCancelled(s *checkoutv1.Order, _ *checkoutv1.OrderCancelled) {
	s.Status = checkoutv1.OrderStatus_ORDER_STATUS_CANCELLED
}

// HandlePlaceOrder places an order once: placing it again records nothing,
// so a run restarted after a crash places its orders again safely.
func (orders) HandlePlaceOrder(_ context.Context, s *checkoutv1.Order, c *checkoutv1.PlaceOrder) ([]checkoutv1.OrderEvent, error) {
	if s.GetOrderId() != "" {
		return nil, nil
	}
	return []checkoutv1.OrderEvent{&checkoutv1.OrderPlaced{OrderId: c.GetOrderId(), CustomerId: c.GetCustomerId(), TotalCents: c.GetTotalCents(), Address: c.GetAddress()}}, nil
}

// HandleAcceptOrder, like every handler here, records nothing for a command
// that is done already: the outbox delivers at least once, so a command may
// arrive twice.
func (orders) HandleAcceptOrder(_ context.Context, s *checkoutv1.Order, c *checkoutv1.AcceptOrder) ([]checkoutv1.OrderEvent, error) {
	switch s.GetStatus() {
	case checkoutv1.OrderStatus_ORDER_STATUS_ACCEPTED:
		return nil, nil
	case checkoutv1.OrderStatus_ORDER_STATUS_PLACED:
	default:
		return nil, errNotPlaced
	}
	return []checkoutv1.OrderEvent{&checkoutv1.OrderAccepted{OrderId: c.GetOrderId()}}, nil
}

func (orders) HandleCompleteOrder(_ context.Context, s *checkoutv1.Order, c *checkoutv1.CompleteOrder) ([]checkoutv1.OrderEvent, error) {
	switch s.GetStatus() {
	case checkoutv1.OrderStatus_ORDER_STATUS_COMPLETED:
		return nil, nil
	case checkoutv1.OrderStatus_ORDER_STATUS_ACCEPTED:
	default:
		return nil, errNotAllowed
	}
	return []checkoutv1.OrderEvent{&checkoutv1.OrderCompleted{OrderId: c.GetOrderId()}}, nil
}

func (orders) HandleCancelOrder(_ context.Context, s *checkoutv1.Order, c *checkoutv1.CancelOrder) ([]checkoutv1.OrderEvent, error) {
	switch s.GetStatus() {
	case checkoutv1.OrderStatus_ORDER_STATUS_UNSPECIFIED:
		return nil, errNotFound
	case checkoutv1.OrderStatus_ORDER_STATUS_CANCELLED:
		return nil, nil // cancelled already: nothing more to record
	case checkoutv1.OrderStatus_ORDER_STATUS_COMPLETED:
		return nil, errNotAllowed
	}
	return []checkoutv1.OrderEvent{&checkoutv1.OrderCancelled{OrderId: c.GetOrderId(), Reason: c.GetReason()}}, nil
}

func (payments) ApplyPaymentCaptured(s *checkoutv1.Payment, e *checkoutv1.PaymentCaptured) {
	s.OrderId, s.PaymentId, s.AmountCents, s.Captured = e.GetOrderId(), e.GetPaymentId(), e.GetAmountCents(), true
}

func (payments) ApplyPaymentDeclined(s *checkoutv1.Payment, e *checkoutv1.PaymentDeclined) {
	s.OrderId = e.GetOrderId()
}

func (payments) ApplyPaymentRefunded(s *checkoutv1.Payment, _ *checkoutv1.PaymentRefunded) {
	s.Refunded = true
}

// HandleChargePayment captures the amount if it is within the card's limit.
// Charging an order twice records nothing the second time.
func (p payments) HandleChargePayment(_ context.Context, s *checkoutv1.Payment, c *checkoutv1.ChargePayment) ([]checkoutv1.PaymentEvent, error) {
	if s.GetOrderId() != "" {
		return nil, nil
	}
	if c.GetTotalCents() > p.limitCents {
		return []checkoutv1.PaymentEvent{&checkoutv1.PaymentDeclined{OrderId: c.GetOrderId(), Reason: "card limit exceeded"}}, nil
	}
	return []checkoutv1.PaymentEvent{&checkoutv1.PaymentCaptured{OrderId: c.GetOrderId(), PaymentId: "pay-" + c.GetOrderId(), AmountCents: c.GetTotalCents()}}, nil
}

func (payments) HandleRefundPayment(_ context.Context, s *checkoutv1.Payment, c *checkoutv1.RefundPayment) ([]checkoutv1.PaymentEvent, error) {
	switch {
	case s.GetRefunded():
		return nil, nil
	case !s.GetCaptured():
		return nil, errNoCapture
	}
	return []checkoutv1.PaymentEvent{&checkoutv1.PaymentRefunded{OrderId: c.GetOrderId(), PaymentId: s.GetPaymentId()}}, nil
}

func (shipments) ApplyShipmentScheduled(s *checkoutv1.Shipment, e *checkoutv1.ShipmentScheduled) {
	s.OrderId, s.Tracking = e.GetOrderId(), e.GetTracking()
}

// HandleScheduleShipment schedules a pick-up, except for addresses the
// carrier does not serve: it then records nothing and never answers, which
// the checkout's step timeout catches.
func (shipments) HandleScheduleShipment(_ context.Context, s *checkoutv1.Shipment, c *checkoutv1.ScheduleShipment) ([]checkoutv1.ShipmentEvent, error) {
	if s.GetOrderId() != "" || strings.HasPrefix(c.GetAddress(), "Far Away") {
		return nil, nil
	}
	return []checkoutv1.ShipmentEvent{&checkoutv1.ShipmentScheduled{OrderId: c.GetOrderId(), Tracking: "TRK-" + c.GetOrderId()}}, nil
}
