// Package amqp is the RabbitMQ (AMQP 0-9-1) broker: importing it registers
// the amqp:// and amqps:// (TLS) schemes with runtime.OpenBroker.
//
//	import _ "github.com/protoc-gen-eda/eda/runtime/amqp"
//
//	b, err := runtime.OpenBroker(ctx, "amqp://guest:guest@127.0.0.1:5672/?prefetch=20", runtime.BrokerOptions{})
//	pub, _ := runtime.NewPublisher(b.Publisher, runtime.PublisherConfig{Source: "orders"})
//	router, _ := runtime.NewRouter(runtime.RouterConfig{NewSubscriber: b.NewSubscriber, Publisher: b.Publisher})
//
// It builds on Watermill's AMQP Pub/Sub (github.com/ThreeDotsLabs/watermill-amqp
// v1.1.4, over github.com/streadway/amqp), with the topology of its durable
// Pub/Sub configuration: a topic is a durable fanout exchange of that name,
// and each consumer group of Broker.NewSubscriber a durable queue named
// "<topic>_<group>" bound to it. The subscribers of one group consume from
// the same queue and so compete for its messages; every group's queue gets
// every message. Metadata, and so the eda envelope, travels in the message
// headers; messages are persistent.
//
// Publishing waits for the broker's publisher confirm: a Publish that
// returns nil was accepted by RabbitMQ, which for a persistent message on a
// durable queue means written to disk. (Watermill-amqp v1.1.4 has no
// confirms, only slower transactions, so this package publishes with its
// own confirming publisher over the shared connection.) RabbitMQ confirms a
// message that no queue is bound to, and drops it: a consumer group only
// receives what is published after its first subscription declared its
// queue, unlike Redis or Kafka, where a new group can read the past.
//
// A queue delivers in publishing order, and a subscription hands its
// messages to the handler one at a time. A redelivered message, though,
// comes back behind those the consumer already prefetched: prefetch=1
// keeps the order through redeliveries, at some cost in throughput.
//
// The subscribers also implement runtime.PrefetchSubscriber, so a handler
// whose DeliveryPolicy.MaxInFlight is above 1 handles messages of
// different ordering keys at once. SubscribePrefetch(ctx, topic, n)
// consumes the same queue on a channel of its own with a basic.qos
// prefetch count of n (the router asks for 4 × MaxInFlight; the prefetch
// parameter does not apply): RabbitMQ has at most n messages of that
// subscription delivered and not yet acked or nacked, and each ack or nack
// is sent on its own. A nacked message is requeued and may come back
// behind ones already delivered. If the channel or connection drops, the
// subscription consumes again once the connection is back, and RabbitMQ
// requeues what was delivered and not acknowledged, as it does when the
// subscriber is closed.
//
// A message is acknowledged when the handler acks it; nacked, or left
// unacknowledged by a consumer whose connection dies, it goes back to the
// queue for another delivery. Delivery is therefore at least once: handlers
// must be idempotent. The connection is re-established, with backoff, when
// it drops.
//
// # URL
//
//	amqp://[user:password@]host[:port][/vhost][?param=value&...]
//	amqps://...  (TLS)
//
// The path is the virtual host (default "/"; %2f for "/" explicitly). The
// parameters:
//
//   - prefetch: how many unacknowledged messages a subscription may hold
//     (basic.qos prefetch count). Higher is faster; lower shares a queue
//     more evenly between consumers. Default 10. It applies to Subscribe,
//     whose handler takes one message at a time; SubscribePrefetch (a
//     handler with MaxInFlight above 1) sets its own.
//   - connect_timeout: how long connecting may take, a Go duration.
//     Default 10s.
//   - heartbeat: the AMQP heartbeat interval, which detects a dead
//     connection. Default 10s.
package amqp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/streadway/amqp"

	"github.com/protoc-gen-eda/eda/runtime"
)

func init() {
	runtime.RegisterBroker("amqp", Open)
	runtime.RegisterBroker("amqps", Open)
}

// Defaults of Config.
const (
	DefaultPrefetch       = 10
	DefaultConnectTimeout = 10 * time.Second
	DefaultHeartbeat      = 10 * time.Second
)

// Config configures an AMQP broker.
type Config struct {
	// URL is the server's amqp:// or amqps:// URI, without this package's
	// parameters. Required.
	URL string
	// Prefetch is how many unacknowledged messages a Subscribe
	// subscription may hold (SubscribePrefetch sets its own). Default
	// DefaultPrefetch.
	Prefetch int
	// ConnectTimeout bounds how long connecting may take. Default
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// Heartbeat is the AMQP heartbeat interval. Default DefaultHeartbeat.
	Heartbeat time.Duration
	// TLS configures amqps:// connections. Default: the system's roots,
	// the URL's host as server name.
	TLS *tls.Config
	// Logger receives the broker's logs. Default: none.
	Logger watermill.LoggerAdapter
}

