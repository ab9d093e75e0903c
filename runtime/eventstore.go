package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// StreamID names one aggregate instance's stream of events.
type StreamID struct {
	// Type is the aggregate type, for example "shop.orders.v1.Order".
	Type string
	// ID is the aggregate id, for example "order-1".
	ID string
}

func (s StreamID) String() string { return s.Type + "/" + s.ID }

// EventRecord is one event as the event store holds it.
type EventRecord struct {
	// ID is the event's envelope id. It is unique in the store: appending an
	// event whose id is stored already is a no-op (see EventStore.Append).
	ID string
	// Stream is the stream the event belongs to.
	Stream StreamID
	// Sequence is the event's 1-based position in its stream: the stream's
	// version once the event is applied.
	Sequence uint64
	// Position is the event's position in the store's global log, set by the
	// store on append. Positions increase in commit order: a reader of the
	// global log never sees a position appear below one it has read.
	// Positions may have gaps.
	Position uint64
	// Type is the event's stable type name.
	Type string
	// SchemaVersion is the version of the payload's schema, at least 1.
	SchemaVersion uint32
	// ContentType is the payload's encoding (see Codec).
	ContentType string
	// Data is the encoded payload.
	Data []byte
	// Metadata holds the rest of the envelope (source, time, correlation and
	// causation ids, partition key, trace context) as a JSON object of
	// strings, or is empty. EncodeMetadata and DecodeMetadata convert it.
	// It is kept encoded so that rehydration, which does not need it, does
	// not pay for decoding it.
	Metadata []byte
	// RecordedAt is when the store committed the event, set by the store.
	RecordedAt time.Time
}

// AnyVersion as an expected version appends whatever the stream's version.
const AnyVersion uint64 = math.MaxUint64

// AppendRequest appends events to one stream, with optimistic concurrency.
type AppendRequest struct {
	// Stream receives the events.
	Stream StreamID
	// ExpectedVersion is the stream version the events were decided at: 0
	// for a stream that must not exist yet, AnyVersion to skip the check.
	ExpectedVersion uint64
	// Events are appended in order, with sequences ExpectedVersion+1, ... The
	// store sets Stream, Sequence, Position and RecordedAt; the caller sets
	// the rest.
	Events []EventRecord
	// Outbox holds messages to publish once the events are committed. They
	// are written in the same transaction as the events: both or neither.
	Outbox []OutboxMessage
}

// AppendResult says where appended events landed.
type AppendResult struct {
	// Version is the stream's version after the append: the last event's
	// sequence.
	Version uint64
	// FirstPosition and LastPosition are the global positions of the first
	// and last events appended.
	FirstPosition, LastPosition uint64
}

// Snapshot is an aggregate's state at a stream version, stored so that
// loading it does not replay every event.
type Snapshot struct {
	Stream StreamID
	// Version is the stream version the state reflects.
	Version uint64
	// SchemaVersion is the version of the state's schema. A loader discards a
	// snapshot whose schema version is not the one it expects.
	SchemaVersion uint32
	// ContentType is the state's encoding.
	ContentType string
	// Data is the encoded state.
	Data []byte
}

// OutboxMessage is a message waiting in the outbox for the relay to publish
// it: a Watermill message with its topic.
type OutboxMessage struct {
	// Position orders the outbox, set by the store on write. The relay
	// publishes in position order, which is commit order within one stream.
	Position uint64
	// Topic is where the message is published.
	Topic string
	// UUID is the Watermill message UUID (the envelope id).
	UUID string
	// Metadata is the Watermill metadata as a JSON object of strings (see
	// EncodeMetadata).
	Metadata []byte
	// Payload is the message body.
	Payload []byte
	// DeliverAt delays the message: RelayOutbox hands it out only once the
	// store's clock has reached it. Zero means at once. A store returns it
	// as UTC at its own precision (microseconds on PostgreSQL), and zero
	// for a message written without one. Sagas write their timeouts with
	// it, which makes them durable: a delayed message waits in the outbox,
	// not in a process's memory.
	DeliverAt time.Time
}

