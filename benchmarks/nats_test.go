package benchmarks

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	natsgo "github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	ordersv1 "github.com/protoc-gen-eda/eda/examples/orders/gen/shop/orders/v1"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
	_ "github.com/protoc-gen-eda/eda/runtime/nats" // nats://
)

// natsInFlight bounds the messages published but not yet acknowledged in
// the asynchronous variants: raw's PublishAsync window, the number of
// goroutines publishing with the generated publisher, and the batch size of
// the broker's batch publish.
const natsInFlight = 256

// natsChunk is how many messages each variant publishes per turn in the
// interleaved asynchronous comparison.
const natsChunk = 8 * natsInFlight

// natsStreamMaxMsgs bounds the benchmark's stream, so that long runs do not
// fill the server's disk: the oldest messages are discarded, for every
// variant alike.
const natsStreamMaxMsgs = 100_000

// BenchmarkNats publishes OrderPlaced to NATS JetStream (the server of
// EDA_TEST_NATS_URL, skipped without it) and waits for JetStream to store
// it, with the generated publisher over runtime/nats and with nats.go alone
// sending the same bytes: the same payload, the same headers (the envelope,
// Watermill's message id header and a Nats-Msg-Id, as runtime/nats sends by
// default), to the same subject and stream. One op is one message.
//
//   - sync: one goroutine, each publish waits for its acknowledgement.
//     generated is OrderEventPublisher.PublishOrderPlaced; raw is
//     js.PublishMsg with the headers built once (only the ids change).
//   - async: the generated publisher has no asynchronous mode, so
//     "generated" is PublishOrderPlaced from natsInFlight goroutines, against
//     raw js.PublishMsgAsync with a window of natsInFlight pending
//     acknowledgements, waiting for them all at the end. "batch" is the
//     broker's own asynchronous path, taken when one Publish call carries
//     several messages (the outbox relay does): runtime.Publisher.NewMessage
//     for natsInFlight events, then one Publish of all of them.
//   - interleaved: the variants take turns in one loop (sync: one message
//     each; async: natsChunk messages each) and report generated's
//     throughput as a fraction of raw's, "gen/raw" (and "batch/raw"), by
//     wall time and by the process's CPU time ("gen/raw-cpu": raw's CPU per
//     message over generated's). The NATS server shares the machine, so
//     the client's CPU is what a variant costs, and wall time is noisy.
func BenchmarkNats(b *testing.B) {
	f := newNatsFixture(b)
	b.Run("sync/generated", func(b *testing.B) { natsPerMessage(b, f.generatedSync) })
	b.Run("sync/raw", func(b *testing.B) { natsPerMessage(b, f.rawSync) })
	b.Run("sync/interleaved", func(b *testing.B) {
		var gen, raw natsTotal
		odd := false
		for b.Loop() {
			if odd {
				raw.add(b, f.rawSync)
				gen.add(b, f.generatedSync)
			} else {
				gen.add(b, f.generatedSync)
				raw.add(b, f.rawSync)
			}
			odd = !odd
		}
		natsRatio(b, "gen", gen, raw)
	})
	b.Run("async/generated", func(b *testing.B) { natsBulk(b, f.generatedParallel) })
	b.Run("async/batch", func(b *testing.B) { natsBulk(b, f.batch) })
	b.Run("async/raw", func(b *testing.B) { natsBulk(b, f.rawAsync) })
	b.Run("async/interleaved", func(b *testing.B) {
		variants := []struct {
			publish func(n int) error
			total   natsTotal
		}{{publish: f.generatedParallel}, {publish: f.batch}, {publish: f.rawAsync}}
		first := 0
		for b.Loop() {
			// Each goes first in turn.
			for i := range variants {
				v := &variants[(first+i)%len(variants)]
				v.total.add(b, func() error { return v.publish(natsChunk) })
			}
			first++
		}
		natsRatio(b, "gen", variants[0].total, variants[2].total)
		natsRatio(b, "batch", variants[1].total, variants[2].total)
	})
}

// natsTotal adds up the wall and process CPU time of one variant's turns.
type natsTotal struct{ wall, cpu time.Duration }

func (t *natsTotal) add(b *testing.B, f func() error) {
	cpu0 := cpuTime()
	start := time.Now()
	if err := f(); err != nil {
		b.Fatal(err)
	}
	t.wall += time.Since(start)
	t.cpu += cpuTime() - cpu0
}

// natsRatio reports name's throughput as a fraction of raw's, by wall time
// ("name/raw") and by process CPU time ("name/raw-cpu": raw's CPU per
// message over name's; the server's CPU is not counted).
func natsRatio(b *testing.B, name string, v, raw natsTotal) {
	b.ReportMetric(raw.wall.Seconds()/v.wall.Seconds(), name+"/raw")
	if v.cpu > 0 && raw.cpu > 0 {
		b.ReportMetric(raw.cpu.Seconds()/v.cpu.Seconds(), name+"/raw-cpu")
	}
}

