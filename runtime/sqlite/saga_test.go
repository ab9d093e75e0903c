package sqlite_test

import (
	"database/sql"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/sagatest"
	"github.com/protoc-gen-eda/eda/runtime/sqlite"
)

// TestSagasFile runs the saga behaviour suite on a database file; the
// restart tests reopen the file, as a restarted process does.
func TestSagasFile(t *testing.T) {
	sagatest.Run(t, sagatest.Backend{
		Open: func(t *testing.T) runtime.EventStore {
			path := filepath.Join(t.TempDir(), "sagas.db")
			s := openStore(t, path, sqlite.Config{})
			paths.Store(s, path)
			return s
		},
		Share: func(t *testing.T, s runtime.EventStore) runtime.EventStore {
			path, ok := paths.Load(s)
			if !ok {
				t.Fatal("Share: the store was not opened by Open")
			}
			return openStore(t, path.(string), sqlite.Config{})
		},
	})
}

// TestSagasMemory runs the saga behaviour suite on ":memory:".
func TestSagasMemory(t *testing.T) {
	sagatest.Run(t, sagatest.Backend{
		Open: func(t *testing.T) runtime.EventStore { return openStore(t, ":memory:", sqlite.Config{}) },
	})
}

// schemaV1 is the schema of version 1 as a build before delayed outbox
// messages created it, frozen here to test the upgrade.
var schemaV1 = []string{
	`CREATE TABLE eda_events (position INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
		stream_type TEXT NOT NULL, stream_id TEXT NOT NULL, sequence INTEGER NOT NULL, type TEXT NOT NULL,
		schema_version INTEGER NOT NULL, content_type TEXT NOT NULL, data BLOB, metadata BLOB,
		recorded_at INTEGER NOT NULL, UNIQUE (stream_type, stream_id, sequence))`,
	`CREATE TABLE eda_snapshots (stream_type TEXT NOT NULL, stream_id TEXT NOT NULL, version INTEGER NOT NULL,
		schema_version INTEGER NOT NULL, content_type TEXT NOT NULL, data BLOB, PRIMARY KEY (stream_type, stream_id))`,
	`CREATE TABLE eda_outbox (position INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, uuid TEXT NOT NULL,
		metadata BLOB, payload BLOB)`,
	`CREATE TABLE eda_outbox_lease (name TEXT NOT NULL PRIMARY KEY, owner TEXT NOT NULL, expires_at INTEGER NOT NULL)`,
	`CREATE TABLE eda_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`,
	`INSERT INTO eda_migrations VALUES (1, 0)`,
	`INSERT INTO eda_outbox (topic, uuid, payload) VALUES ('t', 'waiting', x'01')`,
}

// TestMigrateToDelayedOutbox opens a database of schema version 1 with a
// message waiting in its outbox: Open adds deliver_at (version 2), the
// waiting message is relayed as one to deliver at once, and delayed
// messages work. (It lives here, with the saga tests, because sagas are
// what needs delayed messages.)
func TestMigrateToDelayedOutbox(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range schemaV1 {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	db.Close()

	s := openStore(t, path, sqlite.Config{})
	ctx := testContext(t)
	at := time.Now().Add(time.Hour)
	if _, err := s.Append(ctx, runtime.AppendRequest{Stream: runtime.StreamID{Type: "t", ID: "1"}, Events: testEvents("e", 1),
		Outbox: []runtime.OutboxMessage{{Topic: "t", UUID: "delayed", DeliverAt: at}, {Topic: "t", UUID: "now"}}}); err != nil {
		t.Fatalf("Append after the upgrade: %v", err)
	}
	var got []string
	if _, err := s.RelayOutbox(ctx, 10, func(msgs []runtime.OutboxMessage) error {
		for _, m := range msgs {
			if !m.DeliverAt.IsZero() {
				t.Errorf("message %s relayed with DeliverAt %v, want zero", m.UUID, m.DeliverAt)
			}
			got = append(got, m.UUID)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"waiting", "now"}) {
		t.Errorf("relayed %v, want the message from before the upgrade, then the one due now", got)
	}
	db, err = sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var version, delayed int
	if err := db.QueryRow(`SELECT max(version) FROM eda_migrations`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT count(*) FROM eda_outbox WHERE deliver_at IS NOT NULL`).Scan(&delayed); err != nil {
		t.Fatal(err)
	}
	if version != 2 || delayed != 1 {
		t.Errorf("after the upgrade: schema version %d, %d delayed messages waiting; want 2 and 1", version, delayed)
	}
}
