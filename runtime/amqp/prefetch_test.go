package amqp_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	streadway "github.com/streadway/amqp"

	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/amqp"
	"github.com/protoc-gen-eda/eda/runtime/brokertest"
)

// TestOrderedConcurrency checks that a handler with MaxInFlight above 1
// handles messages of different keys at once on RabbitMQ, each key's in
// order.
func TestOrderedConcurrency(t *testing.T) {
	base := edatest.ServiceURL(t, edatest.AMQPURLEnv)
	run := watermill.NewShortUUID()
	topic := "brokertest.ordered." + run
	t.Cleanup(func() { deleteTopology(t, base, []string{topic}, []string{amqp.QueueName(topic, "ordered-"+run)}) })
	brokertest.OrderedConcurrency(t, base, run)
}

// prefetchTopic returns a fresh topic whose exchange and group "g" queue
// are deleted when the test ends.
func prefetchTopic(t *testing.T, base string) string {
	topic := "eda-amqp-prefetch-" + watermill.NewShortUUID()
	t.Cleanup(func() { deleteTopology(t, base, []string{topic}, []string{amqp.QueueName(topic, "g")}) })
	return topic
}

// prefetchSubscriber returns a subscriber of group "g" on b as a
// runtime.PrefetchSubscriber.
func prefetchSubscriber(t *testing.T, b *runtime.Broker) runtime.PrefetchSubscriber {
	t.Helper()
	sub, err := b.NewSubscriber("g")
	if err != nil {
		t.Fatal(err)
	}
	ps, ok := sub.(runtime.PrefetchSubscriber)
	if !ok {
		t.Fatalf("%T is not a runtime.PrefetchSubscriber", sub)
	}
	return ps
}

// waitClosed fails unless ch is closed within edatest.Timeout, with no
// message before.
func waitClosed(t *testing.T, ch <-chan *message.Message) {
	t.Helper()
	select {
	case m, ok := <-ch:
		if ok {
			t.Fatalf("got message %s, want the channel closed", m.UUID)
		}
	case <-time.After(edatest.Timeout):
		t.Fatal("channel not closed")
	}
}

// TestSubscribePrefetchBound: with a prefetch of n, n messages are
// delivered at once and the next only once one of them is acked, whichever
// it is; messages come in order, from the queue Watermill's path declared.
func TestSubscribePrefetchBound(t *testing.T) {
	base := edatest.ServiceURL(t, edatest.AMQPURLEnv)
	topic := prefetchTopic(t, base)
	b := brokertest.OpenBroker(t, base)
	sub := prefetchSubscriber(t, b)
	if _, err := sub.SubscribePrefetch(context.Background(), topic, 0); err == nil || !strings.Contains(err.Error(), "want at least 1") {
		t.Errorf("SubscribePrefetch(0) = %v, want an error", err)
	}
	// Declared by Watermill's subscriber: SubscribePrefetch must consume the
	// same queue to read what was published before it.
	if err := sub.(message.SubscribeInitializer).SubscribeInitialize(topic); err != nil {
		t.Fatal(err)
	}
	brokertest.PublishNumbered(t, b.Publisher, topic, 6)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := sub.SubscribePrefetch(ctx, topic, 3)
	if err != nil {
		t.Fatal(err)
	}
	m0 := brokertest.ReceiveNumbered(t, msgs, 0)
	m1 := brokertest.ReceiveNumbered(t, msgs, 1)
	m2 := brokertest.ReceiveNumbered(t, msgs, 2)
	brokertest.NoMessage(t, msgs, 500*time.Millisecond, "with 3 delivered and none acked (prefetch 3)")
	// Acked out of order: each ack frees a slot on its own.
	m1.Ack()
	m3 := brokertest.ReceiveNumbered(t, msgs, 3)
	brokertest.NoMessage(t, msgs, 300*time.Millisecond, "with 3 delivered and one acked")
	m0.Ack()
	m4 := brokertest.ReceiveNumbered(t, msgs, 4)
	m2.Ack()
	m5 := brokertest.ReceiveNumbered(t, msgs, 5)
	m3.Ack()
	m4.Ack()
	m5.Ack()
	brokertest.NoMessage(t, msgs, 300*time.Millisecond, "after all were acked")

	// Ending ctx closes the channel.
	cancel()
	waitClosed(t, msgs)
}

// TestSubscribePrefetchNack: a nacked message is delivered again.
func TestSubscribePrefetchNack(t *testing.T) {
	base := edatest.ServiceURL(t, edatest.AMQPURLEnv)
	topic := prefetchTopic(t, base)
	b := brokertest.OpenBroker(t, base)
	sub := prefetchSubscriber(t, b)
	msgs, err := sub.SubscribePrefetch(context.Background(), topic, 2)
	if err != nil {
		t.Fatal(err)
	}
	brokertest.PublishNumbered(t, b.Publisher, topic, 2)
	m0 := brokertest.ReceiveNumbered(t, msgs, 0)
	m1 := brokertest.ReceiveNumbered(t, msgs, 1)
	m0.Nack()
	again := brokertest.ReceiveNumbered(t, msgs, 0)
	again.Ack()
	m1.Ack()
	brokertest.NoMessage(t, msgs, 300*time.Millisecond, "after both were acked")
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, msgs)
}

