package main

import (
	"cmp"
	"context"

	checkoutv1 "github.com/protoc-gen-eda/eda/examples/checkout/gen/shop/checkout/v1"
)

// checkout is the Checkout saga's behaviour. It started as a copy of the
// generated checkout_eda_skeleton.go; the runtime persists its state, sends
// its commands through the outbox and runs the compensations.
type checkout struct{}

var _ checkoutv1.CheckoutSagaBehaviour = checkout{}

func (checkout) Start(_ context.Context, e *checkoutv1.OrderPlaced) (*checkoutv1.Checkout, error) {
	return &checkoutv1.Checkout{OrderId: e.GetOrderId(), CustomerId: e.GetCustomerId(), TotalCents: e.GetTotalCents(), Address: e.GetAddress()}, nil
}

func (checkout) Accept(_ context.Context, s *checkoutv1.Checkout) (*checkoutv1.AcceptOrder, error) {
	return &checkoutv1.AcceptOrder{OrderId: s.GetOrderId()}, nil
}

func (checkout) CompensateAccept(_ context.Context, s *checkoutv1.Checkout) (*checkoutv1.CancelOrder, error) {
	return &checkoutv1.CancelOrder{OrderId: s.GetOrderId(), Reason: cmp.Or(s.GetReason(), "checkout timed out")}, nil
}

func (checkout) Charge(_ context.Context, s *checkoutv1.Checkout) (*checkoutv1.ChargePayment, error) {
	return &checkoutv1.ChargePayment{OrderId: s.GetOrderId(), CustomerId: s.GetCustomerId(), TotalCents: s.GetTotalCents()}, nil
}

func (checkout) CompensateCharge(_ context.Context, s *checkoutv1.Checkout) (*checkoutv1.RefundPayment, error) {
	return &checkoutv1.RefundPayment{OrderId: s.GetOrderId(), PaymentId: s.GetPaymentId()}, nil
}

func (checkout) Ship(_ context.Context, s *checkoutv1.Checkout) (*checkoutv1.ScheduleShipment, error) {
	return &checkoutv1.ScheduleShipment{OrderId: s.GetOrderId(), Address: s.GetAddress()}, nil
}

func (checkout) Complete(_ context.Context, s *checkoutv1.Checkout) (*checkoutv1.CompleteOrder, error) {
	return &checkoutv1.CompleteOrder{OrderId: s.GetOrderId()}, nil
}

func (checkout) OnOrderAccepted(context.Context, *checkoutv1.Checkout, *checkoutv1.OrderAccepted) error {
	return nil
}

func (checkout) OnPaymentCaptured(_ context.Context, s *checkoutv1.Checkout, e *checkoutv1.PaymentCaptured) error {
	s.PaymentId = e.GetPaymentId()
	return nil
}

func (checkout) OnPaymentDeclined(_ context.Context, s *checkoutv1.Checkout, e *checkoutv1.PaymentDeclined) error {
	s.Reason = "payment declined: " + e.GetReason()
	return nil
}

func (checkout) OnShipmentScheduled(_ context.Context, s *checkoutv1.Checkout, e *checkoutv1.ShipmentScheduled) error {
	s.Tracking = e.GetTracking()
	return nil
}

func (checkout) OnOrderCompleted(context.Context, *checkoutv1.Checkout, *checkoutv1.OrderCompleted) error {
	return nil
}
