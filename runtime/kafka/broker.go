package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/protoc-gen-eda/eda/runtime"
)

func init() { runtime.RegisterBroker("kafka", Open) }

// ErrClosed is returned by NewSubscriber after Close.
var ErrClosed = errors.New("kafka: broker closed")

// urlParams are the query parameters ParseURL knows.
var urlParams = []string{"client_id", "version", "initial_offset", "dial_timeout", "resend_interval", "tls", "idempotent"}

// Open is the runtime.BrokerOpener of kafka:// URLs (see the package doc).
// It connects to the cluster before it returns, so that a wrong address
// fails here; ctx bounds the wait.
func Open(ctx context.Context, u *url.URL, opts runtime.BrokerOptions) (*runtime.Broker, error) {
	cfg, err := ParseURL(u)
	if err != nil {
		return nil, err
	}
	cfg.Logger = opts.Logger
	return New(ctx, cfg)
}

// ParseURL returns the Config a kafka:// URL describes (see the package
// doc). Errors never show the URL's password.
func ParseURL(u *url.URL) (Config, error) {
	var cfg Config
	var errs []error
	if u.Scheme != "kafka" {
		errs = append(errs, fmt.Errorf("kafka: URL scheme %q: want kafka://", u.Scheme))
	}
	if u.Host == "" {
		errs = append(errs, errors.New("kafka: the URL names no broker: want kafka://host:port[,host:port...]"))
	}
	for _, addr := range strings.Split(u.Host, ",") {
		if addr == "" {
			continue
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			// No port, or a bare IPv6 address in brackets.
			host, port = strings.Trim(addr, "[]"), ""
		}
		if host == "" {
			errs = append(errs, fmt.Errorf("kafka: broker address %q has no host", addr))
			continue
		}
		if port == "" {
			port = DefaultPort
		}
		cfg.Brokers = append(cfg.Brokers, net.JoinHostPort(host, port))
	}
	if p := u.Path; p != "" && p != "/" {
		errs = append(errs, fmt.Errorf("kafka: the URL has a path %q; kafka:// URLs have none", p))
	}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	q := u.Query()
	for key := range q {
		if !slices.Contains(urlParams, key) {
			errs = append(errs, fmt.Errorf("kafka: unknown URL parameter %q (known: %s)", key, strings.Join(urlParams, ", ")))
		}
	}
	bad := func(key, want string) {
		errs = append(errs, fmt.Errorf("kafka: %s=%q: want %s", key, q.Get(key), want))
	}
	duration := func(key string, dst *time.Duration) {
		if !q.Has(key) {
			return
		}
		d, err := time.ParseDuration(q.Get(key))
		if err != nil || d <= 0 {
			bad(key, "a positive duration such as 500ms or 10s")
		}
		*dst = d
	}
	boolean := func(key string) (v, set bool) {
		if !q.Has(key) {
			return false, false
		}
		v, err := strconv.ParseBool(q.Get(key))
		if err != nil {
			bad(key, "true or false")
		}
		return v, true
	}
	if q.Has("client_id") {
		if cfg.ClientID = q.Get("client_id"); cfg.ClientID == "" {
			bad("client_id", "a client id")
		}
	}
	if q.Has("version") {
		v, err := sarama.ParseKafkaVersion(q.Get("version"))
		if err != nil {
			bad("version", "a Kafka version such as 3.6.0")
		}
		cfg.Version = v
	}
	switch q.Get("initial_offset") {
	case "", "oldest":
	case "newest":
		cfg.StartAtNewest = true
	default:
		bad("initial_offset", "oldest or newest")
	}
	duration("dial_timeout", &cfg.DialTimeout)
	duration("resend_interval", &cfg.ResendInterval)
	if v, set := boolean("tls"); set && v {
		cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if v, set := boolean("idempotent"); set {
		cfg.DisableIdempotence = !v
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// New connects to the cluster cfg names and returns a broker; Close
// disconnects it. ctx bounds the connection: on an unreachable cluster New
// fails when ctx ends or Sarama gives up (a few dial timeouts), whichever
// comes first.
func New(ctx context.Context, cfg Config) (*runtime.Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	pcfg, err := cfg.producerConfig()
	if err != nil {
		return nil, err
	}
	// A consumer configuration is built now too, so that an invalid one
	// fails here rather than at the first subscriber.
	if _, err := cfg.consumerConfig(); err != nil {
		return nil, err
	}
	type result struct {
		pub *wkafka.Publisher
		err error
	}
	// Sarama connects without a context: wait for it in a goroutine, and
	// if ctx ends first, let it finish and close what it opened.
	done := make(chan result, 1)
	go func() {
		pub, err := wkafka.NewPublisher(wkafka.PublisherConfig{
			Brokers:               cfg.Brokers,
			Marshaler:             cfg.Marshaler,
			OverwriteSaramaConfig: pcfg,
		}, cfg.Logger)
		done <- result{pub, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("kafka: connect to %s: %w (check the broker addresses and that they are reachable from here)", strings.Join(cfg.Brokers, ","), r.err)
		}
		return (&broker{cfg: cfg, pub: r.pub}).runtimeBroker(), nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.err == nil {
				_ = r.pub.Close()
			}
		}()
		return nil, fmt.Errorf("kafka: connect to %s: %w", strings.Join(cfg.Brokers, ","), ctx.Err())
	}
}

// broker is the state behind a runtime.Broker.
type broker struct {
	cfg Config
	pub *wkafka.Publisher

	mu     sync.Mutex
	subs   []*wkafka.Subscriber
	closed bool
}

func (b *broker) runtimeBroker() *runtime.Broker {
	return &runtime.Broker{Publisher: b.pub, NewSubscriber: b.newSubscriber, Close: b.close}
}

// newSubscriber returns a subscriber in Kafka consumer group group (no
// group, every partition, for ""). It connects on Subscribe.
func (b *broker) newSubscriber(group string) (message.Subscriber, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	ccfg, err := b.cfg.consumerConfig()
	if err != nil {
		return nil, err
	}
	s, err := wkafka.NewSubscriber(wkafka.SubscriberConfig{
		Brokers:               b.cfg.Brokers,
		Unmarshaler:           b.cfg.Marshaler,
		OverwriteSaramaConfig: ccfg,
		ConsumerGroup:         group,
		NackResendSleep:       b.cfg.ResendInterval,
		ReconnectRetrySleep:   DefaultReconnectInterval,
	}, b.cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	b.subs = append(b.subs, s)
	return s, nil
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
	return errors.Join(errs...)
}