func (c *Config) setDefaults() {
	if c.Prefetch == 0 {
		c.Prefetch = DefaultPrefetch
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
}

// Validate reports what is missing or out of range.
func (c Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("amqp.Config.URL is required"))
	} else if _, err := amqp.ParseURI(c.URL); err != nil {
		errs = append(errs, fmt.Errorf("amqp.Config.URL %s: %w", redact(c.URL), err))
	}
	if c.Prefetch < 0 {
		errs = append(errs, fmt.Errorf("amqp.Config.Prefetch is %d: want 1 or more", c.Prefetch))
	}
	if c.ConnectTimeout < 0 || c.Heartbeat < 0 {
		errs = append(errs, errors.New("amqp.Config: ConnectTimeout and Heartbeat must not be negative"))
	}
	return errors.Join(errs...)
}

// params are this package's URL parameters, in the order the package doc
// lists them.
var params = []string{"prefetch", "connect_timeout", "heartbeat"}

// Open opens the broker an amqp:// or amqps:// URL names; the package doc
// lists its parameters. runtime.OpenBroker calls it for those schemes.
func Open(ctx context.Context, u *url.URL, opts runtime.BrokerOptions) (*runtime.Broker, error) {
	cfg, err := ParseURL(u)
	if err != nil {
		return nil, err
	}
	cfg.Logger = opts.Logger
	return New(ctx, cfg)
}

// ParseURL returns the Config an amqp:// or amqps:// URL describes.
func ParseURL(u *url.URL) (Config, error) {
	var cfg Config
	q := u.Query()
	var errs []error
	for key := range q {
		if !slices.Contains(params, key) {
			errs = append(errs, fmt.Errorf("no parameter %q (this package knows %s)", key, strings.Join(params, ", ")))
		}
	}
	if v := q.Get("prefetch"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("prefetch=%q: want a count of 1 or more", v))
		}
		cfg.Prefetch = n
	}
	for _, d := range []struct {
		key  string
		into *time.Duration
	}{{"connect_timeout", &cfg.ConnectTimeout}, {"heartbeat", &cfg.Heartbeat}} {
		v := q.Get(d.key)
		if v == "" {
			continue
		}
		dur, err := time.ParseDuration(v)
		if err != nil || dur <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q: want a positive Go duration such as 500ms or 30s", d.key, v))
		}
		*d.into = dur
	}
	rest := *u
	rest.RawQuery = ""
	if _, err := amqp.ParseURI(rest.String()); err != nil {
		errs = append(errs, err)
	}
	// runtime.OpenBroker's error names the (redacted) URL.
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	cfg.URL = rest.String()
	return cfg, nil
}

// New connects to the server and returns the broker.
func New(ctx context.Context, cfg Config) (*runtime.Broker, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	timeout := cfg.ConnectTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	wcfg := wamqp.NewDurablePubSubConfig(cfg.URL, nil)
	wcfg.Connection.AmqpConfig = &amqp.Config{
		Heartbeat:       cfg.Heartbeat,
		Locale:          "en_US",
		TLSClientConfig: cfg.TLS,
		Dial:            amqp.DefaultDial(timeout),
	}
	wcfg.Consume.Qos.PrefetchCount = cfg.Prefetch
	conn, err := wamqp.NewConnection(wcfg.Connection, cfg.Logger)
	if err != nil {
		// streadway's errors name the address, never the password.
		return nil, fmt.Errorf("AMQP server at %s unreachable or refusing (is it running, and are the address, vhost and credentials right?): %w", hostOf(cfg.URL), err)
	}
	b := &broker{cfg: cfg, wcfg: wcfg, conn: conn}
	b.pub = newConfirmPublisher(conn, wcfg, cfg.Logger)
	return &runtime.Broker{Publisher: b.pub, NewSubscriber: b.newSubscriber, Close: b.close}, nil
}

type broker struct {
	cfg  Config
	wcfg wamqp.Config
	conn *wamqp.ConnectionWrapper
	pub  *confirmPublisher

	mu     sync.Mutex
	subs   []*subscriber
	closed bool
}

// newSubscriber returns a subscriber consuming from the queue of
// consumerGroup on each topic: Watermill's for Subscribe, and a channel of
// its own per SubscribePrefetch, both with the same config.
func (b *broker) newSubscriber(consumerGroup string) (message.Subscriber, error) {
	if consumerGroup == "" {
		return nil, errors.New("amqp: NewSubscriber needs a consumer group: it names the queue")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.New("amqp: broker closed")
	}
	cfg := b.wcfg
	cfg.Queue.GenerateName = wamqp.GenerateQueueNameTopicNameWithSuffix(consumerGroup)
	wm, err := wamqp.NewSubscriberWithConnection(cfg, b.cfg.Logger, b.conn)
	if err != nil {
		return nil, err
	}
	sub := &subscriber{wm: wm, conn: b.conn, cfg: cfg, logger: b.cfg.Logger, group: consumerGroup, closing: make(chan struct{})}
	b.subs = append(b.subs, sub)
	return sub, nil
}

// QueueName is the queue of consumerGroup on topic.
func QueueName(topic, consumerGroup string) string {
	return wamqp.GenerateQueueNameTopicNameWithSuffix(consumerGroup)(topic)
}

// close closes the subscribers and the publisher, then the connection they
// share.
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
	if err := b.conn.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// hostOf returns the host and port of an AMQP URI, for errors.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Host
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
