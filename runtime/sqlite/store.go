package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"

	// The pure-Go driver, registered as "sqlite".
	_ "modernc.org/sqlite"

	"github.com/protoc-gen-eda/eda/runtime"
)

// driverName is the name modernc.org/sqlite registers with database/sql.
const driverName = "sqlite"

// insertChunk is the most rows one INSERT statement carries. Multi-row
// inserts cost a fraction of one statement per row; past a few dozen rows
// the gain flattens while the prepared statements grow, and 32 rows of 10
// columns stay far below SQLite's limit on bound parameters. A batch is
// inserted in chunks of a power of two rows (100 = 32+32+32+4), so that a
// statement for each of 1, 2, 4, ... insertChunk rows, prepared by Open, fits
// every batch.
const (
	insertChunkBits = 5
	insertChunk     = 1 << insertChunkBits
)

// chunkSize returns the rows of the next INSERT for remaining rows: the
// largest power of two up to insertChunk.
func chunkSize(remaining int) (size, bits int) {
	bits = min(insertChunkBits, bitsLen(remaining)-1)
	return 1 << bits, bits
}

// bitsLen is the number of bits n needs.
func bitsLen(n int) int {
	b := 0
	for ; n > 0; n >>= 1 {
		b++
	}
	return b
}

// Store is a runtime.EventStore on SQLite. It also implements
// runtime.OutboxNotifier. Its methods are safe for concurrent use, also by
// several processes on one database file.
type Store struct {
	cfg Config
	// wdb runs writes and rdb reads; they are one pool for in-memory
	// databases and for New.
	wdb, rdb *sql.DB
	// owned is true when Close closes the pools (Open).
	owned bool
	// immediate is true when the write pool's BEGIN takes the write lock
	// (_txlock=immediate); otherwise every write transaction runs
	// probeWriteSQL first.
	immediate bool
	// writeSem lets one write transaction of this process run at a time:
	// the others queue here, in Go, honouring their contexts, instead of
	// meeting on several connections of a caller's pool (New) in SQLite's
	// busy handler, whose back-off sleeps up to 100ms per retry. Writers in
	// other processes still meet busy_timeout.
	writeSem chan struct{}
	stmts    statements
	ready    chan struct{}
	closed   atomic.Bool
	// done is closed by Close, ending waits for writeSem.
	done chan struct{}
}

// statements are the store's prepared statements. database/sql prepares
// each once per connection and reuses it; for the writers there is one
// connection, so every write after the first skips SQLite's parser.
type statements struct {
	probeWrite, streamVersion, eventByID, storedRange *sql.Stmt
	readStream, readAll, saveSnapshot, loadSnapshot   *sql.Stmt
	outboxState, outboxRead, outboxDelete             *sql.Stmt
	leaseClaim, leaseRenew, leaseRelease              *sql.Stmt
	// insertEvents[b] and insertOutbox[b] insert 1<<b rows.
	insertEvents, insertOutbox [insertChunkBits + 1]*sql.Stmt
	// all holds every statement above, for Close.
	all []*sql.Stmt
}

var (
	_ runtime.EventStore     = (*Store)(nil)
	_ runtime.OutboxNotifier = (*Store)(nil)
)

