package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/projectiontest"
	"github.com/protoc-gen-eda/eda/runtime/sqlite"
)

// projectionPaths maps the stores the file backend opened to their files,
// for Share.
var projectionPaths sync.Map // *sqlite.Store -> string

// stores returns the suite's stores on s.
func stores(s *sqlite.Store) projectiontest.Stores[*sql.Tx] {
	return projectiontest.Stores[*sql.Tx]{Log: s, Projections: s.Projections(), Model: sqlModel{db: s.DB()}}
}

// TestProjectionsFile runs the projection suite on a database file; a
// second Store on the file stands for a second process.
func TestProjectionsFile(t *testing.T) {
	projectiontest.Run(t, projectiontest.Backend[*sql.Tx]{
		Open: func(t *testing.T) projectiontest.Stores[*sql.Tx] {
			path := filepath.Join(t.TempDir(), "events.db")
			s := openStore(t, path, sqlite.Config{})
			projectionPaths.Store(s, path)
			return stores(s)
		},
		Share: func(t *testing.T, st projectiontest.Stores[*sql.Tx]) projectiontest.Stores[*sql.Tx] {
			path, ok := projectionPaths.Load(st.Log)
			if !ok {
				t.Fatal("Share: the store was not opened by Open")
			}
			return stores(openStore(t, path.(string), sqlite.Config{}))
		},
		Transactional: true,
	})
}

// TestProjectionsMemory runs the projection suite on ":memory:", whose one
// connection the read model's readers share with the writer.
func TestProjectionsMemory(t *testing.T) {
	projectiontest.Run(t, projectiontest.Backend[*sql.Tx]{
		Open: func(t *testing.T) projectiontest.Stores[*sql.Tx] {
			return stores(openStore(t, ":memory:", sqlite.Config{TablePrefix: "proj_"}))
		},
		Transactional: true,
	})
}

// sqlModel is the suite's read model: a table rows_g<N> per generation and
// a view rows that readers query.
type sqlModel struct{ db *sql.DB }

func (sqlModel) Setup(ctx context.Context, p runtime.ProjectionTx[*sql.Tx]) error {
	_, err := p.Tx.ExecContext(ctx, `CREATE TABLE `+p.Table("rows")+` (
		event_id   TEXT    NOT NULL,
		stream     TEXT    NOT NULL,
		position   INTEGER NOT NULL,
		instance   TEXT    NOT NULL,
		generation INTEGER NOT NULL
	)`)
	return err
}

func (sqlModel) Activate(ctx context.Context, p runtime.ProjectionTx[*sql.Tx], previous int) error {
	if err := sqlite.ReplaceView(ctx, p.Tx, "rows", p.Table("rows")); err != nil {
		return err
	}
	if previous == 0 {
		return nil
	}
	_, err := p.Tx.ExecContext(ctx, `DROP TABLE `+runtime.ProjectionTx[*sql.Tx]{Generation: previous}.Table("rows"))
	return err
}

func (sqlModel) Insert(ctx context.Context, p runtime.ProjectionTx[*sql.Tx], r projectiontest.Row) error {
	_, err := p.Tx.ExecContext(ctx, `INSERT INTO `+p.Table("rows")+` (event_id, stream, position, instance, generation) VALUES (?, ?, ?, ?, ?)`,
		r.EventID, r.Stream, int64(r.Position), r.Instance, r.Generation)
	return err
}

