package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		path       string
		dsn, query string
		memory     bool
	}{
		{path: ":memory:", dsn: ":memory:", memory: true},
		{path: "events.db", dsn: "file:events.db"},
		{path: "/var/lib/app/events.db", dsn: "file:/var/lib/app/events.db"},
		{path: "/tmp/odd?name#1%.db", dsn: "file:/tmp/odd%3fname%231%25.db"},
		{path: "file:events.db?mode=rwc", dsn: "file:events.db", query: "mode=rwc"},
		{path: "file::memory:", dsn: "file::memory:", memory: true},
		{path: "file:x?mode=memory&cache=shared", dsn: "file:x", query: "mode=memory&cache=shared", memory: true},
		{path: "sqlite:///abs/path.db", dsn: "file:/abs/path.db"},
		{path: "sqlite://relative.db", dsn: "file:relative.db"},
		{path: "sqlite://data/relative.db", dsn: "file:data/relative.db"},
		{path: "sqlite://:memory:", dsn: ":memory:", memory: true},
		{path: "sqlite:///abs/with%20space.db?_pragma=cache_size(-65536)", dsn: "file:/abs/with space.db", query: "_pragma=cache_size(-65536)"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			got, err := parseTarget(tc.path)
			if err != nil {
				t.Fatalf("parseTarget(%q): %v", tc.path, err)
			}
			want := target{dsn: tc.dsn, query: tc.query, memory: tc.memory}
			if got != want {
				t.Errorf("parseTarget(%q) = %+v, want %+v", tc.path, got, want)
			}
		})
	}
	for _, bad := range []string{"", "sqlite://", "sqlite://?mode=ro", "sqlite:///bad%zz.db"} {
		if got, err := parseTarget(bad); err == nil {
			t.Errorf("parseTarget(%q) = %+v, want an error", bad, got)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
	good := Config{TablePrefix: "app_events_", BusyTimeout: time.Second, OutboxLease: time.Minute, ReadPageSize: 10, MaxReadConns: 2, FullSync: true}
	if err := good.Validate(); err != nil {
		t.Errorf("%+v: %v", good, err)
	}
	bad := Config{TablePrefix: "x; DROP TABLE y", BusyTimeout: -1, OutboxLease: -1, ReadPageSize: -1, MaxReadConns: -1}
	err := bad.Validate()
	if err == nil {
		t.Fatalf("%+v: no error", bad)
	}
	for _, field := range []string{"TablePrefix", "BusyTimeout", "OutboxLease", "ReadPageSize", "MaxReadConns"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("Validate() = %q, does not mention %s: every invalid field must be reported at once", err, field)
		}
	}
	for _, prefix := range []string{"1x", "a-b", "a b", "ä"} {
		if err := (Config{TablePrefix: prefix}).Validate(); err == nil {
			t.Errorf("TablePrefix %q accepted", prefix)
		}
	}
	if _, err := Open(context.Background(), ":memory:", bad); err == nil {
		t.Error("Open accepted an invalid Config")
	}
}

func TestChunkSize(t *testing.T) {
	for n := 1; n <= 200; n++ {
		var sizes []int
		for left := n; left > 0; {
			size, bits := chunkSize(left)
			if size != 1<<bits || size > insertChunk || size > left {
				t.Fatalf("chunkSize(%d) = %d, %d", left, size, bits)
			}
			sizes = append(sizes, size)
			left -= size
		}
		// Full chunks first, then at most one of each smaller power of two.
		if maxStmts := n/insertChunk + insertChunkBits; len(sizes) > maxStmts {
			t.Errorf("%d rows take %d statements %v, want at most %d", n, len(sizes), sizes, maxStmts)
		}
	}
}

// TestQueryPlans checks that the hot queries search an index rather than
// scan a table: reading a stream from a sequence, the stream's version and
// the global log from a position must not slow down as the store grows.
func TestQueryPlans(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "plan.db"), Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, q := range []struct {
		name, query string
		args        []any
	}{
		{"readStream", readStreamSQL, []any{"t", "i", 5, 10}},
		{"streamVersion", streamVersionSQL, []any{"t", "i"}},
		{"storedRange", storedRangeSQL, []any{"t", "i", 5, 10}},
		{"eventByID", eventByIDSQL, []any{"id"}},
		{"readAll", readAllSQL, []any{5, 10}},
		{"outboxDelete", outboxDeleteSQL, []any{1, 5}},
	} {
		plan := queryPlan(t, s.rdb, withPrefix(q.query, s.cfg.TablePrefix), q.args...)
		if !strings.Contains(plan, "SEARCH") || strings.Contains(plan, "SCAN") || strings.Contains(plan, "TEMP B-TREE") {
			t.Errorf("%s: query plan %q: want an index SEARCH without SCAN or sorting", q.name, plan)
		}
	}
}

func queryPlan(t *testing.T, db *sql.DB, query string, args ...any) string {
	t.Helper()
	rows, err := db.Query("EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatalf("EXPLAIN %s: %v", query, err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "; ")
}

func TestIsUnique(t *testing.T) {
	id := errors.New("constraint failed: UNIQUE constraint failed: eda_events.id (2067)")
	stream := errors.New("constraint failed: UNIQUE constraint failed: eda_events.stream_type, eda_events.stream_id, eda_events.sequence (2067)")
	if !isUnique(id, "eda_events.id") || isUnique(id, "eda_events.stream_type") {
		t.Errorf("isUnique misreads %q", id)
	}
	if !isUnique(stream, "eda_events.stream_type") || isUnique(stream, "eda_events.id") {
		t.Errorf("isUnique misreads %q", stream)
	}
}

// TestPragmas checks the settings Open gives a file database's connections.
func TestPragmas(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		sync int // PRAGMA synchronous: 1 NORMAL, 2 FULL
		busy int // milliseconds
	}{
		{Config{}, 1, int(DefaultBusyTimeout.Milliseconds())},
		{Config{FullSync: true, BusyTimeout: 1500 * time.Millisecond}, 2, 1500},
	} {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "pragma.db"), tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		for name, db := range map[string]*sql.DB{"writer": s.wdb, "reader": s.rdb} {
			var mode string
			var sync, busy, queryOnly int
			if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
				t.Fatal(err)
			}
			if err := db.QueryRow("PRAGMA synchronous").Scan(&sync); err != nil {
				t.Fatal(err)
			}
			if err := db.QueryRow("PRAGMA busy_timeout").Scan(&busy); err != nil {
				t.Fatal(err)
			}
			if err := db.QueryRow("PRAGMA query_only").Scan(&queryOnly); err != nil {
				t.Fatal(err)
			}
			if mode != "wal" || sync != tc.sync || busy != tc.busy || (queryOnly == 1) != (name == "reader") {
				t.Errorf("%+v: %s: journal_mode %s, synchronous %d, busy_timeout %d, query_only %d; want wal, %d, %d, reader only",
					tc.cfg, name, mode, sync, busy, queryOnly, tc.sync, tc.busy)
			}
		}
		s.Close()
	}
}
