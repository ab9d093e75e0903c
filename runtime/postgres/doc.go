// Package postgres is the PostgreSQL backend of runtime.EventStore, on
// pgx/v5.
//
//	store, err := postgres.Open(ctx, "postgres://app@db/shop", postgres.Config{})
//	defer store.Close()
//
// or, sharing a pool the application owns:
//
//	store, err := postgres.New(ctx, pool, postgres.Config{Schema: "orders"})
//
// # Tables
//
// New creates its tables if they do not exist, and migrates older ones
// (names prefixed by Config.TablePrefix, in Config.Schema), under an
// advisory lock so that processes starting together do not race; the
// migrations table records the versions applied:
//
//   - events: position (bigint identity, primary key), id (unique),
//     stream_type, stream_id, sequence (unique per stream), type,
//     schema_version, content_type, data and metadata (bytea, returned byte
//     for byte), recorded_at.
//   - snapshots: one row per stream.
//   - outbox: position (identity), topic, uuid, metadata, payload,
//     created_at, deliver_at (null for at once; a time for a delayed
//     message such as a saga timeout). The relay deletes rows once
//     published.
//
// Projections (Store.Projections) add their checkpoint and lease tables
// on first use.
//
// # Appends and the global order
//
// A bigserial alone does not order the global log: a transaction that took
// position 10 can commit after one that took 11, and a reader polling
// ReadAll from 10 would skip 11 forever. So every append takes a
// transaction-scoped advisory lock before it allocates positions and holds
// it until it has committed: positions become visible in commit order, and
// ReadAll from the last position seen never misses an event, also with
// several processes appending.
//
// The cost is that appends to one store's tables are serialized, streams
// related or not: each holds the lock for its insert and its commit,
// including the WAL flush, so concurrent appends no longer share flushes
// (group commit). A single writer pays almost nothing; many writers get
// about one append per commit latency in total. On a small test server
// with fsync on, 16 writers appending one event each reached a fifth to a
// third of the throughput of unserialized INSERTs
// (BenchmarkAppendConcurrent; figures in docs/benchmarks.md). Put a command's events in one append, and
// keep the database's commit latency low: that is the throughput. Reads,
// snapshots and the outbox relay do not take the lock.
//
// Each append is one round trip: the lock and the insert statement go out
// as one pipelined batch, which PostgreSQL runs as one implicit
// transaction. The insert checks the stream's version (its highest
// sequence, read through the unique (stream_type, stream_id, sequence)
// index, under the lock) and writes the events and outbox rows in one
// statement: scalars for one event or message, unnest over arrays for
// more.
//
// # Outbox
//
// RelayOutbox claims the outbox with pg_try_advisory_xact_lock on its own
// key: one relay at a time across processes, and a relay that dies loses
// its claim with its connection. The Store signals OutboxReady after its
// own appends that wrote outbox rows; appends by other processes are not
// signalled (there is no LISTEN/NOTIFY), so a relay also polls.
//
// # Limits
//
// Text fields (stream type and id, event id and type, topics) must be valid
// UTF-8 without NUL bytes, as PostgreSQL's text requires. Versions and
// positions are bigint: at most 2^63-1.
package postgres