func (m sqlModel) Rows(ctx context.Context) ([]projectiontest.Row, error) {
	rows, err := m.db.QueryContext(ctx, `SELECT event_id, stream, position, instance, generation FROM rows`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []projectiontest.Row
	for rows.Next() {
		var r projectiontest.Row
		var pos int64
		if err := rows.Scan(&r.EventID, &r.Stream, &pos, &r.Instance, &r.Generation); err != nil {
			return nil, err
		}
		r.Position = uint64(pos)
		out = append(out, r)
	}
	return out, rows.Err()
}

// TestReplaceViewQuotes checks that ReplaceView quotes names, also
// schema-qualified ones and ones that need quoting.
func TestReplaceViewQuotes(t *testing.T) {
	ctx := testContext(t)
	s := openStore(t, ":memory:", sqlite.Config{})
	db := s.DB()
	if _, err := db.ExecContext(ctx, `CREATE TABLE "odd ""name"" g1" (v INTEGER); INSERT INTO "odd ""name"" g1" VALUES (7)`); err != nil {
		t.Fatal(err)
	}
	for _, view := range []string{`my "view"`, `main.my "view"`} {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := sqlite.ReplaceView(ctx, tx, view, `main.odd "name" g1`); err != nil {
			t.Fatalf("ReplaceView(%q): %v", view, err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		var v int
		if err := db.QueryRowContext(ctx, `SELECT v FROM "my ""view"""`).Scan(&v); err != nil || v != 7 {
			t.Errorf("read the view made by ReplaceView(%q) = %d, %v; want 7", view, v, err)
		}
	}
}

// TestProjectionTablesPrefixed checks that the projection store's tables
// carry the store's prefix and are created once, on first use.
func TestProjectionTablesPrefixed(t *testing.T) {
	ctx := testContext(t)
	s := openStore(t, ":memory:", sqlite.Config{TablePrefix: "app_"})
	names := func() []string {
		rows, err := s.DB().QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE '%projection%' ORDER BY name`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
			out = append(out, n)
		}
		return out
	}
	if got := names(); len(got) != 0 {
		t.Fatalf("tables before first use: %v, want none", got)
	}
	ps := s.Projections()
	if g, err := ps.Generations(ctx, "p"); err != nil || g != (runtime.ProjectionGenerations{}) {
		t.Fatalf("Generations of a new projection = %+v, %v; want zero, nil", g, err)
	}
	want := "app_projection_checkpoints app_projection_leases app_projection_members app_projections"
	if got := strings.Join(names(), " "); got != want {
		t.Errorf("tables = %s, want %s", got, want)
	}
	// A second projection store on the same Store finds them.
	if _, err := s.Projections().Checkpoint(ctx, "p", 1, 0); err != nil {
		t.Errorf("Checkpoint through a second projection store: %v", err)
	}
}

// TestProjectionStoreClosed checks that a closed store's projection store
// fails with runtime.ErrStoreClosed.
func TestProjectionStoreClosed(t *testing.T) {
	s, err := sqlite.Open(context.Background(), ":memory:", sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ps := s.Projections()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = ps.Generations(testContext(t), "p")
	if !errors.Is(err, runtime.ErrStoreClosed) {
		t.Errorf("Generations after Close = %v, want ErrStoreClosed", err)
	}
	_, err = ps.RunBatch(testContext(t), runtime.ProjectionBatch{Name: "p", Generation: 1}, func(context.Context, *sql.Tx) (uint64, error) {
		return 0, fmt.Errorf("fn must not run")
	})
	if !errors.Is(err, runtime.ErrStoreClosed) {
		t.Errorf("RunBatch after Close = %v, want ErrStoreClosed", err)
	}
}

// TestSwitchGenerationReadsLogHead checks that a switch compares the
// checkpoints with the log's head as the transaction sees it, when that is
// further than the head the caller saw.
func TestSwitchGenerationReadsLogHead(t *testing.T) {
	ctx := testContext(t)
	s := openStore(t, ":memory:", sqlite.Config{})
	for i := range 3 {
		if _, err := s.Append(ctx, runtime.AppendRequest{Stream: runtime.StreamID{Type: "t", ID: "s"}, ExpectedVersion: runtime.AnyVersion,
			Events: []runtime.EventRecord{{ID: fmt.Sprint("e", i), Type: "t.E", SchemaVersion: 1}}}); err != nil {
			t.Fatal(err)
		}
	}
	ps := s.Projections()
	noop := func(context.Context, *sql.Tx) error { return nil }
	activate := func(context.Context, *sql.Tx, int) error { return nil }
	if ok, err := ps.StartGeneration(ctx, "p", 1, 1, noop, activate); !ok || err != nil {
		t.Fatalf("StartGeneration(1) = %v, %v", ok, err)
	}
	if ok, err := ps.StartGeneration(ctx, "p", 2, 1, noop, nil); !ok || err != nil {
		t.Fatalf("StartGeneration(2) = %v, %v", ok, err)
	}
	batch := func(from, to uint64) {
		t.Helper()
		if _, err := ps.RunBatch(ctx, runtime.ProjectionBatch{Name: "p", Generation: 2, From: from}, func(context.Context, *sql.Tx) (uint64, error) { return to, nil }); err != nil {
			t.Fatal(err)
		}
	}
	batch(0, 2)
	if err := ps.SwitchGeneration(ctx, "p", 2, 1, activate); !errors.Is(err, runtime.ErrNotCaughtUp) {
		t.Errorf("SwitchGeneration with the log's head at 3 and the checkpoint at 2 = %v, want ErrNotCaughtUp", err)
	}
	batch(2, 3)
	if err := ps.SwitchGeneration(ctx, "p", 2, 0, activate); err != nil {
		t.Errorf("SwitchGeneration at the log's head: %v", err)
	}
}
