package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/mem"
	_ "github.com/protoc-gen-eda/eda/runtime/nats" // nats://
)

const (
	// orderedBatch is how many messages each variant handles per round.
	orderedBatch = 1024
	// orderedKeys is how many ordering keys the messages spread over.
	orderedKeys = 64
	// orderedInFlight is the MaxInFlight of the concurrent variants.
	orderedInFlight = 64
	// orderedWork is the handler's simulated I/O per message.
	orderedWork = 500 * time.Microsecond
)

// BenchmarkOrderedConcurrency measures a handler whose messages spread over
// 64 ordering keys and whose work is I/O-bound (a 500µs sleep, as a call
// to a database or another service), through runtime.Router on the
// embedded bus and on NATS JetStream, Redis and RabbitMQ
// (EDA_TEST_NATS_URL, EDA_TEST_REDIS_URL, EDA_TEST_AMQP_URL; each skipped
// without its URL). Every round (one op) publishes orderedBatch messages, untimed, to a
// topic of the round, keys in a random interleaving, then runs each variant,
// in a consumer group of its own, until it has handled them all:
//
//   - ordered: MaxInFlight 64, OrderingPartitionKey (the default): one
//     message per key at a time, in order; broker acks in delivery order.
//   - unordered: MaxInFlight 64, OrderingNone: any 64 at once; broker acks
//     in delivery order too.
//   - sequential: MaxInFlight 1, one message at a time (what every handler
//     did before ordered concurrency).
//
// Throughput is timed from a variant's first message handled to its last;
// "ordered/unordered" is the price of keeping each key's order,
// "ordered/sequential" the gain over one message at a time.
func BenchmarkOrderedConcurrency(b *testing.B) {
	b.Run("mem", func(b *testing.B) {
		// Replay, so that a router started after the round's publish still
		// receives its messages.
		bus, err := mem.New(mem.Config{Replay: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = bus.Close() })
		ordered(b, bus, func(string) (message.Subscriber, error) { return sharedBus{bus}, nil }, func(string) {})
	})
	b.Run("nats", func(b *testing.B) {
		base := edatest.ServiceURL(b, edatest.NATSURLEnv)
		broker := openBenchBroker(b, base)
		ordered(b, broker.Publisher, broker.NewSubscriber, func(topic string) { deleteNatsStream(b, base, topic) })
	})
	b.Run("redis", func(b *testing.B) {
		base := edatest.ServiceURL(b, edatest.RedisURLEnv)
		broker := openBenchBroker(b, base)
		ordered(b, broker.Publisher, broker.NewSubscriber, func(topic string) { deleteRedisStream(b, base, topic) })
	})
	b.Run("amqp", func(b *testing.B) {
		base := edatest.ServiceURL(b, edatest.AMQPURLEnv)
		broker := openBenchBroker(b, base)
		ordered(b, broker.Publisher, broker.NewSubscriber, func(topic string) {
			deleteAMQPTopology(b, base, topic, "ordered", "unordered", "sequential")
		})
	})
}

// openBenchBroker opens rawURL until the benchmark ends.
func openBenchBroker(b *testing.B, rawURL string) *runtime.Broker {
	broker, err := runtime.OpenBroker(context.Background(), rawURL, runtime.BrokerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := broker.Close(); err != nil {
			b.Error(err)
		}
	})
	return broker
}

type orderedVariant struct {
	name   string
	policy runtime.DeliveryPolicy
	total  time.Duration
}