// EventStore stores streams of events, snapshots and the outbox. Every
// method is safe for concurrent use, also by several processes sharing one
// database. Every backend passes the conformance suite in runtime/storetest.
type EventStore interface {
	// Append appends req.Events to req.Stream if the stream is at
	// req.ExpectedVersion, and writes req.Outbox, in one transaction. If the
	// stream is at another version it stores nothing and returns a
	// *ConcurrencyError (errors.Is(err, ErrConcurrency)). Of several
	// concurrent appends at one version exactly one succeeds.
	//
	// Append is idempotent by event id: if every event of req is stored
	// already, in req.Stream and in the same order, it stores nothing and
	// returns the result of the first append. If only some are, or they are
	// stored in another stream, it returns an error wrapping
	// ErrDuplicateEvent.
	Append(ctx context.Context, req AppendRequest) (AppendResult, error)

	// ReadStream calls fn with the events of stream whose sequence is above
	// after, in sequence order, until fn returns an error (which ReadStream
	// returns). The record is valid only until fn returns: fn must copy what
	// it keeps and must not modify it. A stream that does not exist has no
	// events: fn is not called and the error is nil.
	ReadStream(ctx context.Context, stream StreamID, after uint64, fn func(*EventRecord) error) error

	// ReadAll calls fn with at most limit events of the global log whose
	// position is above after, in position order, with the same contract as
	// ReadStream. limit <= 0 means no limit.
	ReadAll(ctx context.Context, after uint64, limit int, fn func(*EventRecord) error) error

	// SaveSnapshot stores s as its stream's snapshot, replacing an older one.
	// A snapshot at a lower version than the stored one is ignored.
	SaveSnapshot(ctx context.Context, s Snapshot) error

	// LoadSnapshot returns the stream's latest snapshot, or ErrNoSnapshot.
	LoadSnapshot(ctx context.Context, stream StreamID) (Snapshot, error)

	// RelayOutbox calls publish with up to limit due outbox messages in
	// position order (limit <= 0 means no limit), and deletes them if
	// publish returns nil. It holds a claim on the outbox meanwhile, so that
	// two relays (in one process or several) never publish the same message
	// at the same time: if another relay holds it, RelayOutbox returns 0, nil
	// without calling publish. It returns the number of messages published.
	// If publish fails or the process dies, the messages stay and are
	// published again later: the outbox delivers at least once.
	//
	// A message is due when its DeliverAt is zero or not after the clock
	// of the process calling RelayOutbox (time.Now: processes sharing a
	// database should keep their clocks in sync). A message that is not
	// due yet is left in the outbox and does not hold back the due
	// messages behind it, so delayed messages are the one exception to
	// position order: they are published in position order among the
	// messages due when they are.
	RelayOutbox(ctx context.Context, limit int, publish func([]OutboxMessage) error) (int, error)

	// Close releases the store's resources. Methods called after Close
	// return an error wrapping ErrStoreClosed.
	Close() error
}

// OutboxNotifier is implemented by stores that can tell a relay in the same
// process that messages were written to the outbox, so it need not wait for
// its next poll.
type OutboxNotifier interface {
	// OutboxReady returns a channel that receives a value after an append
	// that wrote outbox messages. Sends do not block: one value may stand for
	// several appends.
	OutboxReady() <-chan struct{}
}

// PayloadReader is implemented by stores that can read a stream faster
// when only what rehydration needs is read: the record fn gets has Stream,
// Sequence, Type, SchemaVersion, ContentType and Data set, and the rest
// zero. Otherwise it follows ReadStream's contract. A Repository uses it when
// its store has it, so upcasters see only those fields.
type PayloadReader interface {
	ReadStreamPayloads(ctx context.Context, stream StreamID, after uint64, fn func(*EventRecord) error) error
}

