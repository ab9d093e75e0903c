package telemetry_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	ordersv1 "github.com/protoc-gen-eda/eda/examples/orders/gen/shop/orders/v1"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/telemetry"
)

const eventsHandler = "shop.orders.v1.Order.events"

// service is the orders example's wiring, traced: one traced publisher for
// typed publishes and dead letters, and an instrumented router.
type service struct {
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	traced message.Publisher
	pub    *runtime.Publisher
	events *ordersv1.OrderEventPublisher
}

// handlerFunc adapts a function to the generated OrderEventHandler.
type handlerFunc struct {
	ordersv1.UnimplementedOrderEventHandler
	placed func(context.Context, *ordersv1.OrderPlaced) error
}

func (h handlerFunc) HandleOrderPlaced(ctx context.Context, e *ordersv1.OrderPlaced) error {
	return h.placed(ctx, e)
}

// startService runs a traced router on the embedded bus with what register
// adds (given the traced publisher).
func startService(t *testing.T, register func(r *runtime.Router, traced message.Publisher) error) *service {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b, err := runtime.OpenBroker(ctx, "mem://", runtime.BrokerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	tel := telemetry.Config{TracerProvider: tp, System: telemetry.SystemOf("mem://")}
	traced := telemetry.Publisher(b.Publisher, tel)
	pub, err := runtime.NewPublisher(traced, runtime.PublisherConfig{Source: "telemetry-test"})
	if err != nil {
		t.Fatal(err)
	}
	router, err := runtime.NewRouter(runtime.RouterConfig{NewSubscriber: b.NewSubscriber, Publisher: traced, CloseTimeout: edatest.Timeout})
	if err != nil {
		t.Fatal(err)
	}
	telemetry.Instrument(router, tel)
	if err := register(router, traced); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- router.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("router: %v", err)
		}
		_ = b.Close()
		_ = tp.Shutdown(context.Background())
	})
	select {
	case <-router.Running():
	case err := <-done:
		t.Fatalf("router stopped: %v", err)
	case <-time.After(edatest.Timeout):
		t.Fatal("router did not start")
	}
	return &service{spans: spans, tp: tp, traced: traced, pub: pub, events: ordersv1.NewOrderEventPublisher(pub)}
}

// ended waits for n ended spans and returns them by name; it fails on two
// spans of one name.
func (s *service) ended(t *testing.T, n int) map[string]sdktrace.ReadOnlySpan {
	t.Helper()
	edatest.Eventually(t, "ended spans", func() bool { return len(s.spans.Ended()) >= n })
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, sp := range s.spans.Ended() {
		if _, dup := byName[sp.Name()]; dup {
			t.Fatalf("two spans named %q", sp.Name())
		}
		byName[sp.Name()] = sp
	}
	if len(byName) != n {
		t.Fatalf("got %d spans %v, want %d", len(byName), names(byName), n)
	}
	return byName
}

func names(m map[string]sdktrace.ReadOnlySpan) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func span(t *testing.T, spans map[string]sdktrace.ReadOnlySpan, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	sp, ok := spans[name]
	if !ok {
		t.Fatalf("no span %q among %v", name, names(spans))
	}
	return sp
}

func attrs(sp sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range sp.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

func wantAttrs(t *testing.T, sp sdktrace.ReadOnlySpan, want map[string]any) {
	t.Helper()
	got := attrs(sp)
	for k, w := range want {
		v, ok := got[attribute.Key(k)]
		if !ok {
			t.Errorf("%s: no attribute %s", sp.Name(), k)
			continue
		}
		if v.AsInterface() != w {
			t.Errorf("%s: %s = %v (%T), want %v (%T)", sp.Name(), k, v.AsInterface(), v.AsInterface(), w, w)
		}
	}
}

// childOf checks that child's parent is parent, and that child links to
// parent when link is set.
func childOf(t *testing.T, child, parent sdktrace.ReadOnlySpan, link bool) {
	t.Helper()
	if child.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("%s is in trace %s, %s in %s", child.Name(), child.SpanContext().TraceID(), parent.Name(), parent.SpanContext().TraceID())
	}
	if child.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("%s's parent is %s, want %s (%s)", child.Name(), child.Parent().SpanID(), parent.SpanContext().SpanID(), parent.Name())
	}
	if !link {
		return
	}
	links := child.Links()
	if len(links) != 1 || links[0].SpanContext.SpanID() != parent.SpanContext().SpanID() || links[0].SpanContext.TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("%s links to %+v, want one link to %s", child.Name(), links, parent.Name())
	}
}

