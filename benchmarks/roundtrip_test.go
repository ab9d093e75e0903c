package benchmarks

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	ordersv1 "github.com/protoc-gen-eda/eda/examples/orders/gen/shop/orders/v1"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/mem"
)

// BenchmarkRoundTrip measures publish → handled of one OrderPlaced on the
// embedded bus. Every variant uses the same bus (runtime/mem, default
// config), one subscription handled in a Watermill router, one publishing
// goroutine and the same flow control (see roundTrip); they differ only in
// the code that turns the event into a message and back:
//
//   - generated: the generated OrderEventPublisher and
//     RegisterOrderEventHandler over runtime.Publisher and runtime.Router.
//   - handwritten: what a careful engineer writes by hand for the same wire
//     format: UUIDv7 id, metadata for type, subject, time, content type and
//     correlation id, proto.Marshal; in a plain message.Router handler, a
//     type check, proto.Unmarshal into a new OrderPlaced, a typed call.
//   - cqrs: Watermill's components/cqrs EventBus and EventProcessor with
//     cqrs.ProtoMarshaler, configured as its documentation shows.
//   - raw: a plain message.Router moving bytes marshaled once, before the
//     timer: the transport's own cost, the floor under the other three.
func BenchmarkRoundTrip(b *testing.B) {
	b.Run("generated", func(b *testing.B) { roundTrip(b, setupGenerated) })
	b.Run("handwritten", func(b *testing.B) { roundTrip(b, setupHandwritten) })
	b.Run("cqrs", func(b *testing.B) { roundTrip(b, setupCQRS) })
	b.Run("raw", func(b *testing.B) { roundTrip(b, setupRaw) })
}

// window bounds the messages published but not yet handled. When the
// publisher is window ahead it waits until the handler is window/2 behind,
// so the two goroutines run in parallel with one wake-up per window/2
// messages, and memory does not grow with b.N.
const window = 1024

// benchTimeout fails a round trip that stops making progress.
const benchTimeout = time.Minute

// newEvent returns the event every variant publishes: a few fields and two
// line items, 99 bytes on the wire.
func newEvent() *ordersv1.OrderPlaced {
	return &ordersv1.OrderPlaced{
		OrderId:    "0192f1d4-7c2e-7b4a-9f3e-2d1c0b9a8e7f",
		CustomerId: "customer-4711",
		Items: []*ordersv1.LineItem{
			{Sku: "SKU-BOOK-0001", Quantity: 2, UnitPriceCents: 1999},
			{Sku: "SKU-PEN-0042", Quantity: 10, UnitPriceCents: 149},
		},
		TotalCents: 5488,
	}
}

// counter is what every variant's typed handler calls. It reads the event,
// as real code would, and wakes the publisher when the count it waits for
// is reached.
type counter struct {
	handled atomic.Int64
	target  atomic.Int64
	wake    chan struct{}
	sum     atomic.Int64
}

func newCounter() *counter { return &counter{wake: make(chan struct{}, 1)} }

func (c *counter) handle(_ context.Context, event *ordersv1.OrderPlaced) error {
	c.sum.Add(event.GetTotalCents() + int64(len(event.GetItems())))
	n := c.handled.Add(1)
	if n == c.target.Load() {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// waitFor returns once n messages were handled. Storing the target before
// reading the count, while handle adds to the count before reading the
// target, means one of the two sees the other: no lost wake-up. A stale
// token only costs one more look at the count.
func (c *counter) waitFor(ctx context.Context, n int64) error {
	c.target.Store(n)
	for c.handled.Load() < n {
		select {
		case <-c.wake:
		case <-ctx.Done():
			return fmt.Errorf("handled only %d of %d messages", c.handled.Load(), n)
		}
	}
	return nil
}

// variant is a running publisher and handler on bus; publish publishes one
// event.
type variant struct {
	publish func(ctx context.Context, event *ordersv1.OrderPlaced) error
}

type setup func(tb testing.TB, bus *mem.PubSub, c *counter) variant

func roundTrip(b *testing.B, s setup) {
	bus, err := mem.New(mem.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bus.Close() })
	c := newCounter()
	v := s(b, bus, c)
	event := newEvent()
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()

	// Warm up: the first messages allocate the subscription's queue and
	// routes; they are not what is measured.
	for range 16 {
		if err := v.publish(ctx, event); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.waitFor(ctx, 16); err != nil {
		b.Fatal(err)
	}
	c.handled.Store(0)

	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	start := time.Now()
	for i := range int64(b.N) {
		if i-c.handled.Load() >= window {
			if err := c.waitFor(ctx, i-window/2); err != nil {
				b.Fatal(err)
			}
		}
		if err := v.publish(ctx, event); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.waitFor(ctx, int64(b.N)); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/msg")
	}
}

// runRouter calls run until the benchmark ends and waits until running is
// closed: the router is subscribed.
func runRouter(tb testing.TB, run func(context.Context) error, running <-chan struct{}) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	select {
	case <-running:
	case err := <-done:
		cancel()
		tb.Fatalf("router stopped before running: %v", err)
	case <-time.After(benchTimeout):
		cancel()
		tb.Fatal("router did not start")
	}
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Error(err)
		}
	})
}

