package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"google.golang.org/protobuf/proto"
)

// EventSpec tells a Repository how to decode one event type of an
// aggregate. Generated code declares one per event.
type EventSpec[E proto.Message] struct {
	Type *MessageType
	// New returns an empty event to decode into.
	New func() E
}

// SnapshotPolicy says when a Repository stores a snapshot of an aggregate.
type SnapshotPolicy struct {
	// Every stores a snapshot each time the stream's version crosses a
	// multiple of Every. 0 disables snapshots.
	Every uint32
	// Version is the state's schema version; snapshots stored with another
	// version are discarded and the state is rebuilt from events. 0 means 1.
	Version uint32
}

// AggregateSpec describes an event-sourced aggregate with state S and events
// E (an interface every event of the aggregate implements). Generated code
// builds one per aggregate.
type AggregateSpec[S, E proto.Message] struct {
	// Type is the aggregate type: the stream type of its event streams.
	Type string
	// New returns the state of an aggregate with no events.
	New func() S
	// Events lists every event type of the aggregate.
	Events []EventSpec[E]
	// Apply folds one event into state.
	Apply func(state S, event E)
	// Describe returns an event's type and envelope fields.
	Describe func(event E) (*MessageType, Outgoing)
	// Snapshot is the snapshot policy.
	Snapshot SnapshotPolicy
}

// RepositoryConfig configures a Repository.
type RepositoryConfig struct {
	// Source identifies this producer in the envelope of every event (see
	// PublisherConfig.Source). Required.
	Source string
	// Codec encodes events and snapshots. Default ProtoBinary.
	Codec Codec
	// Now returns the events' time. Default time.Now.
	Now func() time.Time
	// NewID returns a new event id. Default: a UUIDv7 string.
	NewID func() (string, error)
	// Upcasters rewrite stored events of older schema versions on load.
	// Optional.
	Upcasters *Upcasters
	// ConflictRetries is how many times Execute runs a command that allows
	// it again after a concurrency conflict. Default 3.
	ConflictRetries int
	// Logger receives snapshot failures, which do not fail a command.
	// Default: none.
	Logger watermill.LoggerAdapter
}

// DefaultConflictRetries is RepositoryConfig.ConflictRetries' default.
const DefaultConflictRetries = 3

// Validate reports what is missing or out of range.
func (c RepositoryConfig) Validate() error {
	var errs []error
	if c.Source == "" {
		errs = append(errs, errors.New("RepositoryConfig.Source is required: name the producer, for example the service name"))
	}
	if c.ConflictRetries < 0 {
		errs = append(errs, fmt.Errorf("RepositoryConfig.ConflictRetries is %d: it must not be negative", c.ConflictRetries))
	}
	return errors.Join(errs...)
}

// Repository loads and saves one aggregate type from an event store.
// Generated repositories wrap one. It is safe for concurrent use; two
// commands on one aggregate at once are serialized by the store's
// optimistic concurrency.
type Repository[S, E proto.Message] struct {
	store        EventStore
	spec         AggregateSpec[S, E]
	byType       map[string]*EventSpec[E]
	env          PublisherConfig
	upcasters    *Upcasters
	retries      int
	snapshotVers uint32
	logger       watermill.LoggerAdapter
}