// natsFixture is a broker, a raw connection, and what both publish.
type natsFixture struct {
	events  *ordersv1.OrderEventPublisher
	pub     *runtime.Publisher
	broker  *runtime.Broker
	event   *ordersv1.OrderPlaced
	subject string
	// payload and header are what the generated publisher sent for event,
	// for raw to send.
	payload []byte
	header  natsgo.Header
	js      natsgo.JetStreamContext
	asyncJS natsgo.JetStreamContext
	// asyncErrs counts raw asynchronous publishes that failed.
	asyncErrs atomic.Int64
	// jobs feeds generatedParallel's workers, started once.
	jobs         chan *natsJob
	startWorkers sync.Once
}

func newNatsFixture(b *testing.B) *natsFixture {
	base := edatest.ServiceURL(b, edatest.NATSURLEnv)
	prefix := fmt.Sprintf("edabench_%d", time.Now().UnixNano())
	ctx := context.Background()
	broker, err := runtime.OpenBroker(ctx, base+"?prefix="+prefix, runtime.BrokerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = broker.Close() })
	pub, err := runtime.NewPublisher(broker.Publisher, runtime.PublisherConfig{Source: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	f := &natsFixture{
		events:  ordersv1.NewOrderEventPublisher(pub),
		pub:     pub,
		broker:  broker,
		event:   newEvent(),
		subject: prefix + "." + ordersv1.OrderEventsTopic,
	}
	b.Cleanup(func() {
		if f.jobs != nil {
			close(f.jobs)
		}
	})

	// The bytes the generated publisher sends, as nats.go would send them.
	capture := &capturePublisher{}
	capPub, err := runtime.NewPublisher(capture, runtime.PublisherConfig{Source: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	if err := ordersv1.NewOrderEventPublisher(capPub).PublishOrderPlaced(ctx, f.event); err != nil {
		b.Fatal(err)
	}
	f.payload = capture.msg.Payload
	f.header = natsgo.Header{"_watermill_message_uuid": {capture.msg.UUID}, natsgo.MsgIdHdr: {capture.msg.UUID}}
	for k, v := range capture.msg.Metadata {
		f.header.Set(k, v)
	}

	conn, err := natsgo.Connect(base)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(conn.Close)
	if f.js, err = conn.JetStream(); err != nil {
		b.Fatal(err)
	}
	f.asyncJS, err = conn.JetStream(natsgo.PublishAsyncMaxPending(natsInFlight),
		natsgo.PublishAsyncErrHandler(func(natsgo.JetStream, *natsgo.Msg, error) { f.asyncErrs.Add(1) }))
	if err != nil {
		b.Fatal(err)
	}
	// The first publish creates the stream; then bound it.
	if err := f.generatedSync(); err != nil {
		b.Fatal(err)
	}
	stream, err := f.js.StreamNameBySubject(f.subject)
	if err != nil {
		b.Fatal(err)
	}
	info, err := f.js.StreamInfo(stream)
	if err != nil {
		b.Fatal(err)
	}
	cfg := info.Config
	cfg.MaxMsgs = natsStreamMaxMsgs
	if _, err := f.js.UpdateStream(&cfg); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := f.js.DeleteStream(stream); err != nil {
			b.Error(err)
		}
	})
	return f
}

// capturePublisher keeps the last message published.
type capturePublisher struct{ msg *message.Message }

func (c *capturePublisher) Publish(_ string, msgs ...*message.Message) error {
	c.msg = msgs[len(msgs)-1]
	return nil
}

func (c *capturePublisher) Close() error { return nil }

func (f *natsFixture) generatedSync() error {
	return f.events.PublishOrderPlaced(context.Background(), f.event)
}

// rawSync publishes the captured bytes with new ids, as the generated
// publisher does, reusing one header: the floor of a synchronous publish.
func (f *natsFixture) rawSync() error {
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	ids := id.String()
	f.header["_watermill_message_uuid"][0] = ids
	f.header[natsgo.MsgIdHdr][0] = ids
	f.header[runtime.MetaID][0] = ids
	_, err = f.js.PublishMsg(&natsgo.Msg{Subject: f.subject, Data: f.payload, Header: f.header})
	return err
}

// natsJob is n events for the workers of generatedParallel to publish.
type natsJob struct {
	n    int64
	next atomic.Int64
	wg   sync.WaitGroup
	mu   sync.Mutex
	err  error
}

// generatedParallel publishes n events from natsInFlight goroutines, started
// once: each turn of the interleaved benchmark would otherwise pay for
// starting them and growing their stacks.
func (f *natsFixture) generatedParallel(n int) error {
	f.startWorkers.Do(func() {
		f.jobs = make(chan *natsJob)
		for range natsInFlight {
			go func() {
				for job := range f.jobs {
					for job.next.Add(1) <= job.n {
						if err := f.generatedSync(); err != nil {
							job.mu.Lock()
							job.err = err
							job.mu.Unlock()
							break
						}
					}
					job.wg.Done()
				}
			}()
		}
	})
	job := &natsJob{n: int64(n)}
	job.wg.Add(natsInFlight)
	for range natsInFlight {
		f.jobs <- job
	}
	job.wg.Wait()
	return job.err
}

var orderPlacedType = &runtime.MessageType{
	Name:          ordersv1.OrderPlacedEventType,
	Topic:         ordersv1.OrderEventsTopic,
	Version:       1,
	AggregateType: "shop.orders.v1.Order",
}

// batch publishes n events in Publish calls of natsInFlight messages.
func (f *natsFixture) batch(n int) error {
	ctx := context.Background()
	msgs := make([]*message.Message, 0, natsInFlight)
	for sent := 0; sent < n; {
		msgs = msgs[:0]
		for ; len(msgs) < natsInFlight && sent < n; sent++ {
			msg, err := f.pub.NewMessage(ctx, orderPlacedType, runtime.Outgoing{
				Subject: f.event.GetOrderId(), PartitionKey: f.event.GetCustomerId(), Message: f.event,
			})
			if err != nil {
				return err
			}
			msgs = append(msgs, msg)
		}
		if err := f.broker.Publisher.Publish(ordersv1.OrderEventsTopic, msgs...); err != nil {
			return err
		}
	}
	return nil
}

// rawAsync publishes n messages of the captured bytes with PublishMsgAsync,
// at most natsInFlight unacknowledged, and waits for every acknowledgement.
// Each message has a header of its own: nats.go keeps the message until it
// is acknowledged.
func (f *natsFixture) rawAsync(n int) error {
	for range n {
		id, err := uuid.NewV7()
		if err != nil {
			return err
		}
		ids := id.String()
		h := make(natsgo.Header, len(f.header))
		for k, v := range f.header {
			h[k] = v
		}
		h["_watermill_message_uuid"] = []string{ids}
		h[natsgo.MsgIdHdr] = []string{ids}
		h[runtime.MetaID] = []string{ids}
		if _, err := f.asyncJS.PublishMsgAsync(&natsgo.Msg{Subject: f.subject, Data: f.payload, Header: h}, natsgo.StallWait(benchTimeout)); err != nil {
			return err
		}
	}
	select {
	case <-f.asyncJS.PublishAsyncComplete():
	case <-time.After(benchTimeout):
		return fmt.Errorf("raw: %d acknowledgements missing after %s", f.asyncJS.PublishAsyncPending(), benchTimeout)
	}
	if n := f.asyncErrs.Load(); n > 0 {
		return fmt.Errorf("raw: %d asynchronous publishes failed", n)
	}
	return nil
}

// natsPerMessage runs publish b.N times, one message each.
func natsPerMessage(b *testing.B, publish func() error) {
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		if err := publish(); err != nil {
			b.Fatal(err)
		}
	}
	natsReport(b, cpu0)
}

