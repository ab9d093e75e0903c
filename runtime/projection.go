package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"google.golang.org/protobuf/proto"
)

// ProjectionTx is what a projection handler writes through: the
// transaction in which the runtime also saves the projection's checkpoint,
// so that the read model and the checkpoint commit together or not at all.
type ProjectionTx[Tx any] struct {
	// Tx is the backend's transaction: *sql.Tx with runtime/sqlite, pgx.Tx
	// with runtime/postgres, memstore.NoTx in memory.
	Tx Tx
	// Generation is the read-model generation being written, at least 1. A
	// rebuild writes generation n+1 while readers still read generation n.
	Generation int
}

// Table returns base with the generation as suffix ("order_summary" in
// generation 2 is "order_summary_g2"): the table a handler writes, so that
// a rebuild fills fresh tables beside the ones readers use.
func (p ProjectionTx[Tx]) Table(base string) string {
	return base + "_g" + strconv.Itoa(p.Generation)
}

// ProjectionRoute is one event type a projection consumes. Build it with
// Project.
type ProjectionRoute[Tx any] struct {
	// Type is the event type; records of its Name or one of its Aliases
	// take this route.
	Type   *MessageType
	decode func(rec *EventRecord) (proto.Message, error)
	apply  func(ctx context.Context, p ProjectionTx[Tx], m proto.Message, rec *EventRecord) error
}

// Project returns the route that decodes records of type t (or one of its
// Aliases), once the configured upcasters have run, with the codec of their
// content type, and calls fn. rec is valid only until fn returns. Generated
// code calls it once per event a projection consumes.
func Project[Tx any, T any, PT interface {
	*T
	proto.Message
}](t *MessageType, fn func(ctx context.Context, p ProjectionTx[Tx], event PT, rec *EventRecord) error) ProjectionRoute[Tx] {
	return ProjectionRoute[Tx]{
		Type: t,
		decode: func(rec *EventRecord) (proto.Message, error) {
			m := PT(new(T))
			var err error
			if rec.ContentType == ContentTypeProtobuf || rec.ContentType == "" {
				// The common case, without the Codec interface call.
				err = proto.Unmarshal(rec.Data, m)
			} else {
				var codec Codec
				if codec, err = CodecFor(rec.ContentType); err == nil {
					err = codec.Unmarshal(rec.Data, m)
				}
			}
			if err != nil {
				return nil, fmt.Errorf("decode %s: %w", t.Name, err)
			}
			return m, nil
		},
		apply: func(ctx context.Context, p ProjectionTx[Tx], m proto.Message, rec *EventRecord) error {
			return fn(ctx, p, m.(PT), rec)
		},
	}
}

// ProjectionSpec describes a projection to the runtime. Generated code
// builds one per annotated read model.
type ProjectionSpec[Tx any] struct {
	// Name identifies the projection in the projection store: its
	// checkpoints, generations and partition leases are keyed by it. It is
	// stable: renaming it builds the read model again from the start.
	Name string
	// Routes lists the event types the projection consumes, one route each.
	// Records of other types are ignored (and passed by the checkpoint).
	Routes []ProjectionRoute[Tx]
	// Setup creates one generation's tables, named with p.Table, in the
	// transaction that starts the generation. Optional.
	Setup func(ctx context.Context, p ProjectionTx[Tx]) error
	// Activate makes p.Generation the one readers see (for example, it
	// replaces a view), in the transaction that records the switch.
	// previous is the generation readers saw before, 0 for none: Activate
	// may drop its tables. Optional.
	Activate func(ctx context.Context, p ProjectionTx[Tx], previous int) error
}

// Defaults of ProjectionConfig.
const (
	DefaultProjectionBatchSize    = 100
	DefaultProjectionPollInterval = 100 * time.Millisecond
	DefaultProjectionPartitions   = 1
	// DefaultProjectionLease is how long an instance's claim on a partition
	// lasts without renewal: how long the other instances wait before they
	// take over the partitions of one that died. Run renews its claims every
	// third of it.
	DefaultProjectionLease = 15 * time.Second
)

