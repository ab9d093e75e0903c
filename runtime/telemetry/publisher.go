package telemetry

import (
	"errors"
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/protoc-gen-eda/eda/runtime"
)

// Publisher returns pub traced: each message published gets a PRODUCER span
// "publish <topic>" whose context is written into the message metadata, so
// the consumer's span continues the trace. Give the result to
// runtime.NewPublisher, and as RouterConfig.Publisher so that dead letters
// are traced and mark the failed handling. It is safe for concurrent use if
// pub is.
//
// The span's parent is the span in the message's context (runtime.Publisher
// sets it to the context of Publish), else the trace context already in the
// metadata: an outbox relay publishes, long after, a message that carries
// the context it was stored with.
func Publisher(pub message.Publisher, cfg Config) message.Publisher {
	return &publisher{pub: pub, t: newTracing(cfg)}
}

type publisher struct {
	pub message.Publisher
	t   *tracing
}

func (p *publisher) Publish(topic string, msgs ...*message.Message) error {
	spans := make([]trace.Span, len(msgs))
	for i, msg := range msgs {
		spans[i] = p.start(topic, msg)
	}
	err := p.pub.Publish(topic, msgs...)
	for _, span := range spans {
		if err != nil {
			fail(span, err)
		}
		span.End()
	}
	return err
}

func (p *publisher) Close() error { return p.pub.Close() }

// start starts msg's span and writes its context into msg's metadata.
func (p *publisher) start(topic string, msg *message.Message) trace.Span {
	if msg.Metadata == nil {
		msg.Metadata = make(message.Metadata)
	}
	carrier := propagation.MapCarrier(msg.Metadata)
	ctx := msg.Context()
	if !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = p.t.prop.Extract(ctx, carrier)
	}
	parent := trace.SpanContextFromContext(ctx)
	attrs := p.t.messageAttributes(topic, msg,
		semconv.MessagingOperationTypeSend,
		semconv.MessagingOperationName(opPublish),
	)
	ctx, span := p.t.tracer.Start(ctx, opPublish+" "+topic,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attrs...),
	)
	if span.SpanContext().IsValid() {
		p.t.prop.Inject(ctx, carrier)
	}
	msg.SetContext(ctx)
	if reason := msg.Metadata.Get(runtime.MetaDeadLetterReason); reason != "" {
		deadLettered(parent, topic, msg, reason)
	}
	return span
}

// deadLettered marks the process span of a message the router is
// dead-lettering as failed. The dead letter is a copy of the handled message
// and carries, in its metadata, the process span's context.
func deadLettered(process trace.SpanContext, topic string, msg *message.Message, reason string) {
	span, ok := handling.get(process)
	if !ok {
		return
	}
	attempts, _ := strconv.Atoi(msg.Metadata.Get(runtime.MetaDeadLetterAttempt))
	span.SetAttributes(AttrDeadLetterTopic.String(topic), AttrDeadLetterAttempts.Int(attempts))
	fail(span, errors.New(reason))
	span.SetStatus(codes.Error, "dead-lettered to "+topic+": "+reason)
}

// fail records err on span as the conventions ask: an exception event,
// error.type and an Error status.
func fail(span trace.Span, err error) {
	span.RecordError(err)
	span.SetAttributes(semconv.ErrorType(err))
	span.SetStatus(codes.Error, err.Error())
}
