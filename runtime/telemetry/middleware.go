package telemetry

import (
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/protoc-gen-eda/eda/runtime"
)

// Instrument traces every message r's handlers handle with Middleware. Call
// it before r.Run.
func Instrument(r *runtime.Router, cfg Config) {
	if cfg.ConsumerGroup == nil {
		cfg.ConsumerGroup = r.ConsumerGroup
	}
	r.Watermill().AddMiddleware(Middleware(cfg))
}

// Middleware returns a Watermill handler middleware that runs each delivery
// in a CONSUMER span "process <topic>", the child of (and linked to) the
// producer span whose context the message metadata carries. The handler's
// context (and so runtime.EnvelopeFrom's Traceparent) carries the span, and
// the message's traceparent metadata becomes the span's context while it is
// handled, so that what the handler publishes continues the trace from
// it. An error returned to Watermill (a nack) is recorded on the span.
func Middleware(cfg Config) message.HandlerMiddleware {
	t := newTracing(cfg)
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) (_ []*message.Message, err error) {
			span := t.startProcess(msg)
			defer func() {
				handling.remove(span)
				if err != nil {
					fail(span, err)
				}
				span.End()
			}()
			return h(msg)
		}
	}
}

func (t *tracing) startProcess(msg *message.Message) trace.Span {
	if msg.Metadata == nil {
		msg.Metadata = make(message.Metadata)
	}
	carrier := propagation.MapCarrier(msg.Metadata)
	ctx := msg.Context()
	topic := message.SubscribeTopicFromCtx(ctx)
	handler := message.HandlerNameFromCtx(ctx)
	group := t.consumerGroup(handler)
	attrs := t.messageAttributes(topic, msg,
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingOperationName(opProcess),
		semconv.MessagingConsumerGroupName(group),
		semconv.MessagingDestinationSubscriptionName(handler),
		AttrHandler.String(handler),
	)
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...)}
	// The producer's context, with its baggage, becomes the parent; the
	// conventions recommend a link too, which survives backends and
	// samplers that cut traces at the broker.
	if extracted := t.prop.Extract(ctx, carrier); trace.SpanContextFromContext(extracted).IsValid() {
		ctx = extracted
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: trace.SpanContextFromContext(extracted)}))
	}
	ctx, span := t.tracer.Start(ctx, opProcess+" "+topic, opts...)
	msg.SetContext(ctx)
	if span.SpanContext().IsValid() {
		t.prop.Inject(ctx, carrier)
	}
	handling.add(span)
	return span
}

// handling holds the recording process spans by their context, for the
// traced publisher to find the span of a message it dead-letters: the
// runtime's router dead-letters a failed message and acknowledges it, so the
// failure never reaches the middleware.
var handling = spanSet{m: make(map[spanKey]trace.Span)}

type spanSet struct {
	mu sync.Mutex
	m  map[spanKey]trace.Span
}

func (s *spanSet) add(span trace.Span) {
	if !span.IsRecording() {
		return
	}
	s.mu.Lock()
	s.m[key(span.SpanContext())] = span
	s.mu.Unlock()
}

func (s *spanSet) remove(span trace.Span) {
	if !span.IsRecording() {
		return
	}
	s.mu.Lock()
	delete(s.m, key(span.SpanContext()))
	s.mu.Unlock()
}

func (s *spanSet) get(sc trace.SpanContext) (trace.Span, bool) {
	s.mu.Lock()
	span, ok := s.m[key(sc)]
	s.mu.Unlock()
	return span, ok
}

// spanKey identifies a span: a context extracted from metadata is remote
// and may differ in flags or state from the one that started the span.
type spanKey struct {
	trace trace.TraceID
	span  trace.SpanID
}

func key(sc trace.SpanContext) spanKey { return spanKey{sc.TraceID(), sc.SpanID()} }