// events registers h as the order events handler.
func events(h ordersv1.OrderEventHandler, opts ...runtime.HandlerOption) func(*runtime.Router, message.Publisher) error {
	return func(r *runtime.Router, _ message.Publisher) error {
		return ordersv1.RegisterOrderEventHandler(r, h, opts...)
	}
}

type handled struct {
	env     *runtime.Envelope
	span    trace.SpanContext
	baggage string
}

func TestPublishAndProcessShareTheTrace(t *testing.T) {
	got := make(chan handled, 1)
	s := startService(t, events(handlerFunc{placed: func(ctx context.Context, _ *ordersv1.OrderPlaced) error {
		env, _ := runtime.EnvelopeFrom(ctx)
		got <- handled{env: env, span: trace.SpanContextFromContext(ctx), baggage: baggage.FromContext(ctx).Member("tenant").Value()}
		return nil
	}}))
	// The flow starts in a span of its own, an HTTP request's, say.
	ctx, root := s.tp.Tracer("test").Start(context.Background(), "checkout")
	ctx = runtime.WithCorrelationID(ctx, "checkout-42")
	tenant, err := baggage.NewMemberRaw("tenant", "acme")
	if err != nil {
		t.Fatal(err)
	}
	bag, err := baggage.New(tenant)
	if err != nil {
		t.Fatal(err)
	}
	ctx = baggage.ContextWithBaggage(ctx, bag)
	if err := s.events.PublishOrderPlaced(ctx, &ordersv1.OrderPlaced{OrderId: "order-1", CustomerId: "alice"}); err != nil {
		t.Fatal(err)
	}
	h := edatest.Receive(t, got)
	root.End()
	spans := s.ended(t, 3)

	topic := ordersv1.OrderEventsTopic
	producer, consumer := span(t, spans, "publish "+topic), span(t, spans, "process "+topic)
	if producer.SpanKind() != trace.SpanKindProducer || consumer.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("kinds: publish %v, process %v; want producer, consumer", producer.SpanKind(), consumer.SpanKind())
	}
	childOf(t, producer, span(t, spans, "checkout"), false)
	childOf(t, consumer, producer, true)
	if !consumer.Parent().IsRemote() {
		t.Error("the process span's parent should be the remote producer span")
	}
	common := map[string]any{
		"messaging.system":                  "eda.mem",
		"messaging.destination.name":        topic,
		"messaging.message.id":              h.env.ID,
		"messaging.message.conversation_id": "checkout-42",
		"eda.message.type":                  ordersv1.OrderPlacedEventType,
	}
	wantAttrs(t, producer, common)
	wantAttrs(t, consumer, common)
	wantAttrs(t, producer, map[string]any{"messaging.operation.type": "send", "messaging.operation.name": "publish"})
	wantAttrs(t, consumer, map[string]any{
		"messaging.operation.type":                "process",
		"messaging.operation.name":                "process",
		"messaging.consumer.group.name":           eventsHandler,
		"messaging.destination.subscription.name": eventsHandler,
		"eda.handler.name":                        eventsHandler,
	})
	if size := attrs(producer)["messaging.message.body.size"].AsInt64(); size <= 0 {
		t.Errorf("messaging.message.body.size = %d, want the payload size", size)
	}
	for _, sp := range []sdktrace.ReadOnlySpan{producer, consumer} {
		if sp.Status().Code != codes.Unset {
			t.Errorf("%s: status %v, want unset", sp.Name(), sp.Status())
		}
	}
	// The handler runs in the process span, and the message it handles
	// carries that span's context.
	if h.span.SpanID() != consumer.SpanContext().SpanID() {
		t.Errorf("handler context span %s, want the process span %s", h.span.SpanID(), consumer.SpanContext().SpanID())
	}
	if h.baggage != "acme" {
		t.Errorf("handler baggage tenant=%q, want acme from the publisher's context", h.baggage)
	}
	if !strings.Contains(h.env.Traceparent, consumer.SpanContext().SpanID().String()) {
		t.Errorf("envelope traceparent %q does not name the process span %s", h.env.Traceparent, consumer.SpanContext().SpanID())
	}
}

