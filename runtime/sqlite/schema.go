package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// migrations creates and evolves the store's tables; migrations[i] brings
// the schema to version i+1. Entries are only ever appended. A migration
// runs in the transaction that records its version, so a build that dies
// midway leaves the schema as it was; the statements of version 1 are also
// idempotent on their own. {p} stands for Config.TablePrefix.
var migrations = [][]string{
	{
		// position is the global log. AUTOINCREMENT, not a plain rowid
		// alias, so that a position is never handed out twice even if the
		// newest events are deleted by hand: a reader checkpointed at the
		// old tail must not skip the events that reuse it. Positions are in
		// commit order because one writer appends at a time (BEGIN
		// IMMEDIATE) and allocates them while it holds the write lock.
		`CREATE TABLE IF NOT EXISTS {p}events (
			position       INTEGER PRIMARY KEY AUTOINCREMENT,
			id             TEXT    NOT NULL UNIQUE,
			stream_type    TEXT    NOT NULL,
			stream_id      TEXT    NOT NULL,
			sequence       INTEGER NOT NULL,
			type           TEXT    NOT NULL,
			schema_version INTEGER NOT NULL,
			content_type   TEXT    NOT NULL,
			data           BLOB,
			metadata       BLOB,
			recorded_at    INTEGER NOT NULL, -- Unix nanoseconds, UTC
			UNIQUE (stream_type, stream_id, sequence)
		)`,
		`CREATE TABLE IF NOT EXISTS {p}snapshots (
			stream_type    TEXT    NOT NULL,
			stream_id      TEXT    NOT NULL,
			version        INTEGER NOT NULL,
			schema_version INTEGER NOT NULL,
			content_type   TEXT    NOT NULL,
			data           BLOB,
			PRIMARY KEY (stream_type, stream_id)
		)`,
		// AUTOINCREMENT again: relayed rows are deleted, and a plain rowid
		// would reuse their positions.
		`CREATE TABLE IF NOT EXISTS {p}outbox (
			position INTEGER PRIMARY KEY AUTOINCREMENT,
			topic    TEXT NOT NULL,
			uuid     TEXT NOT NULL,
			metadata BLOB,
			payload  BLOB
		)`,
		// One row, named "outbox", while a relay holds the outbox.
		`CREATE TABLE IF NOT EXISTS {p}outbox_lease (
			name       TEXT    NOT NULL PRIMARY KEY,
			owner      TEXT    NOT NULL,
			expires_at INTEGER NOT NULL -- Unix nanoseconds
		)`,
	},
	{
		// Version 2: delayed outbox messages (saga timeouts). deliver_at is
		// Unix nanoseconds, NULL for a message to deliver at once. The two
		// partial indexes let the relay find the due messages without
		// stepping over those that are not due: the first lists the
		// messages to deliver at once in position order, the second the
		// delayed ones by time. Each row is in exactly one of them.
		`ALTER TABLE {p}outbox ADD COLUMN deliver_at INTEGER`,
		`CREATE INDEX IF NOT EXISTS {p}outbox_immediate ON {p}outbox (position) WHERE deliver_at IS NULL`,
		`CREATE INDEX IF NOT EXISTS {p}outbox_delayed ON {p}outbox (deliver_at) WHERE deliver_at IS NOT NULL`,
	},
}

// schemaVersion is the version this build writes.
var schemaVersion = len(migrations)

// withPrefix replaces {p} in query with the table prefix.
func withPrefix(query, prefix string) string {
	return strings.ReplaceAll(query, "{p}", prefix)
}

// migrate brings the schema up to schemaVersion. It runs in one BEGIN
// IMMEDIATE transaction on a connection of its own, whatever the DSN's
// transaction mode, so two processes opening a new database at once apply
// each migration once.
func migrate(ctx context.Context, db *sql.DB, prefix string) (err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: get a connection: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("sqlite: migrate: begin: %w", err)
	}
	defer func() {
		if err != nil {
			// Background: a cancelled ctx must not leave the connection
			// inside the transaction when it goes back to the pool.
			_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	table := prefix + "migrations"
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+table+` (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("sqlite: migrate: create %s: %w", table, err)
	}
	var current int
	if err := conn.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM `+table).Scan(&current); err != nil {
		return fmt.Errorf("sqlite: migrate: read %s: %w", table, err)
	}
	if current > schemaVersion {
		return fmt.Errorf("sqlite: migrate: the database's schema is at version %d, this build knows versions up to %d: upgrade this program", current, schemaVersion)
	}
	for v := current; v < schemaVersion; v++ {
		for _, stmt := range migrations[v] {
			if _, err := conn.ExecContext(ctx, withPrefix(stmt, prefix)); err != nil {
				return fmt.Errorf("sqlite: migrate to version %d: %w", v+1, err)
			}
		}
		if _, err := conn.ExecContext(ctx, `INSERT INTO `+table+` (version, applied_at) VALUES (?, ?)`, v+1, time.Now().UnixNano()); err != nil {
			return fmt.Errorf("sqlite: migrate to version %d: record it: %w", v+1, err)
		}
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("sqlite: migrate: commit: %w", err)
	}
	return nil
}

