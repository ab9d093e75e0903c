package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"

	"github.com/protoc-gen-eda/eda/runtime"
)

// SaveSnapshot implements runtime.EventStore with one upsert: a snapshot
// below the stored version leaves the row as it is, one at the same or a
// higher version replaces it.
func (s *Store) SaveSnapshot(ctx context.Context, snap runtime.Snapshot) error {
	op := "save snapshot of stream " + snap.Stream.String()
	if s.closed.Load() {
		return errClosed(op)
	}
	var errs []error
	if snap.Stream.Type == "" {
		errs = append(errs, errors.New("stream type is empty"))
	}
	if snap.Stream.ID == "" {
		errs = append(errs, errors.New("stream id is empty"))
	}
	if snap.Version > math.MaxInt64 {
		errs = append(errs, fmt.Errorf("version %d is beyond PostgreSQL's bigint", snap.Version))
	}
	if len(errs) > 0 {
		return fmt.Errorf("postgres: %s: invalid snapshot: %w", op, errors.Join(errs...))
	}
	_, err := s.pool.Exec(ctx, s.q.saveSnapshot, snap.Stream.Type, snap.Stream.ID,
		int64(snap.Version), int64(snap.SchemaVersion), snap.ContentType, snap.Data)
	if err != nil {
		return s.wrap(op, err)
	}
	return nil
}

// LoadSnapshot implements runtime.EventStore.
func (s *Store) LoadSnapshot(ctx context.Context, stream runtime.StreamID) (runtime.Snapshot, error) {
	op := "load snapshot of stream " + stream.String()
	if s.closed.Load() {
		return runtime.Snapshot{}, errClosed(op)
	}
	snap := runtime.Snapshot{Stream: stream}
	var version, schemaVersion int64
	err := s.pool.QueryRow(ctx, s.q.loadSnapshot, stream.Type, stream.ID).
		Scan(&version, &schemaVersion, &snap.ContentType, &snap.Data)
	if errors.Is(err, pgx.ErrNoRows) {
		return runtime.Snapshot{}, fmt.Errorf("postgres: %s: %w", op, runtime.ErrNoSnapshot)
	}
	if err != nil {
		return runtime.Snapshot{}, s.wrap(op, err)
	}
	snap.Version, snap.SchemaVersion = uint64(version), uint32(schemaVersion)
	return snap, nil
}