// TestSubscribePrefetchCloseRedelivers: messages delivered and not acked
// when the subscriber closes, and those prefetched and never delivered,
// go to the group's next subscriber; an ack given just before Close is not
// lost.
func TestSubscribePrefetchCloseRedelivers(t *testing.T) {
	base := edatest.ServiceURL(t, edatest.AMQPURLEnv)
	topic := prefetchTopic(t, base)
	b1 := brokertest.OpenBroker(t, base)
	sub1 := prefetchSubscriber(t, b1)
	msgs, err := sub1.SubscribePrefetch(context.Background(), topic, 4)
	if err != nil {
		t.Fatal(err)
	}
	brokertest.PublishNumbered(t, b1.Publisher, topic, 6)
	m0 := brokertest.ReceiveNumbered(t, msgs, 0)
	brokertest.ReceiveNumbered(t, msgs, 1)
	brokertest.ReceiveNumbered(t, msgs, 2)
	// 3 is prefetched, not received. 0 is acked right before Close.
	m0.Ack()
	closed := make(chan error, 1)
	go func() { closed <- sub1.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(edatest.Timeout):
		t.Fatal("Close did not return")
	}
	waitClosed(t, msgs)

	b2 := brokertest.OpenBroker(t, base)
	sub2 := prefetchSubscriber(t, b2)
	msgs2, err := sub2.SubscribePrefetch(context.Background(), topic, 10)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 6; i++ {
		brokertest.ReceiveNumbered(t, msgs2, i).Ack()
	}
	brokertest.NoMessage(t, msgs2, 500*time.Millisecond, "after 1..5: 0 was acked before Close")
}

// TestSubscribePrefetchResubscribes: when RabbitMQ cancels the consumer
// (its queue was deleted), the subscription declares the queue and
// consumes again.
func TestSubscribePrefetchResubscribes(t *testing.T) {
	base := edatest.ServiceURL(t, edatest.AMQPURLEnv)
	topic := prefetchTopic(t, base)
	b := brokertest.OpenBroker(t, base)
	sub := prefetchSubscriber(t, b)
	msgs, err := sub.SubscribePrefetch(context.Background(), topic, 2)
	if err != nil {
		t.Fatal(err)
	}
	brokertest.PublishNumbered(t, b.Publisher, topic, 1)
	brokertest.ReceiveNumbered(t, msgs, 0).Ack()

	conn, err := streadway.Dial(base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDelete(amqp.QueueName(topic, "g"), false, false, false); err != nil {
		t.Fatal(err)
	}
	// Published until the queue is back and bound: before, RabbitMQ drops
	// them.
	deadline := time.Now().Add(edatest.Timeout)
	for i := 0; ; i++ {
		m := message.NewMessage(fmt.Sprint("again-", i), nil)
		if err := b.Publisher.Publish(topic, m); err != nil {
			t.Fatal(err)
		}
		select {
		case got, ok := <-msgs:
			if !ok {
				t.Fatal("channel closed when the queue was deleted")
			}
			got.Ack()
			if !strings.HasPrefix(got.UUID, "again-") {
				t.Fatalf("got %s", got.UUID)
			}
			if err := sub.Close(); err != nil {
				t.Fatal(err)
			}
			waitClosed(t, msgs)
			return
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no message after the queue was deleted: not consuming again")
		}
	}
}

// proxy forwards TCP connections to target until the test ends; drop cuts
// the ones open.
type proxy struct {
	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l}
	t.Cleanup(func() {
		_ = l.Close()
		p.drop()
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(s, c); _ = s.Close() }()
			go func() { _, _ = io.Copy(c, s); _ = c.Close() }()
		}
	}()
	return p
}

func (p *proxy) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// TestSubscribePrefetchReconnects: when the connection drops, the
// subscription consumes again once Watermill's connection wrapper has
// reconnected, and the message delivered and not acked comes again.
//
// It does not run under the race detector: watermill-amqp's
// ConnectionWrapper writes its connection and Connected channel on
// reconnecting without synchronization, and every reader (its own
// Subscribe, this package's publisher and SubscribePrefetch) races with
// that write.
func TestSubscribePrefetchReconnects(t *testing.T) {
	if raceEnabled {
		t.Skip("watermill-amqp's ConnectionWrapper races with its readers on reconnect; run without -race")
	}
	base := edatest.ServiceURL(t, edatest.AMQPURLEnv)
	topic := prefetchTopic(t, base)
	u := mustParse(t, base)
	p := newProxy(t, u.Host)
	u.Host = p.l.Addr().String()
	b := brokertest.OpenBroker(t, u.String())
	direct := brokertest.OpenBroker(t, base)
	sub := prefetchSubscriber(t, b)
	msgs, err := sub.SubscribePrefetch(context.Background(), topic, 3)
	if err != nil {
		t.Fatal(err)
	}
	brokertest.PublishNumbered(t, direct.Publisher, topic, 2)
	stale := brokertest.ReceiveNumbered(t, msgs, 0)
	brokertest.ReceiveNumbered(t, msgs, 1).Ack()
	brokertest.NoMessage(t, msgs, 200*time.Millisecond, "before the drop")

	p.drop()
	// Delivered on the dropped channel: RabbitMQ requeues it, and acking
	// the stale delivery cannot settle the new one.
	stale.Ack()
	brokertest.ReceiveNumbered(t, msgs, 0).Ack()
	// A message published after the drop comes on the new channel.
	m := message.NewMessage("m2", []byte("payload 2"))
	m.Metadata.Set("index", "2")
	if err := direct.Publisher.Publish(topic, m); err != nil {
		t.Fatal(err)
	}
	brokertest.ReceiveNumbered(t, msgs, 2).Ack()
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, msgs)
}
