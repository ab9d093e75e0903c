package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/protoc-gen-eda/eda/runtime"
)

// dedupClaimAttempts bounds Claim's rounds: a round that neither takes the
// key nor finds the row that kept it (released or expired in between)
// tries again.
const dedupClaimAttempts = 5

// DedupStore is the runtime.DedupStore of a Store: claims and done marks in
// a table next to the events ({prefix}dedup in Config.Schema, created on
// first use), shared by every process on the database. Leases and windows
// run on the database's clock. Get it with Store.Dedup.
//
// Its InTx and MarkDone mark a message done in the transaction of the
// handler's own writes, so that both commit or neither does: a message
// whose effects are in this database is then handled exactly once, even
// if the process dies between its effects and the mark.
type DedupStore struct {
	s *Store
	q dedupQueries
	// mu guards ready: the table is created on first use, once per
	// DedupStore, and again after a failure.
	mu    sync.Mutex
	ready bool
}

var _ runtime.DedupStore = (*DedupStore)(nil)

// dedupQueries holds the deduplication store's statements, built once.
type dedupQueries struct {
	table                                        string // qualified, for to_regclass
	create                                       []string
	createLock                                   int64
	claim, state, complete, mark, release, purge string
}

func newDedupQueries(c Config) dedupQueries {
	t := pgx.Identifier{c.Schema, c.TablePrefix + "dedup"}.Sanitize()
	// Durations travel as microseconds, PostgreSQL's resolution.
	return dedupQueries{
		table: t,
		create: []string{
			// A row is a claim (owner set) or a done mark (owner NULL)
			// until expires_at.
			`CREATE TABLE IF NOT EXISTS ` + t + ` (
	consumer   text        NOT NULL,
	message_id text        NOT NULL,
	owner      text,
	expires_at timestamptz NOT NULL,
	PRIMARY KEY (consumer, message_id)
)`,
			// Purge deletes by expiry.
			`CREATE INDEX IF NOT EXISTS ` + pgx.Identifier{c.TablePrefix + "dedup_expires_at"}.Sanitize() + ` ON ` + t + ` (expires_at)`,
		},
		createLock: lockKey("dedup", c),
		// claim takes the key if it is absent, expired or already $3's
		// (a done mark's NULL owner equals nothing). Concurrent claims of
		// one key wait for each other on the row, and those that come
		// second see the first's claim.
		claim: `INSERT INTO ` + t + ` AS d (consumer, message_id, owner, expires_at)
VALUES ($1, $2, $3, now() + $4 * interval '1 microsecond')
ON CONFLICT (consumer, message_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE d.expires_at <= now() OR d.owner = excluded.owner`,
		state: `SELECT owner IS NULL FROM ` + t + ` WHERE consumer = $1 AND message_id = $2 AND expires_at > now()`,
		complete: `INSERT INTO ` + t + ` AS d (consumer, message_id, owner, expires_at)
VALUES ($1, $2, NULL, now() + $3 * interval '1 microsecond')
ON CONFLICT (consumer, message_id) DO UPDATE SET owner = NULL, expires_at = excluded.expires_at`,
		// mark is complete only if the claim is still $4's (or absent, or
		// expired): MarkDone's check that no other consumer took the
		// message.
		mark: `INSERT INTO ` + t + ` AS d (consumer, message_id, owner, expires_at)
VALUES ($1, $2, NULL, now() + $3 * interval '1 microsecond')
ON CONFLICT (consumer, message_id) DO UPDATE SET owner = NULL, expires_at = excluded.expires_at
WHERE d.owner = $4 OR d.expires_at <= now()`,
		release: `DELETE FROM ` + t + ` WHERE consumer = $1 AND message_id = $2 AND owner = $3`,
		purge:   `DELETE FROM ` + t + ` WHERE expires_at <= now()`,
	}
}

// Dedup returns the store's deduplication store, for
// runtime.DeduplicatorConfig.Store. Each call returns a new value, which
// creates the table on first use (the role needs CREATE on the schema
// then, or an administrator creates it): keep one per Store.
func (s *Store) Dedup() *DedupStore {
	return &DedupStore{s: s, q: newDedupQueries(s.cfg)}
}

// begin checks that the store is open and creates the table on first use,
// as the projection store does: reading the catalog only when the table is
// there, else creating it under an advisory lock.
func (d *DedupStore) begin(ctx context.Context, op string) error {
	if d.s.closed.Load() {
		return errClosed(op)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ready {
		return nil
	}
	var present bool
	err := d.s.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, d.q.table).Scan(&present)
	if err == nil && !present {
		err = pgx.BeginFunc(ctx, d.s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, d.q.createLock); err != nil {
				return err
			}
			for _, stmt := range d.q.create {
				if _, err := tx.Exec(ctx, stmt); err != nil {
					return fmt.Errorf("%w; the role needs CREATE on the schema, or an administrator creates the table", err)
				}
			}
			return nil
		})
	}
	if err != nil {
		return d.s.wrap(op+": create the deduplication table", err)
	}
	d.ready = true
	return nil
}

