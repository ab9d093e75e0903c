// Package redisstream is the Redis Streams broker: importing it registers
// the redis:// and rediss:// (TLS) schemes with runtime.OpenBroker.
//
//	import _ "github.com/protoc-gen-eda/eda/runtime/redisstream"
//
//	b, err := runtime.OpenBroker(ctx, "redis://127.0.0.1:6379/0?maxlen=100000", runtime.BrokerOptions{})
//	pub, _ := runtime.NewPublisher(b.Publisher, runtime.PublisherConfig{Source: "orders"})
//	router, _ := runtime.NewRouter(runtime.RouterConfig{NewSubscriber: b.NewSubscriber, Publisher: b.Publisher})
//
// It builds on Watermill's Redis Streams Pub/Sub
// (github.com/ThreeDotsLabs/watermill-redisstream) and go-redis v9. A topic
// is a stream of that name; publishing is XADD, which returns once Redis
// has the entry, so a Publish that returns nil is stored (as durably as the
// server's persistence settings make it). Metadata, and so the eda
// envelope, travels with the payload in every entry.
//
// Each consumer group of Broker.NewSubscriber is a Redis consumer group
// (XREADGROUP), created on first subscription: the subscribers of one
// group compete for the messages and every group gets every message. Each
// subscriber is a consumer of its own, named after the host and a random
// suffix, on its own connection pool. A message is acknowledged (XACK) when
// the handler acks it; one a consumer took but never acknowledged, because
// its process died, say, is claimed by a live consumer of the group once it
// has been pending for max_idle (checked every claim_interval). Delivery is
// therefore at least once: handlers must be idempotent.
//
// Subscribe, Watermill's subscriber, reads one entry at a time and the
// next only once the handler acknowledged it. The subscribers also
// implement runtime.PrefetchSubscriber: SubscribePrefetch(ctx, topic, n)
// reads ahead, up to n entries delivered and not yet acknowledged or
// nacked, so the router handles up to DeliveryPolicy.MaxInFlight messages
// at once (one per ordering key). It reads new entries with XREADGROUP
// COUNT up to the free slots, acknowledges each on its own, delivers a
// nacked one again after 100ms, and claims (XAUTOCLAIM) entries pending
// with other consumers for max_idle every claim_interval. An entry's idle
// time runs from when it is read, and the router may hold a read-ahead
// entry while earlier ones of its key are handled: max_idle must exceed
// that wait plus the handling, or another consumer claims the entry and
// it is handled twice.
//
// A new group reads the stream from its start by default (start=earliest),
// so a handler added later, or renamed, processes what the stream still
// holds; start=latest makes a new group see only messages published after
// it was created. Streams grow without bound unless maxlen trims them.
//
// # URL
//
//	redis://[user:password@]host[:port][/db][?param=value&...]
//	rediss://...  (TLS)
//
// The path is the database number (default 0). The parameters of this
// package:
//
//   - maxlen: trim each stream to about this many entries when publishing
//     (XADD MAXLEN ~ n; Redis trims whole nodes, so a few more may remain).
//     Default 0: no trimming. Trimmed entries are gone even for groups that
//     have not read them yet.
//   - block: how long one XREADGROUP waits for new entries (a Go duration,
//     "100ms"). It bounds how long closing a subscriber takes. Default
//     100ms.
//   - claim_interval: how often a subscriber looks for other consumers'
//     messages pending longer than max_idle. Default 5s.
//   - max_idle: how long a delivered, unacknowledged message stays with its
//     consumer before another consumer of the group may claim it. Longer
//     than the slowest handler run, or a slow handler's message is
//     delivered twice. Default 60s.
//   - start: where a new consumer group starts, "earliest" (the first
//     entry the stream holds) or "latest" (the next entry published).
//     Default earliest. An existing group keeps its position.
//   - connect_timeout: how long Open waits for Redis to answer. Default
//     10s.
//
// go-redis's own parameters work too: dial_timeout, read_timeout,
// write_timeout, pool_size, pool_timeout, max_retries, client_name,
// protocol, skip_verify (rediss), and the rest of redis.ParseURL's.
package redisstream

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/protoc-gen-eda/eda/runtime"
)

