// Package memstore is an in-memory runtime.EventStore: the store for tests
// and for running an example with no database file. Everything is lost when
// the process ends, so it gives none of the durability a real backend does;
// it gives every other guarantee of the contract and passes the conformance
// suite in runtime/storetest.
//
// # Layout
//
// Events live in one append-only global log; a stream is a slice of indexes
// into that log, so ReadStream seeks straight to its events and never scans
// other streams. A position is the event's index in the log plus one, so
// ReadAll seeks in constant time too, and positions have no gaps.
//
// The outbox is a queue of messages to deliver at once and a heap of
// delayed ones (OutboxMessage.DeliverAt) ordered by time: a relay moves the
// due ones to a queue of their own and merges the two queues by position,
// so pending timeouts cost it nothing until they are due.
//
// # Concurrency
//
// One sync.RWMutex guards the store. Append holds it for writing, which
// serializes appends and makes positions visible in commit order. Reads
// hold it only to take a view of the log, then call fn without it: a stored
// event never changes and the log only grows, so the view stays valid, and
// fn may call the store (even Append) without deadlocking.
//
// # Ownership
//
// Append copies Data and Metadata of events and outbox messages, so the
// caller may reuse its buffers. ReadStream and ReadAll hand fn a copy of the
// record struct whose Data and Metadata are read-only views of the stored
// bytes: as the contract says, fn copies what it keeps and modifies nothing.
// LoadSnapshot returns a copy the caller owns, and RelayOutbox hands publish
// copies that publish may keep (Watermill messages built from them outlive
// the call).
package memstore

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/protoc-gen-eda/eda/runtime"
)

// Store is an in-memory event store. Create it with New; the zero value is
// not usable. It is safe for concurrent use.
type Store struct {
	mu sync.RWMutex
	// log is the global log. Readers take a view of it under the lock
	// and read the view without.
	log eventLog
	// streams indexes log per stream: streams[id][k] is the log index of
	// the event with Sequence k+1.
	streams map[runtime.StreamID][]int
	// ids maps an event id to its log index, for idempotent appends.
	ids       map[string]int
	snapshots map[runtime.StreamID]runtime.Snapshot
	// outbox holds waiting messages to deliver at once, in position order.
	// Only a relay holding relaying removes them, and only from the front.
	outbox []runtime.OutboxMessage
	// delayed holds messages with a DeliverAt, and due those of them whose
	// time has come, moved there by a relay holding relaying (see
	// RelayOutbox). Keeping them apart leaves the common path (no delayed
	// message) as it was, and a relay never scans messages that are not
	// due.
	delayed       delayedQueue
	due           []runtime.OutboxMessage
	outboxNextPos uint64
	closed        bool

	// relaying is the outbox claim: held (TryLock) by the one relay that
	// may publish.
	relaying sync.Mutex
	// ready signals OutboxReady; its buffer of one makes sends
	// non-blocking and lets one value stand for several appends.
	ready chan struct{}
}

// Compile-time checks that Store implements the interfaces it documents.
var (
	_ runtime.EventStore     = (*Store)(nil)
	_ runtime.OutboxNotifier = (*Store)(nil)
)

// New returns an empty store. There is nothing to configure: the store has
// no I/O to tune and no limits worth setting, so it takes no Config.
func New() *Store {
	return &Store{
		streams:       make(map[runtime.StreamID][]int),
		ids:           make(map[string]int),
		snapshots:     make(map[runtime.StreamID]runtime.Snapshot),
		outboxNextPos: 1,
		ready:         make(chan struct{}, 1),
	}
}

// errClosed wraps runtime.ErrStoreClosed with what was called.
func errClosed(method string) error {
	return fmt.Errorf("memstore: %s: %w", method, runtime.ErrStoreClosed)
}

// begin checks the context and returns the error a call must fail with
// before it starts.
func begin(ctx context.Context, method string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: %s: %w", method, err)
	}
	return nil
}

