package postgres_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/postgres"
	"github.com/protoc-gen-eda/eda/runtime/sagatest"
)

// TestSagas runs the saga behaviour suite, each test in a fresh schema;
// the restart tests open a second pool on the same schema, as a restarted
// process does.
func TestSagas(t *testing.T) {
	f := newFixture(t)
	sagatest.Run(t, sagatest.Backend{
		Open: func(t *testing.T) runtime.EventStore { return f.open(t) },
		Share: func(t *testing.T, s runtime.EventStore) runtime.EventStore {
			return f.share(t, s)
		},
	})
}

// schemaV1 creates the tables of schema version 1 as a build before the
// migrations table created them, frozen here to test the upgrade. %s is
// the quoted schema.
var schemaV1 = []string{
	`CREATE SCHEMA %s`,
	`CREATE TABLE %s.eda_events (position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id text NOT NULL,
	stream_type text NOT NULL, stream_id text NOT NULL, sequence bigint NOT NULL CHECK (sequence > 0), type text NOT NULL,
	schema_version bigint NOT NULL CHECK (schema_version > 0), content_type text NOT NULL, data bytea, metadata bytea,
	recorded_at timestamptz NOT NULL, CONSTRAINT eda_events_id_key UNIQUE (id),
	CONSTRAINT eda_events_stream_sequence_key UNIQUE (stream_type, stream_id, sequence))`,
	`CREATE TABLE %s.eda_snapshots (stream_type text NOT NULL, stream_id text NOT NULL, version bigint NOT NULL,
	schema_version bigint NOT NULL, content_type text NOT NULL, data bytea, saved_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (stream_type, stream_id))`,
	`CREATE TABLE %s.eda_outbox (position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, topic text NOT NULL,
	uuid text NOT NULL, metadata bytea, payload bytea, created_at timestamptz NOT NULL DEFAULT now())`,
	`INSERT INTO %s.eda_outbox (topic, uuid, payload) VALUES ('t', 'waiting', '\x01')`,
}

// TestMigrateToDelayedOutbox opens tables of schema version 1, made before
// there was a migrations table, with a message waiting in the outbox: Open
// records version 1, migrates to version 2 (deliver_at), and the waiting
// message is relayed as one to deliver at once. A second Open finds the
// schema current. (It lives here, with the saga tests, because sagas are
// what needs delayed messages.)
func TestMigrateToDelayedOutbox(t *testing.T) {
	f := newFixture(t)
	ctx := testContext(t)
	schema := freshSchema(t, f.url)
	admin := f.pool(t, nil)
	for _, stmt := range schemaV1 {
		stmt = strings.ReplaceAll(stmt, "%s", pgx.Identifier{schema}.Sanitize())
		if _, err := admin.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	s := f.openConfig(t, postgres.Config{Schema: schema})
	at := time.Now().Add(time.Hour)
	if _, err := s.Append(ctx, runtime.AppendRequest{Stream: runtime.StreamID{Type: "t", ID: "1"}, Events: events(t, 1),
		Outbox: []runtime.OutboxMessage{{Topic: "t", UUID: "delayed", DeliverAt: at}, {Topic: "t", UUID: "now"}}}); err != nil {
		t.Fatalf("Append after the upgrade: %v", err)
	}
	var got []string
	if _, err := s.RelayOutbox(ctx, 10, func(msgs []runtime.OutboxMessage) error {
		for _, m := range msgs {
			got = append(got, m.UUID)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"waiting", "now"}) {
		t.Errorf("relayed %v, want the message from before the upgrade, then the one due now", got)
	}
	var versions []int64
	rows, err := admin.Query(ctx, `SELECT version FROM `+pgx.Identifier{schema, "eda_migrations"}.Sanitize()+` ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	if versions, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(versions, []int64{1, 2}) {
		t.Errorf("migrations recorded %v, want [1 2]", versions)
	}
	f.openConfig(t, postgres.Config{Schema: schema}) // the fast path: nothing to migrate
	var delayed int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{schema, "eda_outbox"}.Sanitize()+` WHERE deliver_at IS NOT NULL`).Scan(&delayed); err != nil {
		t.Fatal(err)
	}
	if delayed != 1 {
		t.Errorf("%d delayed messages waiting after the upgrade, want 1", delayed)
	}

	// A database migrated by a newer build is refused.
	if _, err := admin.Exec(ctx, `INSERT INTO `+pgx.Identifier{schema, "eda_migrations"}.Sanitize()+` (version) VALUES (999)`); err != nil {
		t.Fatal(err)
	}
	if s3, err := postgres.Open(ctx, f.url, postgres.Config{Schema: schema}); err == nil {
		s3.Close()
		t.Error("Open of a database at schema version 999 succeeded")
	} else if !strings.Contains(err.Error(), "upgrade") {
		t.Errorf("Open of a newer schema: %v, want advice to upgrade", err)
	}
}
