package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/protoc-gen-eda/eda/runtime"
)

// RelayOutbox implements runtime.EventStore.
//
// It runs one transaction: pg_try_advisory_xact_lock on the relay lock (a
// key distinct from the append lock, so relaying never slows appends down),
// then up to limit due rows in position order, publish, delete, commit. A
// row is due when its deliver_at is NULL or not after this process's
// time.Now. The
// lock is released when the transaction ends, also when the connection
// dies, so a crashed relay never blocks the others. If publish fails, the
// context is cancelled or the connection is lost, the transaction rolls
// back and the rows stay for the next call.
//
// publish runs with the transaction open and a pool connection held; it
// receives a new slice on every call and may keep it.
func (s *Store) RelayOutbox(ctx context.Context, limit int, publish func([]runtime.OutboxMessage) error) (int, error) {
	const op = "relay the outbox"
	if s.closed.Load() {
		return 0, errClosed(op)
	}
	if limit <= 0 {
		limit = math.MaxInt32 // no limit, as the contract says
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, s.wrap(op, err)
	}
	// Rollback after Commit is a no-op; after a failure it ends the
	// transaction, or pgx closes a connection it cannot roll back. It must
	// run when ctx is cancelled too, but not hang on a dead network.
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
		defer cancel()
		_ = tx.Rollback(rctx)
	}()

	var locked bool
	if err := tx.QueryRow(ctx, s.q.relayTryLock, s.n.relayLock).Scan(&locked); err != nil {
		return 0, s.wrap(op+": take the relay lock", err)
	}
	if !locked {
		return 0, nil // another relay is at work
	}
	// Due by this process's clock, not the server's: the clock that set
	// DeliverAt (a saga's timeout, say) is a process's too.
	rows, err := tx.Query(ctx, s.q.relaySelect, int64(limit), time.Now())
	if err != nil {
		return 0, s.wrap(op+": read messages", err)
	}
	msgs := make([]runtime.OutboxMessage, 0, min(limit, relayPrealloc))
	positions := make([]int64, 0, cap(msgs))
	var (
		pos int64
		m   runtime.OutboxMessage
		at  pgtype.Timestamptz
	)
	_, err = pgx.ForEachRow(rows, []any{&pos, &m.Topic, &m.UUID, &m.Metadata, &m.Payload, &at}, func() error {
		m.Position = uint64(pos)
		m.DeliverAt = time.Time{}
		if at.Valid {
			m.DeliverAt = at.Time.UTC()
		}
		msgs = append(msgs, m)
		positions = append(positions, pos)
		// Scan would otherwise reuse the slices' backing arrays for the
		// next row's bytes.
		m.Metadata, m.Payload = nil, nil
		return nil
	})
	if err != nil {
		return 0, s.wrap(op+": read messages", err)
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	if err := publish(msgs); err != nil {
		return 0, fmt.Errorf("postgres: %s: publish %d messages: %w; they stay in the outbox", op, len(msgs), err)
	}
	if _, err := tx.Exec(ctx, s.q.relayDelete, positions); err != nil {
		return 0, s.wrap(fmt.Sprintf("%s: delete %d published messages (they will be published again)", op, len(msgs)), err)
	}
	if err := tx.Commit(ctx); err != nil {
		if errors.Is(err, pgx.ErrTxCommitRollback) {
			err = fmt.Errorf("transaction rolled back: %w", err)
		}
		return 0, s.wrap(fmt.Sprintf("%s: commit the deletion of %d published messages (they will be published again)", op, len(msgs)), err)
	}
	return len(msgs), nil
}

// rollbackTimeout bounds the rollback of a failed relay transaction. A
// healthy server answers in milliseconds; past this, pgx closes the
// connection, which rolls back just as well.
const rollbackTimeout = 5 * time.Second

// relayPrealloc caps the capacity RelayOutbox reserves up front, so that a
// huge limit over a near-empty outbox does not allocate for nothing.
const relayPrealloc = 256
