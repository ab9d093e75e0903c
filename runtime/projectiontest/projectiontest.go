// Package projectiontest is the behaviour suite every
// runtime.ProjectionStore backend passes, run against a real event store
// and a tiny read model, as runtime/storetest is for event stores.
//
// A backend's test calls Run with a Backend that opens fresh stores and a
// read model on them:
//
//	func TestProjections(t *testing.T) {
//		projectiontest.Run(t, projectiontest.Backend[memstore.NoTx]{
//			Open: func(t *testing.T) projectiontest.Stores[memstore.NoTx] {
//				return projectiontest.Stores[memstore.NoTx]{Log: memstore.New(), Projections: memstore.NewProjectionStore(), Model: newModel()}
//			},
//		})
//	}
//
// The read model is one table per generation of rows (event id, stream,
// position, instance, generation), one row per event applied, and a view
// (or its in-memory equivalent) readers read the active generation
// through. Counting the rows per event id is how the suite sees an event
// applied twice or skipped.
//
// The suite covers catching up then following the log; a checkpoint every
// BatchSize events and an exact resume by a new instance; a handler error
// rolling back its batch (or, for a store without transactions, keeping
// the events before it); ignored and skipped records; rebuilding into a new
// generation while readers read and events arrive, and resuming an
// interrupted rebuild; two instances sharing partitions with every event
// applied once and every stream by one instance; and crashes mid-run.
package projectiontest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/protoc-gen-eda/eda/runtime"
)

// Timeout bounds every subtest's context, including its waits.
const Timeout = 2 * time.Minute

// waitTimeout bounds one wait for a condition (rows to appear, leases to
// settle). Generous: the race detector on a database backend is slow.
const waitTimeout = 30 * time.Second

// pollInterval is the projections' PollInterval in the suite: short, so
// that following and retries show within milliseconds.
const pollInterval = 10 * time.Millisecond

// Backend opens stores for the suite.
type Backend[Tx any] struct {
	// Open returns a new, empty event store, a projection store on it and
	// the suite's read model in the same database. The backend closes them
	// when the test ends (Cleanup).
	Open func(t *testing.T) Stores[Tx]
	// Share, when set, returns other handles on the data of s, as a second
	// process would open them (same database file, same PostgreSQL schema).
	// nil for in-memory stores: the suite then runs its second instance on
	// the same stores.
	Share func(t *testing.T, s Stores[Tx]) Stores[Tx]
	// Transactional is true when a handler error rolls back the read-model
	// writes of its batch (the SQL stores). Without transactions
	// (memstore), the store keeps the events before the failed one, and the
	// suite checks that instead.
	Transactional bool
}

// Stores are the stores of one test, or another process's handles on them.
type Stores[Tx any] struct {
	Log         runtime.EventStore
	Projections runtime.ProjectionStore[Tx]
	Model       ReadModel[Tx]
}

// Row is one row of the suite's read model: one event applied.
type Row struct {
	EventID    string
	Stream     string
	Position   uint64
	Instance   string
	Generation int
}

// ReadModel is the suite's read model, which each backend writes in its
// own database.
type ReadModel[Tx any] interface {
	// Setup creates the table of generation p.Generation.
	Setup(ctx context.Context, p runtime.ProjectionTx[Tx]) error
	// Activate makes readers read generation p.Generation and drops the
	// table of previous (when not 0).
	Activate(ctx context.Context, p runtime.ProjectionTx[Tx], previous int) error
	// Insert adds row to generation p.Generation's table, through p.Tx.
	Insert(ctx context.Context, p runtime.ProjectionTx[Tx], row Row) error
	// Rows returns the rows readers see, read outside any projection
	// transaction. It fails when no generation is active.
	Rows(ctx context.Context) ([]Row, error)
}

// The suite's event types: events are plain records in the store, so any
// proto message does.
var (
	openedType    = &runtime.MessageType{Name: "projectiontest.Opened", Version: 1}
	depositedType = &runtime.MessageType{Name: "projectiontest.Deposited", Version: 1, Aliases: []string{"projectiontest.Credited"}}
)

// Event types the suite's projection does not route.
const (
	otherType  = "projectiontest.Other"
	legacyType = "projectiontest.Legacy"
)

