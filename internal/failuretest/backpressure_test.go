package failuretest

import (
	"context"
	"fmt"
	goruntime "runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	ordersv1 "github.com/protoc-gen-eda/eda/examples/orders/gen/shop/orders/v1"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
)

// orderPlaced describes the generated OrderPlaced event, to build its
// messages in batches (the generated publisher sends one at a time).
var orderPlaced = &runtime.MessageType{
	Name: ordersv1.OrderPlacedEventType, Version: 1, AggregateType: ordersv1.OrderAggregateType,
}

// topicOf is a run's own topic, so that a new consumer group does not read
// every earlier run's events first.
func topicOf(run string) string { return "failuretest." + run + ".events" }

// publishOrders publishes OrderPlaced events with the given ids on the
// run's topic, in batches.
func publishOrders(ctx context.Context, t *testing.T, b *runtime.Broker, run string, ids []string) {
	t.Helper()
	pub, err := runtime.NewPublisher(b.Publisher, runtime.PublisherConfig{Source: "failuretest"})
	if err != nil {
		t.Fatal(err)
	}
	typ := *orderPlaced
	typ.Topic = topicOf(run)
	var batch []*message.Message
	for _, id := range ids {
		m, err := pub.NewMessage(ctx, &typ, runtime.Outgoing{Subject: id, Message: &ordersv1.OrderPlaced{OrderId: id}})
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, m)
	}
	for len(batch) > 0 {
		n := min(len(batch), 500)
		if err := b.Publisher.Publish(typ.Topic, batch[:n]...); err != nil {
			t.Fatal(err)
		}
		batch = batch[n:]
	}
}

// slowConsumer takes a millisecond a message and records how many of its
// calls overlap.
type slowConsumer struct {
	ordersv1.UnimplementedOrderEventHandler
	run            string
	calls, handled atomic.Int64
	inFlight       atomic.Int64
	maxInFlight    atomic.Int64
}

func (c *slowConsumer) HandleOrderPlaced(ctx context.Context, e *ordersv1.OrderPlaced) error {
	c.calls.Add(1)
	n := c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	for m := c.maxInFlight.Load(); n > m && !c.maxInFlight.CompareAndSwap(m, n); m = c.maxInFlight.Load() {
	}
	time.Sleep(time.Millisecond)
	c.handled.Add(1)
	return nil
}

// TestBackpressure publishes far faster than a slow consumer handles, and
// checks the consumer holds one message at a time: its goroutines and heap
// do not grow with the backlog, which stays in the broker.
func TestBackpressure(t *testing.T) {
	brokers := []struct{ name, env, params string }{
		{"nats", "EDA_TEST_NATS_URL", ""},
		{"redis", "EDA_TEST_REDIS_URL", "block=50ms"},
	}
	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) {
			url := edatest.ServiceURL(t, b.env)
			if b.params != "" {
				url += "?" + b.params
			}
			backpressure(t, url)
		})
	}
}

func backpressure(t *testing.T, url string) {
	const total = 5000
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := runtime.OpenBroker(ctx, url, runtime.BrokerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	run := watermill.NewShortUUID()
	consumer := &slowConsumer{run: run}
	router, err := runtime.NewRouter(runtime.RouterConfig{NewSubscriber: b.NewSubscriber, Publisher: b.Publisher})
	if err != nil {
		t.Fatal(err)
	}
	if err := ordersv1.RegisterOrderEventHandler(router, consumer, runtime.WithName("backpressure-"+run), runtime.WithTopic(topicOf(run))); err != nil {
		t.Fatal(err)
	}
	go func() { _ = router.Run(ctx) }()
	defer router.Close()
	<-router.Running()
	baseGoroutines, baseHeap := goruntime.NumGoroutine(), heapBytes()

	ids := make([]string, total)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%05d", run, i)
	}
	start := time.Now()
	publishOrders(ctx, t, b, run, ids)
	published := time.Since(start)
	handledAtPublish := consumer.handled.Load()

	callsBefore := consumer.calls.Load()
	maxGoroutines, maxHeap := 0, uint64(0)
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		maxGoroutines = max(maxGoroutines, goruntime.NumGoroutine())
		maxHeap = max(maxHeap, heapBytes())
	}
	t.Logf("published %d in %v; handled %d by then, %d two seconds later; in flight at most %d; goroutines %d → max %d; heap %d MiB → max %d MiB",
		total, published.Round(time.Millisecond), handledAtPublish, consumer.handled.Load(), consumer.maxInFlight.Load(),
		baseGoroutines, maxGoroutines, baseHeap>>20, maxHeap>>20)
	if calls := consumer.calls.Load() - callsBefore; calls < 100 || consumer.handled.Load() == total {
		t.Errorf("the consumer handled %d messages in two seconds, %d of %d in all: it should be busy with a backlog", calls, consumer.handled.Load(), total)
	}
	if handledAtPublish > total/2 {
		t.Fatalf("the consumer kept up (%d of %d handled when publishing ended): the producer is not faster, nothing is tested", handledAtPublish, total)
	}
	if n := consumer.maxInFlight.Load(); n != 1 {
		t.Errorf("%d messages handled at once, want 1", n)
	}
	if maxGoroutines > baseGoroutines+20 {
		t.Errorf("goroutines grew from %d to %d with the backlog", baseGoroutines, maxGoroutines)
	}
	if maxHeap > baseHeap+64<<20 {
		t.Errorf("heap grew from %d MiB to %d MiB with the backlog", baseHeap>>20, maxHeap>>20)
	}
}

func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
