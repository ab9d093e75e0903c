package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/protoc-gen-eda/eda/runtime"
)

// sqlStateUniqueViolation is PostgreSQL's SQLSTATE for unique_violation.
const sqlStateUniqueViolation = "23505"

// Append implements runtime.EventStore.
//
// It costs one round trip: a pipelined batch of two statements that
// PostgreSQL runs as one implicit transaction (pgx sends a single Sync, see
// pgconn.PgConn.ExecBatch). The first takes the append lock; the second
// checks the stream's version and inserts the events and outbox rows (see
// appendStatements). A conflict or a duplicate id costs a second round trip
// to tell a retry from a conflict.
//
// An error other than a validation error does not prove that nothing was
// stored: the connection may die after the commit. Retrying the same
// request is safe, since Append is idempotent by event id.
func (s *Store) Append(ctx context.Context, req runtime.AppendRequest) (runtime.AppendResult, error) {
	if s.closed.Load() {
		return runtime.AppendResult{}, errClosed("append to stream " + req.Stream.String())
	}
	if err := validateAppend(req); err != nil {
		return runtime.AppendResult{}, err
	}
	expected := int64(-1)
	if req.ExpectedVersion != runtime.AnyVersion {
		expected = int64(req.ExpectedVersion)
	}
	stmt := s.q.appendEvents[shape(len(req.Events))-shapeOne][shape(len(req.Outbox))]
	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, 2)}
	b.Queue(s.q.lock, s.n.appendLock)
	b.Queue(stmt, appendArguments(req, expected)...)
	br := s.pool.SendBatch(ctx, b)
	var first, last, version pgtype.Int8
	_, err := br.Exec()
	if err == nil {
		err = br.QueryRow().Scan(&first, &last, &version)
		if errors.Is(err, pgx.ErrNoRows) {
			err = nil // the stream was at another version
		}
	}
	// Close reads up to the Sync, that is until the implicit transaction
	// has committed or failed.
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return s.appendFailed(ctx, req, err)
	}
	if !first.Valid {
		// Nothing was written. The request may still be a retry of an
		// append that succeeded.
		return s.resolveConflict(ctx, req)
	}
	if len(req.Outbox) > 0 {
		s.notifyOutbox()
	}
	return runtime.AppendResult{
		Version:       uint64(version.Int64),
		FirstPosition: uint64(first.Int64),
		LastPosition:  uint64(last.Int64),
	}, nil
}

// validateAppend checks the request with the contract's rules, so that a
// bad request fails with an error naming the field instead of a constraint
// violation.
func validateAppend(req runtime.AppendRequest) error {
	if err := req.Validate(); err != nil {
		return fmt.Errorf("postgres: append to stream %s: invalid request: %w", req.Stream, err)
	}
	return nil
}

// appendArguments returns the parameters of the append statement of req's
// shape (see appendStatements): scalars for one event or message, arrays
// for unnest otherwise.
func appendArguments(req runtime.AppendRequest, expected int64) []any {
	args := make([]any, 3, 14)
	args[0], args[1], args[2] = req.Stream.Type, req.Stream.ID, expected
	if len(req.Events) == 1 {
		e := &req.Events[0]
		args = append(args, e.ID, e.Type, int64(e.SchemaVersion), e.ContentType, e.Data, e.Metadata)
	} else {
		n := len(req.Events)
		// One backing array per element type keeps allocations per append
		// constant however many events.
		strs := make([]string, 3*n)
		bytes := make([][]byte, 2*n)
		versions := make([]int64, n)
		ids, types, contentTypes := strs[:n:n], strs[n:2*n:2*n], strs[2*n:]
		data, metadata := bytes[:n:n], bytes[n:]
		for i := range req.Events {
			e := &req.Events[i]
			ids[i], types[i], contentTypes[i] = e.ID, e.Type, e.ContentType
			versions[i] = int64(e.SchemaVersion)
			data[i], metadata[i] = e.Data, e.Metadata
		}
		args = append(args, ids, types, versions, contentTypes, data, metadata)
	}
	switch m := len(req.Outbox); {
	case m == 1:
		o := &req.Outbox[0]
		args = append(args, o.Topic, o.UUID, o.Metadata, o.Payload, deliverAt(o.DeliverAt))
	case m > 1:
		strs := make([]string, 2*m)
		bytes := make([][]byte, 2*m)
		times := make([]pgtype.Timestamptz, m)
		topics, uuids := strs[:m:m], strs[m:]
		metadata, payloads := bytes[:m:m], bytes[m:]
		for i := range req.Outbox {
			o := &req.Outbox[i]
			topics[i], uuids[i] = o.Topic, o.UUID
			metadata[i], payloads[i] = o.Metadata, o.Payload
			times[i] = deliverAt(o.DeliverAt)
		}
		args = append(args, topics, uuids, metadata, payloads, times)
	}
	return args
}