// Claim implements runtime.DedupStore.
func (d *DedupStore) Claim(ctx context.Context, key runtime.DedupKey, owner string, lease time.Duration) (runtime.DedupState, error) {
	op := "claim " + key.String()
	if owner == "" {
		return 0, fmt.Errorf("postgres: %s: the owner is empty", op)
	}
	if err := d.begin(ctx, op); err != nil {
		return 0, err
	}
	for range dedupClaimAttempts {
		tag, err := d.s.pool.Exec(ctx, d.q.claim, key.Consumer, key.MessageID, owner, lease.Microseconds())
		if err != nil {
			return 0, d.s.wrap(op, err)
		}
		if tag.RowsAffected() == 1 {
			return runtime.DedupClaimed, nil
		}
		var done bool
		err = d.s.pool.QueryRow(ctx, d.q.state, key.Consumer, key.MessageID).Scan(&done)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			// Released or expired since: claim again.
			continue
		case err != nil:
			return 0, d.s.wrap(op, err)
		case done:
			return runtime.DedupDone, nil
		}
		return runtime.DedupBusy, nil
	}
	// The key keeps changing hands: someone holds it, for the caller.
	return runtime.DedupBusy, nil
}

// Complete implements runtime.DedupStore.
func (d *DedupStore) Complete(ctx context.Context, key runtime.DedupKey, window time.Duration) error {
	op := "complete " + key.String()
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	if _, err := d.s.pool.Exec(ctx, d.q.complete, key.Consumer, key.MessageID, window.Microseconds()); err != nil {
		return d.s.wrap(op, err)
	}
	return nil
}

// Release implements runtime.DedupStore.
func (d *DedupStore) Release(ctx context.Context, key runtime.DedupKey, owner string) error {
	op := "release " + key.String()
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	if _, err := d.s.pool.Exec(ctx, d.q.release, key.Consumer, key.MessageID, owner); err != nil {
		return d.s.wrap(op, err)
	}
	return nil
}

// Purge implements runtime.DedupStore: it deletes the expired rows in one
// statement.
func (d *DedupStore) Purge(ctx context.Context) (int64, error) {
	const op = "purge deduplication entries"
	if err := d.begin(ctx, op); err != nil {
		return 0, err
	}
	tag, err := d.s.pool.Exec(ctx, d.q.purge)
	if err != nil {
		return 0, d.s.wrap(op, err)
	}
	return tag.RowsAffected(), nil
}

// MarkDone marks c's message done until c.Window from now, in tx: the
// message's done mark commits with tx's other writes, or rolls back with
// them. It returns an error wrapping runtime.ErrDedupClaimLost if another
// owner holds a live claim on the message or it is done already: tx must
// then roll back (runtime.Deduplicator.Handle then claims the message
// again: it finds it done, or waits for the other owner). After tx commits,
// call runtime.DedupMarked(ctx) to save the Deduplicator its own Complete.
// tx must be a transaction on the store's database; InTx
// runs one of the store's pool. The mark takes the row lock of the
// message's claim until tx ends, so a redelivery waits for tx's outcome.
func (d *DedupStore) MarkDone(ctx context.Context, tx pgx.Tx, c runtime.DedupClaim) error {
	op := "mark " + c.Key.String() + " done"
	// On the pool, not in tx: creating the table is not tx's business.
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	tag, err := tx.Exec(ctx, d.q.mark, c.Key.Consumer, c.Key.MessageID, c.Window.Microseconds(), c.Owner)
	if err != nil {
		return d.s.wrap(op, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: %s: %w", op, runtime.ErrDedupClaimLost)
	}
	return nil
}

// InTx runs fn in a transaction of the store's pool and, if ctx is a
// deduplicating handler's (runtime.DedupClaimFrom), marks the message done
// in it (MarkDone), committing both if fn returns nil; after the commit it
// tells the Deduplicator (runtime.DedupMarked), which then skips its own
// Complete. A handler whose
// effects are writes to this database makes them through InTx to apply
// each message exactly once:
//
//	func (h *handler) HandleOrderPlaced(ctx context.Context, e *ordersv1.OrderPlaced) error {
//		return h.dedup.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
//			_, err := tx.Exec(ctx, `INSERT INTO invoices (order_id) VALUES ($1)`, e.OrderId)
//			return err
//		})
//	}
//
// Without a claim in ctx, InTx just runs fn in a transaction. With
// Config.Schema set, the transaction's search_path starts with that
// schema, as a projection's does. fn's error is returned as it is.
func (d *DedupStore) InTx(ctx context.Context, fn func(ctx context.Context, tx pgx.Tx) error) error {
	const op = "deduplicated transaction"
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	claim, dedup := runtime.DedupClaimFrom(ctx)
	tx, err := d.s.pool.Begin(ctx)
	if err != nil {
		return d.s.wrap(op+": begin", err)
	}
	if schema := d.s.cfg.Schema; schema != "" {
		if _, err = tx.Exec(ctx, "SET LOCAL search_path TO "+pgx.Identifier{schema}.Sanitize()+", public"); err != nil {
			err = d.s.wrap(op+": set the search path", err)
		}
	}
	if err == nil {
		err = fn(ctx, tx)
	}
	if err == nil && dedup {
		err = d.MarkDone(ctx, tx, claim)
	}
	if err != nil {
		// Ends the transaction, or the connection if ctx is done; err
		// says why.
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return d.s.wrap(op+": commit", err)
	}
	runtime.DedupMarked(ctx)
	return nil
}
