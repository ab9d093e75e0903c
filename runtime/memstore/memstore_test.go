package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/memstore"
	"github.com/protoc-gen-eda/eda/runtime/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		Open: func(*testing.T) runtime.EventStore { return memstore.New() },
	})
}

func event(n int) runtime.EventRecord {
	return runtime.EventRecord{
		ID: uuid.NewString(), Type: "memstore.test.Event", SchemaVersion: 1,
		ContentType: "application/x-protobuf", Data: []byte("payload-" + strconv.Itoa(n)),
		Metadata: []byte(`{"source":"memstore_test"}`),
	}
}

func events(n int) []runtime.EventRecord {
	evs := make([]runtime.EventRecord, n)
	for i := range evs {
		evs[i] = event(i)
	}
	return evs
}

func stream(id string) runtime.StreamID { return runtime.StreamID{Type: "memstore.test.Agg", ID: id} }

// TestCallsFromFn checks the documented property that fn runs without the
// store's lock: it may read and append without deadlocking.
func TestCallsFromFn(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	defer s.Close()
	if _, err := s.Append(ctx, runtime.AppendRequest{Stream: stream("a"), Events: events(3)}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- s.ReadAll(ctx, 0, 0, func(r *runtime.EventRecord) error {
			if err := s.ReadStream(ctx, r.Stream, 0, func(*runtime.EventRecord) error { return nil }); err != nil {
				return err
			}
			_, err := s.Append(ctx, runtime.AppendRequest{Stream: stream("b"), ExpectedVersion: runtime.AnyVersion, Events: events(1)})
			return err
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(storetest.Timeout):
		t.Fatal("ReadAll with a fn that calls the store deadlocked")
	}
	// The read saw the log as it was when it started: 3 events, 3 appends.
	n := 0
	if err := s.ReadStream(ctx, stream("b"), 0, func(*runtime.EventRecord) error { n++; return nil }); err != nil || n != 3 {
		t.Errorf("stream b has %d events (err %v), want 3", n, err)
	}
}

// TestReadStreamAllocs checks that reading a stream costs one allocation
// whatever its length and whatever else the store holds.
func TestReadStreamAllocs(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	defer s.Close()
	for i := range 1000 {
		if _, err := s.Append(ctx, runtime.AppendRequest{Stream: stream(strconv.Itoa(i % 10)), ExpectedVersion: runtime.AnyVersion, Events: events(1)}); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	fn := func(*runtime.EventRecord) error { n++; return nil }
	allocs := testing.AllocsPerRun(100, func() {
		if err := s.ReadStream(ctx, stream("3"), 0, fn); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("ReadStream of 100 events allocates %v times, want at most 1 (the record handed to fn)", allocs)
	}
	if n != 101*100 { // AllocsPerRun runs once more to warm up
		t.Errorf("fn called %d times, want %d", n, 101*100)
	}
}

// TestPublishOwnsMessages checks that publish may modify or keep what it is
// given: a failed batch is relayed again unchanged.
func TestPublishOwnsMessages(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	defer s.Close()
	msg := runtime.OutboxMessage{Topic: "t", UUID: uuid.NewString(), Metadata: []byte(`{"k":"v"}`), Payload: []byte("payload")}
	if _, err := s.Append(ctx, runtime.AppendRequest{Stream: stream("a"), Events: events(1), Outbox: []runtime.OutboxMessage{msg}}); err != nil {
		t.Fatal(err)
	}
	fail := errors.New("fail")
	if _, err := s.RelayOutbox(ctx, 10, func(msgs []runtime.OutboxMessage) error {
		copy(msgs[0].Payload, "XXXXXXX")
		copy(msgs[0].Metadata, "XXXXXXX")
		return fail
	}); !errors.Is(err, fail) {
		t.Fatalf("RelayOutbox: %v, want publish's error", err)
	}
	if _, err := s.RelayOutbox(ctx, 10, func(msgs []runtime.OutboxMessage) error {
		if string(msgs[0].Payload) != "payload" || string(msgs[0].Metadata) != `{"k":"v"}` {
			t.Errorf("relayed again as %q %q: publish's changes reached the store", msgs[0].Payload, msgs[0].Metadata)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestEmptyTopicRejected checks that Append refuses an outbox message the
// relay could never publish.
func TestEmptyTopicRejected(t *testing.T) {
	s := memstore.New()
	defer s.Close()
	_, err := s.Append(context.Background(), runtime.AppendRequest{Stream: stream("a"), Events: events(1), Outbox: []runtime.OutboxMessage{{UUID: "m"}}})
	if err == nil {
		t.Fatal("Append with an outbox message without topic succeeded")
	}
}

// TestCloseTwice checks that the second Close reports the store closed.
func TestCloseTwice(t *testing.T) {
	s := memstore.New()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, runtime.ErrStoreClosed) {
		t.Errorf("second Close: %v, want ErrStoreClosed", err)
	}
}

// benchEvents is the stream length BenchmarkReadStream reads.
const benchEvents = 10_000

// BenchmarkReadStream reads a stream of 10,000 events, alone in the store
// and interleaved with nine other streams as long: the per-stream index
// makes both cost the same.
func BenchmarkReadStream(b *testing.B) {
	for _, others := range []int{0, 9} {
		b.Run(fmt.Sprintf("others=%d", others), func(b *testing.B) {
			ctx := context.Background()
			s := memstore.New()
			defer s.Close()
			for i := range benchEvents {
				for o := 0; o <= others; o++ {
					_, err := s.Append(ctx, runtime.AppendRequest{Stream: stream(strconv.Itoa(o)), ExpectedVersion: uint64(i), Events: events(1)})
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			var n int
			fn := func(r *runtime.EventRecord) error { n += len(r.Data); return nil }
			b.ReportAllocs()
			for b.Loop() {
				if err := s.ReadStream(ctx, stream("0"), 0, fn); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchEvents), "ns/event")
		})
	}
}

// BenchmarkAppend appends one event per call to one stream.
func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	s := memstore.New()
	defer s.Close()
	evs := events(b.N) // ids must be fresh; built before the timer
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Append(ctx, runtime.AppendRequest{Stream: stream("a"), ExpectedVersion: uint64(i), Events: evs[i : i+1]}); err != nil {
			b.Fatal(err)
		}
	}
}
