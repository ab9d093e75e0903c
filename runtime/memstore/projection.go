package memstore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/protoc-gen-eda/eda/runtime"
)

// NoTx is the transaction of the in-memory projection store: there is
// none. A read model kept in memory does its own locking, and nothing rolls
// its writes back.
type NoTx struct{}

// projectionStore is the in-memory runtime.ProjectionStore.
type projectionStore struct {
	mu          sync.Mutex
	projections map[string]*projection
}

// NewProjectionStore returns an empty in-memory runtime.ProjectionStore:
// checkpoints, generations and partition leases in memory, for tests and
// examples with an in-memory read model. It is safe for concurrent use;
// instances of a projection share partitions only within the process.
//
// With no transactions, a handler error cannot undo the writes of the
// events before it in its batch. So RunBatch keeps them: it saves the
// checkpoint just before the event that failed, and that event is applied
// again on the next try. Only the failed event's own partial writes, if
// the handler made any, are repeated: handlers that write one thing per
// event apply every event exactly once.
func NewProjectionStore() runtime.ProjectionStore[NoTx] {
	return &projectionStore{projections: make(map[string]*projection)}
}

// projection is one projection's bookkeeping.
type projection struct {
	// gate is held shared by running batches and exclusively by generation
	// changes, so that a switch waits for the batches of the generation it
	// retires, as a database's row lock would make it.
	gate sync.RWMutex

	// The fields below are guarded by projectionStore.mu.
	gens        runtime.ProjectionGenerations
	checkpoints map[partKey]uint64
	running     map[partKey]bool
	// leases maps a partition to its holder; members maps the live
	// instances to when their membership expires.
	leases  map[int]lease
	members map[string]time.Time
}

type partKey struct{ gen, part int }

type lease struct {
	owner   string
	expires time.Time
}

// get returns name's bookkeeping, creating it. Callers hold s.mu.
func (s *projectionStore) get(name string) *projection {
	pr, ok := s.projections[name]
	if !ok {
		pr = &projection{
			checkpoints: make(map[partKey]uint64),
			running:     make(map[partKey]bool),
			leases:      make(map[int]lease),
			members:     make(map[string]time.Time),
		}
		s.projections[name] = pr
	}
	return pr
}

// lookup returns name's bookkeeping, creating it, taking s.mu.
func (s *projectionStore) lookup(name string) *projection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.get(name)
}