func TestHandlerPublishesContinueTheTrace(t *testing.T) {
	var follow *ordersv1.OrderEventPublisher
	s := startService(t, events(handlerFunc{placed: func(ctx context.Context, e *ordersv1.OrderPlaced) error {
		return follow.PublishOrderShipped(ctx, &ordersv1.OrderShipped{OrderId: e.GetOrderId()})
	}}))
	follow = s.events
	if err := s.events.PublishOrderPlaced(context.Background(), &ordersv1.OrderPlaced{OrderId: "order-1"}); err != nil {
		t.Fatal(err)
	}
	// publish placed, process placed, publish shipped, process shipped.
	edatest.Eventually(t, "four spans", func() bool { return len(s.spans.Ended()) >= 4 })
	var publishes, processes []sdktrace.ReadOnlySpan
	for _, sp := range s.spans.Ended() {
		switch attrs(sp)["messaging.operation.type"].AsString() {
		case "send":
			publishes = append(publishes, sp)
		case "process":
			processes = append(processes, sp)
		}
	}
	if len(publishes) != 2 || len(processes) != 2 {
		t.Fatalf("got %d publish and %d process spans, want 2 and 2", len(publishes), len(processes))
	}
	byType := func(spans []sdktrace.ReadOnlySpan, typ string) sdktrace.ReadOnlySpan {
		for _, sp := range spans {
			if attrs(sp)["eda.message.type"].AsString() == typ {
				return sp
			}
		}
		t.Fatalf("no span for %s", typ)
		return nil
	}
	pubPlaced, procPlaced := byType(publishes, ordersv1.OrderPlacedEventType), byType(processes, ordersv1.OrderPlacedEventType)
	pubShipped, procShipped := byType(publishes, ordersv1.OrderShippedEventType), byType(processes, ordersv1.OrderShippedEventType)
	if pubPlaced.Parent().IsValid() {
		t.Errorf("the first publish had no span in its context, so it should be a root; parent %s", pubPlaced.Parent().SpanID())
	}
	childOf(t, procPlaced, pubPlaced, true)
	childOf(t, pubShipped, procPlaced, false)
	childOf(t, procShipped, pubShipped, true)
	// The follow-up keeps the flow's conversation.
	wantAttrs(t, procShipped, map[string]any{"messaging.message.conversation_id": attrs(pubPlaced)["messaging.message.id"].AsString()})
}

func TestDeadLetteredHandlingIsAnError(t *testing.T) {
	s := startService(t, events(handlerFunc{placed: func(context.Context, *ordersv1.OrderPlaced) error {
		return errors.New("card declined")
	}}, runtime.WithDelivery(runtime.DeliveryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond})))
	if err := s.events.PublishOrderPlaced(context.Background(), &ordersv1.OrderPlaced{OrderId: "order-1"}); err != nil {
		t.Fatal(err)
	}
	spans := s.ended(t, 3)
	producer := span(t, spans, "publish "+ordersv1.OrderEventsTopic)
	consumer := span(t, spans, "process "+ordersv1.OrderEventsTopic)
	dead := span(t, spans, "publish "+runtime.DefaultDeadLetterTopic)
	childOf(t, consumer, producer, true)
	// The dead letter is published while handling, from the process span.
	childOf(t, dead, consumer, false)
	if st := consumer.Status(); st.Code != codes.Error || !strings.Contains(st.Description, "card declined") || !strings.Contains(st.Description, runtime.DefaultDeadLetterTopic) {
		t.Errorf("process span status %+v, want an error naming the reason and the dead-letter topic", st)
	}
	wantAttrs(t, consumer, map[string]any{
		"eda.dead_letter.topic":    runtime.DefaultDeadLetterTopic,
		"eda.dead_letter.attempts": int64(2),
		"error.type":               "*errors.errorString",
	})
	if !hasException(consumer, "card declined") {
		t.Errorf("process span events %+v, want an exception with the reason", consumer.Events())
	}
	// The dead letter itself was published fine.
	if dead.Status().Code != codes.Unset {
		t.Errorf("dead-letter publish status %+v, want unset", dead.Status())
	}
	if st := producer.Status(); st.Code != codes.Unset {
		t.Errorf("publish span status %+v, want unset", st)
	}
}

func hasException(sp sdktrace.ReadOnlySpan, msg string) bool {
	for _, ev := range sp.Events() {
		if ev.Name != "exception" {
			continue
		}
		for _, kv := range ev.Attributes {
			if kv.Key == "exception.message" && strings.Contains(kv.Value.AsString(), msg) {
				return true
			}
		}
	}
	return false
}

// recorder is a message.Publisher that keeps what it is given, or fails.
type recorder struct {
	msgs []*message.Message
	err  error
}

func (r *recorder) Publish(_ string, msgs ...*message.Message) error {
	r.msgs = append(r.msgs, msgs...)
	return r.err
}
func (r *recorder) Close() error { return nil }

func newTracer() (*tracetest.SpanRecorder, telemetry.Config) {
	spans := tracetest.NewSpanRecorder()
	return spans, telemetry.Config{TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)), System: "nats"}
}

