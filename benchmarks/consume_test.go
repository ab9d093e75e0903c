package benchmarks

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	natsgo "github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	streadway "github.com/streadway/amqp"
	"google.golang.org/protobuf/proto"

	ordersv1 "github.com/protoc-gen-eda/eda/examples/orders/gen/shop/orders/v1"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
	edaamqp "github.com/protoc-gen-eda/eda/runtime/amqp"  // amqp://
	_ "github.com/protoc-gen-eda/eda/runtime/redisstream" // redis://
	_ "github.com/protoc-gen-eda/eda/runtime/sqlbroker"   // postgres://
)

// consumeBatch is how many messages each consumer reads per round.
const consumeBatch = 2000

// consumeWarmup is how many messages each consumer reads before the timed
// rounds: the first messages open connections and fill caches.
const consumeWarmup = 16

// consumeAckGrace is how long a consumer keeps running, untimed, after its
// last message was handled, for the acknowledgement to reach the broker,
// and how long a round waits after the last consumer closed before it
// publishes.
const consumeAckGrace = 50 * time.Millisecond

// consumePublishChunk is how many messages one Publish call of the
// pre-publishing carries.
const consumePublishChunk = 256

// BenchmarkConsume reads and acknowledges OrderPlaced events on each real
// broker of the runtime (runtime.OpenBroker with the URL of
// EDA_TEST_NATS_URL, EDA_TEST_REDIS_URL, EDA_TEST_AMQP_URL or
// EDA_TEST_POSTGRES_URL; each is skipped without its URL, and there is no
// Kafka variant), with the generated handler against the same broker's
// Watermill subscriber used directly. Every round (one op) publishes
// consumeBatch events with the generated publisher, untimed, then lets each
// variant consume them, in a consumer group of its own that has read every
// earlier round:
//
//   - gen: a runtime.Router (a new one each round, as a restarted service
//     has) with RegisterOrderEventHandler, whose HandleOrderPlaced reads the
//     event and counts it. The router decodes the envelope, routes by type,
//     unmarshals and acknowledges.
//   - raw: Broker.NewSubscriber and Subscribe, proto.Unmarshal of each
//     payload into a new OrderPlaced, the same read and count, Ack.
//
// Both use the same subscriber code and the broker's default settings, so
// they differ in what the generated path adds between the subscriber and
// the handler. The two take turns each round, each going first every other
// round. The generated handler's topic is fixed; runtime.WithTopic
// subscribes it to a topic unique to the run instead, so that runs never read each other's messages.
//
// Each variant's throughput ("gen-msgs/s", "raw-msgs/s") is timed from its
// first message handled to its last, which leaves out connecting and
// subscribing; "gen/raw" is gen's over raw's, and "gen/raw-cpu" is raw's
// process CPU time per message over gen's (from subscribing to the last
// message; the broker's CPU is not counted).
func BenchmarkConsume(b *testing.B) {
	b.Run("nats", func(b *testing.B) {
		base := edatest.ServiceURL(b, edatest.NATSURLEnv)
		consume(b, base, func(f *consumeFixture) { deleteNatsStream(b, base, f.topic) })
	})
	b.Run("redis", func(b *testing.B) {
		base := edatest.ServiceURL(b, edatest.RedisURLEnv)
		consume(b, base, func(f *consumeFixture) { deleteRedisStream(b, base, f.topic) })
	})
	b.Run("amqp", func(b *testing.B) {
		base := edatest.ServiceURL(b, edatest.AMQPURLEnv)
		consume(b, base, func(f *consumeFixture) { deleteAMQPTopology(b, base, f.topic, f.genGroup, f.rawGroup) })
	})
	b.Run("postgres", func(b *testing.B) {
		// The schema, and every table in it, is dropped when the benchmark
		// ends.
		consume(b, edatest.PostgresSchemaURL(b, "edabench"), func(*consumeFixture) {})
	})
}

