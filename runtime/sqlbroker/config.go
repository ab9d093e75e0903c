package sqlbroker

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	watermillsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/jackc/pgx/v5"
)

// Defaults for Config fields left zero.
const (
	// DefaultSchema holds the topic tables when Config.Schema is empty.
	DefaultSchema = "public"
	// DefaultPollInterval is Config.PollInterval's default. Watermill's is
	// 1s; a tenth of that keeps a command's round trip through the broker
	// short, for one cheap indexed query per subscription per interval.
	DefaultPollInterval = 100 * time.Millisecond
	// DefaultResendInterval is Config.ResendInterval's default.
	DefaultResendInterval = time.Second
	// DefaultAckDeadline is Config.AckDeadline's default.
	DefaultAckDeadline = 30 * time.Second
	// DefaultBatchSize is Config.BatchSize's default.
	DefaultBatchSize = 100
)

// maxIdentifierLen is PostgreSQL's NAMEDATALEN-1: the server silently
// truncates longer names, which could make two topics share a table.
const maxIdentifierLen = 63

// maxConsumerGroupLen is the width of the offsets table's consumer_group
// column (VARCHAR(255) in watermill-sql).
const maxConsumerGroupLen = 255

// Table name prefixes, as watermill-sql names its tables.
const (
	messagesPrefix = "watermill_"
	offsetsPrefix  = "watermill_offsets_"
)

// Config configures a broker. The zero value is ready to use: tables in
// schema public, created on first use.
type Config struct {
	// Schema is the PostgreSQL schema of the topic tables; default
	// "public". It is created if missing, unless SkipInitializeSchema. Any
	// name is valid (it is quoted), up to 63 bytes.
	Schema string

	// PollInterval is how long a subscription waits before querying again
	// after finding no message. Default DefaultPollInterval.
	PollInterval time.Duration

	// ResendInterval is how long before a nacked message is delivered
	// again. Default DefaultResendInterval.
	ResendInterval time.Duration

	// AckDeadline is how long a handler has to ack a message; past it the
	// message is delivered again. The read transaction stays open until
	// the ack, so the deadline also bounds how long a stuck handler holds
	// one back. Default DefaultAckDeadline.
	AckDeadline time.Duration

	// BatchSize is how many messages a subscription reads per query. A
	// crash redelivers at most the unacked rest of a batch. Default
	// DefaultBatchSize.
	BatchSize int

	// SkipInitializeSchema, when true, expects the schema and every
	// topic's tables to exist: for a database user without CREATE rights.
	// By default the schema is created by New and each topic's tables on
	// first publish or subscribe.
	SkipInitializeSchema bool

	// Logger receives the broker's logs. Default: none.
	Logger watermill.LoggerAdapter
}

// Validate reports every invalid field at once, joined with errors.Join.
// The zero Config is valid.
func (c Config) Validate() error {
	var errs []error
	if len(c.Schema) > maxIdentifierLen {
		errs = append(errs, fmt.Errorf("sqlbroker: Schema %q is longer than %d bytes; PostgreSQL would truncate it", c.Schema, maxIdentifierLen))
	}
	if strings.ContainsRune(c.Schema, 0) {
		errs = append(errs, errors.New("sqlbroker: Schema must not contain a NUL byte"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"PollInterval", c.PollInterval}, {"ResendInterval", c.ResendInterval}, {"AckDeadline", c.AckDeadline}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("sqlbroker: %s is negative (%s); leave it zero for the default", d.name, d.v))
		}
	}
	if c.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("sqlbroker: BatchSize is negative (%d); leave it zero for the default", c.BatchSize))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.Schema == "" {
		c.Schema = DefaultSchema
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.ResendInterval == 0 {
		c.ResendInterval = DefaultResendInterval
	}
	if c.AckDeadline == 0 {
		c.AckDeadline = DefaultAckDeadline
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
}

// schemaAdapter stores payloads as bytea, since the runtime's payloads are
// protobuf binary by default and watermill-sql's default column is json,
// and puts the tables in the configured schema.
func (c Config) schemaAdapter() watermillsql.SchemaAdapter {
	return watermillsql.DefaultPostgreSQLSchema{
		GenerateMessagesTableName: func(topic string) string { return c.table(messagesPrefix, topic) },
		GeneratePayloadType:       func(string) string { return "BYTEA" },
		SubscribeBatchSize:        c.BatchSize,
	}
}

func (c Config) offsetsAdapter() watermillsql.OffsetsAdapter {
	return watermillsql.DefaultPostgreSQLOffsetsAdapter{
		GenerateMessagesOffsetsTableName: func(topic string) string { return c.table(offsetsPrefix, topic) },
	}
}

// table returns the quoted, schema-qualified name of a topic's table.
func (c Config) table(prefix, topic string) string {
	return pgx.Identifier{c.Schema, tableName(prefix, topic)}.Sanitize()
}

// hashSuffixLen is the length of "_" and the 16 hex digits of a 64-bit hash.
const hashSuffixLen = 17

// tableName is prefix+topic, or, when that exceeds PostgreSQL's identifier
// limit, its head followed by a hash of the whole topic: two long topics
// with a common beginning still get tables of their own.
func tableName(prefix, topic string) string {
	name := prefix + topic
	if len(name) <= maxIdentifierLen {
		return name
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(topic))
	return fmt.Sprintf("%s_%016x", name[:maxIdentifierLen-hashSuffixLen], h.Sum64())
}
