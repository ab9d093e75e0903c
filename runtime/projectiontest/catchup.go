package projectiontest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/protoc-gen-eda/eda/runtime"
)

// testCatchUpThenFollow: CatchUp applies every stored event once and starts
// generation 1 (Setup, then Activate with previous 0); Run then follows new
// events; a second CatchUp has nothing to do.
func testCatchUpThenFollow[Tx any](t *testing.T, b Backend[Tx]) {
	f := newFixture(t, b)
	first := f.appendStreams("acct", 3, 5)
	h := &handler[Tx]{instance: "a"}
	p := f.projection(f.s, h, runtime.ProjectionConfig{BatchSize: 4})
	n, err := p.CatchUp(f.ctx)
	if err != nil || n != len(first) {
		t.Fatalf("CatchUp = %d, %v; want %d, nil", n, err, len(first))
	}
	checkExactlyOnce(t, f.rows(f.s.Model), first)
	head := first[len(first)-1].Position
	if st := p.Stats(); st.Applied != uint64(len(first)) || st.Ignored != 0 || st.Skipped != 0 || st.Position != head || st.Generation != 1 {
		t.Errorf("Stats = %+v, want %d applied, none ignored or skipped, position %d, generation 1", st, len(first), head)
	}
	if cp := f.checkpoint(f.s, 1, 0); cp != head {
		t.Errorf("checkpoint = %d, want the head %d", cp, head)
	}
	if g := f.generations(f.s); g != (runtime.ProjectionGenerations{Active: 1, ActivePartitions: 1, Latest: 1, LatestPartitions: 1}) {
		t.Errorf("Generations = %+v, want generation 1 active with 1 partition", g)
	}

	stop := f.run(p)
	f.appendStreams("late", 2, 5)
	f.waitRows(f.s.Model, len(f.all()))
	stop()
	all := f.all()
	checkExactlyOnce(t, f.rows(f.s.Model), all)
	if st := p.Stats(); st.Applied != uint64(len(all)) || st.Position != all[len(all)-1].Position {
		t.Errorf("Stats after following = %+v, want %d applied up to position %d", st, len(all), all[len(all)-1].Position)
	}
	if n, err := p.CatchUp(f.ctx); n != 0 || err != nil {
		t.Errorf("CatchUp at the head = %d, %v; want 0, nil", n, err)
	}
	setups, acts := h.counts()
	if !slices.Equal(setups, []int{1}) || !slices.Equal(acts, [][2]int{{1, 0}}) {
		t.Errorf("Setup called for generations %v, Activate with %v; want [1] and [[1 0]]", setups, acts)
	}
}

// testCheckpointAndResume: batches commit every BatchSize events; after a
// handler error, a new instance resumes exactly at the checkpoint.
func testCheckpointAndResume[Tx any](t *testing.T, b Backend[Tx]) {
	const batch = 4
	f := newFixture(t, b)
	evs := f.appendStreams("acct", 3, 6)
	fail := evs[10] // in the third batch
	h := &handler[Tx]{instance: "a", before: failOn[Tx](fail.ID, 0, 0)}
	p := f.projection(f.s, h, runtime.ProjectionConfig{BatchSize: batch})
	n, err := p.CatchUp(f.ctx)
	if !errors.Is(err, errBoom) {
		t.Fatalf("CatchUp = %d, %v; want the handler's error", n, err)
	}
	// Two whole batches commit; a store without transactions keeps the
	// third's events before the failure too.
	done := 2 * batch
	if !b.Transactional {
		done = 10
	}
	if n != done || p.Stats().Applied != uint64(done) {
		t.Errorf("CatchUp applied %d (Stats %+v), want %d", n, p.Stats(), done)
	}
	if cp, want := f.checkpoint(f.s, 1, 0), evs[done-1].Position; cp != want {
		t.Errorf("checkpoint after the failure = %d, want %d (the last event of the last batch committed)", cp, want)
	}
	checkExactlyOnce(t, f.rows(f.s.Model), evs[:done])

	p2 := f.projection(f.share(), &handler[Tx]{instance: "b"}, runtime.ProjectionConfig{BatchSize: batch})
	n, err = p2.CatchUp(f.ctx)
	if err != nil || n != len(evs)-done {
		t.Fatalf("CatchUp of a new instance = %d, %v; want %d, nil", n, err, len(evs)-done)
	}
	rows := f.rows(f.s.Model)
	checkExactlyOnce(t, rows, evs)
	for _, r := range rows {
		want := "a"
		if r.Position > evs[done-1].Position {
			want = "b"
		}
		if r.Instance != want {
			t.Errorf("event %s applied by instance %s, want %s", r.EventID, r.Instance, want)
		}
	}
}