// projectionName is the projection's name in every test: each test has
// stores of its own.
const projectionName = "projectiontest.rows"

// test is one behaviour test.
type test[Tx any] struct {
	name string
	fn   func(t *testing.T, b Backend[Tx])
}

// Run runs every behaviour test as a subtest of t.
func Run[Tx any](t *testing.T, b Backend[Tx]) {
	t.Helper()
	if b.Open == nil {
		t.Fatal("projectiontest: Backend.Open is nil")
	}
	tests := []test[Tx]{
		{"StoreContract", testStoreContract[Tx]},
		{"Leases", testLeases[Tx]},
		{"CatchUpThenFollow", testCatchUpThenFollow[Tx]},
		{"CheckpointEveryBatchAndResume", testCheckpointAndResume[Tx]},
		{"HandlerErrorRollsBack", testHandlerErrorRollsBack[Tx]},
		{"IgnoredAndSkipped", testIgnoredAndSkipped[Tx]},
		{"FirstGenerationOnce", testFirstGenerationOnce[Tx]},
		{"Rebuild", testRebuild[Tx]},
		{"RebuildResumes", testRebuildResumes[Tx]},
		{"CompetingConsumers", testCompetingConsumers[Tx]},
		{"CrashAndResume", testCrashAndResume[Tx]},
		{"RunRetriesFailedBatch", testRunRetries[Tx]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, b) })
	}
}

// fixture is one test's stores and what it appended.
type fixture[Tx any] struct {
	t   *testing.T
	b   Backend[Tx]
	s   Stores[Tx]
	ctx context.Context
	// appended lists every event appended, in position order.
	mu       sync.Mutex
	appended []runtime.EventRecord
	ids      int
}

func newFixture[Tx any](t *testing.T, b Backend[Tx]) *fixture[Tx] {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	return &fixture[Tx]{t: t, b: b, s: b.Open(t), ctx: ctx}
}

// share returns a second process's stores, or the same ones.
func (f *fixture[Tx]) share() Stores[Tx] {
	if f.b.Share == nil {
		return f.s
	}
	return f.b.Share(f.t, f.s)
}

// event returns the i-th event of stream (1-based): an Opened first, then
// Deposited events whose amount is their sequence, which the handler
// checks after decoding.
func event(stream string, seq int) (string, proto.Message) {
	if seq == 1 {
		return openedType.Name, wrapperspb.String("owner-" + stream)
	}
	return depositedType.Name, wrapperspb.Int64(int64(seq))
}

// appendEvents appends n events to stream, after its events so far, one
// append each, and returns them with their positions.
func (f *fixture[Tx]) appendEvents(stream string, n int) []runtime.EventRecord {
	f.t.Helper()
	var out []runtime.EventRecord
	for range n {
		f.mu.Lock()
		seq := 1
		for _, r := range f.appended {
			if r.Stream.ID == stream {
				seq++
			}
		}
		f.mu.Unlock()
		typ, msg := event(stream, seq)
		data, err := proto.Marshal(msg)
		if err != nil {
			f.t.Fatal(err)
		}
		out = append(out, f.appendRecord(stream, runtime.EventRecord{Type: typ, SchemaVersion: 1, ContentType: runtime.ContentTypeProtobuf, Data: data}))
	}
	return out
}

// appendRecord appends rec, given its type and payload, to stream and
// returns it as stored.
func (f *fixture[Tx]) appendRecord(stream string, rec runtime.EventRecord) runtime.EventRecord {
	f.t.Helper()
	f.mu.Lock()
	f.ids++
	rec.ID = fmt.Sprintf("%s-%d", strings.ReplaceAll(f.t.Name(), "/", "-"), f.ids)
	f.mu.Unlock()
	rec.Stream = runtime.StreamID{Type: "projectiontest.Account", ID: stream}
	res, err := f.s.Log.Append(f.ctx, runtime.AppendRequest{Stream: rec.Stream, ExpectedVersion: runtime.AnyVersion, Events: []runtime.EventRecord{rec}})
	if err != nil {
		f.t.Fatalf("append to %s: %v", stream, err)
	}
	rec.Position, rec.Sequence = res.LastPosition, res.Version
	f.mu.Lock()
	f.appended = append(f.appended, rec)
	f.mu.Unlock()
	return rec
}

