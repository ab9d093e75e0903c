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
// default), to the same subject and stream. One op is one message. Two
// baselines use nats.go alone:
//
//   - raw: hand-written nats.go code, what a service would write without
//     eda: for each message proto.Marshal the event, a new UUIDv7, the
//     time, a nats.Header literal with the same keys and values.
//   - floor: the bytes the generated publisher sent, captured once, sent
//     again with new ids (one header map reused when synchronous): the
//     cost of nats.go and the server alone, which no publisher of new
//     events can reach.
//
// Variants:
//
//   - sync: one goroutine, each publish waits for its acknowledgement.
//     generated is OrderEventPublisher.PublishOrderPlaced; raw and floor
//     js.PublishMsg.
//   - async: publishes without waiting for each acknowledgement, at most
//     natsInFlight waiting, then a wait for them all. generated is
//     PublishOrderPlaced on a publisher over a runtime.Batch, with a Flush
//     every natsChunk messages (the broker is opened with
//     max_publish_pending=natsInFlight); raw and floor are
//     js.PublishMsgAsync with a window of natsInFlight and a wait for
//     PublishAsyncComplete every natsChunk messages. concurrent is the
//     generated publisher without a Batch, called from natsInFlight
//     goroutines, each waiting for its own acknowledgement.
//   - interleaved: the variants take turns in one loop (sync: one message
//     each; async: natsChunk messages each), each going first in turn, and
//     report generated's throughput as a fraction of the others', for
//     example "gen/raw", by wall time and by the process's CPU time
//     ("gen/raw-cpu": raw's CPU per message over generated's). The NATS
//     server shares the machine, so the client's CPU is what a variant
//     costs, and wall time is noisy.
func BenchmarkNats(b *testing.B) {
	f := newNatsFixture(b)
	b.Run("sync/generated", func(b *testing.B) { natsPerMessage(b, f.generatedSync) })
	b.Run("sync/raw", func(b *testing.B) { natsPerMessage(b, f.rawSync) })
	b.Run("sync/floor", func(b *testing.B) { natsPerMessage(b, f.floorSync) })
	b.Run("sync/interleaved", func(b *testing.B) {
		natsInterleave(b, []natsVariant{
			{name: "gen", publish: func(int) error { return f.generatedSync() }},
			{name: "raw", publish: func(int) error { return f.rawSync() }},
			{name: "floor", publish: func(int) error { return f.floorSync() }},
		}, 1)
	})
	b.Run("async/generated", func(b *testing.B) { natsBulk(b, f.generatedBatch) })
	b.Run("async/concurrent", func(b *testing.B) { natsBulk(b, f.generatedParallel) })
	b.Run("async/raw", func(b *testing.B) { natsBulk(b, f.rawAsync) })
	b.Run("async/floor", func(b *testing.B) { natsBulk(b, f.floorAsync) })
	b.Run("async/interleaved", func(b *testing.B) {
		natsInterleave(b, []natsVariant{
			{name: "gen", publish: f.generatedBatch},
			{name: "raw", publish: f.rawAsync},
			{name: "floor", publish: f.floorAsync},
		}, natsChunk)
	})
	b.Run("async/concurrent-interleaved", func(b *testing.B) {
		natsInterleave(b, []natsVariant{
			{name: "concurrent", publish: f.generatedParallel},
			{name: "raw", publish: f.rawAsync},
		}, natsChunk)
	})
}

// natsVariant is one variant of the interleaved comparison.
type natsVariant struct {
	name    string
	publish func(n int) error
	total   natsTotal
}

