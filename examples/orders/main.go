// Command orders is a small event-sourced order service built from generated
// code and the runtime, with no server and no broker: commands go through
// the generated command bus to the generated repository, which runs the
// Order aggregate's behaviour (order.go) and appends the events it decides to
// the event store, together with their outbox messages, in one transaction.
// The outbox relay publishes them to the bus, where a notifier handles them.
// A command the aggregate refuses goes to the dead-letter topic with its
// reason.
//
// The event store is embedded SQLite in memory by default. Keep it in a file,
// or use PostgreSQL, by changing the URL:
//
//	go run ./examples/orders
//	go run ./examples/orders -store sqlite://orders.db
//	go run ./examples/orders -store postgres://postgres@127.0.0.1:5432/test
//
// The bus is the embedded one by default; the same service runs on a real
// broker by changing its URL (nats://, redis://, amqp://, postgres://):
//
//	go run ./examples/orders -broker nats://127.0.0.1:4222
//
// On a broker the consumer groups are durable: a group resumes where the
// last run left it, and a new group starts from the topic's history.
//
// Regenerate the code first with `go run ./cmd/eda generate`.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"sync"
	"time"

	ordersv1 "github.com/protoc-gen-eda/eda/examples/orders/gen/shop/orders/v1"
	"github.com/protoc-gen-eda/eda/runtime"
	_ "github.com/protoc-gen-eda/eda/runtime/amqp"
	_ "github.com/protoc-gen-eda/eda/runtime/nats"
	_ "github.com/protoc-gen-eda/eda/runtime/redisstream"
	_ "github.com/protoc-gen-eda/eda/runtime/sqlbroker"
)

func main() {
	storeURL := flag.String("store", "sqlite://:memory:", "event store URL: sqlite://PATH, sqlite://:memory:, postgres://..., or mem://")
	brokerURL := flag.String("broker", "mem://", "broker URL: mem://, nats://..., redis://..., amqp://... or postgres://...")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout, *storeURL, *brokerURL); err != nil {
		log.Fatal(err)
	}
}

