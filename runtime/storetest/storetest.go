// Package storetest is the conformance suite every runtime.EventStore
// backend passes, as every Watermill Pub/Sub passes Watermill's pubsub/tests.
//
// A backend's test calls Run with a Backend that opens fresh stores:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Backend{
//			Open: func(t *testing.T) runtime.EventStore { return memstore.New() },
//		})
//	}
//
// Every clause of the runtime.EventStore contract, and the extra rules the
// backends agreed on (request validation, store-set fields, idempotent
// re-append, commit-ordered global positions, ErrStoreClosed after Close,
// cancelled contexts), is a named subtest, so a failure names the clause it
// breaks. Subtests run one after another: the concurrency tests measure the
// backend's own concurrency, not the test runner's. Every subtest is bounded
// by Timeout.
//
// # Readings of the contract
//
// Where the contract leaves a choice open, the suite checks the reading that
// is safest for users:
//
//   - Positions start at 1 (ReadAll after 0 returns the first event), and
//     Metadata comes back byte for byte: store it as bytes, not as a JSON
//     type that re-encodes it.
//   - Idempotency depends on the event ids alone: re-appending the same
//     events returns the first result even when the request's
//     ExpectedVersion is stale by now or AnyVersion, and identical appends
//     racing each other all succeed with that result. The same ids in
//     another order are ErrDuplicateEvent; so is one id racing into two
//     streams. A request holding one id twice is an error.
//   - A failing publish makes RelayOutbox return 0 and an error wrapping
//     publish's error. Whether publish is called with an empty batch is
//     left open.
//   - A cancelled or expired context, before or during a call, gives an
//     error wrapping the context's error, so callers can tell it from a
//     store failure.
//   - A second Close returns nil or ErrStoreClosed. Closing one shared
//     handle leaves the others working.
//
// Left open and not tested: whether a snapshot at the stored version
// replaces it, what re-appending only part of an earlier append returns,
// and what RelayOutbox does with limit <= 0.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	goruntime "runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/protoc-gen-eda/eda/runtime"
)

// Timeout bounds every subtest, including its waits for goroutines. It is
// generous because the concurrency subtests do a few thousand appends, which
// under the race detector on a database backend take seconds.
const Timeout = 2 * time.Minute

// clockSkew is how far RecordedAt may lie outside the test's own clock
// readings around an append: a database server may stamp commits with its
// own, slightly different clock.
const clockSkew = time.Minute

// hangTimeout is how long a subtest may run before the watchdog ends the
// test binary. It leaves Timeout to the subtest's own waits, which fail
// more helpfully, and a minute for the calls after them.
const hangTimeout = Timeout + time.Minute

// watchdog bounds a subtest even when a store call ignores its context or
// deadlocks, which no wait in the test can interrupt: after hangTimeout it
// panics with every goroutine's stack, as go test -timeout does, but
// naming the subtest. It is stopped by the test's first Cleanup, so that
// it runs last and bounds the other Cleanups (Close) too.
func watchdog(t *testing.T) {
	name := t.Name()
	timer := time.AfterFunc(hangTimeout, func() {
		buf := make([]byte, 1<<20)
		buf = buf[:goruntime.Stack(buf, true)]
		panic(fmt.Sprintf("storetest: %s still running after %v: a store call hangs\n\n%s", name, hangTimeout, buf))
	})
	t.Cleanup(func() { timer.Stop() })
}

// Backend opens stores for the suite.
type Backend struct {
	// Open returns a new, empty store. The suite closes it (Cleanup) unless a
	// test closes it itself.
	Open func(t *testing.T) runtime.EventStore
	// Share, when set, returns another handle on the same data as s, as a
	// second process would open it (same database file, same PostgreSQL
	// schema). nil for in-memory stores.
	Share func(t *testing.T, s runtime.EventStore) runtime.EventStore
}

// test is one conformance test.
type test struct {
	name string
	fn   func(t *testing.T, b Backend)
}

