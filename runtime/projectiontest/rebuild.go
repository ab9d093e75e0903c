package projectiontest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/protoc-gen-eda/eda/runtime"
)

// testRebuild: Rebuild fills generation 2 from the start of the log while
// Run keeps generation 1 following new events and a reader keeps reading
// it, then switches: Activate gets previous 1, readers never see an error
// or a table missing events, and Run goes on with generation 2.
func testRebuild[Tx any](t *testing.T, b Backend[Tx]) {
	f := newFixture(t, b)
	first := f.appendStreams("acct", 5, 6)
	h := &handler[Tx]{instance: "a"}
	p := f.projection(f.s, h, runtime.ProjectionConfig{BatchSize: 7})
	if n, err := p.CatchUp(f.ctx); err != nil || n != len(first) {
		t.Fatalf("CatchUp = %d, %v; want %d, nil", n, err, len(first))
	}
	stop := f.run(p)

	// A reader polls the read model throughout. Once the first generation
	// is caught up it must never see fewer rows, or an error.
	r := &reader[Tx]{model: f.s.Model, min: len(first)}
	stopReader := r.start(f)

	rebuilt := make(chan error, 1)
	go func() { rebuilt <- p.Rebuild(f.ctx) }()
	const late = 10
	for i := range late {
		f.appendEvents(fmt.Sprintf("late-%d", i%3), 1)
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-rebuilt:
		if err != nil {
			t.Fatalf("Rebuild: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("Rebuild did not return within %v", waitTimeout)
	}

	if g := f.generations(f.s); g.Active != 2 || g.Latest != 2 {
		t.Errorf("Generations after Rebuild = %+v, want 2 active and latest", g)
	}
	if st := p.Stats(); st.Generation != 2 {
		t.Errorf("Stats().Generation = %d after Rebuild, want 2", st.Generation)
	}
	setups, acts := h.counts()
	if !slices.Equal(setups, []int{1, 2}) || !slices.Equal(acts, [][2]int{{1, 0}, {2, 1}}) {
		t.Errorf("Setup called for generations %v, Activate with %v; want [1 2] and [[1 0] [2 1]]", setups, acts)
	}
	rows := f.waitRows(f.s.Model, len(f.all()))
	checkExactlyOnce(t, rows, f.all())
	checkGeneration(t, rows, 2)
	if cp := f.checkpoint(f.s, 1, 0); cp != 0 {
		t.Errorf("generation 1's checkpoint is %d after the switch, want it dropped (0)", cp)
	}

	// Run follows new events into generation 2.
	f.appendStreams("after", 2, 3)
	rows = f.waitRows(f.s.Model, len(f.all()))
	stop()
	stopReader()
	checkExactlyOnce(t, f.rows(f.s.Model), f.all())
	checkGeneration(t, rows, 2)
}

// testRebuildResumes: a rebuild that fails midway leaves readers on the
// active generation, and the next Rebuild, in another instance, resumes it
// from its checkpoint without a second Setup.
func testRebuildResumes[Tx any](t *testing.T, b Backend[Tx]) {
	const batch = 3
	f := newFixture(t, b)
	evs := f.appendStreams("acct", 4, 5)
	if _, err := f.projection(f.s, &handler[Tx]{instance: "a"}, runtime.ProjectionConfig{BatchSize: batch}).CatchUp(f.ctx); err != nil {
		t.Fatal(err)
	}
	fail := evs[12] // the first event of the fifth batch
	s2 := f.share()
	h2 := &handler[Tx]{instance: "b", model: s2.Model, before: failOn[Tx](fail.ID, 2, 0)}
	if err := f.projection(s2, h2, runtime.ProjectionConfig{BatchSize: batch}).Rebuild(f.ctx); !errors.Is(err, errBoom) {
		t.Fatalf("Rebuild = %v, want the handler's error", err)
	}
	if g := f.generations(f.s); g.Active != 1 || g.Latest != 2 {
		t.Errorf("Generations after a failed rebuild = %+v, want 1 active, 2 latest", g)
	}
	rows := f.rows(f.s.Model)
	checkExactlyOnce(t, rows, evs)
	checkGeneration(t, rows, 1)
	if cp := f.checkpoint(f.s, 2, 0); cp != evs[11].Position {
		t.Errorf("generation 2's checkpoint = %d, want %d (four batches)", cp, evs[11].Position)
	}

	h3 := &handler[Tx]{instance: "c"}
	if err := f.projection(f.s, h3, runtime.ProjectionConfig{BatchSize: batch}).Rebuild(f.ctx); err != nil {
		t.Fatalf("Rebuild again: %v", err)
	}
	s2setups, _ := h2.counts()
	s3setups, acts := h3.counts()
	if !slices.Equal(s2setups, []int{2}) || len(s3setups) != 0 || !slices.Equal(acts, [][2]int{{2, 1}}) {
		t.Errorf("Setup called for %v then %v, Activate with %v; want [2] then none (resumed), and [[2 1]]", s2setups, s3setups, acts)
	}
	rows = f.rows(f.s.Model)
	checkExactlyOnce(t, rows, evs)
	checkGeneration(t, rows, 2)
	for _, r := range rows {
		want := "b"
		if r.Position > evs[11].Position {
			want = "c"
		}
		if r.Instance != want {
			t.Errorf("event %s applied by %s, want %s: the rebuild must resume at its checkpoint", r.EventID, r.Instance, want)
		}
	}
}

// checkGeneration fails the test unless every row is of generation gen.
func checkGeneration(t *testing.T, rows []Row, gen int) {
	t.Helper()
	for _, r := range rows {
		if r.Generation != gen {
			t.Errorf("readers see event %s of generation %d, want %d", r.EventID, r.Generation, gen)
			return
		}
	}
}

// reader reads the read model in a loop and records what went wrong.
type reader[Tx any] struct {
	model ReadModel[Tx]
	// min is the fewest rows a read may return.
	min int

	mu       sync.Mutex
	reads    int
	failures []string
}

// start starts reading; stop stops, and fails the test if a read failed or
// none happened.
func (r *reader[Tx]) start(f *fixture[Tx]) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			rows, err := r.model.Rows(f.ctx)
			r.mu.Lock()
			r.reads++
			switch {
			case err != nil:
				r.failures = append(r.failures, err.Error())
			case len(rows) < r.min:
				r.failures = append(r.failures, fmt.Sprintf("read %d rows, want at least %d", len(rows), r.min))
			}
			r.mu.Unlock()
			time.Sleep(time.Millisecond)
		}
	})
	var once sync.Once
	stop = func() {
		once.Do(func() {
			close(done)
			wg.Wait()
			r.mu.Lock()
			defer r.mu.Unlock()
			if len(r.failures) > 0 {
				f.t.Errorf("%d of %d reads failed during the rebuild, the first: %s", len(r.failures), r.reads, r.failures[0])
			}
			if r.reads == 0 {
				f.t.Error("the reader never read")
			}
		})
	}
	f.t.Cleanup(stop)
	return stop
}