// Append implements runtime.EventStore. The idempotency check comes before
// the version check: a retry of an append that succeeded gets its result
// even though the stream has moved on since.
func (s *Store) Append(ctx context.Context, req runtime.AppendRequest) (runtime.AppendResult, error) {
	if err := begin(ctx, "append"); err != nil {
		return runtime.AppendResult{}, err
	}
	if err := validate(req); err != nil {
		return runtime.AppendResult{}, err
	}
	events, outbox := copyRequest(req)

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return runtime.AppendResult{}, errClosed("append")
	}
	if res, done, err := s.checkStored(req); done {
		s.mu.Unlock()
		return res, err
	}
	positions := s.streams[req.Stream]
	version := uint64(len(positions))
	if req.ExpectedVersion != runtime.AnyVersion && req.ExpectedVersion != version {
		s.mu.Unlock()
		return runtime.AppendResult{}, &runtime.ConcurrencyError{Stream: req.Stream, Expected: req.ExpectedVersion, Actual: version}
	}

	// UTC drops the monotonic clock reading, which a stored time must not
	// carry: it would make equal instants compare unequal with ==.
	now := time.Now().UTC()
	first := s.log.n
	for i := range events {
		e := &events[i]
		e.Stream = req.Stream
		e.Sequence = version + uint64(i) + 1
		e.Position = uint64(first + i + 1)
		e.RecordedAt = now
		s.ids[e.ID] = first + i
		positions = append(positions, first+i)
		s.log.add(e)
	}
	s.streams[req.Stream] = positions
	for i := range outbox {
		outbox[i].Position = s.outboxNextPos
		s.outboxNextPos++
		if outbox[i].DeliverAt.IsZero() {
			s.outbox = append(s.outbox, outbox[i])
		} else {
			s.delayed.push(outbox[i])
		}
	}
	s.mu.Unlock()

	if len(outbox) > 0 {
		select {
		case s.ready <- struct{}{}:
		default: // a value is pending already and stands for this append too
		}
	}
	return runtime.AppendResult{
		Version:       version + uint64(len(events)),
		FirstPosition: uint64(first + 1),
		LastPosition:  uint64(first + len(events)),
	}, nil
}

// checkStored looks up req's event ids. done is false when none is stored,
// and the append goes ahead. Otherwise the append is over: with the result
// of the earlier append if all are stored in req.Stream in req's order,
// with ErrDuplicateEvent if not. s.mu must be held.
func (s *Store) checkStored(req runtime.AppendRequest) (res runtime.AppendResult, done bool, err error) {
	stored := 0
	var dup string
	for _, e := range req.Events {
		if _, ok := s.ids[e.ID]; ok {
			stored++
			if dup == "" {
				dup = e.ID
			}
		}
	}
	if stored == 0 {
		return runtime.AppendResult{}, false, nil
	}
	if stored < len(req.Events) {
		return runtime.AppendResult{}, true, fmt.Errorf("memstore: append to stream %s: event %s: %w; the other events of the request are not: send only new events, or the whole earlier append again", req.Stream, dup, runtime.ErrDuplicateEvent)
	}
	firstIdx := s.ids[req.Events[0].ID]
	first := s.log.at(firstIdx)
	for i, e := range req.Events {
		got := s.log.at(s.ids[e.ID])
		if got.Stream != req.Stream {
			return runtime.AppendResult{}, true, fmt.Errorf("memstore: append to stream %s: event %s: %w in stream %s", req.Stream, e.ID, runtime.ErrDuplicateEvent, got.Stream)
		}
		if got.Sequence != first.Sequence+uint64(i) {
			return runtime.AppendResult{}, true, fmt.Errorf("memstore: append to stream %s: event %s: %w at sequence %d, not in the order of this request", req.Stream, e.ID, runtime.ErrDuplicateEvent, got.Sequence)
		}
	}
	last := s.log.at(s.ids[req.Events[len(req.Events)-1].ID])
	return runtime.AppendResult{Version: last.Sequence, FirstPosition: first.Position, LastPosition: last.Position}, true, nil
}

// validate checks req with the contract's rules.
func validate(req runtime.AppendRequest) error {
	if err := req.Validate(); err != nil {
		return fmt.Errorf("memstore: append to stream %s: %w", req.Stream, err)
	}
	return nil
}

// copyRequest copies req's events and messages with their byte slices in
// one allocation, outside the lock. The full slice expressions cap every
// copy at its length, so appending to one can never overwrite the next.
func copyRequest(req runtime.AppendRequest) ([]runtime.EventRecord, []runtime.OutboxMessage) {
	size := 0
	for _, e := range req.Events {
		size += len(e.Data) + len(e.Metadata)
	}
	for _, m := range req.Outbox {
		size += len(m.Metadata) + len(m.Payload)
	}
	buf := make([]byte, 0, size)
	clone := func(b []byte) []byte {
		start := len(buf)
		buf = append(buf, b...)
		return buf[start:len(buf):len(buf)]
	}
	events := make([]runtime.EventRecord, len(req.Events))
	for i, e := range req.Events {
		events[i] = runtime.EventRecord{
			ID:            e.ID,
			Type:          e.Type,
			SchemaVersion: e.SchemaVersion,
			ContentType:   e.ContentType,
			Data:          clone(e.Data),
			Metadata:      clone(e.Metadata),
		}
	}
	var outbox []runtime.OutboxMessage
	if len(req.Outbox) > 0 {
		outbox = make([]runtime.OutboxMessage, len(req.Outbox))
		for i, m := range req.Outbox {
			outbox[i] = runtime.OutboxMessage{Topic: m.Topic, UUID: m.UUID, Metadata: clone(m.Metadata), Payload: clone(m.Payload)}
			if !m.DeliverAt.IsZero() {
				// UTC drops the monotonic reading, as for RecordedAt.
				outbox[i].DeliverAt = m.DeliverAt.UTC()
			}
		}
	}
	return events, outbox
}

