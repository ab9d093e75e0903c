package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ddl returns the statements of schema version 1: the tables. Every
// statement is idempotent.
//
// Column choices:
//   - position is an identity column: positions come from a sequence, which
//     never rolls back, so failed appends leave gaps (allowed).
//   - schema_version is bigint because it holds a uint32.
//   - metadata is bytea, not jsonb: jsonb reorders keys and drops
//     whitespace, and the store returns exactly the bytes it was given.
//     bytea is also the cheapest to write (json would validate the text on
//     every insert). Query it with convert_from(metadata, 'UTF8')::jsonb.
//   - data and metadata are nullable so that nil and empty slices come back
//     as they went in.
func (n names) ddl() []string {
	return []string{
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	position       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id             text NOT NULL,
	stream_type    text NOT NULL,
	stream_id      text NOT NULL,
	sequence       bigint NOT NULL CHECK (sequence > 0),
	type           text NOT NULL,
	schema_version bigint NOT NULL CHECK (schema_version > 0),
	content_type   text NOT NULL,
	data           bytea,
	metadata       bytea,
	recorded_at    timestamptz NOT NULL,
	CONSTRAINT %s UNIQUE (id),
	CONSTRAINT %s UNIQUE (stream_type, stream_id, sequence)
)`, n.events, pgx.Identifier{n.eventsIDKey}.Sanitize(), pgx.Identifier{n.eventsStreamKey}.Sanitize()),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	stream_type    text NOT NULL,
	stream_id      text NOT NULL,
	version        bigint NOT NULL,
	schema_version bigint NOT NULL,
	content_type   text NOT NULL,
	data           bytea,
	saved_at       timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (stream_type, stream_id)
)`, n.snapshots),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	position   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	topic      text NOT NULL,
	uuid       text NOT NULL,
	metadata   bytea,
	payload    bytea,
	created_at timestamptz NOT NULL DEFAULT now()
)`, n.outbox),
	}
}

// migrations creates and evolves the store's tables: migrations()[i]
// brings the schema to version i+1. Entries are only ever appended. Each
// runs in the transaction that records its version in the migrations
// table, so a migration is applied once and wholly or not at all.
//
// A database created before the migrations table existed holds the tables
// of version 1: it is at version 0 to migrate, whose idempotent statements
// find the tables there, and its migration to the later versions needs a
// role that may alter them, once.
func (n names) migrations() [][]string {
	return [][]string{
		n.ddl(),
		// Version 2: delayed outbox messages (saga timeouts). deliver_at is
		// NULL for a message to deliver at once. The partial indexes let
		// the relay find the due messages without stepping over those that
		// are not due yet: the first lists the messages to deliver at once
		// in position order, the second the delayed ones by time. Each row
		// is in exactly one of them.
		{
			fmt.Sprintf(`ALTER TABLE %s ADD COLUMN IF NOT EXISTS deliver_at timestamptz`, n.outbox),
			fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %s ON %s (position) WHERE deliver_at IS NULL`,
				pgx.Identifier{n.prefix() + "outbox_immediate"}.Sanitize(), n.outbox),
			fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %s ON %s (deliver_at) WHERE deliver_at IS NOT NULL`,
				pgx.Identifier{n.prefix() + "outbox_delayed"}.Sanitize(), n.outbox),
		},
	}
}

// eventsIDKeySuffix is what newNames appends to the table prefix to name
// the events' unique id constraint.
const eventsIDKeySuffix = "events_id_key"

// prefix returns the table prefix, for the names migrations give indexes
// (index names are per schema, so two prefixes in one schema need their
// own).
func (n names) prefix() string { return strings.TrimSuffix(n.eventsIDKey, eventsIDKeySuffix) }

// migrationsTable is the quoted, qualified name of the table recording the
// applied schema versions.
func (n names) migrationsTable() string {
	return pgx.Identifier{n.schemaName, n.prefix() + "migrations"}.Sanitize()
}

// migrate brings the schema up to the latest version. When it is there
// already it only reads, so a role without CREATE rights can use tables an
// administrator created (CREATE ... IF NOT EXISTS checks the privilege
// before it checks existence). Otherwise it migrates in one transaction
// under an advisory lock, so that two processes starting at once do not
// race on the catalog (CREATE ... IF NOT EXISTS alone can fail with a
// unique violation in pg_namespace or pg_type when two sessions run it
// concurrently).
func (n names) migrate(ctx context.Context, pool *pgxpool.Pool) error {
	migrations := n.migrations()
	table := n.migrationsTable()
	var present bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&present); err != nil {
		return fmt.Errorf("postgres: look for table %s: %w", table, err)
	}
	if present {
		current, err := schemaVersion(ctx, pool, table)
		if err != nil {
			return err
		}
		if err := checkVersion(current, len(migrations)); err != nil || current == len(migrations) {
			return err
		}
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, n.migrateLock); err != nil {
			return fmt.Errorf("postgres: take the migration lock: %w", err)
		}
		// CREATE SCHEMA checks the CREATE privilege on the database before
		// IF NOT EXISTS, so skip it when the schema is there: a role that
		// may create tables in an existing schema (public, say) needs no
		// more.
		var schemaExists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`, n.schemaName).Scan(&schemaExists); err != nil {
			return fmt.Errorf("postgres: look up schema %s: %w", n.schema, err)
		}
		setup := []string{fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	version    bigint PRIMARY KEY,
	applied_at timestamptz NOT NULL DEFAULT now()
)`, table)}
		if !schemaExists {
			setup = append([]string{`CREATE SCHEMA IF NOT EXISTS ` + n.schema}, setup...)
		}
		for _, stmt := range setup {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("postgres: create tables (%.40q...): %w; %s", stmt, err, privilegeHint)
			}
		}
		// Read again under the lock: another process may have migrated.
		current, err := schemaVersion(ctx, tx, table)
		if err != nil {
			return err
		}
		if err := checkVersion(current, len(migrations)); err != nil {
			return err
		}
		for v := current; v < len(migrations); v++ {
			for _, stmt := range migrations[v] {
				if _, err := tx.Exec(ctx, stmt); err != nil {
					return fmt.Errorf("postgres: migrate to schema version %d (%.40q...): %w; %s", v+1, stmt, err, privilegeHint)
				}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+table+` (version) VALUES ($1)`, v+1); err != nil {
				return fmt.Errorf("postgres: migrate to schema version %d: record it: %w", v+1, err)
			}
		}
		return nil
	})
}

// privilegeHint ends the error of a failed migration.
const privilegeHint = "the role needs CREATE on the database or schema and to own the tables, or an administrator opens the store once to migrate it"

// querier is what schemaVersion needs of a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// schemaVersion reads the latest applied schema version from table.
func schemaVersion(ctx context.Context, q querier, table string) (int, error) {
	var v int
	if err := q.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+table).Scan(&v); err != nil {
		return 0, fmt.Errorf("postgres: read the schema version from %s: %w", table, err)
	}
	return v, nil
}

// checkVersion refuses a database migrated by a newer build: this one
// would not know what its tables hold.
func checkVersion(current, latest int) error {
	if current > latest {
		return fmt.Errorf("postgres: the database's schema is at version %d, this build knows versions up to %d: upgrade this program", current, latest)
	}
	return nil
}
