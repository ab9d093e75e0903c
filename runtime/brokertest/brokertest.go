// Package brokertest holds the checks every broker package runs against
// its real service, beyond Watermill's universal suite: the generated code
// end to end with consumer groups, and helpers for URLs and hung servers.
package brokertest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	ordersv1 "github.com/protoc-gen-eda/eda/examples/orders/gen/shop/orders/v1"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
)

// WithParams adds query parameters to a URL.
func WithParams(t *testing.T, raw, params string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if u.RawQuery != "" && params != "" {
		u.RawQuery += "&"
	}
	u.RawQuery += params
	return u.String()
}

// OpenBroker opens rawURL and closes the broker when the test ends.
func OpenBroker(t *testing.T, rawURL string) *runtime.Broker {
	t.Helper()
	b, err := runtime.OpenBroker(context.Background(), rawURL, runtime.BrokerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close broker: %v", err)
		}
	})
	return b
}

// GroupRoundTrip publishes with the generated publisher to routers
// running the generated handler, each on a broker opened from rawURL as a
// service instance would: two instances of groupA share the messages, each
// handled once, groupB gets every one, and the envelope arrives intact. run
// prefixes the order ids, so that events of earlier runs on the shared
// topic are told apart; source names the publisher.
func GroupRoundTrip(t *testing.T, rawURL, run, groupA, groupB, source string) {
	t.Helper()
	// Each broker is a service instance with its own connections.
	const n = 20
	a1 := &placedRecorder{run: run, ch: make(chan edatest.Received[*ordersv1.OrderPlaced], n)}
	a2 := &placedRecorder{run: run, ch: make(chan edatest.Received[*ordersv1.OrderPlaced], n)}
	bb := &placedRecorder{run: run, ch: make(chan edatest.Received[*ordersv1.OrderPlaced], n)}
	startRouter(t, OpenBroker(t, rawURL), groupA, a1)
	startRouter(t, OpenBroker(t, rawURL), groupA, a2)
	startRouter(t, OpenBroker(t, rawURL), groupB, bb)

	pb := OpenBroker(t, rawURL)
	pub, err := runtime.NewPublisher(pb.Publisher, runtime.PublisherConfig{Source: source})
	if err != nil {
		t.Fatal(err)
	}
	events := ordersv1.NewOrderEventPublisher(pub)
	ctx := runtime.WithCorrelationID(context.Background(), run+"corr")
	for i := range n {
		if err := events.PublishOrderPlaced(ctx, &ordersv1.OrderPlaced{OrderId: fmt.Sprintf("%s%02d", run, i), CustomerId: "alice"}); err != nil {
			t.Fatal(err)
		}
	}

	checkGroups(t, n, run, [][]chan edatest.Received[*ordersv1.OrderPlaced]{{a1.ch, a2.ch}, {bb.ch}})
}

// placedRecorder handles OrderPlaced events of one test run, recording
// them; events of other runs, left in the shared stream, are acknowledged
// and ignored.
type placedRecorder struct {
	ordersv1.UnimplementedOrderEventHandler
	run string
	ch  chan edatest.Received[*ordersv1.OrderPlaced]
}

func (h *placedRecorder) HandleOrderPlaced(ctx context.Context, e *ordersv1.OrderPlaced) error {
	if !strings.HasPrefix(e.GetOrderId(), h.run) {
		return nil
	}
	// Long enough that both consumers of a group get a share.
	time.Sleep(5 * time.Millisecond)
	return edatest.Record(ctx, h.ch, e)
}

// startRouter runs a router on b with the order event handler in
// consumer group group.
func startRouter(t *testing.T, b *runtime.Broker, group string, h *placedRecorder) {
	t.Helper()
	router, err := runtime.NewRouter(runtime.RouterConfig{NewSubscriber: b.NewSubscriber, Publisher: b.Publisher, CloseTimeout: edatest.Timeout})
	if err != nil {
		t.Fatal(err)
	}
	if err := ordersv1.RegisterOrderEventHandler(router, h, runtime.WithName(group)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- router.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("router: %v", err)
		}
	})
	select {
	case <-router.Running():
	case err := <-done:
		t.Fatalf("router stopped: %v", err)
	case <-time.After(edatest.Timeout):
		t.Fatal("router did not start")
	}
}

// checkGroups receives n events for each group, from its instances' channels, checks
// each event arrived once per group with its envelope, and that every
// instance of a group got a share.
func checkGroups(t *testing.T, n int, run string, groups [][]chan edatest.Received[*ordersv1.OrderPlaced]) {
	t.Helper()
	for gi, instances := range groups {
		seen := map[string]int{}
		perInstance := make([]int, len(instances))
		deadline := time.After(2 * edatest.Timeout)
		for got := 0; got < n; got++ {
			var r edatest.Received[*ordersv1.OrderPlaced]
			var from int
			select {
			case r = <-instances[0]:
			case r = <-orNil(instances, 1):
				from = 1
			case <-deadline:
				t.Fatalf("group %d: %d of %d events received", gi, got, n)
			}
			seen[r.Msg.GetOrderId()]++
			perInstance[from]++
			checkEnvelope(t, r, run)
		}
		// Anything more within a moment is a duplicate.
		for _, ch := range instances {
			select {
			case r := <-ch:
				t.Errorf("group %d: %s handled again", gi, r.Msg.GetOrderId())
			case <-time.After(300 * time.Millisecond):
			}
		}
		for id, c := range seen {
			if c != 1 {
				t.Errorf("group %d: %s handled %d times, want once", gi, id, c)
			}
		}
		if len(seen) != n {
			t.Errorf("group %d: %d distinct events, want %d", gi, len(seen), n)
		}
		for i, c := range perInstance {
			if c == 0 {
				t.Errorf("group %d: instance %d handled none of %d events: consumers do not share", gi, i, n)
			}
		}
	}
}

func orNil[T any](chs []chan T, i int) chan T {
	if i < len(chs) {
		return chs[i]
	}
	return nil
}

func checkEnvelope(t *testing.T, r edatest.Received[*ordersv1.OrderPlaced], run string) {
	t.Helper()
	env := r.Env
	if env == nil {
		t.Fatalf("%s: no envelope in the handler's context", r.Msg.GetOrderId())
	}
	if env.Type != ordersv1.OrderPlacedEventType || env.Source == "" || env.ID == "" ||
		env.CorrelationID != run+"corr" || env.Subject != r.Msg.GetOrderId() ||
		env.PartitionKey != "alice" || env.ContentType != runtime.ContentTypeProtobuf ||
		env.AggregateType != ordersv1.OrderAggregateType || env.Time.IsZero() {
		t.Errorf("%s: envelope %+v lost metadata", r.Msg.GetOrderId(), env)
	}
}

// SilentServer listens on a local port, accepts connections and never
// answers, as a hung server does.
func SilentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String()
}