// Statement texts, prefixed and prepared once per Store.
const (
	// probeWriteSQL takes the write lock when run first in a transaction
	// that BEGIN opened deferred (a caller-owned *sql.DB without
	// _txlock=immediate): SQLite acquires the write lock when a writing
	// statement starts, even one that changes no row, and waits for it
	// under busy_timeout. Reading first and writing later would instead fail
	// at once with SQLITE_BUSY if another connection committed in between.
	probeWriteSQL = `DELETE FROM {p}outbox_lease WHERE 0`

	streamVersionSQL = `SELECT sequence FROM {p}events
		WHERE stream_type = ? AND stream_id = ? ORDER BY sequence DESC LIMIT 1`
	eventByIDSQL = `SELECT stream_type, stream_id, sequence FROM {p}events WHERE id = ?`
	// storedRangeSQL reads back the events an idempotent re-append claims
	// to repeat.
	storedRangeSQL = `SELECT id, position FROM {p}events
		WHERE stream_type = ? AND stream_id = ? AND sequence >= ? ORDER BY sequence LIMIT ?`

	readStreamSQL = `SELECT position, id, sequence, type, schema_version, content_type, data, metadata, recorded_at
		FROM {p}events WHERE stream_type = ? AND stream_id = ? AND sequence > ? ORDER BY sequence LIMIT ?`
	readAllSQL = `SELECT position, id, stream_type, stream_id, sequence, type, schema_version, content_type, data, metadata, recorded_at
		FROM {p}events WHERE position > ? ORDER BY position LIMIT ?`

	saveSnapshotSQL = `INSERT INTO {p}snapshots (stream_type, stream_id, version, schema_version, content_type, data)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (stream_type, stream_id) DO UPDATE SET
			version = excluded.version, schema_version = excluded.schema_version,
			content_type = excluded.content_type, data = excluded.data
		WHERE excluded.version >= {p}snapshots.version`
	loadSnapshotSQL = `SELECT version, schema_version, content_type, data FROM {p}snapshots
		WHERE stream_type = ? AND stream_id = ?`

	// outboxStateSQL says whether due messages wait (the parameter is the
	// time now) and until when the lease is held (0: nobody holds it).
	// Messages that are not due do not count: a relay polling an outbox
	// of pending timeouts must not take the write lock for nothing.
	outboxStateSQL = `SELECT EXISTS (SELECT 1 FROM {p}outbox WHERE deliver_at IS NULL)
			OR EXISTS (SELECT 1 FROM {p}outbox WHERE deliver_at IS NOT NULL AND deliver_at <= ?1),
		coalesce((SELECT expires_at FROM {p}outbox_lease WHERE name = 'outbox'), 0)`
	// outboxReadSQL reads up to ?2 due messages at time ?1 in position
	// order: the first ?2 of those to deliver at once merged with the
	// first ?2 due delayed ones, each read through its partial index.
	outboxReadSQL = `SELECT position, topic, uuid, metadata, payload, deliver_at FROM (
			SELECT * FROM (SELECT position, topic, uuid, metadata, payload, deliver_at FROM {p}outbox
				WHERE deliver_at IS NULL ORDER BY position LIMIT ?2)
			UNION ALL
			SELECT * FROM (SELECT position, topic, uuid, metadata, payload, deliver_at FROM {p}outbox
				WHERE deliver_at IS NOT NULL AND deliver_at <= ?1 ORDER BY position LIMIT ?2)
		) ORDER BY position LIMIT ?2`
	// outboxDeleteSQL deletes the messages to deliver at once of a
	// published batch: those between its first and last position. Every
	// such message in the range is in the batch, which is the first due
	// messages in position order (messages written since have higher
	// positions); delayed messages in the range may not be, and are left.
	outboxDeleteSQL = `DELETE FROM {p}outbox WHERE position BETWEEN ? AND ? AND deliver_at IS NULL`
	// outboxDeleteOneSQL deletes one delayed message of a published batch.
	outboxDeleteOneSQL = `DELETE FROM {p}outbox WHERE position = ?`
	// leaseClaimSQL takes the lease if nobody holds it or the holder's has
	// expired; it changes no row if another relay holds it.
	leaseClaimSQL = `INSERT INTO {p}outbox_lease (name, owner, expires_at) VALUES ('outbox', ?, ?)
		ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
		WHERE {p}outbox_lease.expires_at <= ?`
	leaseRenewSQL   = `UPDATE {p}outbox_lease SET expires_at = ? WHERE name = 'outbox' AND owner = ?`
	leaseReleaseSQL = `DELETE FROM {p}outbox_lease WHERE name = 'outbox' AND owner = ?`
)

// Column lists of the multi-row inserts.
const (
	insertEventsHead = `INSERT INTO {p}events (id, stream_type, stream_id, sequence, type, schema_version, content_type, data, metadata, recorded_at) VALUES `
	insertEventsRow  = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	insertEventsCols = 10
	insertOutboxHead = `INSERT INTO {p}outbox (topic, uuid, metadata, payload, deliver_at) VALUES `
	insertOutboxRow  = `(?, ?, ?, ?, ?)`
	insertOutboxCols = 5
)

// multiRowSQL is head followed by rows copies of row.
func multiRowSQL(head, row string, rows int) string {
	var b strings.Builder
	b.Grow(len(head) + rows*(len(row)+2))
	b.WriteString(head)
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	return b.String()
}
