// Command orders is a small order service built from generated code and the
// embedded runtime: no server, no broker. It sends commands through the
// generated command bus; its command handler checks them against in-memory
// state and publishes events through the generated event publisher; a
// notifier handles the events; a command that cannot succeed goes to the
// dead-letter topic with its reason.
//
// Regenerate the code and run it from the repository root:
//
//	go run ./cmd/eda generate && go run ./examples/orders
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"sync"
	"time"

	ordersv1 "github.com/protoc-gen-eda/eda/examples/orders/gen/shop/orders/v1"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/mem"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// run wires the service, sends four commands and waits for their effects:
// three events and one dead letter.
func run(ctx context.Context, w io.Writer) error {
	// Handlers run on their own goroutines and share the output.
	out := &lockedWriter{w: w}
	bus, err := mem.New(mem.Config{})
	if err != nil {
		return err
	}
	pub, err := runtime.NewPublisher(bus, runtime.PublisherConfig{Source: "examples/orders"})
	if err != nil {
		return err
	}
	router, err := runtime.NewRouter(runtime.RouterConfig{Subscriber: bus, Publisher: bus})
	if err != nil {
		return err
	}

	const wantEvents, wantDeadLetters = 3, 1
	seen := make(chan string, wantEvents+wantDeadLetters)
	service := &orderService{events: ordersv1.NewOrderEventPublisher(pub), orders: map[string]*ordersv1.Order{}}
	if err := ordersv1.RegisterOrderCommandHandler(router, service); err != nil {
		return err
	}
	if err := ordersv1.RegisterOrderEventHandler(router, &notifier{out: out, seen: seen}); err != nil {
		return err
	}
	deadLetters, err := bus.Subscribe(ctx, runtime.DefaultDeadLetterTopic)
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
	done := make(chan error, 1)
	go func() { done <- router.Run(runCtx) }()
	select {
	case <-router.Running():
	case err := <-done:
		return err
	}

	commands := ordersv1.NewOrderCommandBus(pub)
	checkout := runtime.WithCorrelationID(ctx, "checkout-42")
	items := []*ordersv1.LineItem{{Sku: "book", Quantity: 2, UnitPriceCents: 1250}}
	for _, send := range []func() error{
		func() error {
			return commands.SendPlaceOrder(checkout, &ordersv1.PlaceOrder{OrderId: "order-1", CustomerId: "alice", Items: items})
		},
		func() error {
			return commands.SendPlaceOrder(ctx, &ordersv1.PlaceOrder{OrderId: "order-2", CustomerId: "bob", Items: items})
		},
		func() error {
			return commands.SendCancelOrder(ctx, &ordersv1.CancelOrder{OrderId: "order-2", Reason: "changed my mind"})
		},
		func() error {
			return commands.SendCancelOrder(ctx, &ordersv1.CancelOrder{OrderId: "order-404", Reason: "typo"})
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
	// Stop the router first: its counters are final once no handler runs.
	stop()
	if err := <-done; err != nil {
		return err
	}
	stats := router.Stats()
	fmt.Fprintf(out, "handled %d messages, dead-lettered %d\n", stats.Handled, stats.DeadLettered)
	return nil
}

// orderService handles the Order aggregate's commands. Its state lives in a
// map here; event sourcing replaces the map with the event store.
type orderService struct {
	events *ordersv1.OrderEventPublisher

	mu     sync.Mutex
	orders map[string]*ordersv1.Order
}

// Compile-time check that every command of the schema is handled: adding a
// command to orders.proto makes this line fail until it is.
var _ ordersv1.OrderCommandHandler = (*orderService)(nil)

func (s *orderService) HandlePlaceOrder(ctx context.Context, cmd *ordersv1.PlaceOrder) error {
	if len(cmd.GetItems()) == 0 {
		return runtime.Permanent(errors.New("an order needs at least one item"))
	}
	var total int64
	for _, item := range cmd.GetItems() {
		total += int64(item.GetQuantity()) * item.GetUnitPriceCents()
	}
	s.mu.Lock()
	s.orders[cmd.GetOrderId()] = &ordersv1.Order{OrderId: cmd.GetOrderId(), CustomerId: cmd.GetCustomerId(), Items: cmd.GetItems(), Status: ordersv1.OrderStatus_ORDER_STATUS_PLACED}
	s.mu.Unlock()
	// Publishing with the handler's ctx makes the command the event's cause.
	return s.events.PublishOrderPlaced(ctx, &ordersv1.OrderPlaced{OrderId: cmd.GetOrderId(), CustomerId: cmd.GetCustomerId(), Items: cmd.GetItems(), TotalCents: total})
}

func (s *orderService) HandleCancelOrder(ctx context.Context, cmd *ordersv1.CancelOrder) error {
	s.mu.Lock()
	order, ok := s.orders[cmd.GetOrderId()]
	if ok && order.GetStatus() == ordersv1.OrderStatus_ORDER_STATUS_SHIPPED {
		ok = false
	}
	if ok {
		order.Status = ordersv1.OrderStatus_ORDER_STATUS_CANCELLED
	}
	s.mu.Unlock()
	if !ok {
		// Retrying cannot make an unknown order exist: dead-letter at once.
		return runtime.Permanent(fmt.Errorf("order %s does not exist or has shipped", cmd.GetOrderId()))
	}
	return s.events.PublishOrderCancelled(ctx, &ordersv1.OrderCancelled{OrderId: cmd.GetOrderId(), Reason: cmd.GetReason()})
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
	fmt.Fprintf(n.out, "order placed: %s by %s, total %d cents (correlation %s)\n", e.GetOrderId(), e.GetCustomerId(), e.GetTotalCents(), env.CorrelationID)
	n.seen <- "placed"
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