// MaxProjectionPartitions bounds ProjectionConfig.Partitions: every
// partition reads the global log on its own, so thousands would cost
// thousands of reads of every event.
const MaxProjectionPartitions = 1024

// leaveTimeout bounds the release of an instance's leases when Run ends,
// which runs after Run's context is done.
const leaveTimeout = 5 * time.Second

// ProjectionConfig configures a Projection. The zero value is ready to use.
type ProjectionConfig struct {
	// BatchSize is the most events of a partition one transaction applies:
	// the checkpoint is saved every BatchSize events. A batch reads at most
	// BatchSize×Partitions records of the global log. Default 100.
	BatchSize int
	// PollInterval is how often a projection that has caught up looks for
	// new events, and how long Run waits after an error before it retries
	// the same batch. Default 100ms. (The stores' OutboxReady channel is not
	// used for wake-ups: it has one receiver, the outbox relay.)
	PollInterval time.Duration
	// Partitions splits the events, by a stable hash of their stream (see
	// ProjectionPartition), into partitions with a checkpoint each, which
	// several instances of the projection share (competing consumers): the
	// events of one stream are always applied in order, by one instance at
	// a time. It is fixed per generation: a new value takes effect at the
	// next Rebuild. Default 1.
	Partitions int
	// Lease is how long an instance's claim on its partitions lasts without
	// renewal. Run renews its claims every Lease/3; when an instance stops,
	// it releases them at once, and when it dies the others take over its
	// partitions after Lease. Default DefaultProjectionLease.
	Lease time.Duration
	// Upcasters rewrite stored events of older schema versions, or of
	// retired types, before they are routed and decoded. Optional.
	Upcasters *Upcasters
	// Logger receives the events skipped and the errors Run retries.
	// Default: none.
	Logger watermill.LoggerAdapter
}

// Validate reports every field out of range, joined with errors.Join.
func (c ProjectionConfig) Validate() error {
	var errs []error
	if c.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("ProjectionConfig.BatchSize is %d: it must not be negative", c.BatchSize))
	}
	if c.PollInterval < 0 {
		errs = append(errs, fmt.Errorf("ProjectionConfig.PollInterval is %v: it must not be negative", c.PollInterval))
	}
	if c.Partitions < 0 || c.Partitions > MaxProjectionPartitions {
		errs = append(errs, fmt.Errorf("ProjectionConfig.Partitions is %d: it must be between 1 and %d (0 means 1)", c.Partitions, MaxProjectionPartitions))
	}
	if c.Lease < 0 {
		errs = append(errs, fmt.Errorf("ProjectionConfig.Lease is %v: it must not be negative", c.Lease))
	}
	return errors.Join(errs...)
}