// generated: the generated publisher and handler registration.

type orderEvents struct {
	ordersv1.UnimplementedOrderEventHandler
	c *counter
}

func (h orderEvents) HandleOrderPlaced(ctx context.Context, event *ordersv1.OrderPlaced) error {
	return h.c.handle(ctx, event)
}

func setupGenerated(tb testing.TB, bus *mem.PubSub, c *counter) variant {
	pub, err := runtime.NewPublisher(bus, runtime.PublisherConfig{Source: "bench"})
	if err != nil {
		tb.Fatal(err)
	}
	router, err := runtime.NewRouter(runtime.RouterConfig{Subscriber: bus, Publisher: bus})
	if err != nil {
		tb.Fatal(err)
	}
	if err := ordersv1.RegisterOrderEventHandler(router, orderEvents{c: c}); err != nil {
		tb.Fatal(err)
	}
	runRouter(tb, router.Run, router.Running())
	events := ordersv1.NewOrderEventPublisher(pub)
	return variant{publish: events.PublishOrderPlaced}
}

// handwritten: typed Watermill code written by hand.

// Metadata keys of the hand-written variant: the same names the runtime
// uses, so that both carry the same bytes for the attributes they share.
const (
	hwType          = "ce_type"
	hwSubject       = "ce_subject"
	hwTime          = "ce_time"
	hwContentType   = "ce_datacontenttype"
	hwCorrelationID = "eda_correlationid"
)

func publishOrderPlacedByHand(ctx context.Context, pub message.Publisher, event *ordersv1.OrderPlaced) error {
	payload, err := proto.Marshal(event)
	if err != nil {
		return err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	ids := id.String()
	msg := message.NewMessage(ids, payload)
	msg.Metadata = message.Metadata{
		hwType:          ordersv1.OrderPlacedEventType,
		hwSubject:       event.GetOrderId(),
		hwTime:          time.Now().UTC().Format(time.RFC3339Nano),
		hwContentType:   "application/protobuf",
		hwCorrelationID: ids,
	}
	msg.SetContext(ctx)
	return pub.Publish(ordersv1.OrderEventsTopic, msg)
}

func setupHandwritten(tb testing.TB, bus *mem.PubSub, c *counter) variant {
	router, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		tb.Fatal(err)
	}
	handle := c.handle // the typed function
	router.AddConsumerHandler("handwritten", ordersv1.OrderEventsTopic, bus, func(msg *message.Message) error {
		if msg.Metadata.Get(hwType) != ordersv1.OrderPlacedEventType {
			return nil
		}
		event := new(ordersv1.OrderPlaced)
		if err := proto.Unmarshal(msg.Payload, event); err != nil {
			return err
		}
		return handle(msg.Context(), event)
	})
	runRouter(tb, router.Run, router.Running())
	return variant{publish: func(ctx context.Context, event *ordersv1.OrderPlaced) error {
		return publishOrderPlacedByHand(ctx, bus, event)
	}}
}

// cqrs: Watermill's components/cqrs.

func setupCQRS(tb testing.TB, bus *mem.PubSub, c *counter) variant {
	marshaler := cqrs.ProtoMarshaler{}
	eventBus, err := cqrs.NewEventBusWithConfig(bus, cqrs.EventBusConfig{
		GeneratePublishTopic: func(cqrs.GenerateEventPublishTopicParams) (string, error) {
			return ordersv1.OrderEventsTopic, nil
		},
		Marshaler: marshaler,
	})
	if err != nil {
		tb.Fatal(err)
	}
	router, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		tb.Fatal(err)
	}
	processor, err := cqrs.NewEventProcessorWithConfig(router, cqrs.EventProcessorConfig{
		GenerateSubscribeTopic: func(cqrs.EventProcessorGenerateSubscribeTopicParams) (string, error) {
			return ordersv1.OrderEventsTopic, nil
		},
		SubscriberConstructor: func(cqrs.EventProcessorSubscriberConstructorParams) (message.Subscriber, error) {
			return bus, nil
		},
		Marshaler: marshaler,
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := processor.AddHandlers(cqrs.NewEventHandler("cqrs", c.handle)); err != nil {
		tb.Fatal(err)
	}
	runRouter(tb, router.Run, router.Running())
	return variant{publish: func(ctx context.Context, event *ordersv1.OrderPlaced) error {
		return eventBus.Publish(ctx, event)
	}}
}

// raw: bytes through a plain router, no encoding, no envelope.

func setupRaw(tb testing.TB, bus *mem.PubSub, c *counter) variant {
	payload, err := proto.Marshal(newEvent())
	if err != nil {
		tb.Fatal(err)
	}
	router, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		tb.Fatal(err)
	}
	var decoded ordersv1.OrderPlaced // never decoded: the handler only counts
	router.AddConsumerHandler("raw", ordersv1.OrderEventsTopic, bus, func(msg *message.Message) error {
		return c.handle(msg.Context(), &decoded)
	})
	runRouter(tb, router.Run, router.Running())
	return variant{publish: func(context.Context, *ordersv1.OrderPlaced) error {
		return bus.Publish(ordersv1.OrderEventsTopic, message.NewMessage("", payload))
	}}
}