// NewRepository returns a repository of spec's aggregate over store.
func NewRepository[S, E proto.Message](store EventStore, spec AggregateSpec[S, E], cfg RepositoryConfig) (*Repository[S, E], error) {
	if store == nil {
		return nil, errors.New("runtime.NewRepository: nil EventStore")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if spec.Type == "" || spec.New == nil || spec.Apply == nil || spec.Describe == nil {
		return nil, errors.New("runtime.NewRepository: the AggregateSpec needs Type, New, Apply and Describe")
	}
	r := &Repository[S, E]{
		store:        store,
		spec:         spec,
		byType:       make(map[string]*EventSpec[E], len(spec.Events)),
		env:          PublisherConfig{Source: cfg.Source, Codec: cfg.Codec, Now: cfg.Now, NewID: cfg.NewID},
		upcasters:    cfg.Upcasters,
		retries:      cfg.ConflictRetries,
		snapshotVers: max(spec.Snapshot.Version, 1),
		logger:       cfg.Logger,
	}
	r.env.setDefaults()
	if r.retries == 0 {
		r.retries = DefaultConflictRetries
	}
	if r.logger == nil {
		r.logger = watermill.NopLogger{}
	}
	for i := range spec.Events {
		es := &spec.Events[i]
		for _, name := range append([]string{es.Type.Name}, es.Type.Aliases...) {
			if _, dup := r.byType[name]; dup {
				return nil, fmt.Errorf("runtime.NewRepository: aggregate %s lists event type %q twice", spec.Type, name)
			}
			r.byType[name] = es
		}
	}
	return r, nil
}

// LoadError reports a stored event a Repository cannot apply: its type is
// unknown, its payload does not decode, or the stream has a gap. Retrying
// does not help, so it is wrapped with Permanent.
type LoadError struct {
	Stream StreamID
	// Version is the stream version of the event.
	Version uint64
	// Type is the event's stored type name.
	Type string
	Err  error
}

func (e *LoadError) Error() string {
	return fmt.Sprintf("load stream %s: event at version %d (%s): %v", e.Stream, e.Version, e.Type, e.Err)
}

func (e *LoadError) Unwrap() error { return e.Err }

// Load returns the aggregate's state and version: the latest usable
// snapshot, if any, with the events after it applied. An aggregate with no
// events has the empty state and version 0.
func (r *Repository[S, E]) Load(ctx context.Context, id string) (S, uint64, error) {
	stream := StreamID{Type: r.spec.Type, ID: id}
	state, version, err := r.loadSnapshot(ctx, stream)
	if err != nil {
		var zero S
		return zero, 0, err
	}
	var last *EventSpec[E] // streams repeat types: skip the map for a run
	read := r.store.ReadStream
	if pr, ok := r.store.(PayloadReader); ok {
		read = pr.ReadStreamPayloads
	}
	err = read(ctx, stream, version, func(rec *EventRecord) error {
		if rec.Sequence != version+1 {
			return Permanent(&LoadError{Stream: stream, Version: rec.Sequence, Type: rec.Type, Err: fmt.Errorf("the stream has a gap: the previous event is at version %d", version)})
		}
		e, err := r.decode(ctx, rec, &last)
		if err != nil {
			return Permanent(&LoadError{Stream: stream, Version: rec.Sequence, Type: rec.Type, Err: err})
		}
		r.spec.Apply(state, e)
		version = rec.Sequence
		return nil
	})
	if err != nil {
		var zero S
		return zero, 0, err
	}
	return state, version, nil
}

// loadSnapshot returns the state to start from: the stored snapshot if it
// has the expected schema version and decodes, else the empty state.
func (r *Repository[S, E]) loadSnapshot(ctx context.Context, stream StreamID) (S, uint64, error) {
	state := r.spec.New()
	if r.spec.Snapshot.Every == 0 {
		return state, 0, nil
	}
	snap, err := r.store.LoadSnapshot(ctx, stream)
	if errors.Is(err, ErrNoSnapshot) {
		return state, 0, nil
	}
	if err != nil {
		return state, 0, fmt.Errorf("load snapshot of %s: %w", stream, err)
	}
	if snap.SchemaVersion != r.snapshotVers {
		// The state message changed meaning: rebuilding from events is the
		// only correct reading.
		r.logger.Debug("Discarding snapshot of another schema version", watermill.LogFields{"stream": stream.String(), "snapshot_version": snap.SchemaVersion, "want": r.snapshotVers})
		return state, 0, nil
	}
	codec, err := CodecFor(snap.ContentType)
	if err == nil {
		err = codec.Unmarshal(snap.Data, state)
	}
	if err != nil {
		r.logger.Error("Discarding snapshot that does not decode", err, watermill.LogFields{"stream": stream.String(), "version": snap.Version})
		return r.spec.New(), 0, nil
	}
	return state, snap.Version, nil
}

// decode upcasts rec and decodes it into its event type. last caches the
// previous event's spec: rehydration is a tight loop, and a stream's events
// are mostly of a few types.
func (r *Repository[S, E]) decode(ctx context.Context, rec *EventRecord, last **EventSpec[E]) (E, error) {
	var zero E
	if r.upcasters != nil {
		if err := r.upcasters.Upcast(ctx, rec); err != nil {
			return zero, err
		}
	}
	es := *last
	if es == nil || es.Type.Name != rec.Type {
		var ok bool
		if es, ok = r.byType[rec.Type]; !ok {
			return zero, fmt.Errorf("unknown event type %q: add it to aggregate %s, or register an upcaster that maps it to a current type", rec.Type, r.spec.Type)
		}
		*last = es
	}
	e := es.New()
	var err error
	if rec.ContentType == ContentTypeProtobuf || rec.ContentType == "" {
		// The common case, without the Codec interface call.
		err = proto.Unmarshal(rec.Data, e)
	} else {
		var codec Codec
		if codec, err = CodecFor(rec.ContentType); err == nil {
			err = codec.Unmarshal(rec.Data, e)
		}
	}
	if err != nil {
		return zero, fmt.Errorf("decode %s: %w", es.Type.Name, err)
	}
	return e, nil
}

// Save appends events, decided on state at version, to the aggregate's
// stream, with their outbox messages, and applies them to state. It returns
// the new version, or a *ConcurrencyError if another writer appended since
// version. It stores a snapshot when the new version crosses a multiple of
// the snapshot policy's Every; a failed snapshot is logged, not returned,
// since the events are committed. A nil state is allowed: nothing is applied
// and no snapshot is stored.
func (r *Repository[S, E]) Save(ctx context.Context, id string, state S, version uint64, events []E) (uint64, error) {
	if len(events) == 0 {
		return version, nil
	}
	stream := StreamID{Type: r.spec.Type, ID: id}
	req := AppendRequest{
		Stream:          stream,
		ExpectedVersion: version,
		Events:          make([]EventRecord, len(events)),
		Outbox:          make([]OutboxMessage, len(events)),
	}
	for i, e := range events {
		if !e.ProtoReflect().IsValid() {
			return version, fmt.Errorf("save %s: event %d of %d is nil", stream, i+1, len(events))
		}
		t, out := r.spec.Describe(e)
		if out.Subject != id {
			return version, fmt.Errorf("save %s: %s has aggregate id %q, not %q", stream, t.Name, out.Subject, id)
		}
		out.Sequence = version + uint64(i) + 1
		msgID, payload, md, err := newEnvelope(ctx, &r.env, t, out)
		if err != nil {
			return version, fmt.Errorf("save %s: %w", stream, err)
		}
		mdBytes, err := EncodeMetadata(md)
		if err != nil {
			return version, fmt.Errorf("save %s: %w", stream, err)
		}
		req.Events[i] = EventRecord{ID: msgID, Type: t.Name, SchemaVersion: max(t.Version, 1), ContentType: md[MetaContentType], Data: payload, Metadata: mdBytes}
		req.Outbox[i] = OutboxMessage{Topic: t.Topic, UUID: msgID, Metadata: mdBytes, Payload: payload}
	}
	res, err := r.store.Append(ctx, req)
	if err != nil {
		return version, err
	}
	if state.ProtoReflect().IsValid() {
		for _, e := range events {
			r.spec.Apply(state, e)
		}
		r.maybeSnapshot(ctx, stream, state, version, res.Version)
	}
	return res.Version, nil
}

func (r *Repository[S, E]) maybeSnapshot(ctx context.Context, stream StreamID, state S, from, to uint64) {
	every := uint64(r.spec.Snapshot.Every)
	if every == 0 || to/every == from/every {
		return
	}
	data, err := r.env.Codec.Marshal(state)
	if err == nil {
		err = r.store.SaveSnapshot(ctx, Snapshot{Stream: stream, Version: to, SchemaVersion: r.snapshotVers, ContentType: r.env.Codec.ContentType(), Data: data})
	}
	if err != nil {
		r.logger.Error("Cannot store snapshot; the next load replays more events", err, watermill.LogFields{"stream": stream.String(), "version": to})
	}
}

// Execute runs one command on aggregate id: it loads the aggregate, calls
// decide with its state, and saves the events decide returns. decide must
// not modify the state.
//
// An error from decide is a domain error: Execute returns it wrapped with
// Permanent, since the same command on the same state decides the same. On a
// concurrency conflict Execute runs the command again on fresh state if cmd
// allows it (MessageType.RetryOnConflict), up to ConflictRetries times;
// otherwise, or when retries run out, it returns the conflict, wrapped with
// Permanent when the command does not allow running it again.
func (r *Repository[S, E]) Execute(ctx context.Context, id string, cmd *MessageType, decide func(ctx context.Context, state S) ([]E, error)) ([]E, error) {
	if id == "" {
		return nil, Permanent(fmt.Errorf("execute %s: the command has no aggregate id", cmd.Name))
	}
	attempts := 1
	if cmd.RetryOnConflict {
		attempts += r.retries
	}
	for attempt := 1; ; attempt++ {
		state, version, err := r.Load(ctx, id)
		if err != nil {
			return nil, err
		}
		events, err := decide(ctx, state)
		if err != nil {
			return nil, Permanent(err)
		}
		_, err = r.Save(ctx, id, state, version, events)
		switch {
		case err == nil:
			return events, nil
		case !errors.Is(err, ErrConcurrency):
			return nil, err
		case !cmd.RetryOnConflict:
			return nil, Permanent(fmt.Errorf("execute %s: %w (the command does not allow retry_on_conflict)", cmd.Name, err))
		case attempt == attempts:
			return nil, fmt.Errorf("execute %s after %d attempts: %w", cmd.Name, attempts, err)
		}
	}
}
