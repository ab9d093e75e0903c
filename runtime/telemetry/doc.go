// Package telemetry makes a protoc-gen-eda service observable: an
// OpenTelemetry span for every publish and every handled message, following
// the OpenTelemetry messaging semantic conventions, with the trace context
// carried across the broker in the message metadata; and Watermill's
// Prometheus metrics, plus the router's own counters, in a Prometheus
// registry.
//
// Nothing in the runtime changes: a publisher decorator traces publishes and a
// Watermill router middleware traces handling.
//
//	b, _ := runtime.OpenBroker(ctx, "nats://127.0.0.1:4222", runtime.BrokerOptions{})
//	tel := telemetry.Config{TracerProvider: tp, System: "nats"}
//
//	// Dead letters go through a traced publisher: a dead-lettered message's
//	// process span learns that way that it failed.
//	router, _ := runtime.NewRouter(runtime.RouterConfig{
//		NewSubscriber: b.NewSubscriber,
//		Publisher:     telemetry.Publisher(b.Publisher, tel),
//	})
//	telemetry.Instrument(router, tel)
//
//	// Prometheus metrics, and a measured and traced publisher.
//	m, _ := telemetry.Metrics(router, prometheus.DefaultRegisterer, "orders")
//	measured, _ := m.DecoratePublisher(b.Publisher)
//	pub, _ := runtime.NewPublisher(telemetry.Publisher(measured, tel), runtime.PublisherConfig{Source: "orders"})
//
// docs/observability.md has the whole picture.
//
// # Spans
//
// Publisher starts a PRODUCER span named "publish <topic>" per message
// (messaging.operation.type "send", the semantic conventions' name for
// what older versions called "publish") and injects its context into the
// message metadata with the configured propagator: W3C trace context under
// the "traceparent" key (runtime.MetaTraceparent), "tracestate" and
// "baggage" next to it. Its parent is the span in the message's context (the
// context given to runtime.Publisher.Publish), else the trace context already
// in the metadata (a message published from an outbox carries the one it
// was stored with).
//
// Middleware starts a CONSUMER span named "process <topic>" per delivery,
// whose parent is the producer span extracted from the metadata, and which
// also links to it, as the conventions recommend for process spans. The
// span lasts as long as the handler, retries included; it ends when the
// handler returns, that is when the router acknowledges the message (or
// negatively acknowledges it, on an error, which the span records). While a
// message is handled its "traceparent" metadata is the process span's
// context, so everything the handler publishes, directly, through an outbox,
// or as a dead letter, is a child of the process span.
//
// The runtime's router retries a failing handler in place and then
// dead-letters the message, acknowledging it: the handler's error never
// reaches Watermill. When the router's Publisher (RouterConfig.Publisher) is
// decorated by Publisher, the dead-letter publish marks the process span as
// failed, with the reason.
//
// # Attributes
//
// Both spans: messaging.system (Config.System), messaging.destination.name
// (the topic), messaging.operation.type ("send" or "process"),
// messaging.operation.name ("publish" or "process"), messaging.message.id
// (the envelope id), messaging.message.conversation_id (the correlation
// id), messaging.message.body.size and eda.message.type (the stable type
// name). Process spans add messaging.consumer.group.name and
// messaging.destination.subscription.name (the handler name, which is the
// runtime's default consumer group, or Config.ConsumerGroup's answer).
// Failures set the span status to Error, record the error as an exception
// event and set error.type.
package telemetry
