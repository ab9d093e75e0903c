package sqlite

import (
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Defaults used where Config leaves a field zero.
const (
	// DefaultTablePrefix prefixes the store's table names.
	DefaultTablePrefix = "eda_"
	// DefaultBusyTimeout is how long a write waits for another process's
	// write lock. Writers in one process queue in Go and never wait here;
	// 5s covers a long checkpoint or a batch append from another process
	// without making a wedged one hang its peers for long.
	DefaultBusyTimeout = 5 * time.Second
	// DefaultOutboxLease is how long a relay's claim on the outbox lasts
	// without renewal. A running relay renews it every third of the lease, so
	// the duration only matters when a relay dies holding it: the others wait
	// up to this long before they take over.
	DefaultOutboxLease = 30 * time.Second
	// DefaultReadPageSize is how many rows ReadStream and ReadAll fetch per
	// query. Measured on 10,000 events, pages of 64 to 1,024 rows read
	// equally fast (within noise); one page of all 10,000 was slower and
	// took four times the memory.
	DefaultReadPageSize = 256
	// DefaultMaxReadConns bounds the connections a file database opens for
	// readers. Reads in WAL mode run in parallel, but each connection has its
	// own page cache, so more connections than cores only cost memory.
	DefaultMaxReadConns = 8
)

// prefixPattern is what TablePrefix may hold: it is pasted into SQL, so it
// must be a plain identifier fragment.
var prefixPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Config configures a Store. The zero value is ready to use.
type Config struct {
	// TablePrefix prefixes the names of the store's tables (events,
	// snapshots, outbox, outbox_lease, migrations), so that several stores,
	// or a store and an application's own tables, share one database. It
	// must be letters, digits and underscores, not starting with a digit.
	// Empty means DefaultTablePrefix.
	TablePrefix string

	// BusyTimeout is how long a write waits for another process's write lock
	// (SQLite's busy_timeout) before it fails with SQLITE_BUSY. Writers in
	// one process queue in Go instead, without a timeout beyond their
	// context. Zero means DefaultBusyTimeout; negative values are invalid.
	// Used by Open only: New leaves the caller's connections as they are.
	BusyTimeout time.Duration

	// OutboxLease is how long a relay's claim on the outbox lasts unless
	// renewed. RelayOutbox renews it every OutboxLease/3 while publish runs,
	// so a slow broker does not lose the claim; if the process dies, other
	// relays wait at most this long before they publish the dead relay's
	// batch again. Zero means DefaultOutboxLease; negative values are
	// invalid.
	OutboxLease time.Duration

	// ReadPageSize is how many rows ReadStream and ReadAll fetch per query.
	// They never hold a database connection or read transaction while fn
	// runs, so fn may call the store (even on a single-connection in-memory
	// database) and a slow fn does not keep the WAL from being checkpointed.
	// Zero means DefaultReadPageSize; negative values are invalid.
	ReadPageSize int

	// MaxReadConns bounds the connections Open opens for readers of a file
	// database; writes use one more connection of their own. Zero means
	// DefaultMaxReadConns; negative values are invalid. Used by Open only.
	MaxReadConns int

	// FullSync makes every commit wait for the write-ahead log to reach the
	// disk (synchronous=FULL). By default (synchronous=NORMAL, SQLite's
	// recommendation for WAL) a commit survives a crash of the process but
	// the last commits before a power loss or operating system crash may be
	// lost; the database stays consistent either way. An fsync per commit
	// costs about as much as the rest of an append together on an SSD and far
	// more on a disk. Used by Open only.
	FullSync bool
}

// Validate reports every invalid field at once, joined with errors.Join.
// Zero values are valid.
func (c Config) Validate() error {
	var errs []error
	if c.TablePrefix != "" && !prefixPattern.MatchString(c.TablePrefix) {
		errs = append(errs, fmt.Errorf("sqlite: TablePrefix %q must be letters, digits and underscores, not starting with a digit", c.TablePrefix))
	}
	if c.BusyTimeout < 0 {
		errs = append(errs, errors.New("sqlite: BusyTimeout must not be negative"))
	}
	if c.OutboxLease < 0 {
		errs = append(errs, errors.New("sqlite: OutboxLease must not be negative"))
	}
	if c.ReadPageSize < 0 {
		errs = append(errs, errors.New("sqlite: ReadPageSize must not be negative"))
	}
	if c.MaxReadConns < 0 {
		errs = append(errs, errors.New("sqlite: MaxReadConns must not be negative"))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.TablePrefix == "" {
		c.TablePrefix = DefaultTablePrefix
	}
	if c.BusyTimeout == 0 {
		c.BusyTimeout = DefaultBusyTimeout
	}
	if c.OutboxLease == 0 {
		c.OutboxLease = DefaultOutboxLease
	}
	if c.ReadPageSize == 0 {
		c.ReadPageSize = DefaultReadPageSize
	}
	if c.MaxReadConns == 0 {
		c.MaxReadConns = DefaultMaxReadConns
	}
}
