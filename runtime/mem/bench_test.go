package mem_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/protoc-gen-eda/eda/runtime/mem"
)

// benchRoundTrip publishes b.N messages from one goroutine and waits until a
// router's no-op handler has handled all of them: publish-to-handled
// throughput, the cost generated code pays per event.
func benchRoundTrip(b *testing.B, pubSub interface {
	message.Publisher
	message.Subscriber
}) {
	const topic = "bench"
	var handled atomic.Int64
	done := make(chan struct{})
	n := int64(b.N)
	runRouter(b, pubSub, topic, func(*message.Message) error {
		if handled.Add(1) == n {
			close(done)
		}
		return nil
	})
	payload := []byte(`{"id":"0123456789","amount":42}`)

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		m := message.NewMessage("", payload)
		if err := pubSub.Publish(topic, m); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatalf("handled %d of %d", handled.Load(), n)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

func BenchmarkRoundTrip(b *testing.B) {
	b.Run("mem", func(b *testing.B) {
		benchRoundTrip(b, newPubSub(b, mem.Config{}))
	})
	b.Run("GoChannel", func(b *testing.B) {
		gc := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
		b.Cleanup(func() { _ = gc.Close() })
		benchRoundTrip(b, gc)
	})
	b.Run("GoChannelBlocking", func(b *testing.B) {
		gc := gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, watermill.NopLogger{})
		b.Cleanup(func() { _ = gc.Close() })
		benchRoundTrip(b, gc)
	})
}

// confirmedBatch is the batch size of BenchmarkPublishConfirmed, the outbox
// relay's default batch.
const confirmedBatch = 100

// BenchmarkPublishConfirmed measures what confirmation costs the outbox
// relay: PublishConfirmed of a batch against the same batch published with
// Publish while the publisher waits, outside the bus, for the handler to
// have handled all of it. Both wait for the same handling; "gen/base" is
// the baseline's time over PublishConfirmed's (1.0 is parity, higher is
// better).
func BenchmarkPublishConfirmed(b *testing.B) {
	const topic = "bench"
	ps := newPubSub(b, mem.Config{})
	var handled, target atomic.Int64
	reached := make(chan struct{}, 1)
	runRouter(b, ps, topic, func(*message.Message) error {
		if handled.Add(1) == target.Load() {
			reached <- struct{}{}
		}
		return nil
	})
	payload := []byte(`{"id":"0123456789","amount":42}`)
	batch := func() []*message.Message {
		msgs := make([]*message.Message, confirmedBatch)
		for i := range msgs {
			msgs[i] = message.NewMessage(watermill.NewUUID(), payload)
		}
		return msgs
	}
	confirmed := func() {
		if err := ps.PublishConfirmed(context.Background(), topic, batch()...); err != nil {
			b.Fatal(err)
		}
	}
	baseline := func() {
		msgs := batch()
		target.Store(handled.Load() + confirmedBatch)
		if err := ps.Publish(topic, msgs...); err != nil {
			b.Fatal(err)
		}
		<-reached
		target.Store(0) // no signal while confirmed runs
	}

	var gen, base time.Duration
	timed := func(f func()) time.Duration {
		start := time.Now()
		f()
		return time.Since(start)
	}
	b.ReportAllocs()
	odd := false
	for b.Loop() {
		// Alternate which goes first, as benchmarks/ does: the second of a
		// pair finds the handler goroutines warm.
		if odd {
			base += timed(baseline)
			gen += timed(confirmed)
		} else {
			gen += timed(confirmed)
			base += timed(baseline)
		}
		odd = !odd
	}
	b.ReportMetric(base.Seconds()/gen.Seconds(), "gen/base")
	b.ReportMetric(float64(2*confirmedBatch)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