func ordered(b *testing.B, pub message.Publisher, newSub func(string) (message.Subscriber, error), drop func(topic string)) {
	variants := []*orderedVariant{
		{name: "ordered", policy: runtime.DeliveryPolicy{MaxInFlight: orderedInFlight}},
		{name: "unordered", policy: runtime.DeliveryPolicy{MaxInFlight: orderedInFlight, Ordering: runtime.OrderingNone}},
		{name: "sequential", policy: runtime.DeliveryPolicy{MaxInFlight: 1}},
	}
	envelopes, err := runtime.NewPublisher(pub, runtime.PublisherConfig{Source: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	run := time.Now().UnixNano()
	rnd := rand.New(rand.NewPCG(1, 2))
	round := 0
	for b.Loop() {
		b.StopTimer()
		topic := fmt.Sprintf("edabench_ordered_%d_%d", run, round)
		round++
		// A queue (AMQP) keeps only what is published after it exists.
		for _, v := range variants {
			if err := initialize(newSub, topic, v.name); err != nil {
				b.Fatal(err)
			}
		}
		if err := publishKeyed(envelopes, pub, topic, rnd); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for i := range variants {
			// Each variant goes first in turn.
			v := variants[(i+round)%len(variants)]
			d, err := consumeOrdered(newSub, topic, v)
			if err != nil {
				b.Fatal(err)
			}
			v.total += d
		}
		b.StopTimer()
		drop(topic)
		b.StartTimer()
	}
	rate := map[string]float64{}
	for _, v := range variants {
		rate[v.name] = float64(orderedBatch*round) / v.total.Seconds()
		b.ReportMetric(rate[v.name], v.name+"-msgs/s")
	}
	b.ReportMetric(rate["ordered"]/rate["unordered"], "ordered/unordered")
	b.ReportMetric(rate["ordered"]/rate["sequential"], "ordered/sequential")
}

// initialize creates what group's subscription to topic needs to keep the
// messages published before it starts, on brokers that need it.
func initialize(newSub func(string) (message.Subscriber, error), topic, group string) error {
	sub, err := newSub(group)
	if err != nil {
		return err
	}
	if si, ok := sub.(message.SubscribeInitializer); ok {
		err = si.SubscribeInitialize(topic)
	}
	return errors.Join(err, sub.Close())
}

// publishKeyed publishes orderedBatch messages to topic, keys in a random
// interleaving, in Publish calls of 256.
func publishKeyed(envelopes *runtime.Publisher, pub message.Publisher, topic string, rnd *rand.Rand) error {
	typ := &runtime.MessageType{Name: "bench.v1.Keyed", Version: 1, Topic: topic}
	ctx := context.Background()
	msgs := make([]*message.Message, 0, 256)
	for i := range orderedBatch {
		m, err := envelopes.NewMessage(ctx, typ, runtime.Outgoing{
			Subject: fmt.Sprintf("key-%d", rnd.IntN(orderedKeys)),
			Message: wrapperspb.String(fmt.Sprint(i)),
		})
		if err != nil {
			return err
		}
		if msgs = append(msgs, m); len(msgs) == cap(msgs) || i == orderedBatch-1 {
			if err := pub.Publish(topic, msgs...); err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			msgs = msgs[:0]
		}
	}
	return nil
}

// consumeOrdered runs a router with v's policy on topic, in consumer group
// v.name, until it has handled orderedBatch messages, and returns the time
// from the first message handled to the last.
func consumeOrdered(newSub func(string) (message.Subscriber, error), topic string, v *orderedVariant) (time.Duration, error) {
	router, err := runtime.NewRouter(runtime.RouterConfig{NewSubscriber: newSub, Publisher: discardPublisher{}, CloseTimeout: 10 * time.Second})
	if err != nil {
		return 0, err
	}
	typ := &runtime.MessageType{Name: "bench.v1.Keyed", Version: 1, Topic: topic, Delivery: v.policy}
	var (
		handled     atomic.Int64
		first, last atomic.Int64
		done        = make(chan struct{})
	)
	err = router.AddHandler(runtime.HandlerSpec{Name: v.name, Topic: topic, Routes: []runtime.Route{
		runtime.On(typ, func(context.Context, *wrapperspb.StringValue) error {
			first.CompareAndSwap(0, time.Now().UnixNano())
			time.Sleep(orderedWork)
			if handled.Add(1) == orderedBatch {
				last.Store(time.Now().UnixNano())
				close(done)
			}
			return nil
		}),
	}})
	if err != nil {
		return 0, err
	}
	if want := v.policy.MaxInFlight; router.MaxInFlight(v.name) != want {
		return 0, fmt.Errorf("%s: the router handles %d at once, want %d", v.name, router.MaxInFlight(v.name), want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- router.Run(ctx) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		return 0, fmt.Errorf("%s: %d of %d messages handled in 2m", v.name, handled.Load(), orderedBatch)
	}
	cancel()
	if err := <-stopped; err != nil {
		return 0, err
	}
	return time.Duration(last.Load() - first.Load()), nil
}

// sharedBus hands the bus to every router, which closes its subscribers
// when it stops; the bus stays open for the next round.
type sharedBus struct{ *mem.PubSub }

func (sharedBus) Close() error { return nil }

// discardPublisher takes dead letters, of which there are none.
type discardPublisher struct{}

func (discardPublisher) Publish(string, ...*message.Message) error { return nil }
func (discardPublisher) Close() error                              { return nil }