// Open opens, creating it if needed, the database at path and creates the
// store's tables if they do not exist. path is one of:
//
//   - a file path, relative or absolute: "events.db", "/var/lib/app/events.db";
//   - a SQLite "file:" URI, whose query parameters (mode=ro, vfs=...) reach
//     SQLite and the driver: "file:events.db?mode=rwc";
//   - a URL, as the runtime picks stores by URL: "sqlite:///abs/path.db" (three
//     slashes: the path is absolute), "sqlite://relative.db",
//     "sqlite://:memory:"; a query (sqlite:///x.db?_pragma=cache_size(-65536))
//     is passed to the driver as a file: URI's is;
//   - ":memory:", a private in-memory database that lives until Close.
//
// The store sets busy_timeout, journal_mode, synchronous and the
// transaction mode itself (see Config); parameters setting them again are
// not supported.
//
// A file database runs in WAL mode with one connection for writes and up to
// Config.MaxReadConns for reads, which WAL lets run alongside the writer. An
// in-memory database has a single connection, which every method takes in
// turn: every connection would open a database of its own.
func Open(ctx context.Context, path string, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	t, err := parseTarget(path)
	if err != nil {
		return nil, err
	}
	busy := busyTimeoutParam(cfg.BusyTimeout.Milliseconds())
	if t.memory {
		db, err := sql.Open(driverName, t.withParams([]string{busy, "_txlock=immediate"}))
		if err != nil {
			return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
		}
		singleConnection(db)
		return newStore(ctx, db, db, cfg, true, true)
	}
	syncMode := "NORMAL"
	if cfg.FullSync {
		syncMode = "FULL"
	}
	// journal_mode is persistent, but setting it on every connection is
	// what makes a new file WAL before its first write; on a WAL file it
	// is a no-op.
	common := []string{busy, pragmaParam("journal_mode", "WAL"), pragmaParam("synchronous", syncMode)}
	wdb, err := sql.Open(driverName, t.withParams(append(common, "_txlock=immediate")))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	singleConnection(wdb)
	// query_only: a write sent to the readers by mistake fails instead of
	// bypassing the writer's queue.
	rdb, err := sql.Open(driverName, t.withParams(append(common, "_query_only=1")))
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	rdb.SetMaxOpenConns(cfg.MaxReadConns)
	rdb.SetMaxIdleConns(cfg.MaxReadConns)
	// Migrate on the writer first: it creates the file and switches it to
	// WAL before any reader opens it.
	s, err := newStore(ctx, wdb, rdb, cfg, true, true)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return s, nil
}

// singleConnection makes db keep exactly one connection open for good: the
// only one of an in-memory database holds its data, and the one writer
// connection keeps its prepared statements.
func singleConnection(db *sql.DB) {
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
}

