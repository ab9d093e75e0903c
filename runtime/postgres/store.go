package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/protoc-gen-eda/eda/runtime"
)

// Store is a runtime.EventStore on PostgreSQL. It is safe for concurrent
// use, also by several processes sharing the database.
type Store struct {
	pool    *pgxpool.Pool
	ownPool bool
	cfg     Config
	n       names
	q       queries
	closed  atomic.Bool
	// ready carries OutboxReady's wake-ups; capacity 1 so that a send never
	// blocks and one value stands for any number of appends.
	ready chan struct{}
}

var (
	_ runtime.EventStore     = (*Store)(nil)
	_ runtime.OutboxNotifier = (*Store)(nil)
)

// New returns a store on pool, which the caller owns: Close does not close
// it. It creates the tables if they do not exist.
func New(ctx context.Context, pool *pgxpool.Pool, cfg Config) (*Store, error) {
	if pool == nil {
		return nil, errors.New("postgres: New needs a pool; use Open to connect by URL")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	n := newNames(cfg)
	if err := n.migrate(ctx, pool); err != nil {
		return nil, err
	}
	return &Store{
		pool:  pool,
		cfg:   cfg,
		n:     n,
		q:     newQueries(n),
		ready: make(chan struct{}, 1),
	}, nil
}

// Open connects to url (postgres://user:password@host:port/db?...) and
// returns a store that owns its pool: Close closes it. Pool settings go in
// the URL as pgxpool understands them (pool_max_conns, ...).
func Open(ctx context.Context, url string, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors can include the password; say which part failed
		// without echoing the URL.
		return nil, fmt.Errorf("postgres: parse the connection URL: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: create the connection pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect to %s:%d/%s: %w", pcfg.ConnConfig.Host, pcfg.ConnConfig.Port, pcfg.ConnConfig.Database, err)
	}
	s, err := New(ctx, pool, cfg)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.ownPool = true
	return s, nil
}

// Pool returns the store's connection pool, for example to run a
// projection's read-model write in its own transaction on the same
// database.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// OutboxReady implements runtime.OutboxNotifier for appends made through
// this Store value. Appends by other processes, or other Store values on the
// same tables, are not signalled: a relay still polls for those.
func (s *Store) OutboxReady() <-chan struct{} { return s.ready }

// Close marks the store closed and, if Open created the pool, closes the
// pool, waiting for calls in flight to release their connections. Calling
// it again does nothing and returns nil.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if s.ownPool {
		s.pool.Close()
	}
	return nil
}

// errClosed is what methods return after Close.
func errClosed(op string) error {
	return fmt.Errorf("postgres: %s: %w", op, runtime.ErrStoreClosed)
}

func (s *Store) notifyOutbox() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}
