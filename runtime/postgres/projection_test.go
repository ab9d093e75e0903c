package postgres_test

import (
	"context"
	"errors"
	"fmt"
	neturl "net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/postgres"
	"github.com/protoc-gen-eda/eda/runtime/projectiontest"
)

// TestProjections runs the projection suite on PostgreSQL, each test in a
// fresh schema holding the events, the projection tables and the read
// model; Share opens a second pool on it, as a second process would.
func TestProjections(t *testing.T) {
	f := newFixture(t)
	stores := func(s *postgres.Store, schema string) projectiontest.Stores[pgx.Tx] {
		return projectiontest.Stores[pgx.Tx]{Log: s, Projections: s.Projections(), Model: pgModel{pool: s.Pool(), schema: schema}}
	}
	projectiontest.Run(t, projectiontest.Backend[pgx.Tx]{
		Open: func(t *testing.T) projectiontest.Stores[pgx.Tx] {
			schema := freshSchema(t, f.url)
			return stores(f.openConfig(t, postgres.Config{Schema: schema}), schema)
		},
		Share: func(t *testing.T, s projectiontest.Stores[pgx.Tx]) projectiontest.Stores[pgx.Tx] {
			return stores(f.share(t, s.Log), s.Model.(pgModel).schema)
		},
		Transactional: true,
	})
}

// pgModel is the suite's read model: a table rows_g<N> per generation in
// the test's schema, and a view rows that readers query.
type pgModel struct {
	pool   *pgxpool.Pool
	schema string
}

func (m pgModel) table(p runtime.ProjectionTx[pgx.Tx]) string {
	return pgx.Identifier{m.schema, p.Table("rows")}.Sanitize()
}

func (m pgModel) Setup(ctx context.Context, p runtime.ProjectionTx[pgx.Tx]) error {
	_, err := p.Tx.Exec(ctx, `CREATE TABLE `+m.table(p)+` (
	event_id   text    NOT NULL,
	stream     text    NOT NULL,
	position   bigint  NOT NULL,
	instance   text    NOT NULL,
	generation integer NOT NULL
)`)
	return err
}

func (m pgModel) Activate(ctx context.Context, p runtime.ProjectionTx[pgx.Tx], previous int) error {
	if err := postgres.ReplaceView(ctx, p.Tx, m.schema+".rows", m.schema+"."+p.Table("rows")); err != nil {
		return err
	}
	if previous == 0 {
		return nil
	}
	_, err := p.Tx.Exec(ctx, `DROP TABLE `+m.table(runtime.ProjectionTx[pgx.Tx]{Generation: previous}))
	return err
}

func (m pgModel) Insert(ctx context.Context, p runtime.ProjectionTx[pgx.Tx], r projectiontest.Row) error {
	_, err := p.Tx.Exec(ctx, `INSERT INTO `+m.table(p)+` (event_id, stream, position, instance, generation) VALUES ($1, $2, $3, $4, $5)`,
		r.EventID, r.Stream, int64(r.Position), r.Instance, r.Generation)
	return err
}

func (m pgModel) Rows(ctx context.Context) ([]projectiontest.Row, error) {
	rows, err := m.pool.Query(ctx, `SELECT event_id, stream, position, instance, generation FROM `+pgx.Identifier{m.schema, "rows"}.Sanitize())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (projectiontest.Row, error) {
		var row projectiontest.Row
		var pos int64
		err := r.Scan(&row.EventID, &row.Stream, &pos, &row.Instance, &row.Generation)
		row.Position = uint64(pos)
		return row, err
	})
}

