package sqlbroker

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	watermillsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/protoc-gen-eda/eda/runtime"
)

func init() { runtime.RegisterBroker("postgres", Open) }

// ErrClosed is returned by the broker's methods after Close.
var ErrClosed = errors.New("sqlbroker: broker closed")

// Open is the runtime.BrokerOpener of postgres:// URLs (see the package
// doc for the parameters). It connects, checks the connection, and returns
// a broker that owns its database handle: Broker.Close closes it.
func Open(ctx context.Context, u *url.URL, opts runtime.BrokerOptions) (*runtime.Broker, error) {
	cfg, rest, err := ParseURL(u)
	if err != nil {
		return nil, err
	}
	cfg.Logger = opts.Logger
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	conn, err := pgx.ParseConfig(rest.String())
	if err != nil {
		// pgx masks passwords in its parse errors only on a best-effort
		// basis: scrub the text, and do not wrap the error, whose
		// ConnString field holds the password.
		return nil, fmt.Errorf("sqlbroker: parse the connection URL: %s", scrubPassword(err.Error(), u))
	}
	db := stdlib.OpenDB(*conn)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sqlbroker: connect to %s:%d/%s: %w", conn.Host, conn.Port, conn.Database, err)
	}
	b, err := newBroker(db, cfg)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	b.ownDB = true
	return b.runtimeBroker(), nil
}

// ParseURL splits a postgres:// URL into the Config its parameters set
// (see the package doc) and the URL the driver gets: the same without
// them. The password stays in the returned URL; errors never show it.
func ParseURL(u *url.URL) (Config, *url.URL, error) {
	var cfg Config
	q := u.Query()
	var errs []error
	bad := func(key, want string) {
		errs = append(errs, fmt.Errorf("sqlbroker: %s=%q: want %s", key, q.Get(key), want))
	}
	duration := func(key string, dst *time.Duration) {
		if !q.Has(key) {
			return
		}
		d, err := time.ParseDuration(q.Get(key))
		if err != nil || d <= 0 {
			bad(key, "a positive duration such as 250ms or 2s")
		}
		*dst = d
	}
	cfg.Schema = q.Get("schema")
	if q.Has("schema") && cfg.Schema == "" {
		bad("schema", "a schema name")
	}
	duration("poll_interval", &cfg.PollInterval)
	duration("resend_interval", &cfg.ResendInterval)
	duration("ack_deadline", &cfg.AckDeadline)
	if q.Has("batch_size") {
		n, err := strconv.Atoi(q.Get("batch_size"))
		if err != nil || n <= 0 {
			bad("batch_size", "a positive count")
		}
		cfg.BatchSize = n
	}
	if q.Has("initialize_schema") {
		v, err := strconv.ParseBool(q.Get("initialize_schema"))
		if err != nil {
			bad("initialize_schema", "true or false")
		}
		cfg.SkipInitializeSchema = !v
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, nil, err
	}
	for _, key := range []string{"schema", "poll_interval", "resend_interval", "ack_deadline", "batch_size", "initialize_schema"} {
		q.Del(key)
	}
	rest := *u
	rest.RawQuery = q.Encode()
	return cfg, &rest, nil
}

