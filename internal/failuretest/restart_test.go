package failuretest

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	natsserver "github.com/nats-io/nats-server/v2/server"

	ordersv1 "github.com/protoc-gen-eda/eda/examples/orders/gen/shop/orders/v1"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/memstore"
)

// startNATS runs a JetStream server in this process on port, storing in
// dir, so that the test can stop and restart it without disturbing the
// machine's shared server.
func startNATS(t *testing.T, port int, dir string) *natsserver.Server {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("the in-process NATS server did not start")
	}
	return s
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// countingConsumer records each order's effects.
type countingConsumer struct {
	ordersv1.UnimplementedOrderEventHandler
	mu      sync.Mutex
	effects map[string]int
}

func (c *countingConsumer) HandleOrderPlaced(_ context.Context, e *ordersv1.OrderPlaced) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.effects[e.GetOrderId()]++
	return nil
}

func (c *countingConsumer) count() (distinct, total int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.effects {
		distinct++
		total += n
	}
	return distinct, total
}

// TestBrokerRestart stops the broker while a producer publishes and a
// consumer handles, and starts it again: the producer retries what failed,
// the consumer resumes, and every message is handled once.
func TestBrokerRestart(t *testing.T) {
	const total = 2000
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	port, dir := freePort(t), t.TempDir()
	server := startNATS(t, port, dir)
	defer func() { server.Shutdown() }()

	url := fmt.Sprintf("nats://127.0.0.1:%d?ack_wait=2s&connect_timeout=5s", port)
	b, err := runtime.OpenBroker(ctx, url, runtime.BrokerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	run := watermill.NewShortUUID()
	consumer := &countingConsumer{effects: map[string]int{}}
	router, err := runtime.NewRouter(runtime.RouterConfig{NewSubscriber: b.NewSubscriber, Publisher: b.Publisher, DedupStore: memstore.NewDedupStore()})
	if err != nil {
		t.Fatal(err)
	}
	err = ordersv1.RegisterOrderEventHandler(router, consumer, runtime.WithName("restart-"+run), runtime.WithTopic(topicOf(run)),
		runtime.WithDelivery(runtime.DeliveryPolicy{DedupWindow: time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = router.Run(ctx) }()
	defer router.Close()
	<-router.Running()

	pub, err := runtime.NewPublisher(b.Publisher, runtime.PublisherConfig{Source: "restart"})
	if err != nil {
		t.Fatal(err)
	}
	typ := *orderPlaced
	typ.Topic = topicOf(run)
	publishErrors := 0
	restarted := make(chan struct{})
	go func() {
		defer close(restarted)
		// Stop the broker once the consumer is under way, for a second.
		for d, _ := consumer.count(); d < total/4; d, _ = consumer.count() {
			time.Sleep(5 * time.Millisecond)
		}
		server.Shutdown()
		server.WaitForShutdown()
		time.Sleep(time.Second)
		server = startNATS(t, port, dir)
	}()
	for i := range total {
		id := fmt.Sprintf("%s-%05d", run, i)
		// A publisher retries until the broker stores the message; the
		// message id makes a retry of a publish that was in fact stored
		// a duplicate the stream drops, and the consumer deduplicates
		// the rest.
		for {
			err := pub.Publish(ctx, &typ, runtime.Outgoing{Subject: id, Message: &ordersv1.OrderPlaced{OrderId: id}})
			if err == nil {
				break
			}
			publishErrors++
			select {
			case <-ctx.Done():
				t.Fatalf("publishing %s: %v (after %d errors)", id, err, publishErrors)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	<-restarted
	waitFor(ctx, t, "every message", func() bool { d, _ := consumer.count(); return d >= total })
	time.Sleep(500 * time.Millisecond)
	distinct, handled := consumer.count()
	t.Logf("sent %d, publish errors retried %d, handled %d, duplicated effects %d, lost %d, duplicates skipped %d",
		total, publishErrors, distinct, handled-distinct, total-distinct, router.Stats().Duplicates)
	if distinct != total || handled != total {
		t.Errorf("handled %d distinct orders in %d effects, want %d once each", distinct, handled, total)
	}
	if publishErrors == 0 {
		t.Error("no publish failed while the broker was down: the restart did not happen during the run")
	}
}
