package nats

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	natsgo "github.com/nats-io/nats.go"
)

// Defaults of Config.
const (
	// DefaultAckWait is how long a delivered message may stay unacknowledged
	// before JetStream redelivers it: the server's own default.
	DefaultAckWait = 30 * time.Second
	// DefaultConnectTimeout bounds the connection attempt to each server.
	DefaultConnectTimeout = 5 * time.Second
	// DefaultCloseTimeout bounds how long closing a subscriber waits for the
	// messages it delivered to be acknowledged.
	DefaultCloseTimeout = 30 * time.Second
	// publishTimeout bounds the wait for a publish acknowledgement: the
	// JetStream client's default.
	publishTimeout = 5 * time.Second
	// maxReplicas is the most replicas JetStream allows for a stream.
	maxReplicas = 5
)

// Config configures a NATS JetStream broker. The zero value of every field
// but Servers is a documented default.
type Config struct {
	// Servers are the URLs of the servers of one cluster
	// (nats://host:4222), tried in random order. Required. Credentials in
	// them are used, as nats.go does.
	Servers []string
	// Options are nats.go connection options (credentials, TLS, name,
	// reconnection), applied to every connection the broker opens: one for
	// publishing and one per subscriber.
	Options []natsgo.Option
	// Prefix namespaces subjects (PREFIX.TOPIC) and stream names
	// (PREFIX_TOPIC), to run several environments on one server. Default
	// none.
	Prefix string
	// NoProvision makes the broker use existing streams only: it creates no
	// stream, and publishing to a topic no stream captures fails. Default:
	// a missing stream is created, one per topic.
	NoProvision bool
	// Storage of the streams the broker creates. Default file storage.
	Storage natsgo.StorageType
	// Replicas of the streams the broker creates. Default 1.
	Replicas int
	// MaxAge is how long created streams keep messages. Default forever.
	MaxAge time.Duration
	// DuplicateWindow is how long created streams remember message ids, to
	// drop a message published twice. Default the server's (2 minutes).
	DuplicateWindow time.Duration
	// MaxPublishPending bounds the messages a publisher has sent and not yet
	// seen stored: a Publish of more messages sends that many, then one
	// more per acknowledgement. Default nats.go's (4,000).
	MaxPublishPending int
	// NoDedup stops sending the message id as the Nats-Msg-Id header, which
	// JetStream deduplicates by. Default: sent.
	NoDedup bool
	// AckWaitTimeout is how long a delivered message may stay
	// unacknowledged before JetStream redelivers it. Default DefaultAckWait.
	AckWaitTimeout time.Duration
	// MaxAckPending bounds the messages a consumer has delivered and not
	// yet seen acknowledged. Default the server's (1000).
	MaxAckPending int
	// SubscribersCount is how many messages of one subscription are
	// delivered at the same time; more than 1 gives up ordering. Default 1.
	SubscribersCount int
	// AckAsync acknowledges without waiting for the server to confirm. It
	// is faster, but an acknowledgement lost on the way is a redelivery.
	// Default: acknowledgements are confirmed.
	AckAsync bool
	// ConnectTimeout bounds the connection attempt to each server. Default
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// CloseTimeout bounds how long closing a subscriber waits for the
	// messages it delivered to be acknowledged. Default
	// DefaultCloseTimeout.
	CloseTimeout time.Duration
	// Logger receives the broker's logs. Default: none.
	Logger watermill.LoggerAdapter
}

func (c *Config) setDefaults() {
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.AckWaitTimeout == 0 {
		c.AckWaitTimeout = DefaultAckWait
	}
	if c.SubscribersCount == 0 {
		c.SubscribersCount = 1
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
}

// Validate reports every invalid field.
func (c Config) Validate() error {
	var errs []error
	if len(c.Servers) == 0 {
		errs = append(errs, errors.New("nats.Config.Servers is required: the URL of a NATS server, nats://127.0.0.1:4222"))
	}
	if c.Prefix != "" {
		if err := validSubject(c.Prefix); err != nil {
			errs = append(errs, fmt.Errorf("nats.Config.Prefix %q: %w", c.Prefix, err))
		}
	}
	if c.Storage != natsgo.FileStorage && c.Storage != natsgo.MemoryStorage {
		errs = append(errs, fmt.Errorf("nats.Config.Storage %d: want nats.FileStorage or nats.MemoryStorage", c.Storage))
	}
	if c.Replicas < 0 || c.Replicas > maxReplicas {
		errs = append(errs, fmt.Errorf("nats.Config.Replicas %d: want 1 to %d", c.Replicas, maxReplicas))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"MaxAge", c.MaxAge}, {"DuplicateWindow", c.DuplicateWindow}, {"AckWaitTimeout", c.AckWaitTimeout},
		{"ConnectTimeout", c.ConnectTimeout}, {"CloseTimeout", c.CloseTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("nats.Config.%s %s: want a positive duration", d.name, d.v))
		}
	}
	if c.MaxPublishPending < 0 {
		errs = append(errs, fmt.Errorf("nats.Config.MaxPublishPending %d: want a positive count", c.MaxPublishPending))
	}
	if c.MaxAckPending < 0 {
		errs = append(errs, fmt.Errorf("nats.Config.MaxAckPending %d: want a positive count", c.MaxAckPending))
	}
	if c.SubscribersCount < 0 {
		errs = append(errs, fmt.Errorf("nats.Config.SubscribersCount %d: want a positive count", c.SubscribersCount))
	}
	return errors.Join(errs...)
}