// group is a named set of tests, run as one subtest with a subtest each.
type group struct {
	name  string
	tests []test
}

// Run runs every conformance test as a subtest of t.
func Run(t *testing.T, b Backend) {
	t.Helper()
	if b.Open == nil {
		t.Fatal("storetest: Backend.Open is nil: set it to a function that opens a new, empty store")
	}
	groups := []group{
		{"Append", appendTests},
		{"Read", readTests},
		{"Concurrency", concurrencyTests},
		{"Snapshot", snapshotTests},
		{"Outbox", outboxTests},
		{"Lifecycle", lifecycleTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					watchdog(t)
					tc.fn(t, b)
				})
			}
		})
	}
}

// open opens a store and closes it when the test ends. A second Close (the
// test closed the store itself) may return nil or ErrStoreClosed.
func open(t *testing.T, b Backend) runtime.EventStore {
	t.Helper()
	s := b.Open(t)
	if s == nil {
		t.Fatal("Backend.Open returned a nil store")
	}
	t.Cleanup(func() { closeQuietly(t, s) })
	return s
}

// share returns a second handle on s's data, closed when the test ends, or
// nil when the backend has no Share.
func share(t *testing.T, b Backend, s runtime.EventStore) runtime.EventStore {
	t.Helper()
	if b.Share == nil {
		return nil
	}
	s2 := b.Share(t, s)
	if s2 == nil {
		t.Fatal("Backend.Share returned a nil store")
	}
	t.Cleanup(func() { closeQuietly(t, s2) })
	return s2
}

// handles returns s and, when the backend can share, a second handle on its
// data, for tests that spread their goroutines over processes.
func handles(t *testing.T, b Backend, s runtime.EventStore) []runtime.EventStore {
	t.Helper()
	hs := []runtime.EventStore{s}
	if s2 := share(t, b, s); s2 != nil {
		hs = append(hs, s2)
	}
	return hs
}

func closeQuietly(t *testing.T, s runtime.EventStore) {
	t.Helper()
	if err := s.Close(); err != nil && !errors.Is(err, runtime.ErrStoreClosed) {
		t.Errorf("Close: %v", err)
	}
}

// testContext returns a context that ends after Timeout or with the test.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), Timeout)
	t.Cleanup(cancel)
	return ctx
}

// Record building.

const (
	streamType  = "storetest.v1.Order"
	eventType   = "storetest.v1.ItemAdded"
	contentType = "application/x-protobuf"
	topic       = "storetest.v1.events"
)

// newStream returns a stream no other test uses.
func newStream() runtime.StreamID {
	return runtime.StreamID{Type: streamType, ID: "order-" + uuid.NewString()}
}

// newID returns a time-ordered event id, as the runtime's envelopes use.
func newID() string { return uuid.Must(uuid.NewV7()).String() }

// newEvent returns an event with every caller-set field filled, n making its
// data and metadata distinct.
func newEvent(n int) runtime.EventRecord {
	md, err := runtime.EncodeMetadata(map[string]string{"source": "storetest", "n": strconv.Itoa(n)})
	if err != nil {
		panic(err) // a map of strings always encodes
	}
	return runtime.EventRecord{
		ID:            newID(),
		Type:          eventType,
		SchemaVersion: 1,
		ContentType:   contentType,
		Data:          []byte("payload-" + strconv.Itoa(n)),
		Metadata:      md,
	}
}

// newEvents returns n events numbered from 1.
func newEvents(n int) []runtime.EventRecord {
	evs := make([]runtime.EventRecord, n)
	for i := range evs {
		evs[i] = newEvent(i + 1)
	}
	return evs
}

// newMessage returns an outbox message with every caller-set field filled.
func newMessage(payload string) runtime.OutboxMessage {
	md, err := runtime.EncodeMetadata(map[string]string{"payload": payload})
	if err != nil {
		panic(err)
	}
	return runtime.OutboxMessage{Topic: topic, UUID: newID(), Metadata: md, Payload: []byte(payload)}
}