// Generations implements runtime.ProjectionStore.
func (s *projectionStore) Generations(ctx context.Context, name string) (runtime.ProjectionGenerations, error) {
	if err := begin(ctx, "projection generations"); err != nil {
		return runtime.ProjectionGenerations{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.get(name).gens, nil
}

// StartGeneration implements runtime.ProjectionStore. setup and activate
// run under the projection's exclusive gate; if one fails, the generation
// is not recorded, but what they did to the read model stays.
func (s *projectionStore) StartGeneration(ctx context.Context, name string, gen, partitions int, setup func(context.Context, NoTx) error, activate func(context.Context, NoTx, int) error) (bool, error) {
	if err := begin(ctx, "start projection generation"); err != nil {
		return false, err
	}
	pr := s.lookup(name)
	pr.gate.Lock()
	defer pr.gate.Unlock()
	s.mu.Lock()
	g := pr.gens
	s.mu.Unlock()
	if g.Latest != gen-1 {
		return false, nil
	}
	if err := setup(ctx, NoTx{}); err != nil {
		return false, err
	}
	if activate != nil {
		if err := activate(ctx, NoTx{}, g.Active); err != nil {
			return false, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pr.gens.Latest, pr.gens.LatestPartitions = gen, partitions
	if activate != nil {
		pr.gens.Active, pr.gens.ActivePartitions = gen, partitions
	}
	return true, nil
}

// Checkpoint implements runtime.ProjectionStore.
func (s *projectionStore) Checkpoint(ctx context.Context, name string, gen, partition int) (uint64, error) {
	if err := begin(ctx, "projection checkpoint"); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.get(name).checkpoints[partKey{gen, partition}], nil
}

// RunBatch implements runtime.ProjectionStore. A partition running a batch
// is busy for every other caller until fn returns. When fn fails, the
// position it returned is saved (see ProjectionStore).
func (s *projectionStore) RunBatch(ctx context.Context, b runtime.ProjectionBatch, fn func(context.Context, NoTx) (uint64, error)) (uint64, error) {
	if err := begin(ctx, "projection batch"); err != nil {
		return b.From, err
	}
	key := partKey{b.Generation, b.Partition}
	pr := s.lookup(b.Name)
	pr.gate.RLock()
	defer pr.gate.RUnlock()
	s.mu.Lock()
	cp := pr.checkpoints[key]
	var err error
	switch {
	case pr.running[key]:
		err = runtime.ErrPartitionBusy
	case b.Generation != pr.gens.Active && b.Generation != pr.gens.Latest:
		err = runtime.ErrGenerationRetired
	case cp != b.From:
		err = runtime.ErrCheckpointMoved
	}
	if err != nil {
		s.mu.Unlock()
		return cp, fmt.Errorf("memstore: projection %s generation %d partition %d: %w", b.Name, b.Generation, b.Partition, err)
	}
	pr.running[key] = true
	s.mu.Unlock()

	to := b.From
	defer func() { // also if fn panics
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(pr.running, key)
		if to > b.From {
			pr.checkpoints[key] = to
		}
	}()
	var fnErr error
	to, fnErr = fn(ctx, NoTx{})
	return max(to, b.From), fnErr
}

// SwitchGeneration implements runtime.ProjectionStore. It has no event
// log of its own to look at, so head is the one the caller saw.
func (s *projectionStore) SwitchGeneration(ctx context.Context, name string, gen int, head uint64, activate func(context.Context, NoTx, int) error) error {
	if err := begin(ctx, "switch projection generation"); err != nil {
		return err
	}
	pr := s.lookup(name)
	pr.gate.Lock()
	defer pr.gate.Unlock()
	s.mu.Lock()
	g := pr.gens
	var err error
	if gen != g.Latest || gen <= g.Active {
		err = runtime.ErrGenerationRetired
	} else {
		for part := range g.LatestPartitions {
			if pr.checkpoints[partKey{gen, part}] < head {
				err = runtime.ErrNotCaughtUp
				break
			}
		}
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("memstore: projection %s: switch to generation %d: %w", name, gen, err)
	}
	if err := activate(ctx, NoTx{}, g.Active); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pr.gens.Active, pr.gens.ActivePartitions = gen, g.LatestPartitions
	for k := range pr.checkpoints {
		if k.gen < gen {
			delete(pr.checkpoints, k)
		}
	}
	return nil
}

// Lease implements runtime.ProjectionStore, with the process's clock.
func (s *projectionStore) Lease(ctx context.Context, req runtime.ProjectionLeaseRequest) ([]int, error) {
	if err := begin(ctx, "projection lease"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pr := s.get(req.Name)
	now := time.Now()
	for owner, expires := range pr.members {
		if !now.Before(expires) || (req.TTL == 0 && owner == req.Owner) {
			delete(pr.members, owner)
		}
	}
	for part, l := range pr.leases {
		if !now.Before(l.expires) || (req.TTL == 0 && l.owner == req.Owner) {
			delete(pr.leases, part)
		}
	}
	if req.TTL == 0 {
		return nil, nil
	}
	expires := now.Add(req.TTL)
	pr.members[req.Owner] = expires
	live := make(map[int]string, len(pr.leases))
	for part, l := range pr.leases {
		live[part] = l.owner
	}
	return req.Apply(slices.Sorted(maps.Keys(pr.members)), live, func(part int, take bool) error {
		if take {
			pr.leases[part] = lease{owner: req.Owner, expires: expires}
		} else {
			delete(pr.leases, part)
		}
		return nil
	})
}
