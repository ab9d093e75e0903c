package postgres

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Defaults for Config fields left zero.
const (
	// DefaultSchema is the schema holding the tables when Config.Schema is
	// empty.
	DefaultSchema = "public"
	// DefaultTablePrefix prefixes the table names when Config.TablePrefix is
	// empty.
	DefaultTablePrefix = "eda_"
)

// maxIdentifierLen is PostgreSQL's NAMEDATALEN-1: longer identifiers are
// silently truncated by the server, which could make two stores share tables
// by accident, so Validate rejects them instead.
const maxIdentifierLen = 63

// longestTableSuffix is the longest name this package appends to
// TablePrefix, counting the unique constraints named after the tables.
const longestTableSuffix = "events_stream_sequence_key"

// Config configures a Store. The zero value is ready to use: tables
// eda_events, eda_snapshots and eda_outbox in schema public.
//
// Pool settings (size, timeouts, exec mode) belong to the pgxpool.Pool:
// pass a configured pool to New, or put them in Open's URL
// (postgres://host/db?pool_max_conns=20).
type Config struct {
	// Schema is the PostgreSQL schema holding the tables; default "public".
	// It is created if missing. Any name is valid (it is quoted), up to 63
	// bytes.
	Schema string

	// TablePrefix prefixes the table names; default "eda_". Two stores in
	// one schema with different prefixes are independent, including their
	// append and relay locks. Up to 37 bytes, so that every derived name
	// stays within PostgreSQL's 63.
	TablePrefix string
}

// Validate reports every invalid field at once, joined with errors.Join.
// The zero Config is valid.
func (c Config) Validate() error {
	var errs []error
	if len(c.Schema) > maxIdentifierLen {
		errs = append(errs, fmt.Errorf("postgres: Schema %q is longer than %d bytes; PostgreSQL would truncate it", c.Schema, maxIdentifierLen))
	}
	if max := maxIdentifierLen - len(longestTableSuffix); len(c.TablePrefix) > max {
		errs = append(errs, fmt.Errorf("postgres: TablePrefix %q is longer than %d bytes; PostgreSQL would truncate the names derived from it", c.TablePrefix, max))
	}
	if strings.ContainsRune(c.Schema, 0) {
		errs = append(errs, errors.New("postgres: Schema must not contain a NUL byte"))
	}
	if strings.ContainsRune(c.TablePrefix, 0) {
		errs = append(errs, errors.New("postgres: TablePrefix must not contain a NUL byte"))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.Schema == "" {
		c.Schema = DefaultSchema
	}
	if c.TablePrefix == "" {
		c.TablePrefix = DefaultTablePrefix
	}
}

// names holds the quoted, schema-qualified names a store uses, computed
// once so that no statement is built per call.
type names struct {
	schema     string // quoted schema
	schemaName string // unquoted, for the catalog
	events     string // quoted, qualified
	snapshots  string
	outbox     string

	// Bare names, for to_regclass and constraint matching.
	eventsIDKey     string
	eventsStreamKey string

	// Advisory lock keys. Advisory locks are per database, so the keys are
	// derived from schema and prefix: stores over different tables never
	// wait for each other.
	appendLock, relayLock, migrateLock int64
}

func newNames(c Config) names {
	qualify := func(table string) string {
		return pgx.Identifier{c.Schema, c.TablePrefix + table}.Sanitize()
	}
	return names{
		schema:          pgx.Identifier{c.Schema}.Sanitize(),
		schemaName:      c.Schema,
		events:          qualify("events"),
		snapshots:       qualify("snapshots"),
		outbox:          qualify("outbox"),
		eventsIDKey:     c.TablePrefix + "events_id_key",
		eventsStreamKey: c.TablePrefix + longestTableSuffix,
		appendLock:      lockKey("append", c),
		relayLock:       lockKey("relay", c),
		migrateLock:     lockKey("migrate", c),
	}
}

// lockKey derives a 64-bit advisory lock key. A collision with another
// application's key only costs contention, never correctness.
func lockKey(purpose string, c Config) int64 {
	h := fnv.New64a()
	// NUL separators keep ("a", "bc") and ("ab", "c") apart; Validate
	// rejects NUL in the names themselves.
	for _, s := range []string{"protoc-gen-eda", purpose, c.Schema, c.TablePrefix} {
		_, _ = h.Write([]byte(s))
		_, _ = h.Write([]byte{0})
	}
	return int64(h.Sum64())
}
