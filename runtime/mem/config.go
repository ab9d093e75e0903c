package mem

import (
	"errors"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

// DefaultRedeliveryDelay is the RedeliveryDelay used when Config leaves it
// zero. It is long enough that a handler failing on every attempt does not
// spin a CPU, and short enough that a transient failure costs little latency
// (Watermill's conformance suite Nacks hundreds of times in a row).
const DefaultRedeliveryDelay = 10 * time.Millisecond

// Config configures a PubSub. The zero value is ready to use.
type Config struct {
	// RedeliveryDelay is how long a subscription waits after a Nack before
	// delivering the same message again. Nothing queued behind the message is
	// delivered in the meantime, so the delay bounds how fast a failing
	// handler retries, not how fast it falls behind. Zero means
	// DefaultRedeliveryDelay; negative values are invalid.
	RedeliveryDelay time.Duration

	// MaxQueued bounds the number of messages waiting in (or being handled
	// from) each subscription's queue. Zero, the default, means unbounded.
	//
	// With a bound, Publish blocks while any subscription of the topic is
	// full, until its handler acks a message, the subscription ends or the
	// PubSub is closed. That is backpressure: a slow handler slows its
	// publishers down instead of growing memory. It also reintroduces the
	// deadlock this package exists to avoid: if handlers publish to each
	// other's topics in a cycle (a saga does), all queues of the cycle can be
	// full with every handler blocked in Publish. Only set a bound when no
	// handler publishes, directly or through a chain, to a topic that can feed
	// back into it. Negative values are invalid.
	MaxQueued int

	// Replay makes every subscription first receive all messages published
	// to its topic before it subscribed, instead of those messages being
	// dropped. Messages are retained for the lifetime of the PubSub, so memory
	// grows with every publish: this exists for tests and for Watermill's
	// conformance suite, which publishes before subscribing, and corresponds
	// to GoChannel's Persistent option. Cannot be combined with MaxQueued.
	Replay bool

	// Logger receives subscription lifecycle events; nothing is logged per
	// message. Nil means watermill.NopLogger.
	Logger watermill.LoggerAdapter
}

// Validate reports every invalid field at once, joined with errors.Join, so
// a caller fixes a config in one round. Zero values are valid.
func (c Config) Validate() error {
	var errs []error
	if c.RedeliveryDelay < 0 {
		errs = append(errs, errors.New("mem: RedeliveryDelay must not be negative"))
	}
	if c.MaxQueued < 0 {
		errs = append(errs, errors.New("mem: MaxQueued must not be negative"))
	}
	if c.Replay && c.MaxQueued > 0 {
		// A replayed backlog would either exceed the bound or block
		// Subscribe, and Replay makes memory unbounded anyway.
		errs = append(errs, errors.New("mem: Replay cannot be combined with MaxQueued"))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.RedeliveryDelay == 0 {
		c.RedeliveryDelay = DefaultRedeliveryDelay
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
}
