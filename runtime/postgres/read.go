package postgres

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/protoc-gen-eda/eda/runtime"
)

// ReadStream implements runtime.EventStore. It runs one query, which the
// (stream_type, stream_id, sequence) index answers from after onwards, and
// streams the rows to fn: memory stays constant however long the stream.
// fn runs while the query holds a pool connection, so a fn that calls the
// store again needs a pool of at least two connections.
//
// The record's Data and Metadata point into pgx's read buffer, which is why
// they are valid only until fn returns; nothing is copied but the event id.
func (s *Store) ReadStream(ctx context.Context, stream runtime.StreamID, after uint64, fn func(*runtime.EventRecord) error) error {
	rows, op, err := s.queryStream(ctx, s.q.readStream, stream, after)
	if rows == nil {
		return err
	}
	return s.eachEvent(ctx, rows, &runtime.EventRecord{Stream: stream}, false, fn, op)
}

// queryStream runs query, one of the stream reads, over stream's events
// after the given sequence. It returns nil rows when there is nothing to
// read, with an error if the store is closed or the query failed.
func (s *Store) queryStream(ctx context.Context, query string, stream runtime.StreamID, after uint64) (pgx.Rows, func() string, error) {
	op := func() string { return "read stream " + stream.String() }
	if s.closed.Load() {
		return nil, op, errClosed(op())
	}
	if after >= math.MaxInt64 {
		return nil, op, nil // no sequence is above a bigint's range
	}
	rows, err := s.pool.Query(ctx, query, stream.Type, stream.ID, int64(after))
	if err != nil {
		return nil, op, s.wrap(op(), err)
	}
	return rows, op, nil
}

// ReadAll implements runtime.EventStore, with one query over the primary
// key from after onwards.
func (s *Store) ReadAll(ctx context.Context, after uint64, limit int, fn func(*runtime.EventRecord) error) error {
	op := func() string { return fmt.Sprintf("read the global log after position %d", after) }
	if s.closed.Load() {
		return errClosed(op())
	}
	if after >= math.MaxInt64 {
		return nil
	}
	var lim *int64
	if limit > 0 {
		l := int64(limit)
		lim = &l
	}
	rows, err := s.pool.Query(ctx, s.q.readAll, int64(after), lim)
	if err != nil {
		return s.wrap(op(), err)
	}
	return s.eachEvent(ctx, rows, &runtime.EventRecord{}, true, fn, op)
}