// Errors of event stores.
var (
	// ErrConcurrency is the error every *ConcurrencyError matches.
	ErrConcurrency = errors.New("concurrency conflict")
	// ErrDuplicateEvent reports an append whose event ids are partly stored
	// already, or stored in another stream.
	ErrDuplicateEvent = errors.New("event id stored already")
	// ErrNoSnapshot reports a stream without a snapshot.
	ErrNoSnapshot = errors.New("no snapshot")
	// ErrStoreClosed reports a call on a closed store.
	ErrStoreClosed = errors.New("event store closed")
)

// ConcurrencyError reports an append at a stream version that is no longer
// the stream's version: another writer appended first.
type ConcurrencyError struct {
	Stream StreamID
	// Expected is the version the append expected.
	Expected uint64
	// Actual is the stream's version the store saw.
	Actual uint64
}

func (e *ConcurrencyError) Error() string {
	return fmt.Sprintf("append to stream %s: %v: expected version %d, stream is at version %d", e.Stream, ErrConcurrency, e.Expected, e.Actual)
}

// Is makes errors.Is(err, ErrConcurrency) true.
func (e *ConcurrencyError) Is(target error) bool { return target == ErrConcurrency }

// EncodeMetadata encodes envelope attributes for EventRecord.Metadata and
// OutboxMessage.Metadata. An empty map encodes to nil.
func EncodeMetadata(md map[string]string) ([]byte, error) {
	if len(md) == 0 {
		return nil, nil
	}
	return json.Marshal(md)
}

// DecodeMetadata decodes what EncodeMetadata encoded. Empty input decodes to
// an empty map.
func DecodeMetadata(b []byte) (map[string]string, error) {
	md := make(map[string]string, envelopeSize)
	if len(b) == 0 {
		return md, nil
	}
	if err := json.Unmarshal(b, &md); err != nil {
		return nil, fmt.Errorf("decode metadata: %w", err)
	}
	return md, nil
}

// Validate reports every malformed part of an append, so that stores fail
// with an error naming the field instead of a constraint violation. Every
// backend calls it first.
func (r AppendRequest) Validate() error {
	var errs []error
	if r.Stream.Type == "" {
		errs = append(errs, errors.New("stream Type is empty: set it to the aggregate type"))
	}
	if r.Stream.ID == "" {
		errs = append(errs, errors.New("stream ID is empty: set it to the aggregate id"))
	}
	if len(r.Events) == 0 {
		errs = append(errs, errors.New("no events: an append stores at least one event"))
	}
	// Sequences are stored as signed 64-bit integers by the SQL stores.
	if r.ExpectedVersion != AnyVersion && r.ExpectedVersion > math.MaxInt64-uint64(len(r.Events)) {
		errs = append(errs, fmt.Errorf("expected version %d is past the largest sequence a store holds (%d)", r.ExpectedVersion, int64(math.MaxInt64)))
	}
	var seen map[string]int
	if len(r.Events) > 1 {
		seen = make(map[string]int, len(r.Events))
	}
	for i, e := range r.Events {
		switch {
		case e.ID == "":
			errs = append(errs, fmt.Errorf("event %d has an empty ID: set it to the envelope id", i))
		case e.Type == "":
			errs = append(errs, fmt.Errorf("event %d (%s) has an empty Type: set it to the event type name", i, e.ID))
		case e.SchemaVersion == 0:
			errs = append(errs, fmt.Errorf("event %d (%s) has SchemaVersion 0: schema versions start at 1", i, e.ID))
		}
		if seen != nil && e.ID != "" {
			if j, dup := seen[e.ID]; dup {
				errs = append(errs, fmt.Errorf("events %d and %d have the same ID %s: %w", j, i, e.ID, ErrDuplicateEvent))
			}
			seen[e.ID] = i
		}
	}
	for i, m := range r.Outbox {
		// A message without a topic could never be published, and would hold
		// up every message behind it.
		if m.Topic == "" {
			errs = append(errs, fmt.Errorf("outbox message %d (%s) has an empty Topic", i, m.UUID))
		}
	}
	return errors.Join(errs...)
}