// consumeFixture is one broker, its topic and the two consumer groups.
type consumeFixture struct {
	broker   *runtime.Broker
	events   *ordersv1.OrderEventPublisher
	collect  *collectPublisher
	topic    string
	genGroup string
	rawGroup string
	want     int64 // TotalCents of every event
}

func consume(b *testing.B, url string, cleanup func(*consumeFixture)) {
	ctx := context.Background()
	broker, err := runtime.OpenBroker(ctx, url, runtime.BrokerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	suffix := time.Now().UnixNano()
	f := &consumeFixture{
		broker:   broker,
		collect:  &collectPublisher{},
		topic:    fmt.Sprintf("edabench_%d.%s", suffix, ordersv1.OrderEventsTopic),
		genGroup: fmt.Sprintf("edabench_gen_%d", suffix),
		rawGroup: fmt.Sprintf("edabench_raw_%d", suffix),
		want:     newEvent().GetTotalCents(),
	}
	// Cleanups run last-registered first: close the broker, then delete
	// what it created.
	b.Cleanup(func() { cleanup(f) })
	b.Cleanup(func() {
		if err := broker.Close(); err != nil {
			b.Error(err)
		}
	})
	pub, err := runtime.NewPublisher(f.collect, runtime.PublisherConfig{Source: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	f.events = ordersv1.NewOrderEventPublisher(pub)

	// Subscribe both groups before anything is published: an AMQP queue
	// only receives what is published after it is declared. Then one
	// untimed round warms both up.
	if _, err := f.consumeGenerated(0); err != nil {
		b.Fatal(err)
	}
	if _, err := f.consumeRaw(0); err != nil {
		b.Fatal(err)
	}
	if err := f.publish(consumeWarmup); err != nil {
		b.Fatal(err)
	}
	if _, err := f.consumeGenerated(consumeWarmup); err != nil {
		b.Fatal(err)
	}
	if _, err := f.consumeRaw(consumeWarmup); err != nil {
		b.Fatal(err)
	}

	var gen, raw consumeTotal
	odd := false
	for b.Loop() {
		b.StopTimer()
		// A broker may still count the last round's closed subscriptions
		// as consumers for a moment, and hand them messages that then wait
		// for the ack timeout to be redelivered (JetStream: 30s).
		time.Sleep(consumeAckGrace)
		if err := f.publish(consumeBatch); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		order := []struct {
			run   func(int) (consumeRun, error)
			total *consumeTotal
		}{{f.consumeGenerated, &gen}, {f.consumeRaw, &raw}}
		if odd {
			order[0], order[1] = order[1], order[0]
		}
		odd = !odd
		for _, v := range order {
			r, err := v.run(consumeBatch)
			if err != nil {
				b.Fatal(err)
			}
			v.total.add(r)
		}
	}
	b.ReportMetric(gen.rate(), "gen-msgs/s")
	b.ReportMetric(raw.rate(), "raw-msgs/s")
	b.ReportMetric(gen.rate()/raw.rate(), "gen/raw")
	if gen.cpu > 0 && raw.cpu > 0 {
		b.ReportMetric(raw.cpu.Seconds()/gen.cpu.Seconds(), "gen/raw-cpu")
	}
}

// publish publishes n events with the generated publisher, to f.topic, in
// Publish calls of consumePublishChunk messages.
func (f *consumeFixture) publish(n int) error {
	ctx := context.Background()
	event := newEvent()
	for sent := 0; sent < n; {
		f.collect.msgs = f.collect.msgs[:0]
		for ; len(f.collect.msgs) < consumePublishChunk && sent < n; sent++ {
			if err := f.events.PublishOrderPlaced(ctx, event); err != nil {
				return err
			}
		}
		if err := f.broker.Publisher.Publish(f.topic, f.collect.msgs...); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	return nil
}

// collectPublisher keeps what is published, for consumeFixture.publish to
// send in batches.
type collectPublisher struct{ msgs []*message.Message }

func (c *collectPublisher) Publish(_ string, msgs ...*message.Message) error {
	c.msgs = append(c.msgs, msgs...)
	return nil
}

func (c *collectPublisher) Close() error { return nil }

// consumeRun is one variant's reading of one round.
type consumeRun struct {
	msgs int           // messages timed: all but the first
	wall time.Duration // first message handled to last
	cpu  time.Duration // process CPU from subscribing to the last message
}

type consumeTotal struct {
	msgs int
	wall time.Duration
	cpu  time.Duration
}

func (t *consumeTotal) add(r consumeRun) {
	t.msgs += r.msgs
	t.wall += r.wall
	t.cpu += r.cpu
}

func (t *consumeTotal) rate() float64 { return float64(t.msgs) / t.wall.Seconds() }

// consumeCounter counts handled events until it reaches its target,
// noting when the first and the target-th were handled. Its handle is
// called one message at a time.
type consumeCounter struct {
	target      int64
	want        int64
	n           atomic.Int64
	bad         atomic.Int64
	sum         int64
	first, last time.Time
	done        chan struct{}
}

func newConsumeCounter(target int, want int64) *consumeCounter {
	return &consumeCounter{target: int64(target), want: want, done: make(chan struct{})}
}

func (c *consumeCounter) handle(event *ordersv1.OrderPlaced) {
	if event.GetTotalCents() != c.want {
		c.bad.Add(1)
	}
	c.sum += event.GetTotalCents() + int64(len(event.GetItems()))
	switch n := c.n.Add(1); n {
	case 1:
		c.first = time.Now()
		if c.target == 1 {
			c.last = c.first
			close(c.done)
		}
	case c.target:
		c.last = time.Now()
		close(c.done)
	}
}

// wait waits until the target is reached and returns the round's reading.
func (c *consumeCounter) wait(name string, cpu0 time.Duration, failed <-chan error) (consumeRun, error) {
	if c.target == 0 {
		return consumeRun{}, nil
	}
	select {
	case <-c.done:
	case err := <-failed:
		return consumeRun{}, fmt.Errorf("%s stopped after %d of %d messages: %v", name, c.n.Load(), c.target, err)
	case <-time.After(benchTimeout):
		return consumeRun{}, fmt.Errorf("%s: handled only %d of %d messages in %s", name, c.n.Load(), c.target, benchTimeout)
	}
	cpu := cpuTime() - cpu0
	if bad := c.bad.Load(); bad > 0 {
		return consumeRun{}, fmt.Errorf("%s decoded %d events with the wrong total", name, bad)
	}
	return consumeRun{msgs: int(c.target) - 1, wall: c.last.Sub(c.first), cpu: cpu}, nil
}

// consumeHandler is the generated variant's handler.
type consumeHandler struct {
	ordersv1.UnimplementedOrderEventHandler
	c *consumeCounter
}

func (h consumeHandler) HandleOrderPlaced(_ context.Context, event *ordersv1.OrderPlaced) error {
	h.c.handle(event)
	return nil
}

// consumeGenerated runs a router with the generated handler in the gen
// group until it handled n messages, then stops it. With n == 0 it only
// subscribes.
func (f *consumeFixture) consumeGenerated(n int) (consumeRun, error) {
	c := newConsumeCounter(n, f.want)
	cpu0 := cpuTime()
	// Run can return before Watermill's router has closed the subscriber,
	// whose last read could then take a message of the next round and
	// drop it (Redis: pending until claimed, 60s later). Close it here.
	var subs []message.Subscriber
	defer func() {
		for _, s := range subs {
			_ = s.Close()
		}
	}()
	newSubscriber := func(group string) (message.Subscriber, error) {
		s, err := f.broker.NewSubscriber(group)
		if err == nil {
			subs = append(subs, s)
		}
		return s, err
	}
	router, err := runtime.NewRouter(runtime.RouterConfig{NewSubscriber: newSubscriber, Publisher: f.broker.Publisher})
	if err != nil {
		return consumeRun{}, err
	}
	if err := ordersv1.RegisterOrderEventHandler(router, consumeHandler{c: c}, runtime.WithName(f.genGroup), runtime.WithTopic(f.topic)); err != nil {
		return consumeRun{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	failed := make(chan error, 1)
	go func() { failed <- router.Run(ctx) }()
	select {
	case <-router.Running():
	case err := <-failed:
		cancel()
		return consumeRun{}, fmt.Errorf("generated: router stopped before running: %v", err)
	case <-time.After(benchTimeout):
		cancel()
		return consumeRun{}, fmt.Errorf("generated: router did not start")
	}
	r, err := c.wait("generated", cpu0, failed)
	// The router acknowledges the last message after the handler returns:
	// give it time to, or JetStream redelivers it a round later.
	time.Sleep(consumeAckGrace)
	cancel()
	if err == nil {
		err = <-failed
	}
	return r, err
}

// consumeRaw subscribes in the raw group, unmarshals and acknowledges
// until n messages were handled. With n == 0 it only subscribes.
func (f *consumeFixture) consumeRaw(n int) (consumeRun, error) {
	c := newConsumeCounter(n, f.want)
	cpu0 := cpuTime()
	sub, err := f.broker.NewSubscriber(f.rawGroup)
	if err != nil {
		return consumeRun{}, err
	}
	defer sub.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := sub.Subscribe(ctx, f.topic)
	if err != nil {
		return consumeRun{}, err
	}
	failed := make(chan error, 1)
	go func() {
		for msg := range msgs {
			event := new(ordersv1.OrderPlaced)
			if err := proto.Unmarshal(msg.Payload, event); err != nil {
				msg.Nack()
				failed <- err
				return
			}
			c.handle(event)
			msg.Ack()
		}
		failed <- fmt.Errorf("subscription closed")
	}()
	r, err := c.wait("raw", cpu0, failed)
	// The subscriber acknowledges to the broker after Ack returns.
	time.Sleep(consumeAckGrace)
	return r, err
}

// deleteNatsStream deletes the stream of topic.
func deleteNatsStream(b *testing.B, base, topic string) {
	conn, err := natsgo.Connect(base)
	if err != nil {
		b.Errorf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	js, err := conn.JetStream()
	if err != nil {
		b.Errorf("cleanup: %v", err)
		return
	}
	stream, err := js.StreamNameBySubject(topic)
	if err != nil {
		b.Errorf("cleanup: stream of %s: %v", topic, err)
		return
	}
	if err := js.DeleteStream(stream); err != nil {
		b.Errorf("cleanup: %v", err)
	}
}

// deleteRedisStream deletes the stream of topic, with its groups.
func deleteRedisStream(b *testing.B, base, topic string) {
	o, err := redis.ParseURL(base)
	if err != nil {
		b.Errorf("cleanup: %v", err)
		return
	}
	c := redis.NewClient(o)
	defer c.Close()
	if err := c.Del(context.Background(), topic).Err(); err != nil {
		b.Errorf("cleanup: %v", err)
	}
}

// deleteAMQPTopology deletes topic's exchange and the two groups' queues.
func deleteAMQPTopology(b *testing.B, base, topic string, groups ...string) {
	conn, err := streadway.Dial(base)
	if err != nil {
		b.Errorf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		b.Errorf("cleanup: %v", err)
		return
	}
	defer ch.Close()
	for _, group := range groups {
		if _, err := ch.QueueDelete(edaamqp.QueueName(topic, group), false, false, false); err != nil {
			b.Errorf("cleanup: %v", err)
			return
		}
	}
	if err := ch.ExchangeDelete(topic, false, false); err != nil {
		b.Errorf("cleanup: %v", err)
	}
}
