// Package redisdedup is a runtime.DedupStore on Redis, for consumers
// deduplicating messages across instances and restarts without a SQL
// database.
//
// Every claim and done mark is one Redis key with a TTL (the lease or the
// window), so Redis expires them by itself and Purge has nothing to do.
// Claims and releases run as Lua scripts, atomic on the server: of
// concurrent claims of one message exactly one wins, on one server or a
// cluster (every entry is a single key).
//
// Usage:
//
//	dedup, err := redisdedup.Open(ctx, "redis://:secret@localhost:6379/0?key_prefix=shop:dedup:", redisdedup.Config{})
//	if err != nil { ... }
//	defer dedup.Close()
//	d, err := runtime.NewDeduplicator(runtime.DeduplicatorConfig{Store: dedup})
//
// A handler's effects and the done mark are two writes here, not one
// transaction: a crash between them repeats the effects on redelivery. For
// effects made exactly once, keep them in the database of a SQL dedup
// store (runtime/sqlite, runtime/postgres) and mark the message done in
// their transaction.
package redisdedup

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/protoc-gen-eda/eda/runtime"
)

// DefaultKeyPrefix prefixes the keys when Config.KeyPrefix is empty.
const DefaultKeyPrefix = "eda:dedup:"

// keyPrefixParam is the URL parameter Open reads into Config.KeyPrefix.
const keyPrefixParam = "key_prefix"

// doneValue is a done mark's value; a claim's is "c" followed by its
// owner (written by the scripts).
const doneValue = "d"

// Results of claimScript.
const (
	scriptClaimed = 1
	scriptDone    = 2
	scriptBusy    = 3
)

// claimScript takes KEYS[1] for owner ARGV[1] for ARGV[2] milliseconds if
// it is absent (Redis drops expired keys) or already owner's claim.
var claimScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then
	redis.call('SET', KEYS[1], 'c' .. ARGV[1], 'PX', ARGV[2])
	return 1
end
if v == 'd' then
	return 2
end
if v == 'c' .. ARGV[1] then
	redis.call('PEXPIRE', KEYS[1], ARGV[2])
	return 1
end
return 3
`)

// releaseScript deletes KEYS[1] if it is owner ARGV[1]'s claim.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == 'c' .. ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

// Config configures a Store. The zero value is ready to use.
type Config struct {
	// KeyPrefix starts every key the store writes, so that several
	// applications (or tests) share one Redis database. Default
	// DefaultKeyPrefix. A key is KeyPrefix, the consumer's length, ":",
	// the consumer, ":", the message id: "eda:dedup:15:shop.v1.Billing:0192...".
	KeyPrefix string
}

func (c *Config) setDefaults() {
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultKeyPrefix
	}
}

// Store is a runtime.DedupStore on Redis. It is safe for concurrent use,
// also by several processes sharing the Redis database.
type Store struct {
	client redis.UniversalClient
	// own is true when Close closes the client (Open).
	own    bool
	prefix string
}

var _ runtime.DedupStore = (*Store)(nil)

// New returns a store on client, which the caller owns: Close does not
// close it.
func New(client redis.UniversalClient, cfg Config) (*Store, error) {
	if client == nil {
		return nil, errors.New("redisdedup: New needs a client; use Open to connect by URL")
	}
	cfg.setDefaults()
	return &Store{client: client, prefix: cfg.KeyPrefix}, nil
}

// Open connects to the Redis server at rawURL and checks that it answers.
// The URL is go-redis's (redis://[user:password@]host:port/db, or rediss://
// for TLS, with go-redis parameters such as dial_timeout and pool_size),
// plus key_prefix, which sets Config.KeyPrefix when cfg leaves it empty.
// Close closes the connection.
func Open(ctx context.Context, rawURL string, cfg Config) (*Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url's errors quote the URL, password and all.
		return nil, errors.New("redisdedup: the URL does not parse; want redis://[user:password@]host:port/db")
	}
	q := u.Query()
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = q.Get(keyPrefixParam)
	}
	q.Del(keyPrefixParam)
	rest := *u
	rest.RawQuery = q.Encode()
	opts, err := redis.ParseURL(rest.String())
	if err != nil {
		return nil, fmt.Errorf("redisdedup: %s: %s (key_prefix is this package's; go-redis takes the rest)", u.Redacted(), strings.TrimPrefix(err.Error(), "redis: "))
	}
	client := redis.NewClient(opts)
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("redisdedup: connect to %s: %w", u.Redacted(), err)
	}
	s, _ := New(client, cfg)
	s.own = true
	return s, nil
}

// Close closes the connection if Open made it.
func (s *Store) Close() error {
	if !s.own {
		return nil
	}
	return s.client.Close()
}

// key returns the Redis key of k. The consumer's length keeps
// ("a:b", "c") and ("a", "b:c") apart.
func (s *Store) key(k runtime.DedupKey) string {
	return s.prefix + strconv.Itoa(len(k.Consumer)) + ":" + k.Consumer + ":" + k.MessageID
}

// millis returns d in whole milliseconds, at least 1: Redis's TTLs are
// milliseconds, and a TTL of 0 is an error.
func millis(d time.Duration) int64 {
	return max(1, (d + time.Millisecond - 1).Milliseconds())
}

// Claim implements runtime.DedupStore.
func (s *Store) Claim(ctx context.Context, key runtime.DedupKey, owner string, lease time.Duration) (runtime.DedupState, error) {
	if owner == "" {
		return 0, fmt.Errorf("redisdedup: claim %s: the owner is empty", key)
	}
	res, err := claimScript.Run(ctx, s.client, []string{s.key(key)}, owner, millis(lease)).Int()
	if err != nil {
		return 0, fmt.Errorf("redisdedup: claim %s: %w", key, err)
	}
	switch res {
	case scriptClaimed:
		return runtime.DedupClaimed, nil
	case scriptDone:
		return runtime.DedupDone, nil
	case scriptBusy:
		return runtime.DedupBusy, nil
	}
	return 0, fmt.Errorf("redisdedup: claim %s: the script returned %d", key, res)
}

// Complete implements runtime.DedupStore.
func (s *Store) Complete(ctx context.Context, key runtime.DedupKey, window time.Duration) error {
	if err := s.client.Set(ctx, s.key(key), doneValue, time.Duration(millis(window))*time.Millisecond).Err(); err != nil {
		return fmt.Errorf("redisdedup: complete %s: %w", key, err)
	}
	return nil
}

// Release implements runtime.DedupStore.
func (s *Store) Release(ctx context.Context, key runtime.DedupKey, owner string) error {
	if err := releaseScript.Run(ctx, s.client, []string{s.key(key)}, owner).Err(); err != nil {
		return fmt.Errorf("redisdedup: release %s: %w", key, err)
	}
	return nil
}

// Purge implements runtime.DedupStore. Redis expires the keys by itself:
// there is nothing to delete.
func (s *Store) Purge(ctx context.Context) (int64, error) {
	return 0, ctx.Err()
}
