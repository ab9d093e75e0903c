package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/protoc-gen-eda/eda/runtime"
)

// Append implements runtime.EventStore.
//
// The transaction holds SQLite's write lock from its start (BEGIN
// IMMEDIATE), so the stream version it reads cannot change before it
// inserts, and one append commits at a time: positions, allocated under
// the lock, become visible in increasing order. A replay of stored events
// (idempotent re-append) is recognised before the version check, since a
// retried append finds the stream past its expected version.
func (s *Store) Append(ctx context.Context, req runtime.AppendRequest) (runtime.AppendResult, error) {
	if err := s.check(ctx, "append"); err != nil {
		return runtime.AppendResult{}, err
	}
	if err := req.Validate(); err != nil {
		return runtime.AppendResult{}, fmt.Errorf("sqlite: append to stream %s: %w", req.Stream, err)
	}
	var res runtime.AppendResult
	var replayed bool
	err := s.write(ctx, func(tx *sql.Tx) (err error) {
		res, replayed, err = s.appendTx(ctx, tx, req)
		return err
	})
	if err != nil {
		var ce *runtime.ConcurrencyError
		if errors.As(err, &ce) {
			return runtime.AppendResult{}, err // says everything already
		}
		return runtime.AppendResult{}, s.fail("append to stream "+req.Stream.String(), err)
	}
	if len(req.Outbox) > 0 && !replayed {
		s.notifyOutbox()
	}
	return res, nil
}

// appendTx runs Append's transaction. replayed reports an idempotent
// re-append, which wrote nothing.
func (s *Store) appendTx(ctx context.Context, tx *sql.Tx, req runtime.AppendRequest) (res runtime.AppendResult, replayed bool, err error) {
	res, replayed, err = s.replay(ctx, tx, req)
	if err != nil || replayed {
		return res, replayed, err
	}
	actual, err := s.streamVersion(ctx, tx, req.Stream)
	if err != nil {
		return res, false, err
	}
	if req.ExpectedVersion != runtime.AnyVersion && req.ExpectedVersion != actual {
		return res, false, &runtime.ConcurrencyError{Stream: req.Stream, Expected: req.ExpectedVersion, Actual: actual}
	}
	if actual > math.MaxInt64-uint64(len(req.Events)) {
		return res, false, fmt.Errorf("stream version %d leaves no room for %d events", actual, len(req.Events))
	}
	first, last, err := s.insertEvents(ctx, tx, req, actual)
	if err != nil {
		if isUnique(err, s.cfg.TablePrefix+"events.stream_type") {
			// Unreachable while every writer holds the write lock; kept so
			// that a writer that does not (another program on the file)
			// yields the documented error, not a raw constraint failure.
			now, verr := s.streamVersion(ctx, tx, req.Stream)
			if verr != nil {
				now = actual
			}
			return res, false, &runtime.ConcurrencyError{Stream: req.Stream, Expected: req.ExpectedVersion, Actual: now}
		}
		if isUnique(err, s.cfg.TablePrefix+"events.id") {
			return res, false, fmt.Errorf("some of the events are stored already (a partial or reordered retry?): %w: %v", runtime.ErrDuplicateEvent, err)
		}
		return res, false, err
	}
	if err := s.insertOutbox(ctx, tx, req.Outbox); err != nil {
		return res, false, err
	}
	return runtime.AppendResult{
		Version:       actual + uint64(len(req.Events)),
		FirstPosition: first,
		LastPosition:  last,
	}, false, nil
}

// replay recognises a re-append of stored events: if the first event's id
// is stored, every event must be stored, in req.Stream, in req's order and
// back to back; the result is then the one the first append returned.
func (s *Store) replay(ctx context.Context, tx *sql.Tx, req runtime.AppendRequest) (runtime.AppendResult, bool, error) {
	first := req.Events[0].ID
	var stream runtime.StreamID
	var seq int64
	err := tx.StmtContext(ctx, s.stmts.eventByID).QueryRowContext(ctx, first).Scan(&stream.Type, &stream.ID, &seq)
	if errors.Is(err, sql.ErrNoRows) {
		return runtime.AppendResult{}, false, nil
	}
	if err != nil {
		return runtime.AppendResult{}, false, fmt.Errorf("look up event %s: %w", first, err)
	}
	if stream != req.Stream {
		return runtime.AppendResult{}, false, fmt.Errorf("event %s is stored in stream %s: %w", first, stream, runtime.ErrDuplicateEvent)
	}
	rows, err := tx.StmtContext(ctx, s.stmts.storedRange).QueryContext(ctx, stream.Type, stream.ID, seq, len(req.Events))
	if err != nil {
		return runtime.AppendResult{}, false, fmt.Errorf("read stored events: %w", err)
	}
	defer rows.Close()
	var res runtime.AppendResult
	i := 0
	for ; rows.Next(); i++ {
		var id string
		var pos int64
		if err := rows.Scan(&id, &pos); err != nil {
			return runtime.AppendResult{}, false, fmt.Errorf("read stored events: %w", err)
		}
		if id != req.Events[i].ID {
			return runtime.AppendResult{}, false, fmt.Errorf("event %d of the request (%s) is not stored after %s, as a retry's would be: %w", i, req.Events[i].ID, first, runtime.ErrDuplicateEvent)
		}
		if i == 0 {
			res.FirstPosition = uint64(pos)
		}
		res.LastPosition = uint64(pos)
	}
	if err := rows.Err(); err != nil {
		return runtime.AppendResult{}, false, fmt.Errorf("read stored events: %w", err)
	}
	if i < len(req.Events) {
		return runtime.AppendResult{}, false, fmt.Errorf("event %s is stored but event %d of the request (%s) is not: %w", first, i, req.Events[i].ID, runtime.ErrDuplicateEvent)
	}
	res.Version = uint64(seq) + uint64(len(req.Events)) - 1
	return res, true, nil
}

