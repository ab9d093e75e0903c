package telemetry

import (
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/components/metrics"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/protoc-gen-eda/eda/runtime"
)

// routerSubsystem prefixes the router's own counters.
const routerSubsystem = "router"

// Metrics adds Prometheus metrics to r's handlers and registers them with
// registry (nil means prometheus.DefaultRegisterer), every name prefixed
// with namespace. Call it before r.Run. The metrics are Watermill's:
//
//   - <namespace>_subscriber_messages_received_total{handler_name, subscriber_name, acked}
//   - <namespace>_handler_execution_time_seconds{handler_name, success}, a histogram
//   - <namespace>_publish_time_seconds{handler_name, publisher_name, success}, a histogram,
//     for the publishers decorated by the returned builder's DecoratePublisher
//
// and the router's counters (runtime.Router.Stats), which say what
// Watermill's cannot see, since the router retries and dead-letters inside
// the handler:
//
//   - <namespace>_router_messages_handled_total
//   - <namespace>_router_retries_total
//   - <namespace>_router_messages_dead_lettered_total
//   - <namespace>_router_messages_skipped_total
//
// Measure publishes by decorating the publisher given to
// runtime.NewPublisher:
//
//	m, err := telemetry.Metrics(router, registry, "orders")
//	measured, err := m.DecoratePublisher(b.Publisher)
//	pub, err := runtime.NewPublisher(measured, runtime.PublisherConfig{Source: "orders"})
//
// The router's counters are registered once per registry: for several
// routers in one registry, wrap it with a label of its own for each router,
// the first included (prometheus.WrapRegistererWith), since Prometheus
// wants every series of a name to have the same label names.
func Metrics(r *runtime.Router, registry prometheus.Registerer, namespace string) (metrics.PrometheusMetricsBuilder, error) {
	if r == nil {
		return metrics.PrometheusMetricsBuilder{}, errors.New("telemetry.Metrics: nil router")
	}
	if registry == nil {
		registry = prometheus.DefaultRegisterer
	}
	b := metrics.NewPrometheusMetricsBuilder(registry, namespace, "")
	if err := registerStats(r, registry, namespace); err != nil {
		return b, err
	}
	// Watermill's builder panics when a metric cannot be registered (a
	// collector of the same name and other labels is already there).
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("telemetry.Metrics: registering Watermill's metrics: %v", p)
			}
		}()
		b.AddPrometheusRouterMetrics(r.Watermill())
	}()
	return b, err
}

func registerStats(r *runtime.Router, registry prometheus.Registerer, namespace string) error {
	counters := []struct {
		name, help string
		value      func(runtime.Stats) uint64
	}{
		{"messages_handled_total", "Messages acknowledged after a handler returned nil.", func(s runtime.Stats) uint64 { return s.Handled }},
		{"retries_total", "Handler attempts retried after an error.", func(s runtime.Stats) uint64 { return s.Retried }},
		{"messages_dead_lettered_total", "Messages published to a dead-letter topic.", func(s runtime.Stats) uint64 { return s.DeadLettered }},
		{"messages_skipped_total", "Messages of a type the handler does not know, acknowledged without handling.", func(s runtime.Stats) uint64 { return s.Skipped }},
	}
	for _, c := range counters {
		value := c.value
		counter := prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: namespace,
			Subsystem: routerSubsystem,
			Name:      c.name,
			Help:      c.help,
		}, func() float64 { return float64(value(r.Stats())) })
		if err := registry.Register(counter); err != nil {
			name := prometheus.BuildFQName(namespace, routerSubsystem, c.name)
			var dup prometheus.AlreadyRegisteredError
			if errors.As(err, &dup) {
				return fmt.Errorf("telemetry.Metrics: %s is already registered, by another router: give each router a registry of its own, or wrap the registry with a label of its own for every router (prometheus.WrapRegistererWith)", name)
			}
			return fmt.Errorf("telemetry.Metrics: register %s: %w", name, err)
		}
	}
	return nil
}
