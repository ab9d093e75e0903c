package sqlite_test

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/sqlite"
)

// testEvents returns n events whose ids start with prefix.
func testEvents(prefix string, n int) []runtime.EventRecord {
	evs := make([]runtime.EventRecord, n)
	for i := range evs {
		evs[i] = runtime.EventRecord{
			ID:            prefix + "-" + strconv.Itoa(i),
			Type:          "test.v1.Happened",
			SchemaVersion: 1,
			ContentType:   "application/x-protobuf",
			Data:          []byte("data-" + strconv.Itoa(i)),
		}
	}
	return evs
}

func mustAppend(t *testing.T, s runtime.EventStore, req runtime.AppendRequest) runtime.AppendResult {
	t.Helper()
	res, err := s.Append(testContext(t), req)
	if err != nil {
		t.Fatalf("Append to %s at %d: %v", req.Stream, req.ExpectedVersion, err)
	}
	return res
}

// ids reads a stream's event ids.
func ids(t *testing.T, s runtime.EventStore, stream runtime.StreamID) []string {
	t.Helper()
	var out []string
	if err := s.ReadStream(testContext(t), stream, 0, func(r *runtime.EventRecord) error {
		out = append(out, r.ID)
		return nil
	}); err != nil {
		t.Fatalf("ReadStream %s: %v", stream, err)
	}
	return out
}