// params are the URL query parameters, in the order the package doc lists
// them.
var params = []string{
	"prefix", "provision", "storage", "replicas", "max_age", "duplicate_window", "dedup", "max_publish_pending",
	"ack_wait", "max_ack_pending", "subscribers", "ack_async",
	"connect_timeout", "name", "creds", "tls",
}

// ConfigFromURL returns the Config a nats:// URL describes (see the package
// doc). Options are not set; the URL's credentials, name, creds and tls
// parameters become Options.
func ConfigFromURL(u *url.URL) (Config, error) {
	var cfg Config
	if u.Scheme != "nats" {
		return cfg, fmt.Errorf("scheme %q: want nats://host:port", u.Scheme)
	}
	if u.Host == "" {
		return cfg, errors.New("no host: want nats://host:port")
	}
	if u.Path != "" && u.Path != "/" {
		return cfg, fmt.Errorf("path %q: a NATS URL has none (name streams with ?prefix=)", u.Path)
	}
	for _, host := range strings.Split(u.Host, ",") {
		if host == "" {
			return cfg, errors.New("empty host in the host list: want nats://host1:4222,host2:4222")
		}
		cfg.Servers = append(cfg.Servers, "nats://"+host)
	}
	if u.User != nil {
		if pass, ok := u.User.Password(); ok {
			cfg.Options = append(cfg.Options, natsgo.UserInfo(u.User.Username(), pass))
		} else {
			cfg.Options = append(cfg.Options, natsgo.Token(u.User.Username()))
		}
	}

	q := u.Query()
	var errs []error
	for key := range q {
		if !slices.Contains(params, key) {
			errs = append(errs, fmt.Errorf("unknown parameter %q (known: %s)", key, strings.Join(params, ", ")))
		}
	}
	bad := func(key, want string) {
		errs = append(errs, fmt.Errorf("%s=%q: want %s", key, q.Get(key), want))
	}
	boolean := func(key string, set func(bool)) {
		if v := q.Get(key); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				bad(key, "true or false")
				return
			}
			set(b)
		}
	}
	duration := func(key string, dst *time.Duration) {
		if v := q.Get(key); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				bad(key, "a positive Go duration such as 30s or 5m")
				return
			}
			*dst = d
		}
	}
	count := func(key string, dst *int) {
		if v := q.Get(key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				bad(key, "a positive count")
				return
			}
			*dst = n
		}
	}

	cfg.Prefix = q.Get("prefix")
	boolean("provision", func(b bool) { cfg.NoProvision = !b })
	switch q.Get("storage") {
	case "", "file":
		cfg.Storage = natsgo.FileStorage
	case "memory":
		cfg.Storage = natsgo.MemoryStorage
	default:
		bad("storage", "file or memory")
	}
	count("replicas", &cfg.Replicas)
	duration("max_age", &cfg.MaxAge)
	duration("duplicate_window", &cfg.DuplicateWindow)
	boolean("dedup", func(b bool) { cfg.NoDedup = !b })
	count("max_publish_pending", &cfg.MaxPublishPending)
	duration("ack_wait", &cfg.AckWaitTimeout)
	count("max_ack_pending", &cfg.MaxAckPending)
	count("subscribers", &cfg.SubscribersCount)
	boolean("ack_async", func(b bool) { cfg.AckAsync = b })
	duration("connect_timeout", &cfg.ConnectTimeout)
	if v := q.Get("name"); v != "" {
		cfg.Options = append(cfg.Options, natsgo.Name(v))
	}
	if v := q.Get("creds"); v != "" {
		cfg.Options = append(cfg.Options, natsgo.UserCredentials(v))
	}
	boolean("tls", func(b bool) {
		if b {
			cfg.Options = append(cfg.Options, natsgo.Secure())
		}
	})
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return cfg, cfg.Validate()
}

// validSubject reports why s is not a subject a topic can be published on.
func validSubject(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return errors.New("contains white space, which NATS subjects cannot hold")
	}
	for _, tok := range strings.Split(s, ".") {
		switch tok {
		case "":
			return errors.New("has an empty token (a leading, trailing or double dot)")
		case "*", ">":
			return fmt.Errorf("has the wildcard %q, which a published subject cannot hold", tok)
		}
	}
	return nil
}

// streamName turns a subject (or a group) into a stream or consumer name,
// which cannot hold '.', '*', '>', path separators or white space.
func streamName(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '.', '*', '>', '/', '\\', ' ', '\t', '\r', '\n':
			return '_'
		}
		return r
	}, s)
}
