package projectiontest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/protoc-gen-eda/eda/runtime"
)

// testStoreContract checks the ProjectionStore methods directly, clause by
// clause of the interface's documentation.
func testStoreContract[Tx any](t *testing.T, b Backend[Tx]) {
	f := newFixture(t, b)
	ps := f.s.Projections
	const name = "projectiontest.contract"
	ctx := f.ctx
	var setups []int
	setup := func(gen int) func(context.Context, Tx) error {
		return func(context.Context, Tx) error {
			setups = append(setups, gen)
			return nil
		}
	}
	var activations [][2]int
	activate := func(gen int) func(context.Context, Tx, int) error {
		return func(_ context.Context, _ Tx, previous int) error {
			activations = append(activations, [2]int{gen, previous})
			return nil
		}
	}
	gens := func() runtime.ProjectionGenerations {
		t.Helper()
		g, err := ps.Generations(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	batch := func(gen, part int, from, to uint64, fnErr error) (uint64, error) {
		return ps.RunBatch(ctx, runtime.ProjectionBatch{Name: name, Generation: gen, Partition: part, From: from},
			func(context.Context, Tx) (uint64, error) { return to, fnErr })
	}

	if g := gens(); g != (runtime.ProjectionGenerations{}) {
		t.Errorf("Generations of a new projection = %+v, want zero", g)
	}
	if ok, err := ps.StartGeneration(ctx, name, 2, 1, setup(2), nil); ok || err != nil {
		t.Errorf("StartGeneration(2) with none started = %v, %v; want false, nil", ok, err)
	}
	if ok, err := ps.StartGeneration(ctx, name, 1, 2, setup(1), activate(1)); !ok || err != nil {
		t.Fatalf("StartGeneration(1) = %v, %v; want true, nil", ok, err)
	}
	if ok, err := ps.StartGeneration(ctx, name, 1, 2, setup(1), activate(1)); ok || err != nil {
		t.Errorf("StartGeneration(1) again = %v, %v; want false, nil", ok, err)
	}
	if g := gens(); g != (runtime.ProjectionGenerations{Active: 1, ActivePartitions: 2, Latest: 1, LatestPartitions: 2}) {
		t.Errorf("Generations = %+v, want 1 active and latest with 2 partitions", g)
	}

	// Batches: the checkpoint moves only when fn succeeds from the right
	// place.
	if cp, err := batch(1, 1, 0, 7, nil); cp != 7 || err != nil {
		t.Errorf("RunBatch = %d, %v; want 7, nil", cp, err)
	}
	if cp, err := batch(1, 1, 3, 9, nil); cp != 7 || !errors.Is(err, runtime.ErrCheckpointMoved) {
		t.Errorf("RunBatch from a stale checkpoint = %d, %v; want 7, ErrCheckpointMoved", cp, err)
	}
	if _, err := batch(5, 0, 0, 9, nil); !errors.Is(err, runtime.ErrGenerationRetired) {
		t.Errorf("RunBatch of a generation never started = %v, want ErrGenerationRetired", err)
	}
	wantCP := uint64(7)
	if !b.Transactional {
		wantCP = 8 // the position fn returned with its error is kept
	}
	if _, err := batch(1, 1, 7, 8, errBoom); !errors.Is(err, errBoom) {
		t.Errorf("RunBatch whose fn fails = %v, want fn's error", err)
	}
	if cp := f.checkpointOf(name, 1, 1); cp != wantCP {
		t.Errorf("checkpoint after a failed batch = %d, want %d", cp, wantCP)
	}
	if cp := f.checkpointOf(name, 1, 0); cp != 0 {
		t.Errorf("checkpoint of another partition = %d, want 0", cp)
	}

	// Generation 2: started beside 1, switched to once caught up.
	if err := ps.SwitchGeneration(ctx, name, 1, 0, activate(1)); !errors.Is(err, runtime.ErrGenerationRetired) {
		t.Errorf("SwitchGeneration to the active generation = %v, want ErrGenerationRetired", err)
	}
	if ok, err := ps.StartGeneration(ctx, name, 2, 1, setup(2), nil); !ok || err != nil {
		t.Fatalf("StartGeneration(2) = %v, %v; want true, nil", ok, err)
	}
	if g := gens(); g != (runtime.ProjectionGenerations{Active: 1, ActivePartitions: 2, Latest: 2, LatestPartitions: 1}) {
		t.Errorf("Generations during a rebuild = %+v, want 1 active (2 partitions), 2 latest (1 partition)", g)
	}
	if cp, err := batch(1, 0, 0, 4, nil); cp != 4 || err != nil {
		t.Errorf("RunBatch of the active generation during a rebuild = %d, %v; want 4, nil", cp, err)
	}
	if cp, err := batch(2, 0, 0, 5, nil); cp != 5 || err != nil {
		t.Errorf("RunBatch of the latest generation = %d, %v; want 5, nil", cp, err)
	}
	if err := ps.SwitchGeneration(ctx, name, 2, 6, activate(2)); !errors.Is(err, runtime.ErrNotCaughtUp) {
		t.Errorf("SwitchGeneration behind the head = %v, want ErrNotCaughtUp", err)
	}
	if err := ps.SwitchGeneration(ctx, name, 2, 5, activate(2)); err != nil {
		t.Fatalf("SwitchGeneration at the head: %v", err)
	}
	if g := gens(); g != (runtime.ProjectionGenerations{Active: 2, ActivePartitions: 1, Latest: 2, LatestPartitions: 1}) {
		t.Errorf("Generations after the switch = %+v, want 2 active and latest with 1 partition", g)
	}
	if !slices.Equal(setups, []int{1, 2}) || !slices.Equal(activations, [][2]int{{1, 0}, {2, 1}}) {
		t.Errorf("setup called for %v, activate with %v; want [1 2] and [[1 0] [2 1]]", setups, activations)
	}
	if _, err := batch(1, 0, 4, 6, nil); !errors.Is(err, runtime.ErrGenerationRetired) {
		t.Errorf("RunBatch of the retired generation = %v, want ErrGenerationRetired", err)
	}
	if cp := f.checkpointOf(name, 1, 0); cp != 0 {
		t.Errorf("the retired generation's checkpoint = %d, want it dropped", cp)
	}
	if cp := f.checkpointOf(name, 2, 0); cp != 5 {
		t.Errorf("the active generation's checkpoint = %d, want 5", cp)
	}
}

// testLeases checks ProjectionStore.Lease: members, taking free
// partitions, keeping them from others, releasing, leaving and expiry.
func testLeases[Tx any](t *testing.T, b Backend[Tx]) {
	f := newFixture(t, b)
	ps := f.s.Projections
	const name = "projectiontest.leases"
	type seen struct {
		members []string
		leases  map[int]string
	}
	lease := func(owner string, ttl time.Duration, want ...int) ([]int, seen) {
		t.Helper()
		var s seen
		held, err := ps.Lease(f.ctx, runtime.ProjectionLeaseRequest{Name: name, Owner: owner, TTL: ttl,
			Decide: func(members []string, leases map[int]string) []int {
				s = seen{slices.Clone(members), leases}
				return want
			}})
		if err != nil {
			t.Fatalf("Lease(%s): %v", owner, err)
		}
		return held, s
	}
	const long = time.Minute
	if held, s := lease("a", long, 0, 1); !slices.Equal(held, []int{0, 1}) || !slices.Equal(s.members, []string{"a"}) || len(s.leases) != 0 {
		t.Errorf("first Lease = %v having seen %+v; want [0 1] having seen member a and no leases", held, s)
	}
	if held, s := lease("b", long, 2, 0, 1); !slices.Equal(held, []int{2}) || !slices.Equal(s.members, []string{"a", "b"}) || s.leases[0] != "a" || s.leases[1] != "a" {
		t.Errorf("Lease(b) of [2 0 1] = %v having seen %+v; want [2]: a holds 0 and 1", held, s)
	}
	if held, _ := lease("a", long, 1); !slices.Equal(held, []int{1}) {
		t.Errorf("Lease(a) keeping 1 = %v, want [1]", held)
	}
	if held, s := lease("b", long, 0, 2); !slices.Equal(held, []int{0, 2}) || s.leases[0] != "" {
		t.Errorf("Lease(b) of the released 0 = %v having seen %+v; want [0 2]", held, s)
	}
	if held, _ := lease("a", 0); len(held) != 0 {
		t.Errorf("Lease(a) leaving = %v, want nothing", held)
	}
	if held, s := lease("b", long, 0, 1, 2); !slices.Equal(held, []int{0, 1, 2}) || !slices.Equal(s.members, []string{"b"}) {
		t.Errorf("Lease(b) after a left = %v having seen %+v; want [0 1 2], member b alone", held, s)
	}
	// A short lease expires: its partition and membership go to others.
	lease("b", 0)
	const short = 50 * time.Millisecond
	if held, _ := lease("c", short, 3); !slices.Equal(held, []int{3}) {
		t.Fatalf("Lease(c) = %v, want [3]", held)
	}
	time.Sleep(3 * short)
	if held, s := lease("d", long, 3); !slices.Equal(held, []int{3}) || !slices.Equal(s.members, []string{"d"}) {
		t.Errorf("Lease(d) after c's lease expired = %v having seen %+v; want [3], member d alone", held, s)
	}
}

// checkpointOf returns the checkpoint of (name, gen, part).
func (f *fixture[Tx]) checkpointOf(name string, gen, part int) uint64 {
	f.t.Helper()
	cp, err := f.s.Projections.Checkpoint(f.ctx, name, gen, part)
	if err != nil {
		f.t.Fatalf("Checkpoint: %v", err)
	}
	return cp
}
