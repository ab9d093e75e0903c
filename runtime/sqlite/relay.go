package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/protoc-gen-eda/eda/runtime"
)

// finishTimeout bounds the bookkeeping after publish: deleting the
// published messages and releasing the lease run even if the caller's
// context ended meanwhile (the messages are out; keeping them would only
// publish them again), but not forever.
const finishTimeout = 30 * time.Second

// leaseOwnerBytes is the length of a claim's random owner id: enough that
// two claims never collide.
const leaseOwnerBytes = 16

// RelayOutbox implements runtime.EventStore.
//
// The claim is a lease: the outbox_lease table's one row names the relay
// holding the outbox and when its claim expires. A relay takes the lease in
// a short write transaction, then reads and publishes with no lock held, so
// appends go on while the broker is called; another relay (goroutine or
// process) finding a live lease returns 0, nil. While publish runs, the
// lease is renewed every Config.OutboxLease/3. When publish returns, the
// published messages are deleted (only if it returned nil) and the lease is
// released in one transaction, so the next relay starts after them.
//
// If the process dies while it holds the lease, the lease expires after at
// most Config.OutboxLease and the next relay publishes the dead relay's
// batch again: at least once, in order. A relay that stalls (a frozen VM)
// for longer than the lease can find that another relay published its
// batch too; that is the only way one message is published twice without a
// failed publish.
//
// limit <= 0 means no limit, as for ReadAll.
func (s *Store) RelayOutbox(ctx context.Context, limit int, publish func([]runtime.OutboxMessage) error) (int, error) {
	if err := s.check(ctx, "relay outbox"); err != nil {
		return 0, err
	}
	// Relays poll: find out without taking the write lock whether there is
	// nothing to do, or another relay is doing it.
	var waiting bool
	var leaseExpires int64
	now := time.Now()
	if err := s.stmts.outboxState.QueryRowContext(ctx, unixNanos(now)).Scan(&waiting, &leaseExpires); err != nil {
		return 0, s.fail("relay outbox: look for messages", err)
	}
	if !waiting || leaseExpires > now.UnixNano() {
		return 0, nil
	}
	owner, err := newOwner()
	if err != nil {
		return 0, fmt.Errorf("sqlite: relay outbox: %w", err)
	}
	claimed, err := s.claimLease(ctx, owner)
	if err != nil {
		return 0, s.fail("relay outbox: claim the outbox", err)
	}
	if !claimed {
		return 0, nil
	}
	// From here on the lease must end: released on every return, or
	// expiring if the process dies.
	released := false
	defer func() {
		if !released {
			finishCtx, cancel := finishContext(ctx)
			defer cancel()
			_ = s.releaseLease(finishCtx, owner) // a failure leaves it to expire
		}
	}()

	// Read after claiming: a batch read before could have been published
	// meanwhile by the relay that held the lease. The time is read anew:
	// claiming may have waited.
	msgs, err := s.readOutbox(ctx, unixNanos(time.Now()), limit)
	if err != nil {
		return 0, s.fail("relay outbox: read messages", err)
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	stop := s.renewWhile(context.WithoutCancel(ctx), owner)
	err = func() (err error) {
		defer stop() // also if publish panics
		return publish(msgs)
	}()
	if err != nil {
		return 0, fmt.Errorf("sqlite: relay outbox: publish %d messages from position %d: %w (they stay in the outbox)", len(msgs), msgs[0].Position, err)
	}
	finishCtx, cancel := finishContext(ctx)
	defer cancel()
	err = s.write(finishCtx, func(tx *sql.Tx) error {
		if err := s.deletePublished(finishCtx, tx, msgs); err != nil {
			return fmt.Errorf("delete published messages: %w", err)
		}
		if _, err := tx.StmtContext(finishCtx, s.stmts.leaseRelease).ExecContext(finishCtx, owner); err != nil {
			return fmt.Errorf("release the lease: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, s.fail(fmt.Sprintf("relay outbox: %d messages were published but stay in the outbox, to be published again", len(msgs)), err)
	}
	released = true
	return len(msgs), nil
}

// deletePublished deletes msgs, a published batch: the messages to deliver
// at once by their range of positions, in one statement, and the delayed
// ones one by one, since messages that are not due yet may lie between
// them. Delayed messages are few: a batch holds those that came due since
// the last relay.
func (s *Store) deletePublished(ctx context.Context, tx *sql.Tx, msgs []runtime.OutboxMessage) error {
	if _, err := tx.StmtContext(ctx, s.stmts.outboxDelete).ExecContext(ctx, int64(msgs[0].Position), int64(msgs[len(msgs)-1].Position)); err != nil {
		return err
	}
	for _, m := range msgs {
		if m.DeliverAt.IsZero() {
			continue
		}
		if _, err := tx.ExecContext(ctx, withPrefix(outboxDeleteOneSQL, s.cfg.TablePrefix), int64(m.Position)); err != nil {
			return err
		}
	}
	return nil
}

// finishContext returns the context of the bookkeeping after publish: not
// cancelled with ctx, but bounded by finishTimeout.
func finishContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
}

// newOwner returns a random lease owner id. Each RelayOutbox call has its
// own, so that two goroutines relaying through one Store exclude each other
// as two processes do.
func newOwner() (string, error) {
	b := make([]byte, leaseOwnerBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make a lease owner id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// claimLease takes the outbox lease for owner unless another relay holds a
// live one.
func (s *Store) claimLease(ctx context.Context, owner string) (bool, error) {
	var claimed bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		now := time.Now()
		r, err := tx.StmtContext(ctx, s.stmts.leaseClaim).ExecContext(ctx, owner, now.Add(s.cfg.OutboxLease).UnixNano(), now.UnixNano())
		if err != nil {
			return err
		}
		n, err := r.RowsAffected()
		claimed = n == 1
		return err
	})
	return claimed, err
}

// releaseLease ends owner's lease, if it still holds it.
func (s *Store) releaseLease(ctx context.Context, owner string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.StmtContext(ctx, s.stmts.leaseRelease).ExecContext(ctx, owner)
		return err
	})
}

// renewWhile renews owner's lease every third of its duration until the
// returned function is called, which waits for the renewer to stop. A
// renewal that fails is retried at the next tick; if none succeeds, the
// lease expires and another relay may publish the same batch.
func (s *Store) renewWhile(ctx context.Context, owner string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(s.cfg.OutboxLease / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-s.done:
				return
			case <-t.C:
			}
			renewCtx, cancel := context.WithTimeout(ctx, s.cfg.OutboxLease/3)
			_ = s.write(renewCtx, func(tx *sql.Tx) error {
				_, err := tx.StmtContext(renewCtx, s.stmts.leaseRenew).ExecContext(renewCtx, time.Now().Add(s.cfg.OutboxLease).UnixNano(), owner)
				return err
			})
			cancel()
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// readOutbox reads up to limit messages due at dueAt (Unix nanoseconds) in
// position order, copied: publish may keep them.
func (s *Store) readOutbox(ctx context.Context, dueAt int64, limit int) ([]runtime.OutboxMessage, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.stmts.outboxRead.QueryContext(ctx, dueAt, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var msgs []runtime.OutboxMessage
	for rows.Next() {
		var m runtime.OutboxMessage
		var pos int64
		var deliverAt sql.NullInt64
		if err := rows.Scan(&pos, &m.Topic, &m.UUID, &m.Metadata, &m.Payload, &deliverAt); err != nil {
			return nil, err
		}
		m.Position = uint64(pos)
		if deliverAt.Valid {
			m.DeliverAt = time.Unix(0, deliverAt.Int64).UTC()
		}
		msgs = append(msgs, m)
	}
	return msgs, rows.Err()
}
