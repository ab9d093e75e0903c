package runtime

import (
	"context"
	"errors"
	"slices"
	"time"
)

// ProjectionGenerations is a projection's generation bookkeeping.
type ProjectionGenerations struct {
	// Active is the generation readers see; 0 before the first starts.
	Active int
	// ActivePartitions is the partition count Active was started with.
	ActivePartitions int
	// Latest is the newest generation started. It is above Active while a
	// rebuild is in progress (or was interrupted).
	Latest int
	// LatestPartitions is the partition count Latest was started with.
	LatestPartitions int
}

// ProjectionBatch names the batch a ProjectionStore runs.
type ProjectionBatch struct {
	// Name is the projection's name.
	Name string
	// Generation is the read-model generation the batch writes.
	Generation int
	// Partition is the partition whose events the batch applies.
	Partition int
	// From is the checkpoint the batch's events were read after.
	From uint64
}

// ProjectionLeaseRequest renews an instance's membership among the
// instances running a projection, and its partition leases.
type ProjectionLeaseRequest struct {
	// Name is the projection's name.
	Name string
	// Owner is the instance's id.
	Owner string
	// TTL is how long the membership and the leases held last. Zero leaves:
	// the store drops Owner's membership and every lease it holds.
	TTL time.Duration
	// Decide returns the partitions Owner is to hold, given the live
	// members (Owner among them), sorted, and the live leases (partition to
	// owner). It runs inside the store's transaction and must only compute.
	Decide func(members []string, leases map[int]string) []int
}

// Apply calls r.Decide with the live members (sorted) and leases
// (partition to owner) a store read, and carries out its decision through
// set: it takes, or renews, each partition named that is free or r.Owner's
// (set(part, true)) and drops r.Owner's other leases (set(part, false)). It
// returns the partitions r.Owner holds, in order. Stores call it inside
// their Lease transaction.
func (r ProjectionLeaseRequest) Apply(members []string, leases map[int]string, set func(part int, take bool) error) ([]int, error) {
	var held []int
	for _, part := range r.Decide(members, leases) {
		if owner, taken := leases[part]; (taken && owner != r.Owner) || slices.Contains(held, part) {
			continue
		}
		if err := set(part, true); err != nil {
			return nil, err
		}
		held = append(held, part)
	}
	for part, owner := range leases {
		if owner == r.Owner && !slices.Contains(held, part) {
			if err := set(part, false); err != nil {
				return nil, err
			}
		}
	}
	slices.Sort(held)
	return held, nil
}

// Errors of ProjectionStore.RunBatch and SwitchGeneration.
var (
	// ErrPartitionBusy reports a batch of the same partition running in
	// another instance: the caller tries again later.
	ErrPartitionBusy = errors.New("projection partition busy")
	// ErrCheckpointMoved reports a batch read after a checkpoint that is no
	// longer the partition's: another instance applied the events first.
	// The caller reads again from the checkpoint RunBatch returned.
	ErrCheckpointMoved = errors.New("projection checkpoint moved")
	// ErrGenerationRetired reports a batch or switch of a generation that is
	// neither active nor the latest (a rebuild replaced it), or a switch to
	// a generation that is active already.
	ErrGenerationRetired = errors.New("projection generation retired")
	// ErrNotCaughtUp reports a switch to a generation some partition of
	// which is behind the log's head.
	ErrNotCaughtUp = errors.New("projection generation not caught up")
)

// ProjectionStore keeps a projection's checkpoints, generations and
// partition leases, and runs each batch of events, with the checkpoint
// past it, in one transaction of the database the read model lives in.
// The backends are runtime/sqlite (Store.Projections), runtime/postgres
// (Store.Projections) and runtime/memstore (NewProjectionStore); every one
// passes the suite in runtime/projectiontest.
//
// Concurrency contract: every method is safe for concurrent use, also by
// several processes sharing the database. Two batches of one (name,
// generation, partition) never run at once, and a batch commits only if the
// partition's checkpoint is still the one its events were read after, so no
// event is applied twice or skipped whatever the instances do. Generation
// changes (StartGeneration, SwitchGeneration) are transactional and
// serialized with the batches: a batch of a generation that a switch retires
// either commits before the switch or fails with ErrGenerationRetired.
// Leases are bookkeeping for Run's partition assignment: they keep each
// partition with one instance, but correctness does not depend on them.
type ProjectionStore[Tx any] interface {
	// Generations returns name's generation bookkeeping; the zero value for
	// a projection that never started.
	Generations(ctx context.Context, name string) (ProjectionGenerations, error)

	// StartGeneration records generation gen, with partitions partitions,
	// as name's latest, and calls setup in the same transaction. gen must be
	// the latest generation plus one: if another instance started it first,
	// StartGeneration does nothing and returns false. If activate is not
	// nil, gen also becomes the active generation and activate is called in
	// the transaction, with the previously active generation (the first
	// generation is activated at once).
	StartGeneration(ctx context.Context, name string, gen, partitions int, setup func(context.Context, Tx) error, activate func(ctx context.Context, tx Tx, previous int) error) (bool, error)

	// Checkpoint returns the position up to which the events of (name, gen,
	// partition) are applied; 0 when none are.
	Checkpoint(ctx context.Context, name string, gen, partition int) (uint64, error)

	// RunBatch runs fn in one transaction and saves the position fn returns
	// as the checkpoint of (b.Name, b.Generation, b.Partition) in it, if fn
	// returns nil. Before fn it checks, in the transaction, that no other
	// batch of the partition is running (else ErrPartitionBusy), that the
	// generation is the active or latest one (else ErrGenerationRetired) and
	// that the checkpoint is b.From (else ErrCheckpointMoved). If fn returns
	// an error the transaction rolls back; a store whose transactions cannot
	// roll back the read model (memstore) saves the position fn returned
	// with the error instead, which the runtime sets to just before the
	// event that failed. RunBatch returns the partition's checkpoint after
	// the call (the one it found, with ErrCheckpointMoved).
	RunBatch(ctx context.Context, b ProjectionBatch, fn func(ctx context.Context, tx Tx) (uint64, error)) (uint64, error)

	// SwitchGeneration makes gen, name's latest generation, the active one
	// and calls activate in the same transaction with the previously active
	// generation, whose checkpoints it drops. It first checks, in the
	// transaction, that every partition of gen is at head or past it
	// (stores sharing the event store's database use the log's head as the
	// transaction sees it when that is further), else ErrNotCaughtUp; and
	// that gen is the latest generation and not active yet, else
	// ErrGenerationRetired.
	SwitchGeneration(ctx context.Context, name string, gen int, head uint64, activate func(ctx context.Context, tx Tx, previous int) error) error

	// Lease, in one transaction serialized with the other instances'
	// leases, records req.Owner as a live member of name until TTL from now
	// (the store's clock), drops members and leases that expired, calls
	// req.Decide, takes the free partitions it names, renews Owner's leases
	// it names and releases Owner's others. It returns the partitions Owner
	// holds afterwards, in order.
	Lease(ctx context.Context, req ProjectionLeaseRequest) ([]int, error)
}