// wrap adds what was being done to a database error, and says so when the
// store was closed meanwhile (the pool's own error would only say "closed
// pool").
func (s *Store) wrap(op string, err error) error {
	if s.closed.Load() {
		return fmt.Errorf("postgres: %s: %w (%w)", op, runtime.ErrStoreClosed, err)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// eachEvent decodes rows into rec, reused for every row, and calls fn. An
// error of fn is returned as it is, so that callers can compare it.
//
// pgx notices a cancelled context only when it reads from the network, and
// rows arrive buffered, so the context is also checked before each call:
// a caller that cancels (from fn, say) gets no further events.
func (s *Store) eachEvent(ctx context.Context, rows pgx.Rows, rec *runtime.EventRecord, withStream bool, fn func(*runtime.EventRecord) error, op func() string) error {
	defer rows.Close()
	var d eventDecoder
	d.withStream = withStream
	first := true
	done := ctx.Done()
	for rows.Next() {
		if done != nil {
			select {
			case <-done:
				return s.wrap(op(), ctx.Err())
			default:
			}
		}
		if first {
			d.fast = binaryColumns(rows.FieldDescriptions())
			first = false
		}
		var err error
		if d.fast {
			err = d.decode(rows.RawValues(), rec)
		} else {
			err = d.scan(rows, rec)
		}
		if err != nil {
			return s.wrap(op(), err)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return s.wrap(op(), err)
	}
	return nil
}

// Column indexes of streamColumns and allColumns.
const (
	colSequence = iota
	colPosition
	colID
	colType
	colSchemaVersion
	colContentType
	colData
	colMetadata
	colRecordedAt
	colStreamType
	colStreamID
)

// binaryColumns reports whether every non-text column arrived in binary
// format, which eventDecoder.decode reads directly. pgx asks for binary
// unless the pool uses the simple protocol (QueryExecModeSimpleProtocol);
// text columns read the same in both formats.
func binaryColumns(fds []pgconn.FieldDescription) bool {
	if len(fds) <= colRecordedAt {
		return false
	}
	for _, c := range []int{colSequence, colPosition, colSchemaVersion, colData, colMetadata, colRecordedAt} {
		if fds[c].Format != pgx.BinaryFormatCode {
			return false
		}
	}
	return true
}

// eventDecoder turns rows into an EventRecord without pgx's Scan, which
// would allocate a string per text column and copy every bytea. Type and
// content type repeat from row to row, so the previous row's strings are
// reused when the bytes are equal.
type eventDecoder struct {
	withStream bool
	fast       bool
	// scanned holds the slow path's destinations.
	scanned struct {
		sequence, position, schemaVersion int64
		recordedAt                        time.Time
	}
}

// pgEpochUnix is PostgreSQL's timestamp epoch, 2000-01-01 UTC, in Unix
// seconds: binary timestamptz values count microseconds from it.
const pgEpochUnix = 946684800

func (d *eventDecoder) decode(raw [][]byte, rec *runtime.EventRecord) error {
	want := colRecordedAt + 1
	if d.withStream {
		want = colStreamID + 1
	}
	if len(raw) != want {
		return fmt.Errorf("decode event row: %d columns, want %d", len(raw), want)
	}
	seq, err := int8Value(raw[colSequence], "sequence")
	if err != nil {
		return err
	}
	pos, err := int8Value(raw[colPosition], "position")
	if err != nil {
		return err
	}
	sv, err := int8Value(raw[colSchemaVersion], "schema_version")
	if err != nil {
		return err
	}
	us, err := int8Value(raw[colRecordedAt], "recorded_at")
	if err != nil {
		return err
	}
	rec.Sequence, rec.Position, rec.SchemaVersion = uint64(seq), uint64(pos), uint32(sv)
	rec.ID = string(raw[colID])
	reuse(&rec.Type, raw[colType])
	reuse(&rec.ContentType, raw[colContentType])
	rec.Data, rec.Metadata = raw[colData], raw[colMetadata]
	sec, usec := us/1e6, us%1e6
	if usec < 0 {
		sec, usec = sec-1, usec+1e6
	}
	rec.RecordedAt = time.Unix(pgEpochUnix+sec, usec*1e3)
	if d.withStream {
		reuse(&rec.Stream.Type, raw[colStreamType])
		reuse(&rec.Stream.ID, raw[colStreamID])
	}
	return nil
}

// reuse sets *s to b, allocating only when b differs from *s (the
// comparison does not allocate).
func reuse(s *string, b []byte) {
	if *s != string(b) {
		*s = string(b)
	}
}

func int8Value(b []byte, column string) (int64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("decode event row: column %s has %d bytes, want a binary bigint", column, len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

// scan is the slow path, through pgx's Scan, for text-format results.
func (d *eventDecoder) scan(rows pgx.Rows, rec *runtime.EventRecord) error {
	sc := &d.scanned
	dest := []any{&sc.sequence, &sc.position, &rec.ID, &rec.Type, &sc.schemaVersion, &rec.ContentType, &rec.Data, &rec.Metadata, &sc.recordedAt}
	if d.withStream {
		dest = append(dest, &rec.Stream.Type, &rec.Stream.ID)
	}
	// Scan assigns into the existing slices' place; clear them so that a
	// NULL reads as nil rather than the previous row's bytes.
	rec.Data, rec.Metadata = nil, nil
	if err := rows.Scan(dest...); err != nil {
		return fmt.Errorf("decode event row: %w", err)
	}
	rec.Sequence, rec.Position, rec.SchemaVersion = uint64(sc.sequence), uint64(sc.position), uint32(sc.schemaVersion)
	rec.RecordedAt = sc.recordedAt
	return nil
}
