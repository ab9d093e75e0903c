package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/deduptest"
	"github.com/protoc-gen-eda/eda/runtime/sqlite"
)

// dedupPaths maps the dedup stores the file backend opened to their files,
// for Share.
var dedupPaths sync.Map // *sqlite.DedupStore -> string

// TestDedupFile runs the deduplication suite on a database file; a second
// Store on the file stands for a second process.
func TestDedupFile(t *testing.T) {
	deduptest.Run(t, deduptest.Backend{
		Open: func(t *testing.T) runtime.DedupStore {
			path := filepath.Join(t.TempDir(), "events.db")
			d := openStore(t, path, sqlite.Config{}).Dedup()
			dedupPaths.Store(d, path)
			return d
		},
		Share: func(t *testing.T, s runtime.DedupStore) runtime.DedupStore {
			path, ok := dedupPaths.Load(s)
			if !ok {
				t.Fatal("Share: the store was not opened by Open")
			}
			return openStore(t, path.(string), sqlite.Config{}).Dedup()
		},
	})
}

// TestDedupMemory runs the deduplication suite on ":memory:".
func TestDedupMemory(t *testing.T) {
	deduptest.Run(t, deduptest.Backend{
		Open: func(t *testing.T) runtime.DedupStore {
			return openStore(t, ":memory:", sqlite.Config{TablePrefix: "dd_"}).Dedup()
		},
	})
}

// dedupFixture is two "processes" on one database file, each with a
// Deduplicator, and a table of effects.
type dedupFixture struct {
	ctx    context.Context
	a, b   *sqlite.Store
	da, db *sqlite.DedupStore
}

func newDedupFixture(t *testing.T) *dedupFixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.db")
	f := &dedupFixture{ctx: testContext(t), a: openStore(t, path, sqlite.Config{}), b: openStore(t, path, sqlite.Config{})}
	f.da, f.db = f.a.Dedup(), f.b.Dedup()
	err := f.da.InTx(f.ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE effects (message_id TEXT NOT NULL)`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// effect inserts one effect row for id through d.InTx.
func (f *dedupFixture) effect(d *sqlite.DedupStore, id string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		return d.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO effects (message_id) VALUES (?)`, id)
			return err
		})
	}
}