// TestProjectionBatchBusy checks the PostgreSQL batch lock: while one
// batch of a partition runs, another of the same partition fails with
// ErrPartitionBusy at once (it does not wait), and one of another
// partition runs.
func TestProjectionBatchBusy(t *testing.T) {
	f := newFixture(t)
	ctx := testContext(t)
	s := f.open(t)
	ps, ps2 := s.Projections(), f.share(t, s).Projections()
	noop := func(context.Context, pgx.Tx) error { return nil }
	if ok, err := ps.StartGeneration(ctx, "p", 1, 2, noop, func(context.Context, pgx.Tx, int) error { return nil }); !ok || err != nil {
		t.Fatalf("StartGeneration = %v, %v", ok, err)
	}
	inside, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := ps.RunBatch(ctx, runtime.ProjectionBatch{Name: "p", Generation: 1, Partition: 0}, func(context.Context, pgx.Tx) (uint64, error) {
			close(inside)
			<-release
			return 5, nil
		})
		done <- err
	}()
	<-inside
	_, err := ps2.RunBatch(ctx, runtime.ProjectionBatch{Name: "p", Generation: 1, Partition: 0}, func(context.Context, pgx.Tx) (uint64, error) {
		t.Error("a second batch of a busy partition ran")
		return 0, nil
	})
	if !errors.Is(err, runtime.ErrPartitionBusy) {
		t.Errorf("RunBatch of a busy partition = %v, want ErrPartitionBusy", err)
	}
	if cp, err := ps2.RunBatch(ctx, runtime.ProjectionBatch{Name: "p", Generation: 1, Partition: 1}, func(context.Context, pgx.Tx) (uint64, error) {
		return 3, nil
	}); err != nil || cp != 3 {
		t.Errorf("RunBatch of another partition = %d, %v; want 3, nil", cp, err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The first batch committed at 5: a batch read after 0 is stale.
	cp, err := ps2.RunBatch(ctx, runtime.ProjectionBatch{Name: "p", Generation: 1, Partition: 0}, func(context.Context, pgx.Tx) (uint64, error) {
		t.Error("a batch read after a stale checkpoint ran")
		return 0, nil
	})
	if !errors.Is(err, runtime.ErrCheckpointMoved) || cp != 5 {
		t.Errorf("RunBatch after a stale checkpoint = %d, %v; want 5, ErrCheckpointMoved", cp, err)
	}
}

// TestProjectionLeastPrivilege checks that a role without the CREATE
// privilege uses projection tables an administrator created: the store
// only reads the catalog when they exist.
func TestProjectionLeastPrivilege(t *testing.T) {
	f := newFixture(t)
	admin := f.pool(t, nil)
	ctx := testContext(t)
	schema := freshSchema(t, f.url)
	cfg := postgres.Config{Schema: schema, TablePrefix: "app_"}
	if _, err := f.openConfig(t, cfg).Projections().Generations(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename LIKE 'app_projection%'`, schema).Scan(&n); err != nil || n != 4 {
		t.Fatalf("projection tables in %s: %d (%v), want 4", schema, n, err)
	}

	name := fmt.Sprintf("edatest_proj_%d", time.Now().UnixNano())
	q, qschema := pgx.Identifier{name}.Sanitize(), pgx.Identifier{schema}.Sanitize()
	for _, sql := range []string{
		`CREATE ROLE ` + q + ` LOGIN`,
		`GRANT USAGE ON SCHEMA ` + qschema + ` TO ` + q,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ` + qschema + ` TO ` + q,
	} {
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, sql := range []string{`DROP OWNED BY ` + q, `DROP ROLE ` + q} {
			if _, err := admin.Exec(ctx, sql); err != nil {
				t.Errorf("%s: %v", sql, err)
			}
		}
	})
	u, err := neturl.Parse(f.url)
	if err != nil {
		t.Fatal(err)
	}
	u.User = neturl.User(name)
	ps := f.openURL(t, u.String(), cfg).Projections()
	noop := func(context.Context, pgx.Tx) error { return nil }
	if ok, err := ps.StartGeneration(ctx, "p", 1, 1, noop, func(context.Context, pgx.Tx, int) error { return nil }); !ok || err != nil {
		t.Fatalf("StartGeneration as a role without CREATE = %v, %v", ok, err)
	}
	if cp, err := ps.RunBatch(ctx, runtime.ProjectionBatch{Name: "p", Generation: 1}, func(context.Context, pgx.Tx) (uint64, error) { return 9, nil }); err != nil || cp != 9 {
		t.Errorf("RunBatch as a role without CREATE = %d, %v; want 9, nil", cp, err)
	}
	if held, err := ps.Lease(ctx, runtime.ProjectionLeaseRequest{Name: "p", Owner: "o", TTL: time.Minute,
		Decide: func([]string, map[int]string) []int { return []int{0} }}); err != nil || len(held) != 1 {
		t.Errorf("Lease as a role without CREATE = %v, %v; want [0], nil", held, err)
	}
}

// TestSwitchGenerationReadsLogHead checks that a switch compares the
// checkpoints with the log's head as the transaction sees it, when that is
// further than the head the caller saw.
func TestSwitchGenerationReadsLogHead(t *testing.T) {
	f := newFixture(t)
	ctx := testContext(t)
	s := f.open(t)
	res := mustAppend(t, s, runtime.AppendRequest{Stream: runtime.StreamID{Type: "t", ID: "s"}, Events: events(t, 3)})
	ps := s.Projections()
	noop := func(context.Context, pgx.Tx) error { return nil }
	activate := func(context.Context, pgx.Tx, int) error { return nil }
	if ok, err := ps.StartGeneration(ctx, "p", 1, 1, noop, activate); !ok || err != nil {
		t.Fatalf("StartGeneration(1) = %v, %v", ok, err)
	}
	if ok, err := ps.StartGeneration(ctx, "p", 2, 1, noop, nil); !ok || err != nil {
		t.Fatalf("StartGeneration(2) = %v, %v", ok, err)
	}
	batch := func(from, to uint64) {
		t.Helper()
		if _, err := ps.RunBatch(ctx, runtime.ProjectionBatch{Name: "p", Generation: 2, From: from}, func(context.Context, pgx.Tx) (uint64, error) { return to, nil }); err != nil {
			t.Fatal(err)
		}
	}
	batch(0, res.LastPosition-1)
	if err := ps.SwitchGeneration(ctx, "p", 2, 1, activate); !errors.Is(err, runtime.ErrNotCaughtUp) {
		t.Errorf("SwitchGeneration with the checkpoint behind the log's head = %v, want ErrNotCaughtUp", err)
	}
	batch(res.LastPosition-1, res.LastPosition)
	if err := ps.SwitchGeneration(ctx, "p", 2, 0, activate); err != nil {
		t.Errorf("SwitchGeneration at the log's head: %v", err)
	}
}