// cloneEvent copies r deeply: a record handed to fn is valid only until fn
// returns.
func cloneEvent(r *runtime.EventRecord) runtime.EventRecord {
	c := *r
	c.Data = bytes.Clone(r.Data)
	c.Metadata = bytes.Clone(r.Metadata)
	return c
}

func cloneMessages(msgs []runtime.OutboxMessage) []runtime.OutboxMessage {
	out := make([]runtime.OutboxMessage, len(msgs))
	for i, m := range msgs {
		out[i] = m
		out[i].Metadata = bytes.Clone(m.Metadata)
		out[i].Payload = bytes.Clone(m.Payload)
	}
	return out
}

// Store access that fails the test on error. Safe only on the test's own
// goroutine (they call t.Fatal).

func mustAppend(t *testing.T, ctx context.Context, s runtime.EventStore, req runtime.AppendRequest) runtime.AppendResult {
	t.Helper()
	res, err := s.Append(ctx, req)
	if err != nil {
		t.Fatalf("Append to %s at version %d: %v", req.Stream, req.ExpectedVersion, err)
	}
	return res
}

func readStream(t *testing.T, ctx context.Context, s runtime.EventStore, stream runtime.StreamID, after uint64) []runtime.EventRecord {
	t.Helper()
	var out []runtime.EventRecord
	err := s.ReadStream(ctx, stream, after, func(r *runtime.EventRecord) error {
		out = append(out, cloneEvent(r))
		return nil
	})
	if err != nil {
		t.Fatalf("ReadStream %s after %d: %v", stream, after, err)
	}
	return out
}

func readAll(t *testing.T, ctx context.Context, s runtime.EventStore, after uint64, limit int) []runtime.EventRecord {
	t.Helper()
	var out []runtime.EventRecord
	err := s.ReadAll(ctx, after, limit, func(r *runtime.EventRecord) error {
		out = append(out, cloneEvent(r))
		return nil
	})
	if err != nil {
		t.Fatalf("ReadAll after %d limit %d: %v", after, limit, err)
	}
	return out
}

// relayAll relays the whole outbox in batches of batch, publishing
// successfully, and returns the messages in publish order.
func relayAll(t *testing.T, ctx context.Context, s runtime.EventStore, batch int) []runtime.OutboxMessage {
	t.Helper()
	var out []runtime.OutboxMessage
	for {
		var got []runtime.OutboxMessage
		n, err := s.RelayOutbox(ctx, batch, func(msgs []runtime.OutboxMessage) error {
			got = cloneMessages(msgs)
			return nil
		})
		if err != nil {
			t.Fatalf("RelayOutbox: %v", err)
		}
		if n != len(got) {
			t.Fatalf("RelayOutbox returned %d, publish was given %d messages", n, len(got))
		}
		if n == 0 {
			return out
		}
		if n > batch {
			t.Fatalf("RelayOutbox published %d messages with limit %d", n, batch)
		}
		out = append(out, got...)
	}
}

// Assertions.