// New returns a broker on db, which the caller owns: Close does not close
// it. db must be a PostgreSQL database (any database/sql driver for it;
// Open uses pgx's). Nothing is created until a topic is first used.
func New(db *sql.DB, cfg Config) (*runtime.Broker, error) {
	if db == nil {
		return nil, errors.New("sqlbroker: New needs a *sql.DB; use Open, or runtime.OpenBroker, to connect by URL")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b, err := newBroker(db, cfg)
	if err != nil {
		return nil, err
	}
	return b.runtimeBroker(), nil
}

// broker is the state behind a runtime.Broker.
type broker struct {
	db      *sql.DB
	ownDB   bool
	cfg     Config
	schema  watermillsql.SchemaAdapter
	offsets watermillsql.OffsetsAdapter
	pub     *watermillsql.Publisher
	// initLock is the advisory lock that serializes table creation in the
	// schema across processes.
	initLock int64
	// initialized holds the topics whose tables this broker has made sure
	// of.
	initialized sync.Map

	mu     sync.Mutex
	subs   []*subscriber
	closed bool
}

func newBroker(db *sql.DB, cfg Config) (*broker, error) {
	cfg.setDefaults()
	b := &broker{
		db:       db,
		cfg:      cfg,
		schema:   cfg.schemaAdapter(),
		offsets:  cfg.offsetsAdapter(),
		initLock: lockKey(cfg.Schema),
	}
	// Tables are created by initTopic, under a lock: watermill-sql's own
	// CREATE TABLE IF NOT EXISTS races when a publisher and subscribers
	// start on a new topic together, and one of them fails.
	pub, err := watermillsql.NewPublisher(db, watermillsql.PublisherConfig{SchemaAdapter: b.schema}, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("sqlbroker: %w", err)
	}
	b.pub = pub
	return b, nil
}

func (b *broker) runtimeBroker() *runtime.Broker {
	return &runtime.Broker{
		Publisher:     publisher{b},
		NewSubscriber: b.newSubscriber,
		Close:         b.close,
	}
}

// lockKey derives the 64-bit advisory lock key of a schema's table
// creation. A collision with another application's key only costs a wait.
func lockKey(schema string) int64 {
	h := fnv.New64a()
	for _, s := range []string{"protoc-gen-eda", "sqlbroker", schema} {
		_, _ = h.Write([]byte(s))
		_, _ = h.Write([]byte{0})
	}
	return int64(h.Sum64())
}

// disallowedTopicChars is watermill-sql's rule for topic names, which
// become table names.
var disallowedTopicChars = regexp.MustCompile(`[^A-Za-z0-9\-\$\:\.\_]`)

func checkTopic(topic string) error {
	if topic == "" || disallowedTopicChars.MatchString(topic) {
		return fmt.Errorf("sqlbroker: topic %q: a topic name holds only letters, digits and - $ : . _: %w", topic, watermillsql.ErrInvalidTopicName)
	}
	return nil
}

// initTopic creates the schema and the topic's tables if they do not exist,
// once per topic and broker, in one transaction under an advisory lock.
func (b *broker) initTopic(ctx context.Context, topic string) error {
	if err := checkTopic(topic); err != nil {
		return err
	}
	if b.cfg.SkipInitializeSchema {
		return nil
	}
	if _, done := b.initialized.Load(topic); done {
		return nil
	}
	queries := []watermillsql.Query{
		{Query: "SELECT pg_advisory_xact_lock($1)", Args: []any{b.initLock}},
		{Query: "CREATE SCHEMA IF NOT EXISTS " + pgx.Identifier{b.cfg.Schema}.Sanitize()},
	}
	queries = append(queries, b.schema.SchemaInitializingQueries(topic)...)
	queries = append(queries, b.offsets.SchemaInitializingQueries(topic)...)
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlbroker: create the tables of topic %s: %w", topic, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	for _, q := range queries {
		if _, err := tx.ExecContext(ctx, q.Query, q.Args...); err != nil {
			return fmt.Errorf("sqlbroker: create the tables of topic %s in schema %s (set initialize_schema=false if they exist and the user may not create them): %w", topic, b.cfg.Schema, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlbroker: create the tables of topic %s: %w", topic, err)
	}
	b.initialized.Store(topic, struct{}{})
	return nil
}

// publisher creates a topic's tables before its first publish.
type publisher struct{ b *broker }

// Publish inserts msgs into topic's table, in one statement: they become
// visible together, in order, when it commits.
func (p publisher) Publish(topic string, msgs ...*message.Message) error {
	if err := p.b.initTopic(context.Background(), topic); err != nil {
		return err
	}
	if err := p.b.pub.Publish(topic, msgs...); err != nil {
		return fmt.Errorf("sqlbroker: publish to %s: %w", topic, err)
	}
	return nil
}

// Close stops accepting Publish calls and waits for those in flight.
func (p publisher) Close() error { return p.b.pub.Close() }

// scrubPassword removes u's password, raw or escaped, from msg.
func scrubPassword(msg string, u *url.URL) string {
	pw, ok := u.User.Password()
	if !ok || pw == "" {
		return msg
	}
	for _, s := range []string{pw, url.QueryEscape(pw), url.PathEscape(pw)} {
		msg = strings.ReplaceAll(msg, s, "xxxxx")
	}
	return msg
}

// newSubscriber returns a subscriber of consumer group group; Close closes
// it.
func (b *broker) newSubscriber(group string) (message.Subscriber, error) {
	if len(group) > maxConsumerGroupLen {
		return nil, fmt.Errorf("sqlbroker: consumer group %q is longer than %d bytes", group, maxConsumerGroupLen)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	deadline := b.cfg.AckDeadline
	s, err := watermillsql.NewSubscriber(b.db, watermillsql.SubscriberConfig{
		ConsumerGroup:  group,
		AckDeadline:    &deadline,
		PollInterval:   b.cfg.PollInterval,
		ResendInterval: b.cfg.ResendInterval,
		SchemaAdapter:  b.schema,
		OffsetsAdapter: b.offsets,
	}, b.cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("sqlbroker: %w", err)
	}
	sub := &subscriber{b: b, s: s, closing: make(chan struct{})}
	b.subs = append(b.subs, sub)
	return sub, nil
}

// subscriber creates a topic's tables before subscribing to it, and makes
// Close return only once every subscription's channel is closed, as
// Watermill's Subscriber contract asks: watermill-sql v3.1.0 marks a
// subscription done just before it closes the channel, so its Close can
// return with the channel still open.
type subscriber struct {
	b       *broker
	s       *watermillsql.Subscriber
	closing chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

// Subscribe delivers topic's messages not yet acked by the subscriber's
// consumer group, oldest first, until ctx ends or Close.
func (s *subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if err := s.b.initTopic(ctx, topic); err != nil {
		return nil, err
	}
	in, err := s.s.Subscribe(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("sqlbroker: subscribe to %s: %w", topic, err)
	}
	out := make(chan *message.Message)
	s.wg.Go(func() {
		defer close(out)
		for msg := range in {
			select {
			case out <- msg:
			case <-s.closing:
				// Nobody reads any more; the message was not acked, so
				// the group gets it again.
				msg.Nack()
			}
		}
	})
	return out, nil
}

// SubscribeInitialize creates topic's tables, as message.SubscribeInitializer
// asks.
func (s *subscriber) SubscribeInitialize(topic string) error {
	return s.b.initTopic(context.Background(), topic)
}

// Close ends the subscriber's subscriptions and waits for them to stop and
// for their channels to close.
func (s *subscriber) Close() error {
	s.once.Do(func() { close(s.closing) })
	err := s.s.Close()
	s.wg.Wait()
	return err
}

func (b *broker) close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	subs := b.subs
	b.subs = nil
	b.mu.Unlock()
	var errs []error
	for _, s := range subs {
		errs = append(errs, s.Close())
	}
	errs = append(errs, b.pub.Close())
	if b.ownDB {
		errs = append(errs, b.db.Close())
	}
	return errors.Join(errs...)
}
