package main

import (
	"context"
	"flag"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/protoc-gen-eda/eda/evolution"
	"github.com/protoc-gen-eda/eda/evolution/samples"
	ordersv1 "github.com/protoc-gen-eda/eda/examples/orders/gen/shop/orders/v1"
	"github.com/protoc-gen-eda/eda/runtime"
)

// record re-records the samples: go test ./examples/orders -run TestSamples -record
var record = flag.Bool("record", false, "record the event and command samples under samples/ before replaying them")

// samplesDir holds a payload of every version of every event and command,
// in binary and protojson, as recorded by samples.Write.
const samplesDir = "samples"

// recorded are the samples of the current versions. Samples of a released
// version never change: add a new entry (or, after a version bump, a new
// one for the new version) and run with -record. Write refuses to replace a
// sample with different bytes.
var recorded = []struct {
	name string
	msg  proto.Message
}{
	{"two-items", &ordersv1.PlaceOrder{OrderId: "order-1", CustomerId: "alice", Items: []*ordersv1.LineItem{
		{Sku: "book", Quantity: 2, UnitPriceCents: 1000},
		{Sku: "pen", Quantity: 1, UnitPriceCents: 500},
	}}},
	{"by-post", &ordersv1.ShipOrder{OrderId: "order-1", Carrier: "post"}},
	{"changed-mind", &ordersv1.CancelOrder{OrderId: "order-2", Reason: "changed my mind"}},
	{"two-items", &ordersv1.OrderPlaced{OrderId: "order-1", CustomerId: "alice", TotalCents: 2500, Items: []*ordersv1.LineItem{
		{Sku: "book", Quantity: 2, UnitPriceCents: 1000},
		{Sku: "pen", Quantity: 1, UnitPriceCents: 500},
	}}},
	{"no-items", &ordersv1.OrderPlaced{OrderId: "order-2", CustomerId: "bob"}},
	{"by-post", &ordersv1.OrderShipped{OrderId: "order-1", Carrier: "post"}},
	{"changed-mind", &ordersv1.OrderCancelled{OrderId: "order-2", Reason: "changed my mind"}},
}

// TestSamples replays every recorded payload, of every version, through
// the service's upcasters into the current generated messages, and checks
// that every event and command has a sample of its current version. A
// schema change that stored events would not survive fails here.
func TestSamples(t *testing.T) {
	if *record {
		for _, r := range recorded {
			if err := samples.Write(samplesDir, r.name, r.msg); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The service registers no upcasters yet: every type is at version 1.
	// After a version bump, register the upcaster for the old version here
	// and in the repository's and projections' configs.
	upcasters := runtime.NewUpcasters()
	if err := samples.Replay(context.Background(), samplesDir, upcasters, ordersv1.File_shop_orders_v1_orders_proto); err != nil {
		t.Fatal(err)
	}

	// What `eda breaking --samples samples` checks, from the .proto files
	// alone: the current versions' samples decode, and none is missing.
	schema, err := evolution.Compile(context.Background(), []string{"proto"}, []string{"shop/orders/v1/orders.proto"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := samples.Check(schema, samplesDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Findings {
		t.Error(f)
	}
	if len(res.Missing) > 0 {
		t.Errorf("no sample of the current version of %q: add one to recorded and run go test -run TestSamples -record", res.Missing)
	}
	if want := 2 * len(recorded); res.Decoded != want || len(res.Older) != 0 {
		t.Errorf("Check decoded %d samples and left %d to Replay, want %d and 0", res.Decoded, len(res.Older), want)
	}
}