// ReadStream implements runtime.EventStore. fn gets a copy of the record
// whose Data and Metadata are read-only views of the stored bytes.
func (s *Store) ReadStream(ctx context.Context, stream runtime.StreamID, after uint64, fn func(*runtime.EventRecord) error) error {
	if err := begin(ctx, "read stream"); err != nil {
		return err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return errClosed("read stream")
	}
	// Views taken under the lock: appends only write beyond their lengths.
	log, positions := s.log, s.streams[stream]
	s.mu.RUnlock()

	if after >= uint64(len(positions)) {
		return nil
	}
	var rec runtime.EventRecord // reused: fn must not keep it
	for _, idx := range positions[after:] {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("memstore: read stream %s: %w", stream, err)
		}
		rec = *log.at(idx)
		if err := fn(&rec); err != nil {
			return err
		}
	}
	return nil
}

// ReadAll implements runtime.EventStore, with ReadStream's record
// ownership.
func (s *Store) ReadAll(ctx context.Context, after uint64, limit int, fn func(*runtime.EventRecord) error) error {
	if err := begin(ctx, "read all"); err != nil {
		return err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return errClosed("read all")
	}
	log := s.log
	s.mu.RUnlock()

	if after >= uint64(log.n) {
		return nil
	}
	end := log.n
	if limit > 0 && limit < end-int(after) {
		end = int(after) + limit
	}
	var rec runtime.EventRecord
	for i := int(after); i < end; i++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("memstore: read all: %w", err)
		}
		rec = *log.at(i)
		if err := fn(&rec); err != nil {
			return err
		}
	}
	return nil
}

// SaveSnapshot implements runtime.EventStore. A snapshot at the stored
// version replaces the stored one: it is the same state, possibly in a
// newer schema.
func (s *Store) SaveSnapshot(ctx context.Context, snap runtime.Snapshot) error {
	if err := begin(ctx, "save snapshot"); err != nil {
		return err
	}
	snap.Data = append([]byte(nil), snap.Data...)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed("save snapshot")
	}
	if old, ok := s.snapshots[snap.Stream]; ok && snap.Version < old.Version {
		return nil
	}
	s.snapshots[snap.Stream] = snap
	return nil
}

// LoadSnapshot implements runtime.EventStore. The caller owns the returned
// snapshot's Data.
func (s *Store) LoadSnapshot(ctx context.Context, stream runtime.StreamID) (runtime.Snapshot, error) {
	if err := begin(ctx, "load snapshot"); err != nil {
		return runtime.Snapshot{}, err
	}
	s.mu.RLock()
	snap, ok := s.snapshots[stream]
	closed := s.closed
	s.mu.RUnlock()
	switch {
	case closed:
		return runtime.Snapshot{}, errClosed("load snapshot")
	case !ok:
		return runtime.Snapshot{}, fmt.Errorf("memstore: load snapshot of stream %s: %w", stream, runtime.ErrNoSnapshot)
	}
	snap.Data = append([]byte(nil), snap.Data...)
	return snap, nil
}

