package benchmarks

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/message"
	"google.golang.org/protobuf/proto"

	ordersv1 "github.com/protoc-gen-eda/eda/examples/orders/gen/shop/orders/v1"
	"github.com/protoc-gen-eda/eda/runtime"
)

// The breakdown benchmarks split BenchmarkRoundTrip's per-message cost into
// its two halves, on one goroutine with no bus, so that they are steadier
// than the round trip and point at the side that costs:
//
//   - BenchmarkEncode: event → *message.Message handed to a publisher that
//     drops it (the variant's publish function, minus the bus).
//   - BenchmarkHandle: one received *message.Message → typed handler called,
//     through the function each variant registers in the Watermill router
//     (minus the router's own per-message goroutine, context and log fields).

// capture is a message.Publisher that keeps the last message.
type capture struct{ last *message.Message }

func (c *capture) Publish(_ string, msgs ...*message.Message) error {
	c.last = msgs[len(msgs)-1]
	return nil
}

func (c *capture) Close() error { return nil }

// encoders returns, per variant, a publish function over pub.
func encoders(tb testing.TB, pub message.Publisher) map[string]func(context.Context, *ordersv1.OrderPlaced) error {
	rp, err := runtime.NewPublisher(pub, runtime.PublisherConfig{Source: "bench"})
	if err != nil {
		tb.Fatal(err)
	}
	eventBus, err := cqrs.NewEventBusWithConfig(pub, cqrs.EventBusConfig{
		GeneratePublishTopic: func(cqrs.GenerateEventPublishTopicParams) (string, error) {
			return ordersv1.OrderEventsTopic, nil
		},
		Marshaler: cqrs.ProtoMarshaler{},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return map[string]func(context.Context, *ordersv1.OrderPlaced) error{
		"generated": ordersv1.NewOrderEventPublisher(rp).PublishOrderPlaced,
		"handwritten": func(ctx context.Context, event *ordersv1.OrderPlaced) error {
			return publishOrderPlacedByHand(ctx, pub, event)
		},
		"cqrs": func(ctx context.Context, event *ordersv1.OrderPlaced) error {
			return eventBus.Publish(ctx, event)
		},
	}
}

var variants = []string{"generated", "handwritten", "cqrs"}

func BenchmarkEncode(b *testing.B) {
	for _, name := range variants {
		b.Run(name, func(b *testing.B) {
			publish := encoders(b, &capture{})[name]
			event := newEvent()
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := publish(ctx, event); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// handlers returns, per variant, the function it registers in a Watermill
// router to call c.handle.
func handlers(tb testing.TB, c *counter) map[string]message.HandlerFunc {
	out := map[string]message.HandlerFunc{}

	rr, err := runtime.NewRouter(runtime.RouterConfig{Subscriber: nopSubscriber{}, Publisher: &capture{}})
	if err != nil {
		tb.Fatal(err)
	}
	if err := ordersv1.RegisterOrderEventHandler(rr, orderEvents{c: c}); err != nil {
		tb.Fatal(err)
	}
	out["generated"] = rr.Watermill().Handlers()["shop.orders.v1.Order.events"]

	router, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		tb.Fatal(err)
	}
	handle := c.handle
	router.AddConsumerHandler("handwritten", ordersv1.OrderEventsTopic, nopSubscriber{}, func(msg *message.Message) error {
		if msg.Metadata.Get(hwType) != ordersv1.OrderPlacedEventType {
			return nil
		}
		event := new(ordersv1.OrderPlaced)
		if err := proto.Unmarshal(msg.Payload, event); err != nil {
			return err
		}
		return handle(msg.Context(), event)
	})
	processor, err := cqrs.NewEventProcessorWithConfig(router, cqrs.EventProcessorConfig{
		GenerateSubscribeTopic: func(cqrs.EventProcessorGenerateSubscribeTopicParams) (string, error) {
			return ordersv1.OrderEventsTopic, nil
		},
		SubscriberConstructor: func(cqrs.EventProcessorSubscriberConstructorParams) (message.Subscriber, error) {
			return nopSubscriber{}, nil
		},
		Marshaler: cqrs.ProtoMarshaler{},
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := processor.AddHandlers(cqrs.NewEventHandler("cqrs", c.handle)); err != nil {
		tb.Fatal(err)
	}
	for name, h := range router.Handlers() {
		out[name] = h
	}
	return out
}

type nopSubscriber struct{}

func (nopSubscriber) Subscribe(context.Context, string) (<-chan *message.Message, error) {
	return make(chan *message.Message), nil
}

func (nopSubscriber) Close() error { return nil }

func BenchmarkHandle(b *testing.B) {
	for _, name := range variants {
		b.Run(name, func(b *testing.B) {
			c := newCounter()
			h := handlers(b, c)[name]
			pub := &capture{}
			if err := encoders(b, pub)[name](context.Background(), newEvent()); err != nil {
				b.Fatal(err)
			}
			msg := pub.last
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				// The router hands every delivery its own context; the cqrs
				// processor wraps it, so reset it rather than let it grow.
				msg.SetContext(ctx)
				if _, err := h(msg); err != nil {
					b.Fatal(err)
				}
			}
			if c.handled.Load() == 0 {
				b.Fatal("the typed handler was never called")
			}
		})
	}
}
