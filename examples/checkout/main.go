// Command checkout runs a checkout saga across three services (orders,
// payments, shipping) and an order-summary projection, with no server and no
// broker:
//
//   - placing an order starts a Checkout saga (checkout.proto), whose steps
//     accept the order, charge the payment, schedule the shipment and complete
//     the order, each by a command the saga sends through the event store's
//     outbox;
//   - a declined payment cancels the order; a carrier that does not answer
//     within the ship step's timeout (a durable timer in the outbox) refunds
//     the payment and cancels the order;
//   - the OrderSummary projection follows the event store's global log and
//     keeps one row per order, saving its checkpoint in the transaction that
//     writes the row.
//
// The event store is embedded SQLite in memory by default; a file or
// PostgreSQL work the same:
//
//	go run ./examples/checkout
//	go run ./examples/checkout -store sqlite://checkout.db
//	go run ./examples/checkout -store 'postgres://postgres@127.0.0.1:5432/test?schema=checkout'
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"sync"
	"time"

	checkoutv1 "github.com/protoc-gen-eda/eda/examples/checkout/gen/shop/checkout/v1"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/mem"
)

func main() {
	o := options{}
	flag.StringVar(&o.store, "store", "sqlite://:memory:", "event store URL: sqlite://PATH, sqlite://:memory: or postgres://...[?schema=NAME]")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout, o); err != nil {
		log.Fatal(err)
	}
}

// options configure a run.
type options struct {
	store string
	// batch is the projection's batch size; 0 is the runtime's default.
	batch int
	// onCharge and onProject, when set, are called as a ChargePayment is
	// handled and before the projection applies an event. The crash tests
	// kill the process there.
	onCharge  func(*checkoutv1.ChargePayment)
	onProject func(*runtime.EventRecord)
}

// demo is an order the run places, and how its checkout ends.
type demo struct {
	place      *checkoutv1.PlaceOrder
	wantStatus string // prefix of the summary's status
	refunded   bool
}

// paymentLimitCents is the card limit of the payment service: bob's order is
// above it.
const paymentLimitCents = 100_000

var demos = []demo{
	{&checkoutv1.PlaceOrder{OrderId: "order-1", CustomerId: "alice", TotalCents: 2_500, Address: "1 Main Street"}, "completed", false},
	{&checkoutv1.PlaceOrder{OrderId: "order-2", CustomerId: "bob", TotalCents: 250_000, Address: "2 High Street"}, "cancelled: payment declined", false},
	{&checkoutv1.PlaceOrder{OrderId: "order-3", CustomerId: "carol", TotalCents: 4_200, Address: "Far Away Island"}, "cancelled: checkout timed out", true},
}

