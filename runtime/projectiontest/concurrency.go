package projectiontest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/protoc-gen-eda/eda/runtime"
)

// leaseTTL is the partition lease of the competing consumers: long enough
// that renewals (every third of it) are never late under the race detector,
// short enough that a handover shows within the test.
const leaseTTL = 3 * time.Second

// testCompetingConsumers: two instances (two processes on the SQL stores)
// running one projection with 4 partitions split them two and two; every
// event is applied once, each stream by the one instance owning its
// partition. When one stops, the other takes over every partition.
func testCompetingConsumers[Tx any](t *testing.T, b Backend[Tx]) {
	const parts = 4
	f := newFixture(t, b)
	s2 := f.share()
	cfg := runtime.ProjectionConfig{Partitions: parts, BatchSize: 5, Lease: leaseTTL}
	pA := f.projection(f.s, &handler[Tx]{instance: "a"}, cfg)
	pB := f.projection(s2, &handler[Tx]{instance: "b", model: s2.Model}, cfg)
	stopA := f.run(pA)
	f.run(pB)

	owners := map[int]string{}
	f.eventually(func() string {
		return fmt.Sprintf("instances own partitions %v and %v, want two each", pA.Stats().Owned, pB.Stats().Owned)
	}, func() bool {
		a, b := pA.Stats().Owned, pB.Stats().Owned
		if len(a) != parts/2 || len(b) != parts/2 {
			return false
		}
		clear(owners)
		for _, p := range a {
			owners[p] = "a"
		}
		for _, p := range b {
			owners[p] = "b"
		}
		return len(owners) == parts
	})

	evs := f.appendStreams("acct", 40, 3)
	rows := f.waitRows(f.s.Model, len(evs))
	checkExactlyOnce(t, rows, evs)
	byStream := map[string]string{}
	seen := map[string]bool{}
	for _, r := range rows {
		seen[r.Instance] = true
		if prev, ok := byStream[r.Stream]; ok && prev != r.Instance {
			t.Errorf("stream %s handled by both instances", r.Stream)
		}
		byStream[r.Stream] = r.Instance
		part := runtime.ProjectionPartition(runtime.StreamID{Type: "projectiontest.Account", ID: r.Stream}, parts)
		if owners[part] != r.Instance {
			t.Errorf("stream %s (partition %d) handled by %s, but %s owns the partition", r.Stream, part, r.Instance, owners[part])
		}
	}
	if !seen["a"] || !seen["b"] {
		t.Errorf("instances that applied events: %v, want both", seen)
	}

	// A stops; B takes over every partition and applies what comes next.
	stopA()
	if owned := pA.Stats().Owned; len(owned) != 0 {
		t.Errorf("a stopped instance still owns %v", owned)
	}
	f.eventually(func() string { return fmt.Sprintf("b owns %v after a stopped, want all %d", pB.Stats().Owned, parts) },
		func() bool { return len(pB.Stats().Owned) == parts })
	more := f.appendStreams("more", 10, 2)
	rows = f.waitRows(f.s.Model, len(f.all()))
	checkExactlyOnce(t, rows, f.all())
	for _, r := range rows {
		if slices.ContainsFunc(more, func(e runtime.EventRecord) bool { return e.ID == r.EventID }) && r.Instance != "b" {
			t.Errorf("event %s appended after a stopped was applied by %s", r.EventID, r.Instance)
		}
	}
}

// testCrashAndResume: an instance whose Run stops in the middle of a batch
// (its context cancelled, as in a crash or a shutdown) leaves the batch
// uncommitted, and a new instance, in another process, resumes exactly
// there.
func testCrashAndResume[Tx any](t *testing.T, b Backend[Tx]) {
	const batch = 5
	f := newFixture(t, b)
	evs := f.appendStreams("acct", 4, 10)
	fail := evs[17]
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	h := &handler[Tx]{instance: "a", before: func(_ runtime.ProjectionTx[Tx], rec *runtime.EventRecord) error {
		if rec.ID == fail.ID {
			cancel()
			return ctx.Err()
		}
		return nil
	}}
	p := f.projection(f.s, h, runtime.ProjectionConfig{BatchSize: batch})
	if err := p.Run(ctx); err != nil {
		t.Fatalf("Run = %v when its context is cancelled, want nil", err)
	}
	done := 15 // three whole batches
	if !b.Transactional {
		done = 17
	}
	if cp, want := f.checkpoint(f.s, 1, 0), evs[done-1].Position; cp != want {
		t.Errorf("checkpoint after the crash = %d, want %d", cp, want)
	}
	checkExactlyOnce(t, f.rows(f.s.Model), evs[:done])
	if owned := p.Stats().Owned; len(owned) != 0 {
		t.Errorf("a stopped instance still owns %v", owned)
	}

	s2 := f.share()
	p2 := f.projection(s2, &handler[Tx]{instance: "b", model: s2.Model}, runtime.ProjectionConfig{BatchSize: batch})
	n, err := p2.CatchUp(f.ctx)
	if err != nil || n != len(evs)-done {
		t.Fatalf("CatchUp of a new instance = %d, %v; want %d, nil", n, err, len(evs)-done)
	}
	checkExactlyOnce(t, f.rows(f.s.Model), evs)
}

// testRunRetries: Run logs a batch whose handler fails after writing, and
// retries it after PollInterval until it commits; the failed attempts'
// writes are rolled back.
func testRunRetries[Tx any](t *testing.T, b Backend[Tx]) {
	const failures = 2
	f := newFixture(t, b)
	evs := f.appendStreams("acct", 3, 6)
	fail := evs[9]
	logs := &logCapture{}
	p := f.projection(f.s, &handler[Tx]{instance: "a", after: failOn[Tx](fail.ID, 0, failures)}, runtime.ProjectionConfig{BatchSize: 4, Logger: logs})
	stop := f.run(p)
	f.eventually(func() string { return fmt.Sprintf("applied %d events, want %d", p.Stats().Applied, len(evs)) },
		func() bool { return p.Stats().Applied == uint64(len(evs)) })
	stop()
	rows := f.rows(f.s.Model)
	if b.Transactional {
		checkExactlyOnce(t, rows, evs)
	} else {
		// Without transactions each failed attempt's write stays.
		n := 0
		for _, r := range rows {
			if r.EventID == fail.ID {
				n++
			}
		}
		if n != failures+1 || len(rows) != len(evs)+failures {
			t.Errorf("%d rows, %d of the failing event; want %d and %d", len(rows), n, len(evs)+failures, failures+1)
		}
	}
	retried := 0
	for _, m := range logs.errors() {
		if errors.Is(m.Err, errBoom) {
			retried++
		}
	}
	if retried != failures {
		t.Errorf("Run logged %d failures of the batch, want %d", retried, failures)
	}
}
