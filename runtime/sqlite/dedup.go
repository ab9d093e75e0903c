package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/protoc-gen-eda/eda/runtime"
)

// dedupTables creates the deduplication table; {p} is the store's table
// prefix. The statements are idempotent. They are not in the store's
// migrations, as the projection tables are not: a store that deduplicates
// nothing has no use for them.
//
// A row is a claim (owner set) or a done mark (owner NULL) until
// expires_at, in Unix nanoseconds of the writers' clocks: SQLite's
// processes share a machine, hence a clock.
var dedupTables = []string{
	`CREATE TABLE IF NOT EXISTS {p}dedup (
		consumer   TEXT    NOT NULL,
		message_id TEXT    NOT NULL,
		owner      TEXT,
		expires_at INTEGER NOT NULL,
		PRIMARY KEY (consumer, message_id)
	) WITHOUT ROWID`,
	// Purge deletes by expiry.
	`CREATE INDEX IF NOT EXISTS {p}dedup_expires_at ON {p}dedup (expires_at)`,
}

// Statements of the deduplication store; {p} is the table prefix.
const (
	// dedupClaimSQL takes the key if it is absent, expired or already
	// ?3's claim (a done mark has a NULL owner, which equals nothing). It
	// changes no row otherwise.
	dedupClaimSQL = `INSERT INTO {p}dedup (consumer, message_id, owner, expires_at) VALUES (?1, ?2, ?3, ?4)
		ON CONFLICT (consumer, message_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
		WHERE {p}dedup.expires_at <= ?5 OR {p}dedup.owner = excluded.owner`
	dedupStateSQL    = `SELECT owner IS NULL FROM {p}dedup WHERE consumer = ? AND message_id = ?`
	dedupCompleteSQL = `INSERT INTO {p}dedup (consumer, message_id, owner, expires_at) VALUES (?, ?, NULL, ?)
		ON CONFLICT (consumer, message_id) DO UPDATE SET owner = NULL, expires_at = excluded.expires_at`
	// dedupMarkSQL marks the key done only if the claim is still ?4's (or
	// absent, or expired): MarkDone's check that no other consumer took
	// the message.
	dedupMarkSQL = `INSERT INTO {p}dedup (consumer, message_id, owner, expires_at) VALUES (?1, ?2, NULL, ?3)
		ON CONFLICT (consumer, message_id) DO UPDATE SET owner = NULL, expires_at = excluded.expires_at
		WHERE {p}dedup.owner = ?4 OR {p}dedup.expires_at <= ?5`
	dedupReleaseSQL = `DELETE FROM {p}dedup WHERE consumer = ? AND message_id = ? AND owner = ?`
	dedupPurgeSQL   = `DELETE FROM {p}dedup WHERE expires_at <= ?`
)

// DedupStore is the runtime.DedupStore of a Store: claims and done marks in
// a table next to the events ({prefix}dedup, created on first use), shared
// by every process on the database file. Get it with Store.Dedup.
//
// Its InTx and MarkDone mark a message done in the transaction of the
// handler's own writes, so that both commit or neither does: a message
// whose effects are in this database is then handled exactly once, even
// if the process dies between its effects and the mark.
type DedupStore struct {
	s *Store
	// mu guards ready: the table is created on first use, once per
	// DedupStore, and again after a failure.
	mu    sync.Mutex
	ready bool
}

var _ runtime.DedupStore = (*DedupStore)(nil)

// Dedup returns the store's deduplication store, for
// runtime.DeduplicatorConfig.Store. Its writes queue for SQLite's write
// lock with the store's other writes. Each call returns a new value, which
// creates the table on first use: keep one per Store.
func (s *Store) Dedup() *DedupStore { return &DedupStore{s: s} }

// q returns query with the store's table prefix.
func (d *DedupStore) q(query string) string { return withPrefix(query, d.s.cfg.TablePrefix) }

// begin checks that the store is open and creates the table on first use.
func (d *DedupStore) begin(ctx context.Context, op string) error {
	if err := d.s.check(ctx, op); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ready {
		return nil
	}
	if err := d.s.write(ctx, d.createTables(ctx)); err != nil {
		return d.s.fail(op+": create the deduplication table", err)
	}
	d.ready = true
	return nil
}

func (d *DedupStore) createTables(ctx context.Context) func(tx *sql.Tx) error {
	return func(tx *sql.Tx) error {
		for _, stmt := range dedupTables {
			if _, err := tx.ExecContext(ctx, d.q(stmt)); err != nil {
				return err
			}
		}
		return nil
	}
}