// run wires the three services, the saga and the projection on one event
// store and the in-process bus, places the demo orders and waits until every checkout has ended and the summary shows it.
func run(ctx context.Context, w io.Writer, o options) error {
	b, err := openBackend(ctx, o.store, summaryHooks{observe: o.onProject})
	if err != nil {
		return err
	}
	defer b.store.Close()
	bus, err := mem.New(mem.Config{})
	if err != nil {
		return err
	}
	router, err := runtime.NewRouter(runtime.RouterConfig{Subscriber: bus, Publisher: bus})
	if err != nil {
		return err
	}
	relay, err := runtime.NewRelay(b.store, runtime.RelayConfig{Publisher: bus, PollInterval: 20 * time.Millisecond})
	if err != nil {
		return err
	}
	if err := registerServices(router, b.store, o.onCharge); err != nil {
		return err
	}
	saga, err := checkoutv1.NewCheckoutSaga(checkout{}, runtime.SagaConfig{Store: b.store, Source: "examples/checkout"})
	if err != nil {
		return err
	}
	if err := saga.Register(router); err != nil {
		return err
	}
	// A short lease: a process restarted after a crash takes its dead
	// predecessor's partitions over once the lease runs out.
	summary, err := b.newProjection(runtime.ProjectionConfig{BatchSize: o.batch, PollInterval: 20 * time.Millisecond, Lease: 3 * time.Second})
	if err != nil {
		return err
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	wg.Go(func() { errs <- router.Run(runCtx) })
	select {
	case <-router.Running():
	case err := <-errs:
		return err
	}
	// The relay starts once the handlers subscribe: the in-process bus drops
	// messages of topics nobody listens to.
	wg.Go(func() { errs <- relay.Run(runCtx) })
	wg.Go(func() { errs <- summary.Run(runCtx) })
	// Placing an order twice records nothing, so a run restarted after a
	// crash places them again and finishes what the first left.
	pub, err := runtime.NewPublisher(bus, runtime.PublisherConfig{Source: "examples/checkout"})
	if err != nil {
		return err
	}
	commands := checkoutv1.NewOrderCommandBus(pub)
	for _, d := range demos {
		if err := commands.SendPlaceOrder(ctx, d.place); err != nil {
			return err
		}
	}

	rows, err := waitForCheckouts(ctx, b, errs)
	stop()
	wg.Wait()
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "checkouts:")
	for _, d := range demos {
		inst, err := saga.Load(ctx, d.place.GetOrderId())
		if err != nil {
			return err
		}
		line := fmt.Sprintf("  %s: %s", inst.ID, inst.Status)
		if inst.Failure != "" {
			line += " after " + inst.Failure
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w, "order summary:")
	for _, r := range rows {
		fmt.Fprintln(w, "  "+r.String())
	}
	st := summary.Stats()
	fmt.Fprintf(w, "projection applied %d events, ignored %d; the relay published %d messages\n", st.Applied, st.Ignored, relay.Published())
	return nil
}

// waitForCheckouts polls the read model until every demo order shows how its
// checkout ends, and returns its rows.
func waitForCheckouts(ctx context.Context, b *backend, errs <-chan error) ([]summaryRow, error) {
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		rows, err := b.readSummary(ctx)
		if err == nil && settled(rows) {
			return rows, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the checkouts to end (summary so far: %v, last error: %v): %w", rows, err, ctx.Err())
		case err := <-errs:
			if err == nil {
				err = errors.New("a component stopped early")
			}
			return nil, err
		case <-tick.C:
		}
	}
}

// settled reports whether rows show every demo order's final state.
func settled(rows []summaryRow) bool {
	by := map[string]summaryRow{}
	for _, r := range rows {
		by[r.OrderID] = r
	}
	for _, d := range demos {
		r, ok := by[d.place.GetOrderId()]
		if !ok || !strings.HasPrefix(r.Status, d.wantStatus) || (r.RefundedCents > 0) != d.refunded {
			return false
		}
	}
	return true
}

// registerServices runs the three aggregates' repositories as the handlers
// of their commands.
func registerServices(router *runtime.Router, store runtime.EventStore, onCharge func(*checkoutv1.ChargePayment)) error {
	cfg := runtime.RepositoryConfig{Source: "examples/checkout"}
	orderRepo, err := checkoutv1.NewOrderRepository(store, orders{}, cfg)
	if err != nil {
		return err
	}
	paymentRepo, err := checkoutv1.NewPaymentRepository(store, payments{limitCents: paymentLimitCents}, cfg)
	if err != nil {
		return err
	}
	shipmentRepo, err := checkoutv1.NewShipmentRepository(store, shipments{}, cfg)
	if err != nil {
		return err
	}
	return errors.Join(
		checkoutv1.RegisterOrderCommandHandler(router, orderRepo),
		checkoutv1.RegisterPaymentCommandHandler(router, observedPayments{paymentRepo, onCharge}),
		checkoutv1.RegisterShipmentCommandHandler(router, shipmentRepo),
	)
}

// observedPayments calls a hook before the payment service handles a
// charge.
type observedPayments struct {
	*checkoutv1.PaymentRepository
	onCharge func(*checkoutv1.ChargePayment)
}

func (p observedPayments) HandleChargePayment(ctx context.Context, c *checkoutv1.ChargePayment) error {
	if p.onCharge != nil {
		p.onCharge(c)
	}
	return p.PaymentRepository.HandleChargePayment(ctx, c)
}
