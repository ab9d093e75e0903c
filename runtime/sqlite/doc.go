// Package sqlite is the embedded default event store of protoc-gen-eda: a
// runtime.EventStore on SQLite through modernc.org/sqlite, which is pure Go
// (no cgo), so a new user runs everything with no server and no C
// toolchain.
//
//	store, err := sqlite.Open(ctx, "sqlite:///var/lib/shop/events.db", sqlite.Config{})
//
// Open takes a file path, a "file:" URI, a sqlite:// URL (the form the
// runtime picks stores by) or ":memory:"; New wraps a *sql.DB the caller
// owns. Both create the tables (events, snapshots, outbox with its
// deliver_at column for delayed messages, outbox_lease and migrations, named
// with Config.TablePrefix) if they do not exist, and migrate older ones.
//
// # Concurrency and the global log
//
// A file database runs in WAL mode: readers do not block the writer and the
// writer does not block readers. Writes take SQLite's write lock when their
// transaction begins (BEGIN IMMEDIATE), so concurrent writers queue instead
// of failing with SQLITE_BUSY when a read transaction tries to become a
// write transaction. In one process the writers queue in Go on the Store's
// one writer connection (measured: no slower than a pool of writer
// connections, and it keeps the write statements prepared); writers in
// other processes wait up to Config.BusyTimeout.
//
// Optimistic concurrency is checked inside the write transaction: the
// stream's version is read under the write lock, so it cannot change before
// the events are inserted. Because one append commits at a time and
// allocates its global positions (an AUTOINCREMENT key) while it holds the
// lock, positions become visible in commit order: a reader polling ReadAll
// from the last position it saw never misses an event, with no further
// machinery. The cost is that appends do not run in parallel, which SQLite
// would not allow anyway.
//
// # Durability
//
// Commits use synchronous=NORMAL, SQLite's recommendation for WAL: a commit
// does not wait for an fsync, so it survives a crash of the process but the
// last commits before a power loss or operating system crash can be lost
// (the database stays consistent). Config.FullSync makes every commit wait
// for the disk instead.
//
// # Reads
//
// ReadStream and ReadAll read Config.ReadPageSize events per query, by
// index, and call fn with no connection or transaction held. fn may
// therefore call the store, even on an in-memory database's single
// connection, and a slow consumer does not hold a read snapshot that keeps
// the WAL from being checkpointed. Each page is a consistent snapshot; a
// later page includes events appended since the earlier ones.
//
// # Outbox relay
//
// RelayOutbox claims the outbox with a lease row (owner id and expiry), so
// that two relays, in one process or several, never publish at the same
// time, without holding SQLite's write lock while the broker is called:
// appends go on during publish. The lease lasts Config.OutboxLease (30s by
// default) and is renewed every third of that while publish runs. If a
// relay's process dies holding it, the other relays wait until it expires
// and then publish the dead relay's batch again (at least once, in order).
// Messages are deleted once publish returns nil, even if the caller's
// context ended meanwhile; on an error or a panic they stay and the lease
// is released at once. A store closed while its relay is in publish cannot
// release the lease: other relays take over when it expires.
//
// OutboxReady signals appends through the same Store only; appends by other
// processes are found by polling.
//
// # In-memory databases
//
// ":memory:" (or "sqlite://:memory:") is a private database that lives as
// long as the Store. Every connection to it would open a database of its
// own, so the Store keeps exactly one connection, which reads and writes
// take in turn.
package sqlite
