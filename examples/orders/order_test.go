package main

import (
	"testing"

	ordersv1 "github.com/protoc-gen-eda/eda/examples/orders/gen/shop/orders/v1"
)

var book = []*ordersv1.LineItem{{Sku: "book", Quantity: 2, UnitPriceCents: 1250}}

func placed(id string) *ordersv1.OrderPlaced {
	return &ordersv1.OrderPlaced{OrderId: id, CustomerId: "alice", Items: book, TotalCents: 2500}
}

// The Order aggregate's rules, as given/when/then scenarios: no store, no
// bus, just the behaviour.
func TestOrderAggregate(t *testing.T) {
	ordersv1.NewOrderScenario(t, order{}).
		When(&ordersv1.PlaceOrder{OrderId: "o1", CustomerId: "alice", Items: book}).
		Then(placed("o1"))
	ordersv1.NewOrderScenario(t, order{}).
		When(&ordersv1.PlaceOrder{OrderId: "o1", CustomerId: "alice"}).
		ThenError(errNoItems)
	ordersv1.NewOrderScenario(t, order{}).
		Given(placed("o1")).
		When(&ordersv1.PlaceOrder{OrderId: "o1", CustomerId: "bob", Items: book}).
		ThenError(errExists)
	ordersv1.NewOrderScenario(t, order{}).
		Given(placed("o1")).
		When(&ordersv1.ShipOrder{OrderId: "o1", Carrier: "post"}).
		Then(&ordersv1.OrderShipped{OrderId: "o1", Carrier: "post"})
	ordersv1.NewOrderScenario(t, order{}).
		Given(placed("o1"), &ordersv1.OrderShipped{OrderId: "o1", Carrier: "post"}).
		When(&ordersv1.ShipOrder{OrderId: "o1", Carrier: "post"}).
		Then()
	ordersv1.NewOrderScenario(t, order{}).
		Given(placed("o1"), &ordersv1.OrderShipped{OrderId: "o1", Carrier: "post"}).
		When(&ordersv1.CancelOrder{OrderId: "o1"}).
		ThenError(errShipped)
	ordersv1.NewOrderScenario(t, order{}).
		Given(placed("o1")).
		When(&ordersv1.CancelOrder{OrderId: "o1", Reason: "changed my mind"}).
		Then(&ordersv1.OrderCancelled{OrderId: "o1", Reason: "changed my mind"})
	ordersv1.NewOrderScenario(t, order{}).
		When(&ordersv1.CancelOrder{OrderId: "o404"}).
		ThenError(errNoOrder)
}
