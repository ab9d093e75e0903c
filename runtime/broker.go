package runtime

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/protoc-gen-eda/eda/runtime/mem"
)

// Broker is a message broker opened by URL: a publisher, and subscribers
// per consumer group. The same generated service runs on any of them:
//
//	b, err := runtime.OpenBroker(ctx, "nats://127.0.0.1:4222", runtime.BrokerOptions{})
//	pub, _ := runtime.NewPublisher(b.Publisher, runtime.PublisherConfig{Source: "orders"})
//	router, _ := runtime.NewRouter(runtime.RouterConfig{NewSubscriber: b.NewSubscriber, Publisher: b.Publisher})
//
// Each scheme but mem:// lives in its own package, which registers it when
// imported, so a service links only the brokers it uses:
//
//	import _ "github.com/protoc-gen-eda/eda/runtime/nats" // nats://
type Broker struct {
	// Publisher publishes to the broker.
	Publisher message.Publisher
	// NewSubscriber returns a subscriber whose subscriptions share the
	// messages of a topic with every other subscriber of the same consumer
	// group (competing consumers), each group receiving every message. A
	// broker without groups (mem://) returns one subscriber for all.
	NewSubscriber func(consumerGroup string) (message.Subscriber, error)
	// Close closes the publisher, every subscriber returned and the
	// broker's connections.
	Close func() error
}

// BrokerOptions are what every broker scheme understands; a scheme's own
// settings are URL query parameters, documented by its package.
type BrokerOptions struct {
	// Logger receives the broker's logs. Default: none.
	Logger watermill.LoggerAdapter
}

// BrokerOpener opens a broker for a URL of its scheme.
type BrokerOpener func(ctx context.Context, u *url.URL, opts BrokerOptions) (*Broker, error)

var brokers = struct {
	sync.RWMutex
	m map[string]BrokerOpener
}{m: map[string]BrokerOpener{"mem": openMem}}

// RegisterBroker makes OpenBroker open URLs of scheme with open. Broker
// packages call it from init; registering a scheme twice panics, as
// database/sql's Register does.
func RegisterBroker(scheme string, open BrokerOpener) {
	brokers.Lock()
	defer brokers.Unlock()
	if open == nil {
		panic("runtime: RegisterBroker of a nil opener for " + scheme)
	}
	if _, dup := brokers.m[scheme]; dup {
		panic("runtime: RegisterBroker called twice for scheme " + scheme)
	}
	brokers.m[scheme] = open
}

// BrokerSchemes returns the registered schemes, sorted.
func BrokerSchemes() []string {
	brokers.RLock()
	defer brokers.RUnlock()
	out := make([]string, 0, len(brokers.m))
	for s := range brokers.m {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// brokerPackages says which package registers a scheme, for the error of
// an unregistered one.
var brokerPackages = map[string]string{
	"nats":     "github.com/protoc-gen-eda/eda/runtime/nats",
	"postgres": "github.com/protoc-gen-eda/eda/runtime/sqlbroker",
	"redis":    "github.com/protoc-gen-eda/eda/runtime/redisstream",
	"amqp":     "github.com/protoc-gen-eda/eda/runtime/amqp",
	"kafka":    "github.com/protoc-gen-eda/eda/runtime/kafka",
}

// ErrUnknownBroker is returned by OpenBroker for a scheme no imported
// package registered.
var ErrUnknownBroker = errors.New("unknown broker scheme")

// OpenBroker opens the broker rawURL names, by its scheme: mem:// (the
// embedded bus), or a scheme registered by an imported broker package.
func OpenBroker(ctx context.Context, rawURL string, opts BrokerOptions) (*Broker, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error repeats the URL, password included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("broker URL %q: %w", redactURL(rawURL), err)
	}
	if opts.Logger == nil {
		opts.Logger = watermill.NopLogger{}
	}
	scheme := u.Scheme
	if scheme == "postgresql" {
		scheme = "postgres"
	}
	brokers.RLock()
	open, ok := brokers.m[scheme]
	brokers.RUnlock()
	if !ok {
		if pkg, known := brokerPackages[scheme]; known {
			return nil, fmt.Errorf("%w %s:// in %q: import _ %q to register it", ErrUnknownBroker, scheme, redactURL(rawURL), pkg)
		}
		return nil, fmt.Errorf("%w %q in %q: registered are %v", ErrUnknownBroker, u.Scheme, redactURL(rawURL), BrokerSchemes())
	}
	b, err := open(ctx, u, opts)
	if err != nil {
		return nil, fmt.Errorf("open broker %s: %w", redactURL(rawURL), err)
	}
	return b, nil
}

// redactURL hides a URL's password, for errors and logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// openMem opens the embedded bus. Query parameters: max_queued (the
// per-subscription queue bound, Config.MaxQueued).
func openMem(_ context.Context, u *url.URL, opts BrokerOptions) (*Broker, error) {
	var cfg mem.Config
	cfg.Logger = opts.Logger
	q := u.Query()
	for key := range q {
		if !slices.Contains([]string{"max_queued"}, key) {
			return nil, fmt.Errorf("mem:// has no parameter %q (it knows max_queued)", key)
		}
	}
	if v := q.Get("max_queued"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("mem:// max_queued=%q: want a count", v)
		}
		cfg.MaxQueued = n
	}
	bus, err := mem.New(cfg)
	if err != nil {
		return nil, err
	}
	return &Broker{
		Publisher:     bus,
		NewSubscriber: func(string) (message.Subscriber, error) { return sharedSubscriber{bus}, nil },
		Close:         bus.Close,
	}, nil
}

// sharedSubscriber is the embedded bus handed to every consumer group:
// closing it (a Router does when it stops) leaves the bus to Broker.Close.
type sharedSubscriber struct{ *mem.PubSub }

func (sharedSubscriber) Close() error { return nil }
