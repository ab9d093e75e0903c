package kafka

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
)

// Defaults for Config fields left zero.
const (
	// DefaultClientID is Config.ClientID's default.
	DefaultClientID = "protoc-gen-eda"
	// DefaultDialTimeout is Config.DialTimeout's default: Sarama's 30s
	// makes a wrong address look like a hang.
	DefaultDialTimeout = 10 * time.Second
	// DefaultResendInterval is Config.ResendInterval's default, Watermill's.
	DefaultResendInterval = 100 * time.Millisecond
	// DefaultReconnectInterval is how long a subscription waits before it
	// reconnects after losing its broker, Watermill's default.
	DefaultReconnectInterval = time.Second
	// DefaultPort is the port of a broker address that names none.
	DefaultPort = "9092"
)

// DefaultVersion is Config.Version's default: Kafka 2.1, the oldest
// protocol Kafka 4 still accepts, and new enough for record headers and the
// idempotent producer.
var DefaultVersion = sarama.V2_1_0_0

// Metadata retries when connecting: Sarama's count, and a backoff shorter
// than Watermill's 2s so that an unreachable cluster fails in about a
// second rather than six.
const (
	metadataRetries = 3
	metadataBackoff = 250 * time.Millisecond
)

// producerRetries is how often a failed send is retried, Watermill's
// default; with the idempotent producer retries neither duplicate nor
// reorder.
const producerRetries = 10

// Config configures a broker. Brokers is required; the rest has defaults.
type Config struct {
	// Brokers are the bootstrap brokers' host:port addresses. Required.
	Brokers []string

	// ClientID is the client id brokers log and quota by. Default
	// DefaultClientID.
	ClientID string

	// Version is the Kafka protocol version to speak. Default
	// DefaultVersion.
	Version sarama.KafkaVersion

	// StartAtNewest makes a consumer group without a committed offset start
	// at the newest message instead of the oldest.
	StartAtNewest bool

	// DialTimeout bounds each TCP connection attempt to a broker. Default
	// DefaultDialTimeout.
	DialTimeout time.Duration

	// ResendInterval is how long before a nacked message is delivered
	// again. Default DefaultResendInterval.
	ResendInterval time.Duration

	// TLS, when set, connects with TLS using this configuration.
	TLS *tls.Config

	// Username and Password, when Username is set, authenticate with
	// SASL/PLAIN. Use TLS with them.
	Username, Password string

	// DisableIdempotence turns off the idempotent producer, for clusters
	// that deny the IdempotentWrite permission. Retried sends may then be
	// duplicated.
	DisableIdempotence bool

	// Marshaler maps messages to Kafka records and back. Default
	// Marshaler{}, which keys records by partition key.
	Marshaler wkafka.MarshalerUnmarshaler

	// Tune, when set, adjusts each Sarama configuration this package builds
	// (one for the producer, one per subscriber) after the settings above:
	// for what they do not cover, such as SASL/SCRAM or compression.
	Tune func(*sarama.Config)

	// Logger receives the broker's logs. Default: none.
	Logger watermill.LoggerAdapter
}

// Validate reports every invalid field at once, joined with errors.Join.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("kafka: Config.Brokers is empty: name at least one bootstrap broker (host:port)"))
	}
	for _, b := range c.Brokers {
		if b == "" {
			errs = append(errs, errors.New("kafka: Config.Brokers holds an empty address"))
		}
	}
	if c.DialTimeout < 0 {
		errs = append(errs, fmt.Errorf("kafka: DialTimeout is negative (%s); leave it zero for the default", c.DialTimeout))
	}
	if c.ResendInterval < 0 {
		errs = append(errs, fmt.Errorf("kafka: ResendInterval is negative (%s); leave it zero for the default", c.ResendInterval))
	}
	if c.Password != "" && c.Username == "" {
		errs = append(errs, errors.New("kafka: Password is set without Username"))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.Version == (sarama.KafkaVersion{}) {
		c.Version = DefaultVersion
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.ResendInterval == 0 {
		c.ResendInterval = DefaultResendInterval
	}
	if c.Marshaler == nil {
		c.Marshaler = Marshaler{}
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
}

// saramaConfig builds the settings producer and consumers share; c has its
// defaults set.
func (c Config) saramaConfig() *sarama.Config {
	s := sarama.NewConfig()
	s.ClientID = c.ClientID
	s.Version = c.Version
	s.Net.DialTimeout = c.DialTimeout
	s.Metadata.Retry.Max = metadataRetries
	s.Metadata.Retry.Backoff = metadataBackoff
	if c.TLS != nil {
		s.Net.TLS.Enable = true
		s.Net.TLS.Config = c.TLS
	}
	if c.Username != "" {
		s.Net.SASL.Enable = true
		s.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		s.Net.SASL.User = c.Username
		s.Net.SASL.Password = c.Password
	}
	return s
}

// producerConfig is the publisher's Sarama configuration.
func (c Config) producerConfig() (*sarama.Config, error) {
	s := c.saramaConfig()
	s.Producer.Return.Successes = true // a SyncProducer needs it
	s.Producer.Retry.Max = producerRetries
	s.Producer.RequiredAcks = sarama.WaitForAll
	// Equal keys, equal partition: what per-key ordering rests on.
	s.Producer.Partitioner = sarama.NewHashPartitioner
	if !c.DisableIdempotence {
		s.Producer.Idempotent = true
		s.Net.MaxOpenRequests = 1
	}
	return c.tune(s)
}

// consumerConfig is a subscriber's Sarama configuration.
func (c Config) consumerConfig() (*sarama.Config, error) {
	s := c.saramaConfig()
	s.Consumer.Return.Errors = true // Watermill logs them
	s.Consumer.Offsets.Initial = sarama.OffsetOldest
	if c.StartAtNewest {
		s.Consumer.Offsets.Initial = sarama.OffsetNewest
	}
	return c.tune(s)
}

func (c Config) tune(s *sarama.Config) (*sarama.Config, error) {
	if c.Tune != nil {
		c.Tune(s)
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("kafka: invalid Sarama configuration: %w", err)
	}
	return s, nil
}