// RelayOutbox implements runtime.EventStore. The claim is a mutex tried
// without waiting, so a second relay returns 0, nil at once. limit <= 0
// means no limit, as for ReadAll. publish gets copies it may keep.
//
// Delayed messages wait in a heap ordered by DeliverAt; the relay moves
// those due by time.Now to a queue of their own, in position order, and
// merges it with the queue of messages to deliver at once.
func (s *Store) RelayOutbox(ctx context.Context, limit int, publish func([]runtime.OutboxMessage) error) (int, error) {
	if err := begin(ctx, "relay outbox"); err != nil {
		return 0, err
	}
	if !s.relaying.TryLock() {
		return 0, nil
	}
	defer s.relaying.Unlock()

	batch, fromOutbox, fromDue, err := s.takeDue(limit)
	if err != nil || len(batch) == 0 {
		return 0, err
	}

	if err := publish(batch); err != nil {
		return 0, fmt.Errorf("memstore: relay outbox: publish %d messages from position %d: %w", len(batch), batch[0].Position, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		// Close dropped the outbox meanwhile; the messages were published.
		return len(batch), nil
	}
	// Nobody else removes messages while we hold the claim, and appends
	// only add behind (or to the heap), so the batch is still at the front
	// of both queues.
	s.outbox = dropFront(s.outbox, fromOutbox)
	s.due = dropFront(s.due, fromDue)
	return len(batch), nil
}

// takeDue moves the delayed messages that are due to s.due and returns
// copies of up to limit messages of s.outbox and s.due, merged in position
// order, with how many come from each. The caller holds the claim.
func (s *Store) takeDue(limit int) (batch []runtime.OutboxMessage, fromOutbox, fromDue int, err error) {
	// The write lock only when a delayed message is due: moving it
	// changes the store.
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, 0, 0, errClosed("relay outbox")
	}
	now := time.Now()
	if s.delayed.len() > 0 && !s.delayed.min().DeliverAt.After(now) {
		s.mu.RUnlock()
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			return nil, 0, 0, errClosed("relay outbox")
		}
		for s.delayed.len() > 0 && !s.delayed.min().DeliverAt.After(now) {
			s.due = insertByPosition(s.due, s.delayed.pop())
		}
	} else {
		defer s.mu.RUnlock()
	}
	if len(s.due) == 0 {
		// The common case: no delayed message is due.
		waiting := s.outbox
		if limit > 0 && limit < len(waiting) {
			waiting = waiting[:limit]
		}
		return copyMessages(waiting), len(waiting), 0, nil
	}
	var merged []runtime.OutboxMessage
	for (limit <= 0 || len(merged) < limit) && (fromOutbox < len(s.outbox) || fromDue < len(s.due)) {
		if fromDue == len(s.due) || (fromOutbox < len(s.outbox) && s.outbox[fromOutbox].Position < s.due[fromDue].Position) {
			merged = append(merged, s.outbox[fromOutbox])
			fromOutbox++
		} else {
			merged = append(merged, s.due[fromDue])
			fromDue++
		}
	}
	return copyMessages(merged), fromOutbox, fromDue, nil
}

// dropFront removes the first n messages of q. Clearing them lets their
// bytes be collected.
func dropFront(q []runtime.OutboxMessage, n int) []runtime.OutboxMessage {
	if n == 0 {
		return q
	}
	clear(q[:n])
	q = q[n:]
	if len(q) == 0 {
		return nil // drop the backing array the front slicing left behind
	}
	return q
}

// insertByPosition inserts m into q, which is in position order. Due
// messages leave the heap in DeliverAt order, mostly also position order,
// so the search usually ends at the back.
func insertByPosition(q []runtime.OutboxMessage, m runtime.OutboxMessage) []runtime.OutboxMessage {
	i := len(q)
	for i > 0 && q[i-1].Position > m.Position {
		i--
	}
	return slices.Insert(q, i, m)
}

// copyMessages copies msgs with their byte slices in one allocation.
func copyMessages(msgs []runtime.OutboxMessage) []runtime.OutboxMessage {
	if len(msgs) == 0 {
		return nil
	}
	size := 0
	for _, m := range msgs {
		size += len(m.Metadata) + len(m.Payload)
	}
	buf := make([]byte, 0, size)
	clone := func(b []byte) []byte {
		start := len(buf)
		buf = append(buf, b...)
		return buf[start:len(buf):len(buf)]
	}
	out := make([]runtime.OutboxMessage, len(msgs))
	for i, m := range msgs {
		out[i] = m
		out[i].Metadata = clone(m.Metadata)
		out[i].Payload = clone(m.Payload)
	}
	return out
}

// OutboxReady implements runtime.OutboxNotifier. The channel is never
// closed, not even by Close, so that a relay selecting on it does not spin;
// it stops the relay through its context instead.
func (s *Store) OutboxReady() <-chan struct{} { return s.ready }

// Close implements runtime.EventStore: it drops everything the store holds.
// Calls in flight finish on the data they already have. A second Close
// returns an error wrapping runtime.ErrStoreClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed("close")
	}
	s.closed = true
	s.log, s.streams, s.ids, s.snapshots, s.outbox = eventLog{}, nil, nil, nil, nil
	s.delayed, s.due = delayedQueue{}, nil
	return nil
}