// run wires the service, sends five commands and waits for their effects:
// four events and one dead letter. Then it loads an order back from the
// store.
func run(ctx context.Context, w io.Writer, storeURL, brokerURL string) error {
	// Handlers run on their own goroutines and share the output.
	out := &lockedWriter{w: w}
	store, err := openStore(ctx, storeURL)
	if err != nil {
		return err
	}
	defer store.Close()
	bus, err := runtime.OpenBroker(ctx, brokerURL, runtime.BrokerOptions{})
	if err != nil {
		return err
	}
	defer bus.Close()
	pub, err := runtime.NewPublisher(bus.Publisher, runtime.PublisherConfig{Source: "examples/orders"})
	if err != nil {
		return err
	}
	router, err := runtime.NewRouter(runtime.RouterConfig{NewSubscriber: bus.NewSubscriber, Publisher: bus.Publisher})
	if err != nil {
		return err
	}
	orders, err := ordersv1.NewOrderRepository(store, order{}, runtime.RepositoryConfig{Source: "examples/orders"})
	if err != nil {
		return err
	}
	relay, err := runtime.NewRelay(store, runtime.RelayConfig{Publisher: bus.Publisher})
	if err != nil {
		return err
	}

	const wantEvents, wantDeadLetters = 4, 1
	seen := make(chan string, wantEvents+wantDeadLetters)
	// The repository handles the Order aggregate's commands from the bus.
	if err := ordersv1.RegisterOrderCommandHandler(router, orders); err != nil {
		return err
	}
	if err := ordersv1.RegisterOrderEventHandler(router, &notifier{out: out, seen: seen}); err != nil {
		return err
	}
	dlq, err := bus.NewSubscriber("examples-orders-dead-letters")
	if err != nil {
		return err
	}
	deadLetters, err := dlq.Subscribe(ctx, runtime.DefaultDeadLetterTopic)
	if err != nil {
		return err
	}
	go func() {
		for msg := range deadLetters {
			fmt.Fprintf(out, "dead letter: %s: %s\n", msg.Metadata.Get(runtime.MetaType), msg.Metadata.Get(runtime.MetaDeadLetterReason))
			msg.Ack()
			seen <- "dead letter"
		}
	}()

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Go(func() { errs <- router.Run(runCtx) })
	select {
	case <-router.Running():
	case err := <-errs:
		return err
	}
	// The relay starts once the handlers subscribe: the in-process bus drops
	// messages of topics nobody listens to.
	wg.Go(func() { errs <- relay.Run(runCtx) })

	commands := ordersv1.NewOrderCommandBus(pub)
	checkout := runtime.WithCorrelationID(ctx, "checkout-42")
	items := []*ordersv1.LineItem{{Sku: "book", Quantity: 2, UnitPriceCents: 1250}}
	// One order at a time: the bus keeps each topic in order, so order-2 is
	// placed before it is cancelled.
	for _, send := range []func() error{
		func() error {
			return commands.SendPlaceOrder(checkout, &ordersv1.PlaceOrder{OrderId: "order-1", CustomerId: "alice", Items: items})
		},
		func() error {
			return commands.SendShipOrder(ctx, &ordersv1.ShipOrder{OrderId: "order-1", Carrier: "post"})
		},
		func() error {
			return commands.SendPlaceOrder(ctx, &ordersv1.PlaceOrder{OrderId: "order-2", CustomerId: "bob", Items: items})
		},
		func() error {
			return commands.SendCancelOrder(ctx, &ordersv1.CancelOrder{OrderId: "order-2", Reason: "changed my mind"})
		},
		func() error {
			return commands.SendCancelOrder(ctx, &ordersv1.CancelOrder{OrderId: "order-1", Reason: "too late"})
		},
	} {
		if err := send(); err != nil {
			return err
		}
	}

	for range wantEvents + wantDeadLetters {
		select {
		case <-seen:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the commands' effects: %w", ctx.Err())
		}
	}
	// On the in-process bus the relay counts a batch once every handler has
	// acknowledged it, a moment after the handlers above reported: wait for
	// that, or stopping now would interrupt the count (and leave the batch in
	// the outbox, to be published again at the next start).
	for relay.Published() < wantEvents {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the relay: %w", ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	// Stop the router and relay first: the counters are final once they stop.
	stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	stats := router.Stats()
	fmt.Fprintf(out, "handled %d messages, dead-lettered %d; the relay published %d events\n", stats.Handled, stats.DeadLettered, relay.Published())

	// The store is the source of truth: load an order back from its events.
	state, version, err := orders.Load(ctx, "order-1")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "order-1 is %s at version %d\n", state.GetStatus(), version)
	return nil
}

// notifier prints the events it handles. It embeds the Unimplemented handler,
// so it keeps compiling when the schema adds events it does not care about.
type notifier struct {
	ordersv1.UnimplementedOrderEventHandler
	out  io.Writer
	seen chan<- string
}

func (n *notifier) HandleOrderPlaced(ctx context.Context, e *ordersv1.OrderPlaced) error {
	env, _ := runtime.EnvelopeFrom(ctx)
	fmt.Fprintf(n.out, "order placed: %s by %s, total %d cents (version %d, correlation %s)\n", e.GetOrderId(), e.GetCustomerId(), e.GetTotalCents(), env.Sequence, env.CorrelationID)
	n.seen <- "placed"
	return nil
}

func (n *notifier) HandleOrderShipped(ctx context.Context, e *ordersv1.OrderShipped) error {
	fmt.Fprintf(n.out, "order shipped: %s by %s\n", e.GetOrderId(), e.GetCarrier())
	n.seen <- "shipped"
	return nil
}

func (n *notifier) HandleOrderCancelled(ctx context.Context, e *ordersv1.OrderCancelled) error {
	fmt.Fprintf(n.out, "order cancelled: %s (%s)\n", e.GetOrderId(), e.GetReason())
	n.seen <- "cancelled"
	return nil
}

// lockedWriter serializes writes from concurrent handlers.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