// testHandlerErrorRollsBack: a handler that writes and then fails rolls
// back its whole batch, writes and checkpoint (a store without transactions
// keeps the events before it, and the failed one's write).
func testHandlerErrorRollsBack[Tx any](t *testing.T, b Backend[Tx]) {
	f := newFixture(t, b)
	evs := f.appendStreams("acct", 2, 3)
	fail := evs[3]
	p := f.projection(f.s, &handler[Tx]{instance: "a", after: failOn[Tx](fail.ID, 0, 0)}, runtime.ProjectionConfig{BatchSize: 10})
	if _, err := p.CatchUp(f.ctx); !errors.Is(err, errBoom) {
		t.Fatalf("CatchUp = %v, want the handler's error", err)
	}
	rows := f.rows(f.s.Model)
	if b.Transactional {
		if len(rows) != 0 {
			t.Errorf("the read model has %d rows after the batch failed, want none: the batch must roll back", len(rows))
		}
		if cp := f.checkpoint(f.s, 1, 0); cp != 0 {
			t.Errorf("checkpoint = %d after the batch failed, want 0", cp)
		}
		if st := p.Stats(); st.Applied != 0 || st.Position != 0 {
			t.Errorf("Stats = %+v, want nothing applied", st)
		}
	} else {
		checkExactlyOnce(t, rows, evs[:4])
		if cp := f.checkpoint(f.s, 1, 0); cp != fail.Position-1 {
			t.Errorf("checkpoint = %d, want %d: just before the event that failed", cp, fail.Position-1)
		}
	}

	p2 := f.projection(f.s, &handler[Tx]{instance: "b"}, runtime.ProjectionConfig{BatchSize: 10})
	if _, err := p2.CatchUp(f.ctx); err != nil {
		t.Fatalf("CatchUp without the failure: %v", err)
	}
	rows = f.rows(f.s.Model)
	if b.Transactional {
		checkExactlyOnce(t, rows, evs)
		return
	}
	// Without transactions the failed event's own write is repeated.
	count := map[string]int{}
	for _, r := range rows {
		count[r.EventID]++
	}
	for _, e := range evs {
		if want := map[bool]int{true: 2, false: 1}[e.ID == fail.ID]; count[e.ID] != want {
			t.Errorf("event %s has %d rows, want %d", e.ID, count[e.ID], want)
		}
	}
}