func (c *ProjectionConfig) setDefaults() {
	if c.BatchSize == 0 {
		c.BatchSize = DefaultProjectionBatchSize
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultProjectionPollInterval
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultProjectionPartitions
	}
	if c.Lease == 0 {
		c.Lease = DefaultProjectionLease
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
}

// ProjectionStats counts what a Projection did since it was created.
type ProjectionStats struct {
	// Applied events were handled, in transactions that committed.
	Applied uint64
	// Ignored events have a type no route consumes; the checkpoint passed
	// them.
	Ignored uint64
	// Skipped events have a routed type but could not be upcast or decoded
	// (a corrupt payload, a schema version no upcaster maps); each was
	// logged with its position and the reason, and the checkpoint passed it.
	Skipped uint64
	// Position is the highest checkpoint this instance saved in Generation.
	Position uint64
	// Generation is the generation readers see, as this instance last read
	// it; 0 before the first.
	Generation int
	// Owned lists the partitions Run holds the lease of, in order.
	Owned []int
}

// Projection builds a read model from an event store's global log: it
// catches up from its checkpoint, then follows new events, applying each
// through the spec's routes in transactions of the projection store that
// also save the checkpoint. A crash therefore never applies an event twice
// or skips one: a batch commits with its checkpoint or not at all.
//
// The read model has generations. The first starts (Setup) and is activated
// (Activate) at once; Rebuild fills generation n+1 from the start of the
// log beside the active one, which keeps following new events, and
// switches readers to it when it has caught up.
//
// Run, CatchUp and Rebuild may be called concurrently, on one Projection or
// on several instances (processes) sharing the stores: the projection store
// keeps two batches of one partition from running at once, and Run's
// leases keep each partition with one instance (see ProjectionConfig.Partitions).
type Projection[Tx any] struct {
	log    EventStore
	store  ProjectionStore[Tx]
	spec   ProjectionSpec[Tx]
	cfg    ProjectionConfig
	routes map[string]*ProjectionRoute[Tx]
	// owner identifies this instance in the partition leases.
	owner string

	applied, ignored, skipped atomic.Uint64

	mu sync.Mutex
	// generation and position are Stats' Generation and Position.
	generation int
	position   uint64
	owned      []int
	// warned records that the configured partition count differs from the
	// active generation's, which is logged once.
	warned bool
}

// NewProjection returns the projection of spec over the global log of log,
// with its checkpoints and read model in store.
func NewProjection[Tx any](log EventStore, store ProjectionStore[Tx], spec ProjectionSpec[Tx], cfg ProjectionConfig) (*Projection[Tx], error) {
	var errs []error
	if log == nil {
		errs = append(errs, errors.New("runtime.NewProjection: nil EventStore"))
	}
	if store == nil {
		errs = append(errs, errors.New("runtime.NewProjection: nil ProjectionStore"))
	}
	if spec.Name == "" {
		errs = append(errs, errors.New("runtime.NewProjection: the ProjectionSpec needs a Name: it keys the checkpoints"))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	routes := make(map[string]*ProjectionRoute[Tx], len(spec.Routes))
	for i := range spec.Routes {
		r := &spec.Routes[i]
		if r.Type == nil || r.Type.Name == "" || r.decode == nil {
			errs = append(errs, fmt.Errorf("runtime.NewProjection: route %d of %s has no type: build routes with Project", i, spec.Name))
			continue
		}
		for _, name := range append([]string{r.Type.Name}, r.Type.Aliases...) {
			if _, dup := routes[name]; dup {
				errs = append(errs, fmt.Errorf("runtime.NewProjection: projection %s routes event type %q twice", spec.Name, name))
			}
			routes[name] = r
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	owner, err := newOwnerID()
	if err != nil {
		return nil, fmt.Errorf("runtime.NewProjection: %w", err)
	}
	return &Projection[Tx]{log: log, store: store, spec: spec, cfg: cfg, routes: routes, owner: owner}, nil
}

// ownerIDBytes is the length of an instance's random id: enough that two
// instances never collide.
const ownerIDBytes = 12

func newOwnerID() (string, error) {
	b := make([]byte, ownerIDBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make an instance id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// Stats returns the projection's counters.
func (p *Projection[Tx]) Stats() ProjectionStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return ProjectionStats{
		Applied:    p.applied.Load(),
		Ignored:    p.ignored.Load(),
		Skipped:    p.skipped.Load(),
		Position:   p.position,
		Generation: p.generation,
		Owned:      append([]int(nil), p.owned...),
	}
}

// ProjectionPartition returns the partition, of partitions, of the events
// of stream: FNV-1a (32 bits) of Type+"/"+ID, modulo partitions. It is
// stable across processes and releases: checkpoints depend on it.
func ProjectionPartition(stream StreamID, partitions int) int {
	if partitions <= 1 {
		return 0
	}
	const (
		offset32 = 2166136261
		prime32  = 16777619
	)
	h := uint32(offset32)
	for i := 0; i < len(stream.Type); i++ {
		h = (h ^ uint32(stream.Type[i])) * prime32
	}
	h = (h ^ '/') * prime32
	for i := 0; i < len(stream.ID); i++ {
		h = (h ^ uint32(stream.ID[i])) * prime32
	}
	return int(h % uint32(partitions))
}