func init() {
	runtime.RegisterBroker("redis", Open)
	runtime.RegisterBroker("rediss", Open)
}

// Defaults of Config.
const (
	DefaultBlockTime      = redisstream.DefaultBlockTime
	DefaultClaimInterval  = redisstream.DefaultClaimInterval
	DefaultMaxIdleTime    = redisstream.DefaultMaxIdleTime
	DefaultConnectTimeout = 10 * time.Second
)

// Config configures a Redis Streams broker.
type Config struct {
	// Options connect to Redis: address, database, credentials, TLS, pool.
	// Required. Build them with redis.ParseURL, or by hand. Each subscriber
	// gets a client of its own with a copy of them, so that its blocking
	// reads do not hold connections others need.
	Options *redis.Options
	// MaxLen trims each stream to about this many entries on publish
	// (XADD MAXLEN ~). Default 0: no trimming.
	MaxLen int64
	// BlockTime is how long one XREADGROUP waits. Default DefaultBlockTime.
	BlockTime time.Duration
	// ClaimInterval is how often a subscriber claims messages pending with
	// other consumers for longer than MaxIdleTime. Default
	// DefaultClaimInterval.
	ClaimInterval time.Duration
	// MaxIdleTime is how long a delivered, unacknowledged message stays
	// with its consumer before another may claim it. Default
	// DefaultMaxIdleTime.
	MaxIdleTime time.Duration
	// StartLatest makes a new consumer group start after the stream's last
	// entry instead of at its first.
	StartLatest bool
	// ConnectTimeout bounds how long New waits for Redis to answer a PING.
	// Default DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// Logger receives the broker's logs. Default: none.
	Logger watermill.LoggerAdapter
}

func (c *Config) setDefaults() {
	if c.BlockTime == 0 {
		c.BlockTime = DefaultBlockTime
	}
	if c.ClaimInterval == 0 {
		c.ClaimInterval = DefaultClaimInterval
	}
	if c.MaxIdleTime == 0 {
		c.MaxIdleTime = DefaultMaxIdleTime
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
}

// Validate reports what is missing or out of range.
func (c Config) Validate() error {
	var errs []error
	if c.Options == nil {
		errs = append(errs, errors.New("redisstream.Config.Options is required: parse a URL with redis.ParseURL"))
	}
	if c.MaxLen < 0 {
		errs = append(errs, fmt.Errorf("redisstream.Config.MaxLen is %d: want 0 (no trimming) or more", c.MaxLen))
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"BlockTime", c.BlockTime}, {"ClaimInterval", c.ClaimInterval}, {"MaxIdleTime", c.MaxIdleTime}, {"ConnectTimeout", c.ConnectTimeout}} {
		if d.d < 0 {
			errs = append(errs, fmt.Errorf("redisstream.Config.%s is %s: want a positive duration", d.name, d.d))
		}
	}
	return errors.Join(errs...)
}

// params are this package's URL parameters, in the order the package doc
// lists them.
var params = []string{"maxlen", "block", "claim_interval", "max_idle", "start", "connect_timeout"}

// Open opens the broker a redis:// or rediss:// URL names; the package doc
// lists its parameters. runtime.OpenBroker calls it for those schemes.
func Open(ctx context.Context, u *url.URL, opts runtime.BrokerOptions) (*runtime.Broker, error) {
	cfg, err := ParseURL(u)
	if err != nil {
		return nil, err
	}
	cfg.Logger = opts.Logger
	return New(ctx, cfg)
}