// testIgnoredAndSkipped: records of types no route takes are ignored, and
// routed records that cannot be upcast or decoded are skipped and logged
// with their position; the checkpoint passes both. Upcasters, aliases and
// protojson payloads are applied.
func testIgnoredAndSkipped[Tx any](t *testing.T, b Backend[Tx]) {
	f := newFixture(t, b)
	marshal := func(m proto.Message) []byte {
		data, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	rec := func(typ string, version uint32, contentType string, data []byte) runtime.EventRecord {
		return runtime.EventRecord{Type: typ, SchemaVersion: version, ContentType: contentType, Data: data}
	}
	pb := runtime.ContentTypeProtobuf
	jsonOpened, err := protojson.Marshal(wrapperspb.String("owner-acct-2"))
	if err != nil {
		t.Fatal(err)
	}
	// The Deposited handler checks that the amount is the sequence.
	var applied, skipped []runtime.EventRecord
	applied = append(applied, f.appendEvents("acct-1", 1)...)                                                                // seq 1
	ignored := f.appendRecord("acct-1", rec(otherType, 1, pb, marshal(wrapperspb.String("x"))))                              // seq 2
	skipped = append(skipped, f.appendRecord("acct-1", rec(depositedType.Name, 1, pb, []byte{0xff, 0xff})))                  // corrupt
	skipped = append(skipped, f.appendRecord("acct-1", rec(depositedType.Name, 2, pb, marshal(wrapperspb.Int64(4)))))        // no upcaster for v2
	applied = append(applied, f.appendRecord("acct-1", rec(legacyType, 1, pb, marshal(wrapperspb.Int64(5)))))                // upcast
	applied = append(applied, f.appendRecord("acct-1", rec("projectiontest.Credited", 1, pb, marshal(wrapperspb.Int64(6))))) // alias
	applied = append(applied, f.appendRecord("acct-2", rec(openedType.Name, 1, runtime.ContentTypeJSON, jsonOpened)))
	skipped = append(skipped, f.appendRecord("acct-2", rec(depositedType.Name, 1, "application/x-unknown", marshal(wrapperspb.Int64(2)))))
	skipped = append(skipped, f.appendRecord("acct-2", rec(legacyType, 7, pb, nil))) // its upcaster fails
	head := f.all()[len(f.all())-1].Position

	up := runtime.NewUpcasters()
	if err := up.Register(legacyType, 1, func(_ context.Context, r *runtime.EventRecord) error {
		r.Type, r.SchemaVersion = depositedType.Name, 1
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := up.Register(legacyType, 7, func(context.Context, *runtime.EventRecord) error { return errors.New("version 7 is unreadable") }); err != nil {
		t.Fatal(err)
	}
	logs := &logCapture{}
	p := f.projection(f.s, &handler[Tx]{instance: "a"}, runtime.ProjectionConfig{BatchSize: 3, Upcasters: up, Logger: logs})
	n, err := p.CatchUp(f.ctx)
	if err != nil || n != len(applied) {
		t.Fatalf("CatchUp = %d, %v; want %d, nil", n, err, len(applied))
	}
	checkExactlyOnce(t, f.rows(f.s.Model), applied)
	st := p.Stats()
	if st.Applied != uint64(len(applied)) || st.Ignored != 1 || st.Skipped != uint64(len(skipped)) || st.Position != head {
		t.Errorf("Stats = %+v, want %d applied, 1 ignored (%s), %d skipped, position %d", st, len(applied), ignored.ID, len(skipped), head)
	}
	if cp := f.checkpoint(f.s, 1, 0); cp != head {
		t.Errorf("checkpoint = %d, want the head %d: ignored and skipped records are passed", cp, head)
	}
	var logged []uint64
	for _, m := range logs.errors() {
		if pos, ok := m.Fields["position"].(uint64); ok {
			logged = append(logged, pos)
		}
	}
	var want []uint64
	for _, s := range skipped {
		want = append(want, s.Position)
	}
	if !slices.Equal(logged, want) {
		t.Errorf("skipped events logged at positions %v, want %v", logged, want)
	}
	if n, err := p.CatchUp(f.ctx); n != 0 || err != nil || p.Stats().Skipped != uint64(len(skipped)) {
		t.Errorf("CatchUp again = %d, %v, skipped %d; want nothing new", n, err, p.Stats().Skipped)
	}
}

// testFirstGenerationOnce: two instances starting on an empty projection
// at once run Setup and Activate of generation 1 once between them.
func testFirstGenerationOnce[Tx any](t *testing.T, b Backend[Tx]) {
	f := newFixture(t, b)
	evs := f.appendStreams("acct", 2, 5)
	s2 := f.share()
	hs := []*handler[Tx]{{instance: "a", model: f.s.Model}, {instance: "b", model: s2.Model}}
	ps := []*runtime.Projection[Tx]{f.projection(f.s, hs[0], runtime.ProjectionConfig{BatchSize: 3}), f.projection(s2, hs[1], runtime.ProjectionConfig{BatchSize: 3})}
	var wg sync.WaitGroup
	ns, errs := make([]int, 2), make([]error, 2)
	for i, p := range ps {
		wg.Go(func() { ns[i], errs[i] = p.CatchUp(f.ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if ns[0]+ns[1] != len(evs) {
		t.Errorf("the instances applied %d + %d events, want %d between them", ns[0], ns[1], len(evs))
	}
	var setups []int
	var acts [][2]int
	for _, h := range hs {
		s, a := h.counts()
		setups, acts = append(setups, s...), append(acts, a...)
	}
	if !slices.Equal(setups, []int{1}) || !slices.Equal(acts, [][2]int{{1, 0}}) {
		t.Errorf("Setup called for generations %v, Activate with %v; want [1] and [[1 0]]: once between both instances", setups, acts)
	}
	checkExactlyOnce(t, f.rows(f.s.Model), evs)
}

// logCapture is a watermill.LoggerAdapter keeping the errors logged.
type logCapture struct {
	mu   sync.Mutex
	errs []watermill.CapturedMessage
}

func (l *logCapture) Error(msg string, err error, fields watermill.LogFields) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, watermill.CapturedMessage{Level: watermill.ErrorLogLevel, Msg: msg, Err: err, Fields: fields})
}
func (l *logCapture) Info(string, watermill.LogFields)                 {}
func (l *logCapture) Debug(string, watermill.LogFields)                {}
func (l *logCapture) Trace(string, watermill.LogFields)                {}
func (l *logCapture) With(watermill.LogFields) watermill.LoggerAdapter { return l }

func (l *logCapture) errors() []watermill.CapturedMessage {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.errs)
}