// An outbox relay publishes stored messages with no context: the trace
// context stored in the metadata is the parent.
func TestPublisherContinuesTheStoredContext(t *testing.T) {
	spans, cfg := newTracer()
	rec := &recorder{}
	pub := telemetry.Publisher(rec, cfg)
	const stored = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	msg := message.NewMessage("id-1", []byte("payload"))
	msg.Metadata.Set(runtime.MetaTraceparent, stored)
	msg.Metadata.Set(runtime.MetaID, "id-1")
	if err := pub.Publish("orders", msg); err != nil {
		t.Fatal(err)
	}
	ended := spans.Ended()
	if len(ended) != 1 {
		t.Fatalf("%d spans, want 1", len(ended))
	}
	sp := ended[0]
	if sp.Name() != "publish orders" || sp.Parent().TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || sp.Parent().SpanID().String() != "b7ad6b7169203331" {
		t.Errorf("span %s with parent %s/%s, want publish orders under the stored context", sp.Name(), sp.Parent().TraceID(), sp.Parent().SpanID())
	}
	wantAttrs(t, sp, map[string]any{"messaging.system": "nats", "messaging.message.id": "id-1", "messaging.message.conversation_id": "id-1", "messaging.message.body.size": int64(7)})
	want := "00-0af7651916cd43dd8448eb211c80319c-" + sp.SpanContext().SpanID().String() + "-01"
	if got := rec.msgs[0].Metadata.Get(runtime.MetaTraceparent); got != want {
		t.Errorf("published traceparent %q, want the publish span's %q", got, want)
	}
}

func TestPublisherRecordsFailures(t *testing.T) {
	spans, cfg := newTracer()
	pub := telemetry.Publisher(&recorder{err: errors.New("broker down")}, cfg)
	err := pub.Publish("orders", message.NewMessage("a", nil), message.NewMessage("b", nil))
	if err == nil || err.Error() != "broker down" {
		t.Fatalf("err = %v, want the broker's", err)
	}
	ended := spans.Ended()
	if len(ended) != 2 {
		t.Fatalf("%d spans, want one per message", len(ended))
	}
	for _, sp := range ended {
		if sp.Status().Code != codes.Error || sp.Status().Description != "broker down" || !hasException(sp, "broker down") {
			t.Errorf("%s: status %+v events %+v, want the error", sp.Name(), sp.Status(), sp.Events())
		}
	}
}

// An error returned to Watermill, a nack, fails the process span.
func TestMiddlewareRecordsNacks(t *testing.T) {
	spans, cfg := newTracer()
	msg := message.NewMessage("a", nil)
	_, err := telemetry.Middleware(cfg)(func(m *message.Message) ([]*message.Message, error) {
		if !trace.SpanContextFromContext(m.Context()).IsValid() {
			t.Error("the handler's message context has no span")
		}
		return nil, errors.New("dead letter not published")
	})(msg)
	if err == nil {
		t.Fatal("the middleware swallowed the error")
	}
	ended := spans.Ended()
	if len(ended) != 1 || ended[0].Status().Code != codes.Error || ended[0].SpanKind() != trace.SpanKindConsumer {
		t.Fatalf("spans %v, want one failed consumer span", ended)
	}
	if ended[0].Parent().IsValid() || len(ended[0].Links()) != 0 {
		t.Errorf("a message without trace context should start a trace: parent %v links %v", ended[0].Parent(), ended[0].Links())
	}
}

// Without a recording tracer nothing is written into the metadata: the
// runtime's own traceparent passes through untouched.
func TestNoopTracerLeavesMetadata(t *testing.T) {
	rec := &recorder{}
	cfg := telemetry.Config{TracerProvider: noop.NewTracerProvider()}
	msg := message.NewMessage("a", nil)
	msg.Metadata.Set(runtime.MetaTraceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	if err := telemetry.Publisher(rec, cfg).Publish("t", msg); err != nil {
		t.Fatal(err)
	}
	if got := rec.msgs[0].Metadata.Get(runtime.MetaTraceparent); got != "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" {
		t.Errorf("traceparent %q changed", got)
	}
	if len(rec.msgs[0].Metadata) != 1 {
		t.Errorf("metadata %v, want only the traceparent", rec.msgs[0].Metadata)
	}
}

func TestSystemOf(t *testing.T) {
	for url, want := range map[string]string{
		"mem://":                            "eda.mem",
		"nats://127.0.0.1:4222":             "nats",
		"amqp://guest:guest@localhost:5672": "rabbitmq",
		"kafka://broker:9092":               "kafka",
		"redis://localhost/0":               "redis",
		"postgres://u@h/db":                 "postgresql",
		"custom://x":                        "custom",
		"not a url":                         telemetry.DefaultSystem,
	} {
		if got := telemetry.SystemOf(url); got != want {
			t.Errorf("SystemOf(%q) = %q, want %q", url, got, want)
		}
	}
}
