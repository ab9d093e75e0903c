package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/protoc-gen-eda/eda/runtime"
)

// ReadStream implements runtime.EventStore. It reads Config.ReadPageSize
// events per query, by the (stream, sequence) index from after on, and
// calls fn with no connection or transaction held, so fn may call the
// store. The events of one page come from one snapshot; a page later than
// an append includes it.
func (s *Store) ReadStream(ctx context.Context, stream runtime.StreamID, after uint64, fn func(*runtime.EventRecord) error) error {
	if err := s.check(ctx, "read stream"); err != nil {
		return err
	}
	if after >= maxSequence {
		return nil // no sequence is above it, and SQLite cannot compare it
	}
	var p page
	for {
		n, err := p.fill(ctx, s.stmts.readStream, false, stream, stream.Type, stream.ID, int64(after), s.cfg.ReadPageSize)
		if err != nil {
			return s.fail("read stream "+stream.String(), err)
		}
		for i := range p.recs[:n] {
			if err := fn(&p.recs[i]); err != nil {
				return err
			}
			if done(ctx) {
				return s.fail("read stream "+stream.String(), ctx.Err())
			}
		}
		if n < s.cfg.ReadPageSize {
			return nil
		}
		after = p.recs[n-1].Sequence
	}
}

// ReadAll implements runtime.EventStore, a page of Config.ReadPageSize
// events at a time as ReadStream. Positions become visible in increasing
// order (one writer at a time allocates them), so paging by position misses
// nothing appended meanwhile.
func (s *Store) ReadAll(ctx context.Context, after uint64, limit int, fn func(*runtime.EventRecord) error) error {
	if err := s.check(ctx, "read all"); err != nil {
		return err
	}
	if after >= maxSequence {
		return nil
	}
	var p page
	for {
		size := s.cfg.ReadPageSize
		if limit > 0 {
			size = min(size, limit)
		}
		n, err := p.fill(ctx, s.stmts.readAll, true, runtime.StreamID{}, int64(after), size)
		if err != nil {
			return s.fail("read all", err)
		}
		for i := range p.recs[:n] {
			if err := fn(&p.recs[i]); err != nil {
				return err
			}
			if done(ctx) {
				return s.fail("read all", ctx.Err())
			}
		}
		if limit > 0 {
			if limit -= n; limit == 0 {
				return nil
			}
		}
		if n < size {
			return nil
		}
		after = p.recs[n-1].Position
	}
}

// done reports whether ctx has ended: a read stops between two records
// once it has, fn having perhaps cancelled it.
func done(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return true
	default:
		return false
	}
}

// maxSequence bounds sequences and positions: SQLite integers are signed.
const maxSequence = 1<<63 - 1

// page holds one query's events. Records and the byte arena their Data and
// Metadata point into are reused by the next page: the contract lets a
// record die when fn returns.
type page struct {
	recs  []runtime.EventRecord
	arena []byte
}

// fill runs stmt with args (the page size last) and loads the rows into p.
// withStream selects the columns of readAllSQL, which name each event's
// stream; otherwise every event is in stream.
func (p *page) fill(ctx context.Context, stmt *sql.Stmt, withStream bool, stream runtime.StreamID, args ...any) (int, error) {
	size := args[len(args)-1].(int)
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	if cap(p.recs) < size {
		p.recs = make([]runtime.EventRecord, size)
	}
	p.recs = p.recs[:size]
	p.arena = p.arena[:0]
	var (
		pos, seq, schema, recorded int64
		data, md                   sql.RawBytes
		dest                       []any
	)
	n := 0
	for rows.Next() {
		r := &p.recs[n]
		if withStream {
			if dest == nil {
				dest = []any{&pos, &r.ID, &r.Stream.Type, &r.Stream.ID, &seq, &r.Type, &schema, &r.ContentType, &data, &md, &recorded}
			}
			dest[1], dest[2], dest[3], dest[5], dest[7] = &r.ID, &r.Stream.Type, &r.Stream.ID, &r.Type, &r.ContentType
		} else {
			if dest == nil {
				dest = []any{&pos, &r.ID, &seq, &r.Type, &schema, &r.ContentType, &data, &md, &recorded}
			}
			dest[1], dest[3], dest[5] = &r.ID, &r.Type, &r.ContentType
			r.Stream = stream
		}
		if err := rows.Scan(dest...); err != nil {
			return 0, err
		}
		r.Position, r.Sequence, r.SchemaVersion = uint64(pos), uint64(seq), uint32(schema)
		r.RecordedAt = time.Unix(0, recorded).UTC()
		// RawBytes die with the next row: copy them into the arena. Growing
		// it leaves earlier records pointing into the old array, which
		// stays alive and unchanged for them.
		r.Data, p.arena = keep(p.arena, data)
		r.Metadata, p.arena = keep(p.arena, md)
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	return n, nil
}

// keep appends b to arena and returns the copy (nil for empty b).
func keep(arena, b []byte) ([]byte, []byte) {
	if len(b) == 0 {
		return nil, arena
	}
	start := len(arena)
	arena = append(arena, b...)
	return arena[start:len(arena):len(arena)], arena
}

// SaveSnapshot implements runtime.EventStore: one row per stream, replaced
// unless the stored snapshot's version is higher.
func (s *Store) SaveSnapshot(ctx context.Context, snap runtime.Snapshot) error {
	if err := s.check(ctx, "save snapshot"); err != nil {
		return err
	}
	op := "save snapshot of stream " + snap.Stream.String()
	if snap.Stream.Type == "" || snap.Stream.ID == "" {
		return fmt.Errorf("sqlite: %s: stream type and id must not be empty", op)
	}
	if snap.Version > maxSequence {
		return fmt.Errorf("sqlite: %s: version %d is past the largest SQLite stores", op, snap.Version)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.StmtContext(ctx, s.stmts.saveSnapshot).ExecContext(ctx,
			snap.Stream.Type, snap.Stream.ID, int64(snap.Version), int64(snap.SchemaVersion), snap.ContentType, snap.Data)
		return err
	})
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}

// LoadSnapshot implements runtime.EventStore.
func (s *Store) LoadSnapshot(ctx context.Context, stream runtime.StreamID) (runtime.Snapshot, error) {
	if err := s.check(ctx, "load snapshot"); err != nil {
		return runtime.Snapshot{}, err
	}
	snap := runtime.Snapshot{Stream: stream}
	var version, schema int64
	err := s.stmts.loadSnapshot.QueryRowContext(ctx, stream.Type, stream.ID).Scan(&version, &schema, &snap.ContentType, &snap.Data)
	if errors.Is(err, sql.ErrNoRows) {
		return runtime.Snapshot{}, fmt.Errorf("sqlite: load snapshot of stream %s: %w", stream, runtime.ErrNoSnapshot)
	}
	if err != nil {
		return runtime.Snapshot{}, s.fail("load snapshot of stream "+stream.String(), err)
	}
	snap.Version, snap.SchemaVersion = uint64(version), uint32(schema)
	return snap, nil
}