// appendStreams appends perStream events to each of streams streams named
// prefix-0, prefix-1, ..., interleaved, and returns them.
func (f *fixture[Tx]) appendStreams(prefix string, streams, perStream int) []runtime.EventRecord {
	f.t.Helper()
	var out []runtime.EventRecord
	for range perStream {
		for i := range streams {
			out = append(out, f.appendEvents(prefix+"-"+strconv.Itoa(i), 1)...)
		}
	}
	return out
}

// all returns every event appended so far.
func (f *fixture[Tx]) all() []runtime.EventRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.appended)
}

// handler is the suite's projection: one row per event, with hooks to fail.
type handler[Tx any] struct {
	instance string
	model    ReadModel[Tx]
	// before and after run before and after the row is written; an error
	// fails the event.
	before, after func(p runtime.ProjectionTx[Tx], rec *runtime.EventRecord) error

	mu          sync.Mutex
	setups      []int
	activations [][2]int // generation, previous
}

// errBoom is what failing hooks return.
var errBoom = errors.New("projectiontest: boom")

func (h *handler[Tx]) apply(ctx context.Context, p runtime.ProjectionTx[Tx], rec *runtime.EventRecord) error {
	if h.before != nil {
		if err := h.before(p, rec); err != nil {
			return err
		}
	}
	row := Row{EventID: rec.ID, Stream: rec.Stream.ID, Position: rec.Position, Instance: h.instance, Generation: p.Generation}
	if err := h.model.Insert(ctx, p, row); err != nil {
		return err
	}
	if h.after != nil {
		return h.after(p, rec)
	}
	return nil
}

// spec returns the projection's spec. The routes check the decoded
// payloads, so that a decoding bug fails the test.
func (h *handler[Tx]) spec() runtime.ProjectionSpec[Tx] {
	return runtime.ProjectionSpec[Tx]{
		Name: projectionName,
		Routes: []runtime.ProjectionRoute[Tx]{
			runtime.Project[Tx, wrapperspb.StringValue](openedType, func(ctx context.Context, p runtime.ProjectionTx[Tx], e *wrapperspb.StringValue, rec *runtime.EventRecord) error {
				if e.GetValue() != "owner-"+rec.Stream.ID {
					return fmt.Errorf("event %s decoded as %q", rec.ID, e.GetValue())
				}
				return h.apply(ctx, p, rec)
			}),
			runtime.Project[Tx, wrapperspb.Int64Value](depositedType, func(ctx context.Context, p runtime.ProjectionTx[Tx], e *wrapperspb.Int64Value, rec *runtime.EventRecord) error {
				if e.GetValue() != int64(rec.Sequence) {
					return fmt.Errorf("event %s at sequence %d decoded as %d", rec.ID, rec.Sequence, e.GetValue())
				}
				return h.apply(ctx, p, rec)
			}),
		},
		Setup: func(ctx context.Context, p runtime.ProjectionTx[Tx]) error {
			if err := h.model.Setup(ctx, p); err != nil {
				return err
			}
			h.mu.Lock()
			h.setups = append(h.setups, p.Generation)
			h.mu.Unlock()
			return nil
		},
		Activate: func(ctx context.Context, p runtime.ProjectionTx[Tx], previous int) error {
			if err := h.model.Activate(ctx, p, previous); err != nil {
				return err
			}
			h.mu.Lock()
			h.activations = append(h.activations, [2]int{p.Generation, previous})
			h.mu.Unlock()
			return nil
		},
	}
}

// counts returns the setups and activations seen.
func (h *handler[Tx]) counts() ([]int, [][2]int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.setups), slices.Clone(h.activations)
}

// projection returns a projection of h over s.
func (f *fixture[Tx]) projection(s Stores[Tx], h *handler[Tx], cfg runtime.ProjectionConfig) *runtime.Projection[Tx] {
	f.t.Helper()
	if h.model == nil {
		h.model = s.Model
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = pollInterval
	}
	p, err := runtime.NewProjection(s.Log, s.Projections, h.spec(), cfg)
	if err != nil {
		f.t.Fatalf("NewProjection: %v", err)
	}
	return p
}