// TestOpenForms opens every documented form of path and checks that the
// data lands where it should: a second Open of the same name sees it.
func TestOpenForms(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	stream := runtime.StreamID{Type: "test.v1.Thing", ID: "1"}
	for _, tc := range []struct {
		open, reopen string // reopen is "" for private in-memory databases
	}{
		{"plain.db", filepath.Join(dir, "plain.db")},
		{filepath.Join(dir, "abs.db"), "file:" + filepath.Join(dir, "abs.db")},
		{"file:uri.db?mode=rwc", filepath.Join(dir, "uri.db")},
		{"sqlite://" + filepath.Join(dir, "url-abs.db"), filepath.Join(dir, "url-abs.db")},
		{"sqlite://url-rel.db", filepath.Join(dir, "url-rel.db")},
		{"sqlite://" + filepath.Join(dir, "url-query.db") + "?_pragma=cache_size(-4096)", filepath.Join(dir, "url-query.db")},
		{filepath.Join(dir, "we?ird#name%.db"), filepath.Join(dir, "we?ird#name%.db")},
		{":memory:", ""},
		{"sqlite://:memory:", ""},
	} {
		t.Run(tc.open, func(t *testing.T) {
			s := openStore(t, tc.open, sqlite.Config{})
			mustAppend(t, s, runtime.AppendRequest{Stream: stream, Events: testEvents("e", 2)})
			if got := ids(t, s, stream); len(got) != 2 {
				t.Fatalf("read back %d events, want 2", len(got))
			}
			if tc.reopen == "" {
				return
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2 := openStore(t, tc.reopen, sqlite.Config{})
			if got := ids(t, s2, stream); len(got) != 2 {
				t.Errorf("reopened as %q: %d events, want 2", tc.reopen, len(got))
			}
		})
	}
}

// TestMemoryIsPrivate checks that two ":memory:" stores do not share data,
// and that a store's in-memory data survives idle time between calls (its
// one connection is never dropped).
func TestMemoryIsPrivate(t *testing.T) {
	a := openStore(t, ":memory:", sqlite.Config{})
	b := openStore(t, ":memory:", sqlite.Config{})
	stream := runtime.StreamID{Type: "test.v1.Thing", ID: "1"}
	mustAppend(t, a, runtime.AppendRequest{Stream: stream, Events: testEvents("e", 1)})
	if got := ids(t, b, stream); len(got) != 0 {
		t.Errorf("second :memory: store sees %d events of the first", len(got))
	}
	if got := ids(t, a, stream); len(got) != 1 {
		t.Errorf("first :memory: store holds %d events, want 1", len(got))
	}
}

// TestReentrantRead appends from inside ReadStream's and ReadAll's fn: the
// reads hold no connection while fn runs, so this neither deadlocks on the
// single connection of an in-memory store nor waits for a reader's lock.
func TestReentrantRead(t *testing.T) {
	for _, path := range []string{":memory:", filepath.Join(t.TempDir(), "reentrant.db")} {
		t.Run(path, func(t *testing.T) {
			s := openStore(t, path, sqlite.Config{ReadPageSize: 3})
			ctx := testContext(t)
			src := runtime.StreamID{Type: "test.v1.Thing", ID: "src"}
			mustAppend(t, s, runtime.AppendRequest{Stream: src, Events: testEvents("src", 10)})
			dst := runtime.StreamID{Type: "test.v1.Thing", ID: "dst"}
			n := 0
			err := s.ReadStream(ctx, src, 0, func(r *runtime.EventRecord) error {
				ev := *r
				ev.ID = "copy-" + r.ID
				_, err := s.Append(ctx, runtime.AppendRequest{Stream: dst, ExpectedVersion: uint64(n), Events: []runtime.EventRecord{ev}})
				n++
				return err
			})
			if err != nil {
				t.Fatalf("ReadStream appending from fn: %v", err)
			}
			if got := ids(t, s, dst); len(got) != 10 {
				t.Errorf("copied %d events, want 10", len(got))
			}
			// ReadAll sees the events appended while it reads: they are past
			// its position.
			seen := 0
			err = s.ReadAll(ctx, 0, 0, func(r *runtime.EventRecord) error {
				if seen++; seen == 1 {
					_, err := s.Append(ctx, runtime.AppendRequest{Stream: dst, ExpectedVersion: runtime.AnyVersion, Events: testEvents("late", 1)})
					return err
				}
				return nil
			})
			if err != nil {
				t.Fatalf("ReadAll appending from fn: %v", err)
			}
			if seen != 21 {
				t.Errorf("ReadAll delivered %d events, want 21 (20 stored and 1 appended during the read)", seen)
			}
		})
	}
}

// TestTablePrefix keeps two stores apart in one file.
func TestTablePrefix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prefix.db")
	a := openStore(t, path, sqlite.Config{})
	b := openStore(t, path, sqlite.Config{TablePrefix: "other_"})
	stream := runtime.StreamID{Type: "test.v1.Thing", ID: "1"}
	mustAppend(t, a, runtime.AppendRequest{Stream: stream, Events: testEvents("a", 3)})
	mustAppend(t, b, runtime.AppendRequest{Stream: stream, Events: testEvents("b", 1)})
	if got := ids(t, a, stream); len(got) != 3 || got[0] != "a-0" {
		t.Errorf("default prefix store holds %v", got)
	}
	if got := ids(t, b, stream); len(got) != 1 || got[0] != "b-0" {
		t.Errorf("other_ store holds %v", got)
	}
}

// TestPositionsOfBatches appends batches whose sizes need several INSERT
// statements and checks the positions Append reports against the stored
// ones.
func TestPositionsOfBatches(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "batches.db"), sqlite.Config{ReadPageSize: 7})
	ctx := testContext(t)
	stream := runtime.StreamID{Type: "test.v1.Thing", ID: "1"}
	version := uint64(0)
	var want []uint64
	for i, n := range []int{1, 100, 33, 64, 5} {
		evs := testEvents("batch"+strconv.Itoa(i), n)
		res := mustAppend(t, s, runtime.AppendRequest{Stream: stream, ExpectedVersion: version, Events: evs})
		version += uint64(n)
		if res.Version != version || res.LastPosition-res.FirstPosition != uint64(n-1) {
			t.Fatalf("append of %d: %+v, want version %d and %d positions", n, res, version, n)
		}
		for p := res.FirstPosition; p <= res.LastPosition; p++ {
			want = append(want, p)
		}
	}
	var got []uint64
	var seqs []uint64
	if err := s.ReadStream(ctx, stream, 0, func(r *runtime.EventRecord) error {
		got = append(got, r.Position)
		seqs = append(seqs, r.Sequence)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stored positions %v, Append reported %v", got, want)
	}
	for i, seq := range seqs {
		if seq != uint64(i+1) {
			t.Fatalf("event %d has sequence %d", i, seq)
		}
	}
}