// New returns a store on db, creating the store's tables if they do not
// exist. The caller owns db: Close does not close it.
//
// db should be a modernc.org/sqlite (or compatible) database with
// busy_timeout set on its connections and, for a file, journal_mode=WAL;
// New changes no connection setting. Whatever db's transaction mode, every
// write transaction takes the write lock first, so concurrent writers queue.
// An in-memory db must be limited to one connection (SetMaxOpenConns(1)):
// every connection to ":memory:" is a database of its own.
func New(ctx context.Context, db *sql.DB, cfg Config) (*Store, error) {
	if db == nil {
		return nil, errors.New("sqlite: New: db is nil")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return newStore(ctx, db, db, cfg, false, false)
}

func newStore(ctx context.Context, wdb, rdb *sql.DB, cfg Config, owned, immediate bool) (*Store, error) {
	s := &Store{
		cfg:       cfg,
		wdb:       wdb,
		rdb:       rdb,
		owned:     owned,
		immediate: immediate,
		writeSem:  make(chan struct{}, 1),
		ready:     make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	err := migrate(ctx, wdb, cfg.TablePrefix)
	if err == nil {
		err = s.prepare(ctx)
	}
	if err != nil {
		for _, st := range s.stmts.all {
			st.Close()
		}
		s.closePools()
		return nil, err
	}
	return s, nil
}

// prepare prepares the store's statements.
func (s *Store) prepare(ctx context.Context) error {
	st := &s.stmts
	type prep struct {
		dst   **sql.Stmt
		db    *sql.DB
		query string
	}
	preps := []prep{
		{&st.probeWrite, s.wdb, probeWriteSQL},
		{&st.streamVersion, s.wdb, streamVersionSQL},
		{&st.eventByID, s.wdb, eventByIDSQL},
		{&st.storedRange, s.wdb, storedRangeSQL},
		{&st.readStream, s.rdb, readStreamSQL},
		{&st.readAll, s.rdb, readAllSQL},
		{&st.saveSnapshot, s.wdb, saveSnapshotSQL},
		{&st.loadSnapshot, s.rdb, loadSnapshotSQL},
		{&st.outboxState, s.rdb, outboxStateSQL},
		{&st.outboxRead, s.rdb, outboxReadSQL},
		{&st.outboxDelete, s.wdb, outboxDeleteSQL},
		{&st.leaseClaim, s.wdb, leaseClaimSQL},
		{&st.leaseRenew, s.wdb, leaseRenewSQL},
		{&st.leaseRelease, s.wdb, leaseReleaseSQL},
	}
	for b := range insertChunkBits + 1 {
		preps = append(preps,
			prep{&st.insertEvents[b], s.wdb, multiRowSQL(insertEventsHead, insertEventsRow, 1<<b)},
			prep{&st.insertOutbox[b], s.wdb, multiRowSQL(insertOutboxHead, insertOutboxRow, 1<<b)})
	}
	for _, p := range preps {
		stmt, err := p.db.PrepareContext(ctx, withPrefix(p.query, s.cfg.TablePrefix))
		if err != nil {
			return fmt.Errorf("sqlite: prepare %q: %w", p.query, err)
		}
		*p.dst = stmt
		st.all = append(st.all, stmt)
	}
	return nil
}

// DB returns the pool the store reads with, for queries of read models
// that projections keep in the same database file. Write read models through
// a projection's transaction, not through this pool.
func (s *Store) DB() *sql.DB { return s.rdb }

// OutboxReady implements runtime.OutboxNotifier: the channel receives a
// value after an Append through this Store that wrote outbox messages.
// Appends by other processes on the same file are not signalled; a relay
// still polls for them.
func (s *Store) OutboxReady() <-chan struct{} { return s.ready }

// notifyOutbox signals OutboxReady without blocking: a value already
// waiting stands for this append too.
func (s *Store) notifyOutbox() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// Close closes the store, and the database if Open opened it (New's db
// stays open). A write in progress finishes first; reads in progress and
// later calls return errors wrapping runtime.ErrStoreClosed. Close does not
// wait for a relay's publish (see RelayOutbox). Closing a closed store
// returns nil.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(s.done)
	// Wait for the write in progress, so that its transaction ends before
	// the statements and pools it uses close. Held for good: later writers
	// see done instead.
	s.writeSem <- struct{}{}
	var errs []error
	for _, st := range s.stmts.all {
		if err := st.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, s.closePools())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

func (s *Store) closePools() error {
	if !s.owned {
		return nil
	}
	err := s.wdb.Close()
	if s.rdb != s.wdb {
		err = errors.Join(err, s.rdb.Close())
	}
	return err
}

// write runs fn in a write transaction: it waits for its turn among this
// process's writers (writeSem), begins a transaction holding SQLite's write
// lock, and commits if fn returns nil.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	select {
	case s.writeSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return runtime.ErrStoreClosed
	}
	defer func() { <-s.writeSem }()
	if s.closed.Load() {
		// Close is waiting for writeSem; this writer won the race for it.
		return runtime.ErrStoreClosed
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // ends the transaction; err says why
		}
	}()
	if !s.immediate {
		if _, err := tx.StmtContext(ctx, s.stmts.probeWrite).ExecContext(ctx); err != nil {
			return fmt.Errorf("take the write lock: %w", err)
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// check returns the error a call must fail with before it starts: the
// store is closed or ctx is done.
func (s *Store) check(ctx context.Context, op string) error {
	if s.closed.Load() {
		return fmt.Errorf("sqlite: %s: %w", op, runtime.ErrStoreClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	return nil
}

// fail wraps err, which op ran into, adding runtime.ErrStoreClosed if the
// store was closed meanwhile (the error then is most likely a closed
// statement or pool).
func (s *Store) fail(op string, err error) error {
	if s.closed.Load() && !errors.Is(err, runtime.ErrStoreClosed) {
		return fmt.Errorf("sqlite: %s: %w: %w", op, runtime.ErrStoreClosed, err)
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}