// checkEvent compares the caller-set fields of got with want and the
// store-set Stream and Sequence with stream and seq.
func checkEvent(t *testing.T, got, want runtime.EventRecord, stream runtime.StreamID, seq uint64) {
	t.Helper()
	var diffs []string
	if got.ID != want.ID {
		diffs = append(diffs, fmt.Sprintf("ID %q, want %q", got.ID, want.ID))
	}
	if got.Stream != stream {
		diffs = append(diffs, fmt.Sprintf("Stream %v, want %v", got.Stream, stream))
	}
	if got.Sequence != seq {
		diffs = append(diffs, fmt.Sprintf("Sequence %d, want %d", got.Sequence, seq))
	}
	if got.Type != want.Type {
		diffs = append(diffs, fmt.Sprintf("Type %q, want %q", got.Type, want.Type))
	}
	if got.SchemaVersion != want.SchemaVersion {
		diffs = append(diffs, fmt.Sprintf("SchemaVersion %d, want %d", got.SchemaVersion, want.SchemaVersion))
	}
	if got.ContentType != want.ContentType {
		diffs = append(diffs, fmt.Sprintf("ContentType %q, want %q", got.ContentType, want.ContentType))
	}
	if !bytes.Equal(got.Data, want.Data) {
		diffs = append(diffs, fmt.Sprintf("Data %q, want %q", got.Data, want.Data))
	}
	// Metadata must come back byte for byte (store it as bytes, not as a
	// re-encoding JSON type): readers may compare or hash it.
	if !bytes.Equal(got.Metadata, want.Metadata) {
		diffs = append(diffs, fmt.Sprintf("Metadata %q, want %q", got.Metadata, want.Metadata))
	}
	if got.Position == 0 {
		diffs = append(diffs, "Position 0: positions start at 1, as ReadAll(after=0) must return the event")
	}
	if got.RecordedAt.IsZero() {
		diffs = append(diffs, "RecordedAt not set")
	}
	for _, d := range diffs {
		t.Errorf("event %d of %s: %s", seq, stream, d)
	}
}

// checkMessage compares the caller-set fields of an outbox message.
func checkMessage(t *testing.T, got, want runtime.OutboxMessage) {
	t.Helper()
	if got.Topic != want.Topic || got.UUID != want.UUID || !bytes.Equal(got.Metadata, want.Metadata) || !bytes.Equal(got.Payload, want.Payload) {
		t.Errorf("outbox message = {Topic %q UUID %q Metadata %q Payload %q}, want {Topic %q UUID %q Metadata %q Payload %q}",
			got.Topic, got.UUID, got.Metadata, got.Payload, want.Topic, want.UUID, want.Metadata, want.Payload)
	}
}

// checkStream checks that stream holds exactly want, in order, with
// sequences 1..len(want).
func checkStream(t *testing.T, ctx context.Context, s runtime.EventStore, stream runtime.StreamID, want []runtime.EventRecord) {
	t.Helper()
	got := readStream(t, ctx, s, stream, 0)
	if len(got) != len(want) {
		t.Fatalf("stream %s holds %d events, want %d", stream, len(got), len(want))
	}
	for i := range got {
		checkEvent(t, got[i], want[i], stream, uint64(i+1))
	}
}

// checkIncreasing checks that positions strictly increase.
func checkIncreasing(t *testing.T, what string, positions []uint64) {
	t.Helper()
	for i := 1; i < len(positions); i++ {
		if positions[i] <= positions[i-1] {
			t.Fatalf("%s: position %d follows %d (index %d): positions must strictly increase", what, positions[i], positions[i-1], i)
		}
	}
}

func eventPositions(evs []runtime.EventRecord) []uint64 {
	ps := make([]uint64, len(evs))
	for i, e := range evs {
		ps[i] = e.Position
	}
	return ps
}

func messagePositions(msgs []runtime.OutboxMessage) []uint64 {
	ps := make([]uint64, len(msgs))
	for i, m := range msgs {
		ps[i] = m.Position
	}
	return ps
}

// checkNothingStored checks that the store holds no events and no outbox
// messages: for tests on a fresh store whose appends all failed.
func checkNothingStored(t *testing.T, ctx context.Context, s runtime.EventStore) {
	t.Helper()
	if evs := readAll(t, ctx, s, 0, 0); len(evs) != 0 {
		t.Errorf("store holds %d events, want none", len(evs))
	}
	if msgs := relayAll(t, ctx, s, 100); len(msgs) != 0 {
		t.Errorf("outbox held %d messages, want none", len(msgs))
	}
}

// wait waits for wg, failing the test after Timeout.
func wait(t *testing.T, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(Timeout):
		t.Fatalf("goroutines still running after %v", Timeout)
	}
}

// noPanic runs f and turns a panic into a test failure naming what.
func noPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s panicked: %v", what, r)
		}
	}()
	f()
}