// TestNewCallerOwned runs two stores on two caller-owned pools of one file,
// opened without _txlock=immediate: appends from both at one version must
// yield exactly one winner and ConcurrencyErrors, never SQLITE_BUSY from a
// deferred transaction upgrading its lock; Close leaves the pools open.
func TestNewCallerOwned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "owned.db")
	ctx := testContext(t)
	var stores []*sqlite.Store
	var dbs []*sql.DB
	for range 2 {
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(4)
		t.Cleanup(func() { db.Close() })
		s, err := sqlite.New(ctx, db, sqlite.Config{})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		stores = append(stores, s)
		dbs = append(dbs, db)
	}
	const rounds, writers = 20, 8
	stream := runtime.StreamID{Type: "test.v1.Thing", ID: "contended"}
	for round := range rounds {
		var wg sync.WaitGroup
		errs := make([]error, writers)
		for w := range writers {
			wg.Go(func() {
				_, errs[w] = stores[w%2].Append(ctx, runtime.AppendRequest{
					Stream: stream, ExpectedVersion: uint64(round),
					Events: testEvents(fmt.Sprintf("r%d-w%d", round, w), 1),
				})
			})
		}
		wg.Wait()
		wins := 0
		for w, err := range errs {
			var ce *runtime.ConcurrencyError
			switch {
			case err == nil:
				wins++
			case errors.As(err, &ce):
				if ce.Actual != uint64(round+1) {
					t.Errorf("round %d writer %d: %v: Actual should be the winner's version %d", round, w, err, round+1)
				}
			default:
				t.Fatalf("round %d writer %d: %v, want success or a ConcurrencyError", round, w, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d writers won, want 1", round, wins)
		}
	}
	for i, s := range stores {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := dbs[i].Ping(); err != nil {
			t.Errorf("the caller's db after Close: %v, want it open", err)
		}
	}
	if _, err := sqlite.New(ctx, nil, sqlite.Config{}); err == nil {
		t.Error("New(nil db) returned no error")
	}
}

// TestMigrations opens a file twice (the second Open finds the schema in
// place) and refuses a database migrated by a newer build.
func TestMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "migrate.db")
	ctx := testContext(t)
	s := openStore(t, path, sqlite.Config{})
	stream := runtime.StreamID{Type: "test.v1.Thing", ID: "1"}
	mustAppend(t, s, runtime.AppendRequest{Stream: stream, Events: testEvents("e", 1)})
	s2 := openStore(t, path, sqlite.Config{})
	if got := ids(t, s2, stream); len(got) != 1 {
		t.Fatalf("second Open sees %d events, want 1", len(got))
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var versions int
	if err := db.QueryRow(`SELECT count(*) FROM eda_migrations`).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if want := 2; versions != want {
		t.Errorf("eda_migrations holds %d rows after two Opens, want %d (one per migration)", versions, want)
	}
	if _, err := db.Exec(`INSERT INTO eda_migrations (version, applied_at) VALUES (999, 0)`); err != nil {
		t.Fatal(err)
	}
	if s3, err := sqlite.Open(ctx, path, sqlite.Config{}); err == nil {
		s3.Close()
		t.Error("Open of a database at schema version 999 succeeded")
	} else if !strings.Contains(err.Error(), "upgrade") {
		t.Errorf("Open of a newer schema: %v, want advice to upgrade", err)
	}
}