// Claim implements runtime.DedupStore in one write transaction.
func (d *DedupStore) Claim(ctx context.Context, key runtime.DedupKey, owner string, lease time.Duration) (runtime.DedupState, error) {
	op := "claim " + key.String()
	if owner == "" {
		return 0, fmt.Errorf("sqlite: %s: the owner is empty", op)
	}
	if err := d.begin(ctx, op); err != nil {
		return 0, err
	}
	var state runtime.DedupState
	err := d.s.write(ctx, func(tx *sql.Tx) error {
		now := time.Now()
		res, err := tx.ExecContext(ctx, d.q(dedupClaimSQL), key.Consumer, key.MessageID, owner, now.Add(lease).UnixNano(), now.UnixNano())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			state = runtime.DedupClaimed
			return err
		}
		// Under the write lock, the row that kept the claim is still
		// there.
		var done bool
		if err := tx.QueryRowContext(ctx, d.q(dedupStateSQL), key.Consumer, key.MessageID).Scan(&done); err != nil {
			return err
		}
		state = runtime.DedupBusy
		if done {
			state = runtime.DedupDone
		}
		return nil
	})
	if err != nil {
		return 0, d.s.fail(op, err)
	}
	return state, nil
}

// Complete implements runtime.DedupStore.
func (d *DedupStore) Complete(ctx context.Context, key runtime.DedupKey, window time.Duration) error {
	op := "complete " + key.String()
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	err := d.s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, d.q(dedupCompleteSQL), key.Consumer, key.MessageID, time.Now().Add(window).UnixNano())
		return err
	})
	if err != nil {
		return d.s.fail(op, err)
	}
	return nil
}

// Release implements runtime.DedupStore.
func (d *DedupStore) Release(ctx context.Context, key runtime.DedupKey, owner string) error {
	op := "release " + key.String()
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	err := d.s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, d.q(dedupReleaseSQL), key.Consumer, key.MessageID, owner)
		return err
	})
	if err != nil {
		return d.s.fail(op, err)
	}
	return nil
}

// Purge implements runtime.DedupStore: it deletes the expired rows in one
// write transaction.
func (d *DedupStore) Purge(ctx context.Context) (int64, error) {
	const op = "purge deduplication entries"
	if err := d.begin(ctx, op); err != nil {
		return 0, err
	}
	var n int64
	err := d.s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, d.q(dedupPurgeSQL), time.Now().UnixNano())
		if err == nil {
			n, err = res.RowsAffected()
		}
		return err
	})
	if err != nil {
		return 0, d.s.fail(op, err)
	}
	return n, nil
}

// MarkDone marks c's message done until c.Window from now, in tx: the
// message's done mark commits with tx's other writes, or rolls back with
// them. It returns an error wrapping runtime.ErrDedupClaimLost if another
// owner holds a live claim on the message or it is done already: tx must
// then roll back (runtime.Deduplicator.Handle then claims the message
// again: it finds it done, or waits for the other owner). After tx commits,
// call runtime.DedupMarked(ctx) to save the Deduplicator its own Complete.
// tx must be a transaction on the store's database (a
// database opened with New, shared with the application, say); InTx runs
// one of the store's own.
func (d *DedupStore) MarkDone(ctx context.Context, tx *sql.Tx, c runtime.DedupClaim) error {
	op := "mark " + c.Key.String() + " done"
	d.mu.Lock()
	ready := d.ready
	d.mu.Unlock()
	if !ready {
		// In tx: a write transaction of our own would wait for tx's lock.
		if err := d.createTables(ctx)(tx); err != nil {
			return fmt.Errorf("sqlite: %s: create the deduplication table: %w", op, err)
		}
	}
	now := time.Now()
	res, err := tx.ExecContext(ctx, d.q(dedupMarkSQL), c.Key.Consumer, c.Key.MessageID, now.Add(c.Window).UnixNano(), c.Owner, now.UnixNano())
	var n int64
	if err == nil {
		n, err = res.RowsAffected()
	}
	if err != nil {
		return d.s.fail(op, err)
	}
	if n == 0 {
		return fmt.Errorf("sqlite: %s: %w", op, runtime.ErrDedupClaimLost)
	}
	return nil
}

// InTx runs fn in one of the store's write transactions and, if ctx is a
// deduplicating handler's (runtime.DedupClaimFrom), marks the message done
// in it (MarkDone), committing both if fn returns nil; after the commit it
// tells the Deduplicator (runtime.DedupMarked), which then skips its own
// Complete. A handler whose
// effects are writes to this database makes them through InTx to apply
// each message exactly once:
//
//	func (h *handler) HandleOrderPlaced(ctx context.Context, e *ordersv1.OrderPlaced) error {
//		return h.dedup.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
//			_, err := tx.ExecContext(ctx, `INSERT INTO invoices (order_id) VALUES (?)`, e.OrderId)
//			return err
//		})
//	}
//
// Without a claim in ctx, InTx just runs fn in a transaction. fn holds
// SQLite's write lock: it must write through tx only (a Store.Append
// from fn waits for the lock fn holds, forever). fn's error is returned
// as it is.
func (d *DedupStore) InTx(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	const op = "deduplicated transaction"
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	claim, dedup := runtime.DedupClaimFrom(ctx)
	// inner is fn's or MarkDone's error, returned as it is.
	var inner error
	err := d.s.write(ctx, func(tx *sql.Tx) error {
		if inner = fn(ctx, tx); inner == nil && dedup {
			inner = d.MarkDone(ctx, tx, claim)
		}
		return inner
	})
	switch {
	case err == nil:
		runtime.DedupMarked(ctx)
		return nil
	case inner != nil:
		return inner
	}
	return d.s.fail(op, err)
}
