package telemetry_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	ordersv1 "github.com/protoc-gen-eda/eda/examples/orders/gen/shop/orders/v1"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/telemetry"
)

// metricValue sums a metric's counter values, or histogram sample counts,
// over the label sets that have every label of match.
func metricValue(t *testing.T, reg prometheus.Gatherer, name string, match map[string]string) (float64, bool) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		var sum float64
	metrics:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range match {
				if labels[k] != v {
					continue metrics
				}
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				sum += m.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				sum += float64(m.GetHistogram().GetSampleCount())
			default:
				t.Fatalf("%s is a %v", name, f.GetType())
			}
		}
		return sum, true
	}
	return 0, false
}

func TestMetrics(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	b, err := runtime.OpenBroker(ctx, "mem://", runtime.BrokerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	router, err := runtime.NewRouter(runtime.RouterConfig{NewSubscriber: b.NewSubscriber, Publisher: b.Publisher, CloseTimeout: edatest.Timeout})
	if err != nil {
		t.Fatal(err)
	}
	m, err := telemetry.Metrics(router, reg, "orders")
	if err != nil {
		t.Fatal(err)
	}
	measured, err := m.DecoratePublisher(b.Publisher)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := runtime.NewPublisher(measured, runtime.PublisherConfig{Source: "metrics-test"})
	if err != nil {
		t.Fatal(err)
	}
	err = ordersv1.RegisterOrderEventHandler(router, handlerFunc{placed: func(_ context.Context, e *ordersv1.OrderPlaced) error {
		if e.GetOrderId() == "bad" {
			return runtime.Permanent(errors.New("bad order"))
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- router.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = b.Close()
	})
	select {
	case <-router.Running():
	case <-time.After(edatest.Timeout):
		t.Fatal("router did not start")
	}

	events := ordersv1.NewOrderEventPublisher(pub)
	for _, id := range []string{"o-1", "bad", "o-2"} {
		if err := events.PublishOrderPlaced(ctx, &ordersv1.OrderPlaced{OrderId: id}); err != nil {
			t.Fatal(err)
		}
	}
	edatest.Eventually(t, "three messages acknowledged", func() bool {
		v, _ := metricValue(t, reg, "orders_subscriber_messages_received_total", map[string]string{"handler_name": eventsHandler, "acked": "acked"})
		return v == 3
	})
	for _, c := range []struct {
		name  string
		match map[string]string
		want  float64
	}{
		{"orders_handler_execution_time_seconds", map[string]string{"handler_name": eventsHandler, "success": "true"}, 3},
		{"orders_handler_execution_time_seconds", map[string]string{"success": "false"}, 0},
		{"orders_subscriber_messages_received_total", map[string]string{"acked": "nacked"}, 0},
		{"orders_router_messages_handled_total", nil, 2},
		{"orders_router_messages_dead_lettered_total", nil, 1},
		{"orders_router_retries_total", nil, 0},
		{"orders_router_messages_skipped_total", nil, 0},
	} {
		got, ok := metricValue(t, reg, c.name, c.match)
		if !ok {
			t.Errorf("no metric %s", c.name)
		} else if got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.match, got, c.want)
		}
	}
	// Three typed publishes went through the decorated publisher; the dead
	// letter went through the router's, which is not.
	if got, ok := metricValue(t, reg, "orders_publish_time_seconds", map[string]string{"success": "true"}); !ok || got != 3 {
		t.Errorf("orders_publish_time_seconds{success=true} = %v (present %v), want 3", got, ok)
	}

	// The router's counters are per router: a second router needs a
	// labelled registerer.
	other, err := runtime.NewRouter(runtime.RouterConfig{NewSubscriber: b.NewSubscriber, Publisher: b.Publisher})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := telemetry.Metrics(other, reg, "orders"); err == nil || !strings.Contains(err.Error(), "already registered") || !strings.Contains(err.Error(), "WrapRegistererWith") {
		t.Errorf("second router on one registry: err = %v, want a hint at WrapRegistererWith", err)
	}
	// With a label per router, two routers share a registry.
	shared := prometheus.NewRegistry()
	for _, name := range []string{"a", "b"} {
		r, err := runtime.NewRouter(runtime.RouterConfig{NewSubscriber: b.NewSubscriber, Publisher: b.Publisher})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := telemetry.Metrics(r, prometheus.WrapRegistererWith(prometheus.Labels{"router": name}, shared), "orders"); err != nil {
			t.Fatalf("router %s with a labelled registerer: %v", name, err)
		}
	}
	if got, ok := metricValue(t, shared, "orders_router_messages_handled_total", map[string]string{"router": "b"}); !ok || got != 0 {
		t.Errorf("router b's handled counter = %v (present %v), want 0", got, ok)
	}
}
