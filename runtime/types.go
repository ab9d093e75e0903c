package runtime

import (
	"cmp"
	"errors"
	"fmt"
	"time"
)

// MessageType describes one event or command type to the runtime. Generated
// code declares one per annotated message; user code rarely builds one.
type MessageType struct {
	// Name is the stable type name written in every envelope.
	Name string
	// Aliases are former type names accepted when decoding.
	Aliases []string
	// Version is the payload's schema version.
	Version uint32
	// Topic is where messages of this type are published.
	Topic string
	// AggregateType is the type of the owning aggregate, if any.
	AggregateType string
	// Command is true for commands, false for events.
	Command bool
	// RetryOnConflict, for a command, lets a Repository run it again on
	// freshly loaded state when appending its events hits a concurrency
	// conflict.
	RetryOnConflict bool
	// Delivery is the policy for handling messages of this type.
	Delivery DeliveryPolicy
}

// Ordering is the ordering guarantee of a consumer.
type Ordering int

// The orderings a consumer may ask for.
const (
	// OrderingDefault is OrderingPartitionKey.
	OrderingDefault Ordering = iota
	// OrderingNone handles messages in any order: with MaxInFlight above
	// 1, any of them at once.
	OrderingNone
	// OrderingPartitionKey handles messages of one partition key (the
	// envelope's PartitionKey, which defaults to its Subject) one at a time
	// in order; messages of different keys may be handled at once.
	OrderingPartitionKey
	// OrderingTopic handles all messages of the topic one at a time in
	// order, whatever MaxInFlight says.
	OrderingTopic
)

// DeliveryPolicy says how a consumer handles messages. Zero fields take the
// defaults documented on each field.
type DeliveryPolicy struct {
	// MaxAttempts counts the first attempt; after the last the message is
	// dead-lettered. Default 5.
	MaxAttempts int
	// InitialBackoff is the wait before the first retry. Default 100ms.
	InitialBackoff time.Duration
	// MaxBackoff bounds the wait between retries. Default 10s.
	MaxBackoff time.Duration
	// BackoffMultiplier grows the wait after each retry. Default 2.
	BackoffMultiplier float64
	// DeadLetterTopic receives messages that failed every attempt or could
	// not be decoded. Default RouterConfig.DeadLetterTopic.
	DeadLetterTopic string
	// MaxInFlight bounds the messages a handler handles at once. Default
	// 1. Above 1, on a subscriber that can deliver ahead
	// (PrefetchSubscriber: mem://, nats://, redis://, amqp://), messages of
	// different ordering keys are handled concurrently, up to MaxInFlight,
	// while those of one key stay one at a time in order, and the broker's
	// messages are acknowledged in the order it delivered them. Other
	// brokers deliver one message at a time.
	MaxInFlight int
	// MaxPerSecond throttles handling. 0 means unlimited.
	MaxPerSecond int
	// ConsumerGroup names the subscription on brokers with consumer groups.
	ConsumerGroup string
	// Ordering is the ordering guarantee.
	Ordering Ordering
	// DedupWindow acknowledges, without handling, messages whose id was
	// handled within the window. It needs a deduplication store.
	DedupWindow time.Duration
}

// Defaults of DeliveryPolicy.
const (
	DefaultMaxAttempts       = 5
	DefaultInitialBackoff    = 100 * time.Millisecond
	DefaultMaxBackoff        = 10 * time.Second
	DefaultBackoffMultiplier = 2.0
)

func (p DeliveryPolicy) withDefaults(deadLetterTopic string) DeliveryPolicy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.InitialBackoff == 0 {
		p.InitialBackoff = DefaultInitialBackoff
	}
	if p.MaxBackoff == 0 {
		p.MaxBackoff = DefaultMaxBackoff
	}
	if p.BackoffMultiplier == 0 {
		p.BackoffMultiplier = DefaultBackoffMultiplier
	}
	if p.DeadLetterTopic == "" {
		p.DeadLetterTopic = deadLetterTopic
	}
	return p
}

// override returns p with the non-zero fields of o.
func (p DeliveryPolicy) override(o DeliveryPolicy) DeliveryPolicy {
	p.MaxAttempts = cmp.Or(o.MaxAttempts, p.MaxAttempts)
	p.InitialBackoff = cmp.Or(o.InitialBackoff, p.InitialBackoff)
	p.MaxBackoff = cmp.Or(o.MaxBackoff, p.MaxBackoff)
	p.BackoffMultiplier = cmp.Or(o.BackoffMultiplier, p.BackoffMultiplier)
	p.DeadLetterTopic = cmp.Or(o.DeadLetterTopic, p.DeadLetterTopic)
	p.MaxInFlight = cmp.Or(o.MaxInFlight, p.MaxInFlight)
	p.MaxPerSecond = cmp.Or(o.MaxPerSecond, p.MaxPerSecond)
	p.ConsumerGroup = cmp.Or(o.ConsumerGroup, p.ConsumerGroup)
	p.Ordering = cmp.Or(o.Ordering, p.Ordering)
	p.DedupWindow = cmp.Or(o.DedupWindow, p.DedupWindow)
	return p
}

// Validate reports the fields out of range.
func (p DeliveryPolicy) Validate() error {
	var errs []error
	if p.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("MaxAttempts %d is negative", p.MaxAttempts))
	}
	if p.InitialBackoff < 0 || p.MaxBackoff < 0 || p.DedupWindow < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	// Written so that NaN fails too.
	if p.BackoffMultiplier != 0 && !(p.BackoffMultiplier >= 1) {
		errs = append(errs, fmt.Errorf("BackoffMultiplier %g is below 1", p.BackoffMultiplier))
	}
	if p.MaxPerSecond < 0 || p.MaxInFlight < 0 {
		errs = append(errs, errors.New("MaxPerSecond and MaxInFlight must not be negative"))
	}
	return errors.Join(errs...)
}

// backoff returns the wait before retry number n (1 for the first retry).
func (p DeliveryPolicy) backoff(n int) time.Duration {
	d := float64(p.InitialBackoff)
	for i := 1; i < n; i++ {
		d *= p.BackoffMultiplier
		if d >= float64(p.MaxBackoff) {
			return p.MaxBackoff
		}
	}
	return min(time.Duration(d), p.MaxBackoff)
}

// ErrUnimplemented is returned by the Unimplemented command handlers that
// generated code provides. The router dead-letters such a command at once:
// retrying cannot help.
var ErrUnimplemented = errors.New("command handler not implemented")

// ErrNilCommand is returned by generated repositories and scenarios for a
// nil command.
var ErrNilCommand = errors.New("nil command")

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent wraps err so that the router dead-letters the message at once
// instead of retrying it. Handlers return it for input they will never accept.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked
// Permanent or is ErrUnimplemented.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p) || errors.Is(err, ErrUnimplemented)
}
