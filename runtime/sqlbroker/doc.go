// Package sqlbroker is PostgreSQL as a message broker for the runtime, on
// Watermill's SQL Pub/Sub (watermill-sql v3) over database/sql with pgx's
// driver. Importing it registers the postgres:// (and postgresql://) broker
// scheme:
//
//	import _ "github.com/protoc-gen-eda/eda/runtime/sqlbroker"
//
//	b, err := runtime.OpenBroker(ctx, "postgres://app@db/shop?schema=bus", runtime.BrokerOptions{})
//	defer b.Close()
//	pub, _ := runtime.NewPublisher(b.Publisher, runtime.PublisherConfig{Source: "orders"})
//	router, _ := runtime.NewRouter(runtime.RouterConfig{NewSubscriber: b.NewSubscriber, Publisher: b.Publisher})
//
// or, on a *sql.DB the application owns:
//
//	b, err := sqlbroker.New(db, sqlbroker.Config{Schema: "bus"})
//
// The broker's publisher, NewSubscriber and subscribers are safe for
// concurrent use. Broker.Close closes them all.
//
// # URL
//
// postgres://user:password@host:port/database?params. The parameters this
// package reads (all optional) are:
//
//   - schema: the PostgreSQL schema of the topic tables (Config.Schema);
//     default public. It is created if missing, as the event store's
//     schema parameter is (runtime/postgres).
//   - poll_interval: how long a subscription waits before it looks again
//     after finding no message (Config.PollInterval), a Go duration;
//     default 100ms.
//   - resend_interval: how long before a nacked message is delivered again
//     (Config.ResendInterval); default 1s.
//   - ack_deadline: how long a handler has to ack a message before it is
//     delivered again (Config.AckDeadline); default 30s.
//   - batch_size: how many messages a subscription reads per query
//     (Config.BatchSize); default 100.
//   - initialize_schema: true (default) creates the schema and each topic's
//     tables on first use; false expects them to exist, for a database
//     user without CREATE rights (Config.SkipInitializeSchema).
//
// Every other parameter goes to the driver as pgx understands it (sslmode,
// connect_timeout, application_name, ...). A parameter of this package with
// an invalid value is an error; the password never appears in errors.
//
// # Tables
//
// Each topic has two tables in the schema: watermill_<topic> holds the
// messages (payload bytea, metadata json) and watermill_offsets_<topic>
// holds one row per consumer group with the position it has acked.
// Message ids are at most 36 characters (the uuid column is varchar(36));
// the runtime's are UUIDs. Topic
// names may hold letters, digits and - $ : . _ (Watermill's rule; the
// generated topic names qualify). A name longer than PostgreSQL's 63 bytes
// is shortened and suffixed with a hash of the full topic, so that two long
// topics never share a table.
//
// # Delivery
//
// A consumer group reads every message of a topic in publish order: by the
// id of the transaction that inserted them, then in insertion order (one
// Publish call inserts its messages in one statement). A message becomes
// visible once every transaction older than its own has ended, so a long
// transaction anywhere on the server delays delivery. The subscribers of a group take turns: a subscription locks the
// group's offset row while it hands a batch to its handler, so a group
// processes one batch at a time across all its subscribers and processes.
// Scale by topic and group, not by adding subscribers to one group.
// Delivery is at least once: a crash before a batch's ack is committed
// delivers the batch again, so consumers deduplicate by message id (the
// envelope's ce_id). Messages are kept after they are consumed; delete old
// rows of watermill_<topic> yourself when no group needs them.
//
// The read transaction stays open while the handler runs, so a slow
// handler holds back pg_snapshot_xmin; ack_deadline bounds that.
//
// # Connections
//
// Every subscription holds a connection while its handler runs, and a
// handler that publishes needs another. Open leaves database/sql's pool
// unbounded; if you bound it (New, with db.SetMaxOpenConns), allow a
// connection per running subscription plus the publishers', or handlers
// wait on each other.
//
// # The outbox and this broker
//
// The transactional outbox lives in runtime/postgres: a command's events
// and their outbox rows commit in one transaction of the event store, and
// runtime.NewRelay publishes the outbox to a broker. This package can be
// that broker: pass Broker.Publisher as RelayConfig.Publisher and the relay
// moves rows from the store's outbox table to the topic tables, possibly
// in the same database (the table names do not collide). The move is at
// least once: a relay that crashes after publishing and before deleting
// its rows publishes them again, which consumers absorb by deduplicating.
// The event store runs on pgx's pool and this broker on database/sql, so
// the two never share a transaction; the relay is what makes publishing
// atomic with the append.
package sqlbroker