// run runs p.Run in the background until the returned stop is called (or
// the test ends), and fails the test if Run returns an error.
func (f *fixture[Tx]) run(p *runtime.Projection[Tx]) (stop func()) {
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					f.t.Errorf("Run returned %v after its context was cancelled, want nil", err)
				}
			case <-time.After(waitTimeout):
				f.t.Errorf("Run did not return within %v of its context being cancelled", waitTimeout)
			}
		})
	}
	f.t.Cleanup(stop)
	return stop
}

// rows reads what readers of s's model see.
func (f *fixture[Tx]) rows(m ReadModel[Tx]) []Row {
	f.t.Helper()
	rows, err := m.Rows(f.ctx)
	if err != nil {
		f.t.Fatalf("read the read model: %v", err)
	}
	return rows
}

// eventually polls cond until it holds, failing the test after
// waitTimeout with what.
func (f *fixture[Tx]) eventually(what func() string, cond func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			f.t.Fatalf("after %v: %s", waitTimeout, what())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitRows waits until the model holds a row for every event in want.
func (f *fixture[Tx]) waitRows(m ReadModel[Tx], want int) []Row {
	f.t.Helper()
	var rows []Row
	f.eventually(func() string { return fmt.Sprintf("the read model has %d rows, want %d", len(rows), want) }, func() bool {
		rows = f.rows(m)
		return len(rows) >= want
	})
	return rows
}

// checkExactlyOnce fails the test unless rows hold each event of want
// exactly once, at its position, and nothing else.
func checkExactlyOnce(t *testing.T, rows []Row, want []runtime.EventRecord) {
	t.Helper()
	count := make(map[string]int, len(rows))
	pos := make(map[string]uint64, len(rows))
	for _, r := range rows {
		count[r.EventID]++
		pos[r.EventID] = r.Position
	}
	problems := 0
	for _, e := range want {
		switch n := count[e.ID]; {
		case n != 1:
			t.Errorf("event %s (position %d) applied %d times, want once: %+v", e.ID, e.Position, n, rowsOf(rows, e.ID))
			problems++
		case pos[e.ID] != e.Position:
			t.Errorf("event %s applied with position %d, want %d", e.ID, pos[e.ID], e.Position)
			problems++
		}
		delete(count, e.ID)
		if problems > 10 {
			t.Fatal("too many problems")
		}
	}
	for id, n := range count {
		t.Errorf("the read model holds %d rows of event %s, which was not appended", n, id)
	}
}

// checkpoint returns the store's checkpoint of (gen, part) of the
// suite's projection.
func (f *fixture[Tx]) checkpoint(s Stores[Tx], gen, part int) uint64 {
	f.t.Helper()
	cp, err := s.Projections.Checkpoint(f.ctx, projectionName, gen, part)
	if err != nil {
		f.t.Fatalf("Checkpoint: %v", err)
	}
	return cp
}

// generations returns the store's generation bookkeeping.
func (f *fixture[Tx]) generations(s Stores[Tx]) runtime.ProjectionGenerations {
	f.t.Helper()
	g, err := s.Projections.Generations(f.ctx, projectionName)
	if err != nil {
		f.t.Fatalf("Generations: %v", err)
	}
	return g
}

// failOn returns a hook failing with errBoom for the event with id in
// generation gen (0: any), the first times times it sees it (0: every
// time).
func failOn[Tx any](id string, gen, times int) func(runtime.ProjectionTx[Tx], *runtime.EventRecord) error {
	var mu sync.Mutex
	seen := 0
	return func(p runtime.ProjectionTx[Tx], rec *runtime.EventRecord) error {
		if rec.ID != id || (gen != 0 && p.Generation != gen) {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		seen++
		if times == 0 || seen <= times {
			return errBoom
		}
		return nil
	}
}

// rowsOf returns the rows of event id.
func rowsOf(rows []Row, id string) (out []Row) {
	for _, r := range rows {
		if r.EventID == id {
			out = append(out, r)
		}
	}
	return out
}