// natsBulk publishes b.N messages in one call of publish.
func natsBulk(b *testing.B, publish func(n int) error) {
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	if err := publish(b.N); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	natsReport(b, cpu0)
}

func natsReport(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/msg")
	}
}

// TestNatsBenchBytes checks that the variants of BenchmarkNats send the
// same bytes: the generated publisher's payload is the event's binary
// encoding, and batch's messages carry the generated publisher's metadata
// (ids and time aside).
func TestNatsBenchBytes(t *testing.T) {
	want, err := proto.Marshal(newEvent())
	if err != nil {
		t.Fatal(err)
	}
	capture := &capturePublisher{}
	pub, err := runtime.NewPublisher(capture, runtime.PublisherConfig{Source: "bench"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ordersv1.NewOrderEventPublisher(pub).PublishOrderPlaced(context.Background(), newEvent()); err != nil {
		t.Fatal(err)
	}
	if string(capture.msg.Payload) != string(want) {
		t.Fatal("the generated publisher's payload is not the event's binary encoding")
	}
	event := newEvent()
	batch, err := pub.NewMessage(context.Background(), orderPlacedType, runtime.Outgoing{
		Subject: event.GetOrderId(), PartitionKey: event.GetCustomerId(), Message: event,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(batch.Metadata) != len(capture.msg.Metadata) {
		t.Errorf("batch metadata %v, generated %v", batch.Metadata, capture.msg.Metadata)
	}
	for k, v := range capture.msg.Metadata {
		if k != runtime.MetaID && k != runtime.MetaTime && batch.Metadata.Get(k) != v {
			t.Errorf("batch has %s=%q, generated %q", k, batch.Metadata.Get(k), v)
		}
	}
}
