package telemetry

import (
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the spans this package starts.
const ScopeName = "github.com/protoc-gen-eda/eda/runtime/telemetry"

// DefaultSystem is messaging.system when Config.System is empty.
const DefaultSystem = "eda"

// Config configures tracing. The zero value traces with the global tracer
// provider and W3C trace context and baggage.
type Config struct {
	// TracerProvider creates the tracer. Default otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// Propagator writes the trace context into message metadata and reads it
	// back. Default: W3C trace context and baggage (not the global
	// propagator, which is a no-op until set, and would silently break
	// traces across the broker). Producers and consumers must agree.
	Propagator propagation.TextMapPropagator
	// System is the messaging.system attribute: the broker, as the
	// semantic conventions name it ("kafka", "rabbitmq", "nats", "redis",
	// "postgresql", ...). SystemOf derives it from a broker URL. Default
	// DefaultSystem.
	System string
	// ConsumerGroup returns the consumer group of a handler, for
	// messaging.consumer.group.name. Default: with Instrument, the
	// router's Router.ConsumerGroup (the schema's group, else the handler
	// name); with Middleware alone, the handler name.
	ConsumerGroup func(handler string) string
}

// tracing is a Config with its defaults set and its tracer created.
type tracing struct {
	tracer        trace.Tracer
	prop          propagation.TextMapPropagator
	system        string
	consumerGroup func(string) string
}

func newTracing(cfg Config) *tracing {
	tp := cfg.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	prop := cfg.Propagator
	if prop == nil {
		prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	system := cfg.System
	if system == "" {
		system = DefaultSystem
	}
	group := cfg.ConsumerGroup
	if group == nil {
		group = func(handler string) string { return handler }
	}
	return &tracing{
		tracer:        tp.Tracer(ScopeName, trace.WithSchemaURL(schemaURL)),
		prop:          prop,
		system:        system,
		consumerGroup: group,
	}
}

// systems maps broker URL schemes to messaging.system values.
var systems = map[string]string{
	"amqp":       "rabbitmq",
	"amqps":      "rabbitmq",
	"kafka":      "kafka",
	"nats":       "nats",
	"redis":      "redis",
	"rediss":     "redis",
	"postgres":   "postgresql",
	"postgresql": "postgresql",
	"mem":        "eda.mem",
}

// SystemOf returns the messaging.system value of a broker URL as given to
// runtime.OpenBroker: "rabbitmq" for amqp://, "kafka", "nats", "redis",
// "postgresql", "eda.mem" for the embedded bus, and the scheme itself for
// others.
func SystemOf(brokerURL string) string {
	scheme, _, ok := strings.Cut(brokerURL, "://")
	if !ok || scheme == "" {
		return DefaultSystem
	}
	if s, ok := systems[scheme]; ok {
		return s
	}
	return scheme
}
