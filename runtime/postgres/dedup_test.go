package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/deduptest"
	"github.com/protoc-gen-eda/eda/runtime/postgres"
)

// TestDedupConformance runs the deduplication suite on PostgreSQL, each
// test in a fresh schema; a second Store with its own pool on the schema
// stands for a second process.
func TestDedupConformance(t *testing.T) {
	f := newFixture(t)
	stores := map[runtime.DedupStore]*postgres.Store{}
	deduptest.Run(t, deduptest.Backend{
		Open: func(t *testing.T) runtime.DedupStore {
			s := f.open(t)
			d := s.Dedup()
			f.mu.Lock()
			stores[d] = s
			f.mu.Unlock()
			return d
		},
		Share: func(t *testing.T, d runtime.DedupStore) runtime.DedupStore {
			f.mu.Lock()
			s := stores[d]
			f.mu.Unlock()
			return f.share(t, s).Dedup()
		},
	})
}

// dedupFixture is two "processes" on one schema and a table of effects.
type dedupFixture struct {
	ctx    context.Context
	schema string
	a      *postgres.Store
	da, db *postgres.DedupStore
}

func newDedupFixture(t *testing.T) *dedupFixture {
	t.Helper()
	f := newFixture(t)
	schema := freshSchema(t, f.url)
	a := f.openConfig(t, postgres.Config{Schema: schema})
	d := &dedupFixture{ctx: testContext(t), schema: schema, a: a, da: a.Dedup(), db: f.share(t, a).Dedup()}
	// Unqualified: InTx's search_path puts it in the schema.
	err := d.da.InTx(d.ctx, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `CREATE TABLE effects (message_id text NOT NULL)`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (f *dedupFixture) effect(d *postgres.DedupStore, id string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		return d.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO effects (message_id) VALUES ($1)`, id)
			return err
		})
	}
}

func (f *dedupFixture) effects(t *testing.T, id string) int {
	t.Helper()
	var n int
	q := `SELECT count(*) FROM ` + pgx.Identifier{f.schema, "effects"}.Sanitize() + ` WHERE message_id = $1`
	if err := f.a.Pool().QueryRow(f.ctx, q, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func newDeduplicator(t *testing.T, store runtime.DedupStore) *runtime.Deduplicator {
	t.Helper()
	d, err := runtime.NewDeduplicator(runtime.DeduplicatorConfig{Store: store, Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDedupInTxOnce: effects written through InTx are made once per
// message across two processes; a failed handler's roll back and its
// message is handled again.
func TestDedupInTxOnce(t *testing.T) {
	f := newDedupFixture(t)
	dA, dB := newDeduplicator(t, f.da), newDeduplicator(t, f.db)
	for _, d := range []*runtime.Deduplicator{dA, dB, dA} {
		if err := d.Handle(f.ctx, "consumer", "m-1", time.Hour, f.effect(f.db, "m-1")); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.effects(t, "m-1"); n != 1 {
		t.Errorf("%d effects of m-1, want 1", n)
	}
	boom := errors.New("boom")
	failing := func(ctx context.Context) error {
		return f.db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO effects (message_id) VALUES ('m-2')`); err != nil {
				return err
			}
			return boom
		})
	}
	if err := dB.Handle(f.ctx, "consumer", "m-2", time.Hour, failing); !errors.Is(err, boom) {
		t.Fatalf("Handle of a failing handler = %v, want its error", err)
	}
	if n := f.effects(t, "m-2"); n != 0 {
		t.Errorf("%d effects of m-2 after its handler failed, want 0", n)
	}
	if err := dA.Handle(f.ctx, "consumer", "m-2", time.Hour, f.effect(f.da, "m-2")); err != nil {
		t.Fatal(err)
	}
	if n := f.effects(t, "m-2"); n != 1 {
		t.Errorf("%d effects of m-2 after the redelivery, want 1", n)
	}
}

// TestDedupInTxCrash: a process that committed its handler's transaction
// and died before Complete left the message done.
func TestDedupInTxCrash(t *testing.T) {
	f := newDedupFixture(t)
	claim := runtime.DedupClaim{Key: runtime.DedupKey{Consumer: "consumer", MessageID: "m-1"}, Owner: "crashed", Window: time.Hour}
	if st, err := f.da.Claim(f.ctx, claim.Key, claim.Owner, time.Minute); err != nil || st != runtime.DedupClaimed {
		t.Fatalf("Claim = %v, %v", st, err)
	}
	if err := f.effect(f.da, "m-1")(runtime.WithDedupClaim(f.ctx, claim)); err != nil {
		t.Fatal(err)
	}
	called := false
	err := newDeduplicator(t, f.db).Handle(f.ctx, "consumer", "m-1", time.Hour, func(context.Context) error {
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
	current := runtime.WithDedupClaim(f.ctx, runtime.DedupClaim{Key: key, Owner: "redelivery", Window: time.Hour})
	if err := f.effect(f.db, "m-1")(current); err != nil {
		t.Fatal(err)
	}
	if n := f.effects(t, "m-1"); n != 1 {
		t.Errorf("%d effects, want 1", n)
	}
}

// TestDedupMarkWaitsForTx: a redelivery's claim waits for the transaction
// that marks the message done, and sees the mark once it commits.
func TestDedupMarkWaitsForTx(t *testing.T) {
	f := newDedupFixture(t)
	claim := runtime.DedupClaim{Key: runtime.DedupKey{Consumer: "consumer", MessageID: "m-1"}, Owner: "first", Window: time.Hour}
	if st, err := f.da.Claim(f.ctx, claim.Key, claim.Owner, time.Millisecond); err != nil || st != runtime.DedupClaimed {
		t.Fatalf("Claim = %v, %v", st, err)
	}
	tx, err := f.a.Pool().Begin(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.WithoutCancel(f.ctx))
	time.Sleep(10 * time.Millisecond) // the lease expires: MarkDone still takes an expired claim
	if err := f.da.MarkDone(f.ctx, tx, claim); err != nil {
		t.Fatalf("MarkDone = %v", err)
	}
	got := make(chan runtime.DedupState, 1)
	go func() {
		st, err := f.db.Claim(f.ctx, claim.Key, "second", time.Minute)
		if err != nil {
			t.Error(err)
		}
		got <- st
	}()
	select {
	case st := <-got:
		t.Fatalf("Claim returned %v while the marking transaction was open", st)
	case <-time.After(200 * time.Millisecond):
	}
	if err := tx.Commit(f.ctx); err != nil {
		t.Fatal(err)
	}
	if st := <-got; st != runtime.DedupDone {
		t.Errorf("Claim after the mark committed = %v, want done", st)
	}
}