func (f *dedupFixture) effects(t *testing.T, id string) int {
	t.Helper()
	var n int
	if err := f.a.DB().QueryRowContext(f.ctx, `SELECT count(*) FROM effects WHERE message_id = ?`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func deduplicator(t *testing.T, store runtime.DedupStore, lease time.Duration) *runtime.Deduplicator {
	t.Helper()
	d, err := runtime.NewDeduplicator(runtime.DeduplicatorConfig{Store: store, Lease: lease})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDedupInTxOnce: effects written through InTx are made once per
// message across two processes, and a failed handler's are rolled back
// and its message handled again.
func TestDedupInTxOnce(t *testing.T) {
	f := newDedupFixture(t)
	dA, dB := deduplicator(t, f.da, time.Minute), deduplicator(t, f.db, time.Minute)
	for _, d := range []*runtime.Deduplicator{dA, dB, dA} {
		if err := d.Handle(f.ctx, "consumer", "m-1", time.Hour, f.effect(f.da, "m-1")); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.effects(t, "m-1"); n != 1 {
		t.Errorf("%d effects of m-1, want 1", n)
	}
	boom := errors.New("boom")
	failing := func(ctx context.Context) error {
		return f.db.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO effects (message_id) VALUES ('m-2')`); err != nil {
				return err
			}
			return boom
		})
	}
	if err := dB.Handle(f.ctx, "consumer", "m-2", time.Hour, failing); !errors.Is(err, boom) {
		t.Fatalf("Handle of a failing handler = %v, want its error", err)
	}
	if n := f.effects(t, "m-2"); n != 0 {
		t.Errorf("%d effects of m-2 after its handler failed, want 0 (rolled back)", n)
	}
	if err := dA.Handle(f.ctx, "consumer", "m-2", time.Hour, f.effect(f.da, "m-2")); err != nil {
		t.Fatal(err)
	}
	if n := f.effects(t, "m-2"); n != 1 {
		t.Errorf("%d effects of m-2 after the redelivery, want 1", n)
	}
}

// TestDedupInTxCrash: a process that committed its handler's transaction
// and died before Complete left the message done: the redelivery skips it.
func TestDedupInTxCrash(t *testing.T) {
	f := newDedupFixture(t)
	claim := runtime.DedupClaim{Key: runtime.DedupKey{Consumer: "consumer", MessageID: "m-1"}, Owner: "crashed", Window: time.Hour}
	if st, err := f.da.Claim(f.ctx, claim.Key, claim.Owner, time.Minute); err != nil || st != runtime.DedupClaimed {
		t.Fatalf("Claim = %v, %v", st, err)
	}
	// The handler ran and committed; no Complete, no Release.
	if err := f.effect(f.da, "m-1")(runtime.WithDedupClaim(f.ctx, claim)); err != nil {
		t.Fatal(err)
	}
	called := false
	err := deduplicator(t, f.db, time.Minute).Handle(f.ctx, "consumer", "m-1", time.Hour, func(context.Context) error {
		called = true
		return nil
	})
	if err != nil || called {
		t.Errorf("redelivery: Handle = %v, handler called %v; want nil, not called", err, called)
	}
	if n := f.effects(t, "m-1"); n != 1 {
		t.Errorf("%d effects, want 1", n)
	}
}

// TestDedupInTxClaimLost: a handler whose claim expired and was taken over
// cannot commit its effects.
func TestDedupInTxClaimLost(t *testing.T) {
	f := newDedupFixture(t)
	key := runtime.DedupKey{Consumer: "consumer", MessageID: "m-1"}
	if st, err := f.da.Claim(f.ctx, key, "slow", time.Millisecond); err != nil || st != runtime.DedupClaimed {
		t.Fatalf("Claim = %v, %v", st, err)
	}
	time.Sleep(10 * time.Millisecond)
	if st, err := f.db.Claim(f.ctx, key, "redelivery", time.Minute); err != nil || st != runtime.DedupClaimed {
		t.Fatalf("Claim of the redelivery = %v, %v", st, err)
	}
	slow := runtime.WithDedupClaim(f.ctx, runtime.DedupClaim{Key: key, Owner: "slow", Window: time.Hour})
	if err := f.effect(f.da, "m-1")(slow); !errors.Is(err, runtime.ErrDedupClaimLost) {
		t.Fatalf("InTx of a lost claim = %v, want ErrDedupClaimLost", err)
	}
	if n := f.effects(t, "m-1"); n != 0 {
		t.Errorf("%d effects, want 0: the lost claim's transaction must roll back", n)
	}
	// The redelivery's own mark commits.
	current := runtime.WithDedupClaim(f.ctx, runtime.DedupClaim{Key: key, Owner: "redelivery", Window: time.Hour})
	if err := f.effect(f.db, "m-1")(current); err != nil {
		t.Fatal(err)
	}
	if n := f.effects(t, "m-1"); n != 1 {
		t.Errorf("%d effects, want 1", n)
	}
}

// TestDedupMarkDoneCallerTx: MarkDone works in a transaction of the
// caller's database (New), creating the table in it on first use.
func TestDedupMarkDoneCallerTx(t *testing.T) {
	ctx := testContext(t)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "app.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := sqlite.New(ctx, db, sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d := s.Dedup()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	claim := runtime.DedupClaim{Key: runtime.DedupKey{Consumer: "c", MessageID: "m"}, Owner: "o", Window: time.Hour}
	if err := d.MarkDone(ctx, tx, claim); err != nil {
		t.Fatalf("MarkDone = %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if st, err := d.Claim(ctx, claim.Key, "other", time.Minute); err != nil || st != runtime.DedupDone {
		t.Errorf("Claim after MarkDone committed = %v, %v; want done", st, err)
	}
}
