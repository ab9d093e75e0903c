package mem_test

import (
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