// ParseURL returns the Config a redis:// or rediss:// URL describes.
func ParseURL(u *url.URL) (Config, error) {
	var cfg Config
	rest := *u
	q := u.Query()
	var errs []error
	duration := func(key string, into *time.Duration) {
		v := q.Get(key)
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q: want a positive Go duration such as 500ms or 30s", key, v))
			return
		}
		*into = d
	}
	if v := q.Get("maxlen"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("maxlen=%q: want a number of entries, 0 for no trimming", v))
		}
		cfg.MaxLen = n
	}
	duration("block", &cfg.BlockTime)
	duration("claim_interval", &cfg.ClaimInterval)
	duration("max_idle", &cfg.MaxIdleTime)
	duration("connect_timeout", &cfg.ConnectTimeout)
	switch v := q.Get("start"); v {
	case "", "earliest":
	case "latest":
		cfg.StartLatest = true
	default:
		errs = append(errs, fmt.Errorf("start=%q: want earliest or latest", v))
	}
	for _, p := range params {
		q.Del(p)
	}
	rest.RawQuery = q.Encode()
	// go-redis reads the rest: address, database, credentials and its own
	// parameters.
	o, err := redis.ParseURL(rest.String())
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "redis: ")
		if strings.Contains(msg, "unexpected option") {
			msg += fmt.Sprintf(" (this package knows %s, and go-redis its own, such as dial_timeout and pool_size)", strings.Join(params, ", "))
		}
		errs = append(errs, errors.New(msg))
	}
	// runtime.OpenBroker's error names the (redacted) URL.
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	cfg.Options = o
	return cfg, nil
}

// New connects to Redis, checks that it answers and returns the broker.
func New(ctx context.Context, cfg Config) (*runtime.Broker, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &broker{cfg: cfg, consumerPrefix: consumerPrefix()}
	client := b.newClient()
	pingCtx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	// go-redis bounds the connection handshake by its read timeout, not
	// by the context: wait for the context alone.
	answered := make(chan error, 1)
	go func() { answered <- client.Ping(pingCtx).Err() }()
	var err error
	select {
	case err = <-answered:
	case <-pingCtx.Done():
		err = fmt.Errorf("no answer within %s: %w", cfg.ConnectTimeout, pingCtx.Err())
	}
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("redis at %s does not answer (is it running, and are the address and credentials right?): %w", cfg.Options.Addr, err)
	}
	pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{
		Client:        client,
		Marshaller:    marshaler,
		DefaultMaxlen: cfg.MaxLen,
	}, cfg.Logger)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	b.pub = pub
	return &runtime.Broker{Publisher: pub, NewSubscriber: b.newSubscriber, Close: b.close}, nil
}

type broker struct {
	cfg            Config
	consumerPrefix string
	pub            *redisstream.Publisher

	mu     sync.Mutex
	subs   []*subscriber
	closed bool
}

func (b *broker) newClient() *redis.Client {
	// NewClient fills in defaults on the Options it is given: each client
	// gets its own copy.
	o := *b.cfg.Options
	return redis.NewClient(&o)
}

// newSubscriber returns a consumer of consumerGroup, with a consumer name
// of its own, that also implements runtime.PrefetchSubscriber.
func (b *broker) newSubscriber(consumerGroup string) (message.Subscriber, error) {
	if consumerGroup == "" {
		return nil, errors.New("redisstream: NewSubscriber needs a consumer group: it names the Redis consumer group")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.New("redisstream: broker closed")
	}
	oldest := "0"
	if b.cfg.StartLatest {
		oldest = "$"
	}
	client := b.newClient()
	consumer := b.consumerPrefix + watermill.NewShortUUID()
	wm, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{
		Client:        client,
		Unmarshaller:  marshaler,
		Consumer:      consumer,
		ConsumerGroup: consumerGroup,
		BlockTime:     b.cfg.BlockTime,
		ClaimInterval: b.cfg.ClaimInterval,
		MaxIdleTime:   b.cfg.MaxIdleTime,
		OldestId:      oldest,
		// Without it the first XREADGROUP blocks until an entry arrives,
		// and Close waits for it.
		DisableIndefiniteInitialBlock: true,
	}, b.cfg.Logger)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	sub := &subscriber{wm: wm, b: b, client: client, group: consumerGroup, consumer: consumer, start: oldest,
		closing: make(chan struct{}), active: map[string]int{}}
	b.subs = append(b.subs, sub)
	return sub, nil
}

// close closes the subscribers, then the publisher; each closes its client.
func (b *broker) close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	subs := slices.Clone(b.subs)
	b.subs = nil
	b.mu.Unlock()
	var errs []error
	for _, s := range subs {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := b.pub.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// consumerPrefix names consumers after the host, so that XINFO CONSUMERS
// says where each runs.
func consumerPrefix() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return ""
	}
	return host + "-"
}