// natsInterleave runs each variant in turn, chunk messages each, and
// reports the first's throughput over each other's: name/other, by wall
// and by CPU time.
func natsInterleave(b *testing.B, variants []natsVariant, chunk int) {
	first := 0
	for b.Loop() {
		for i := range variants {
			v := &variants[(first+i)%len(variants)]
			v.total.add(b, func() error { return v.publish(chunk) })
		}
		first++
	}
	for _, v := range variants[1:] {
		natsRatio(b, variants[0].name+"/"+v.name, variants[0].total, v.total)
	}
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

// natsRatio reports v's throughput as a fraction of base's, by wall time
// (name) and by process CPU time (name+"-cpu": base's CPU per message over
// v's; the server's CPU is not counted).
func natsRatio(b *testing.B, name string, v, base natsTotal) {
	b.ReportMetric(base.wall.Seconds()/v.wall.Seconds(), name)
	if v.cpu > 0 && base.cpu > 0 {
		b.ReportMetric(base.cpu.Seconds()/v.cpu.Seconds(), name+"-cpu")
	}
}

// natsFixture is a broker, a raw connection, and what both publish.
type natsFixture struct {
	events *ordersv1.OrderEventPublisher
	// batch queues what batchEvents publishes.
	batch       *runtime.Batch
	batchEvents *ordersv1.OrderEventPublisher
	event       *ordersv1.OrderPlaced
	subject     string
	// payload and header are what the generated publisher sent for event,
	// for floor to send.
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
	broker, err := runtime.OpenBroker(ctx, fmt.Sprintf("%s?prefix=%s&max_publish_pending=%d", base, prefix, natsInFlight), runtime.BrokerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = broker.Close() })
	pub, err := runtime.NewPublisher(broker.Publisher, runtime.PublisherConfig{Source: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	batch := runtime.NewBatch(broker.Publisher)
	batchPub, err := runtime.NewPublisher(batch, runtime.PublisherConfig{Source: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	f := &natsFixture{
		events:      ordersv1.NewOrderEventPublisher(pub),
		batch:       batch,
		batchEvents: ordersv1.NewOrderEventPublisher(batchPub),
		event:       newEvent(),
		subject:     prefix + "." + ordersv1.OrderEventsTopic,
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

// handwritten builds the message hand-written nats.go code would publish
// for event: what the generated publisher sends, built directly.
func handwritten(subject string, event *ordersv1.OrderPlaced) (*natsgo.Msg, error) {
	payload, err := proto.Marshal(event)
	if err != nil {
		return nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	ids := id.String()
	return &natsgo.Msg{Subject: subject, Data: payload, Header: natsgo.Header{
		"_watermill_message_uuid": {ids},
		natsgo.MsgIdHdr:           {ids},
		runtime.MetaID:            {ids},
		runtime.MetaType:          {ordersv1.OrderPlacedEventType},
		runtime.MetaSource:        {"bench"},
		runtime.MetaTime:          {time.Now().UTC().Format(time.RFC3339Nano)},
		runtime.MetaContentType:   {runtime.ContentTypeProtobuf},
		runtime.MetaSubject:       {event.GetOrderId()},
		runtime.MetaPartitionKey:  {event.GetCustomerId()},
		runtime.MetaAggregateType: {"shop.orders.v1.Order"},
	}}, nil
}

// rawSync publishes event with hand-written nats.go code.
func (f *natsFixture) rawSync() error {
	m, err := handwritten(f.subject, f.event)
	if err != nil {
		return err
	}
	_, err = f.js.PublishMsg(m)
	return err
}

// floorSync publishes the captured bytes with new ids, as the generated
// publisher does, reusing one header: the floor of a synchronous publish.
func (f *natsFixture) floorSync() error {
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

// generatedBatch publishes n events with the generated publisher over a
// runtime.Batch, flushing every natsChunk.
func (f *natsFixture) generatedBatch(n int) error {
	ctx := context.Background()
	for sent := 0; sent < n; {
		for ; f.batch.Len() < natsChunk && sent < n; sent++ {
			if err := f.batchEvents.PublishOrderPlaced(ctx, f.event); err != nil {
				return err
			}
		}
		if err := f.batch.Flush(); err != nil {
			return err
		}
	}
	return nil
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

// rawAsync publishes n events with hand-written nats.go code,
// PublishMsgAsync with at most natsInFlight unacknowledged, waiting for
// every acknowledgement every natsChunk messages and at the end.
func (f *natsFixture) rawAsync(n int) error {
	return f.async(n, func() (*natsgo.Msg, error) { return handwritten(f.subject, f.event) })
}

// floorAsync is rawAsync with the captured bytes and new ids. Each message
// has a header of its own: nats.go keeps the message until it is
// acknowledged.
func (f *natsFixture) floorAsync(n int) error {
	return f.async(n, func() (*natsgo.Msg, error) {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, err
		}
		ids := id.String()
		h := make(natsgo.Header, len(f.header))
		for k, v := range f.header {
			h[k] = v
		}
		h["_watermill_message_uuid"] = []string{ids}
		h[natsgo.MsgIdHdr] = []string{ids}
		h[runtime.MetaID] = []string{ids}
		return &natsgo.Msg{Subject: f.subject, Data: f.payload, Header: h}, nil
	})
}

func (f *natsFixture) async(n int, next func() (*natsgo.Msg, error)) error {
	for sent := 0; sent < n; {
		for end := min(sent+natsChunk, n); sent < end; sent++ {
			m, err := next()
			if err != nil {
				return err
			}
			if _, err := f.asyncJS.PublishMsgAsync(m, natsgo.StallWait(benchTimeout)); err != nil {
				return err
			}
		}
		select {
		case <-f.asyncJS.PublishAsyncComplete():
		case <-time.After(benchTimeout):
			return fmt.Errorf("%d acknowledgements missing after %s", f.asyncJS.PublishAsyncPending(), benchTimeout)
		}
	}
	if n := f.asyncErrs.Load(); n > 0 {
		return fmt.Errorf("%d asynchronous publishes failed", n)
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
// encoding, and the hand-written message has the generated publisher's
// payload and headers (ids and time aside).
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
	hand, err := handwritten("s", newEvent())
	if err != nil {
		t.Fatal(err)
	}
	if string(hand.Data) != string(want) {
		t.Error("the hand-written payload is not the event's binary encoding")
	}
	// What runtime/nats sends: the metadata, the id twice more.
	gen := natsgo.Header{"_watermill_message_uuid": {capture.msg.UUID}, natsgo.MsgIdHdr: {capture.msg.UUID}}
	for k, v := range capture.msg.Metadata {
		gen[k] = []string{v}
	}
	if len(hand.Header) != len(gen) {
		t.Errorf("hand-written headers %v, generated %v", hand.Header, gen)
	}
	for k, v := range gen {
		switch k {
		case runtime.MetaTime:
			if _, err := time.Parse(time.RFC3339Nano, hand.Header.Get(k)); err != nil {
				t.Errorf("hand-written %s: %v", k, err)
			}
		case runtime.MetaID, natsgo.MsgIdHdr, "_watermill_message_uuid":
			if id := hand.Header.Get(k); id != hand.Header.Get(runtime.MetaID) || len(id) != len(v[0]) {
				t.Errorf("hand-written %s=%q, want the message's id", k, id)
			}
		default:
			if hand.Header.Get(k) != v[0] {
				t.Errorf("hand-written has %s=%q, generated %q", k, hand.Header.Get(k), v[0])
			}
		}
	}
}