// deliverAt is an outbox message's deliver_at: NULL, to deliver at once,
// for the zero time.
func deliverAt(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

// appendFailed turns a failed append into the contract's error: a unique
// violation on the event id is a retry (idempotent success) or a duplicate,
// one on the stream sequence is a concurrency conflict.
func (s *Store) appendFailed(ctx context.Context, req runtime.AppendRequest, err error) (runtime.AppendResult, error) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == sqlStateUniqueViolation {
		switch pgErr.ConstraintName {
		case s.n.eventsIDKey:
			res, found, lookupErr := s.storedAlready(ctx, req, nil)
			switch {
			case lookupErr != nil:
				return runtime.AppendResult{}, lookupErr
			case found == foundAll:
				return res, nil
			}
			return runtime.AppendResult{}, duplicateError(req)
		case s.n.eventsStreamKey:
			// The version check runs under the append lock, so this only
			// happens if something wrote to the table without it.
			return runtime.AppendResult{}, s.conflict(ctx, req)
		}
	}
	return runtime.AppendResult{}, s.wrap("append to stream "+req.Stream.String(), err)
}

// resolveConflict is the version-mismatch path: a retry of a stored append
// succeeds, reused ids are duplicates, anything else is a conflict.
//
// The version it reports is read after the failed statement, in the same
// round trip as the id lookup: the version the append saw, or a later one
// if another append committed in between, which is the one a retry needs.
func (s *Store) resolveConflict(ctx context.Context, req runtime.AppendRequest) (runtime.AppendResult, error) {
	var actual int64
	res, found, err := s.storedAlready(ctx, req, &actual)
	switch {
	case err != nil:
		return runtime.AppendResult{}, err
	case found == foundAll:
		return res, nil
	case found == foundSome:
		// Reusing ids is the bug to report: reloading the stream and
		// retrying would fail again.
		return runtime.AppendResult{}, duplicateError(req)
	}
	return runtime.AppendResult{}, &runtime.ConcurrencyError{Stream: req.Stream, Expected: req.ExpectedVersion, Actual: uint64(actual)}
}

// conflict returns the ConcurrencyError for req, with the stream's version
// as it is now: the version the failed append saw, unless another append
// has committed since.
func (s *Store) conflict(ctx context.Context, req runtime.AppendRequest) error {
	var actual int64
	if err := s.pool.QueryRow(ctx, s.q.streamVersion, req.Stream.Type, req.Stream.ID).Scan(&actual); err != nil {
		return s.wrap(fmt.Sprintf("append to stream %s: read its version after a conflict", req.Stream), err)
	}
	return &runtime.ConcurrencyError{Stream: req.Stream, Expected: req.ExpectedVersion, Actual: uint64(actual)}
}

func duplicateError(req runtime.AppendRequest) error {
	return fmt.Errorf("postgres: append to stream %s: %w: some of the events' ids are stored already, or stored in another stream or order; give new events new ids", req.Stream, runtime.ErrDuplicateEvent)
}

// found says how much of a request storedAlready found stored.
type found int

const (
	foundNone found = iota
	// foundSome: some ids are stored, or all of them but not as this
	// request's events (another stream, another order).
	foundSome
	// foundAll: the request is a retry of a stored append.
	foundAll
)

// storedAlready reports whether every event of req is stored, in req.Stream,
// consecutively and in request order, and if so the original append's
// result. If version is not nil, it also reads the stream's version into
// it, in the same round trip.
func (s *Store) storedAlready(ctx context.Context, req runtime.AppendRequest, version *int64) (runtime.AppendResult, found, error) {
	ids := make([]string, len(req.Events))
	for i, e := range req.Events {
		ids[i] = e.ID
	}
	type stored struct {
		stream   runtime.StreamID
		sequence int64
		position int64
	}
	byID := make(map[string]stored, len(ids))
	b := &pgx.Batch{}
	b.Queue(s.q.findIDs, ids).Query(func(rows pgx.Rows) error {
		var (
			id string
			st stored
		)
		_, err := pgx.ForEachRow(rows, []any{&id, &st.stream.Type, &st.stream.ID, &st.sequence, &st.position}, func() error {
			byID[id] = st
			return nil
		})
		return err
	})
	if version != nil {
		b.Queue(s.q.streamVersion, req.Stream.Type, req.Stream.ID).QueryRow(func(row pgx.Row) error {
			return row.Scan(version)
		})
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return runtime.AppendResult{}, foundNone, s.wrap(fmt.Sprintf("append to stream %s: look up its version and the event ids", req.Stream), err)
	}
	if len(byID) == 0 {
		return runtime.AppendResult{}, foundNone, nil
	}
	first, ok := byID[ids[0]]
	if !ok || len(byID) != len(ids) {
		return runtime.AppendResult{}, foundSome, nil
	}
	for i, id := range ids {
		e := byID[id]
		if e.stream != req.Stream || e.sequence != first.sequence+int64(i) {
			return runtime.AppendResult{}, foundSome, nil
		}
	}
	last := byID[ids[len(ids)-1]]
	return runtime.AppendResult{
		Version:       uint64(last.sequence),
		FirstPosition: uint64(first.position),
		LastPosition:  uint64(last.position),
	}, foundAll, nil
}
