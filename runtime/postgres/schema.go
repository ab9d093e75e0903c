package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ddl returns the statements creating the store's schema and tables, the
// schema first. Every statement
// is idempotent; migrate runs them under an advisory lock so that two
// processes starting at once do not race on the catalog (CREATE ... IF NOT
// EXISTS alone can fail with a unique violation in pg_namespace or pg_type
// when two sessions run it concurrently).
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
		fmt.Sprintf(`CREATE SCHEMA IF NOT EXISTS %s`, n.schema),
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

// migrate creates the tables if they do not exist. When they all exist it
// only reads the catalog, so a role without CREATE rights can use tables an
// administrator created (CREATE ... IF NOT EXISTS checks the privilege
// before it checks existence).
func (n names) migrate(ctx context.Context, pool *pgxpool.Pool) error {
	exists := func(q pgx.Row) (bool, error) {
		var ok bool
		err := q.Scan(&ok)
		return ok, err
	}
	const present = `SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL AND to_regclass($3) IS NOT NULL`
	ok, err := exists(pool.QueryRow(ctx, present, n.events, n.snapshots, n.outbox))
	if err != nil {
		return fmt.Errorf("postgres: check for tables %s, %s, %s: %w", n.events, n.snapshots, n.outbox, err)
	}
	if ok {
		return nil
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, n.migrateLock); err != nil {
			return fmt.Errorf("postgres: take the migration lock: %w", err)
		}
		stmts := n.ddl()
		// CREATE SCHEMA checks the CREATE privilege on the database before
		// IF NOT EXISTS, so skip it when the schema is there: a role that
		// may create tables in an existing schema (public, say) needs no
		// more.
		var schemaExists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`, n.schemaName).Scan(&schemaExists); err != nil {
			return fmt.Errorf("postgres: look up schema %s: %w", n.schema, err)
		}
		if schemaExists {
			stmts = stmts[1:]
		}
		for _, stmt := range stmts {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("postgres: create tables (%.40q...): %w; the role needs CREATE on the database or schema, or an administrator creates the tables", stmt, err)
			}
		}
		return nil
	})
}