// streamVersion reads the stream's version inside tx: 0 for no events.
func (s *Store) streamVersion(ctx context.Context, tx *sql.Tx, stream runtime.StreamID) (uint64, error) {
	var v int64
	err := tx.StmtContext(ctx, s.stmts.streamVersion).QueryRowContext(ctx, stream.Type, stream.ID).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the stream's version: %w", err)
	}
	return uint64(v), nil
}

// insertEvents inserts req.Events after version and returns the first and
// last positions they got.
func (s *Store) insertEvents(ctx context.Context, tx *sql.Tx, req runtime.AppendRequest, version uint64) (first, last uint64, err error) {
	now := time.Now().UnixNano()
	args := make([]any, 0, min(len(req.Events), insertChunk)*insertEventsCols)
	for start := 0; start < len(req.Events); {
		size, bits := chunkSize(len(req.Events) - start)
		chunk := req.Events[start : start+size]
		args = args[:0]
		for i, e := range chunk {
			seq := int64(version) + int64(start+i) + 1
			args = append(args, e.ID, req.Stream.Type, req.Stream.ID, seq, e.Type, int64(e.SchemaVersion), e.ContentType, e.Data, e.Metadata, now)
		}
		r, err := tx.StmtContext(ctx, s.stmts.insertEvents[bits]).ExecContext(ctx, args...)
		if err != nil {
			return 0, 0, fmt.Errorf("insert events: %w", err)
		}
		id, err := r.LastInsertId()
		if err != nil {
			return 0, 0, fmt.Errorf("insert events: read their positions: %w", err)
		}
		// One statement inserting k rows under the write lock gets k
		// consecutive AUTOINCREMENT positions ending at the last rowid.
		if start == 0 {
			first = uint64(id) - uint64(size) + 1
		}
		last = uint64(id)
		start += size
	}
	return first, last, nil
}

// insertOutbox inserts msgs; their positions follow every earlier commit's.
func (s *Store) insertOutbox(ctx context.Context, tx *sql.Tx, msgs []runtime.OutboxMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	args := make([]any, 0, min(len(msgs), insertChunk)*insertOutboxCols)
	for start := 0; start < len(msgs); {
		size, bits := chunkSize(len(msgs) - start)
		args = args[:0]
		for _, m := range msgs[start : start+size] {
			var deliverAt any // NULL: at once
			if !m.DeliverAt.IsZero() {
				deliverAt = unixNanos(m.DeliverAt)
			}
			args = append(args, m.Topic, m.UUID, m.Metadata, m.Payload, deliverAt)
		}
		if _, err := tx.StmtContext(ctx, s.stmts.insertOutbox[bits]).ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("insert outbox messages: %w", err)
		}
		start += size
	}
	return nil
}

// unixNanos is t in Unix nanoseconds, clamped to what an int64 holds
// (years 1678 to 2262): a message delayed past 2262 waits until then
// instead of wrapping around to 1678 and going out at once.
func unixNanos(t time.Time) int64 {
	switch {
	case t.Before(minNanosTime):
		return math.MinInt64
	case t.After(maxNanosTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// The times unixNanos represents exactly.
var (
	minNanosTime = time.Unix(0, math.MinInt64)
	maxNanosTime = time.Unix(0, math.MaxInt64)
)

// isUnique reports whether err is SQLite's failure of the UNIQUE
// constraint whose first column is column ("table.column"). SQLite names
// the columns only in the message: modernc.org/sqlite's error code says
// UNIQUE but not which one.
func isUnique(err error, column string) bool {
	return strings.Contains(err.Error(), "UNIQUE constraint failed: "+column)
}
