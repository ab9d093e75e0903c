package mem

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill/message"
)

// ErrUnconfirmed is wrapped by every error of Confirmation.Wait, and so of
// PublishConfirmed once its messages are enqueued: the messages may or may
// not have been handled, so the caller must publish them again later
// (handlers deduplicate by message UUID). The error also wraps the cause:
// ErrClosed when the PubSub was closed, the context's error when the wait
// was cut short.
var ErrUnconfirmed = errors.New("mem: publish not confirmed")

// errSubscriptionEnded is the cause of a discarded copy whose subscription's
// context was cancelled.
var errSubscriptionEnded = errors.New("mem: subscription ended")

// errWaited rejects publishing through a Confirmation that is being waited
// on: its outcome could already have been decided without those messages.
var errWaited = errors.New("mem: Confirmation.Publish after Wait")

// PublishConfirmed is Publish that waits until every subscription that
// received a copy has had it acknowledged by its consumer, or ctx is done.
// It returns an error if a copy was discarded before being acknowledged (its
// subscription ended or the PubSub closed) or ctx ended first: the caller
// must then assume the message may not have been handled and publish it
// again later (handlers deduplicate by message UUID). Messages to a topic
// with no subscription are dropped as with Publish and count as confirmed.
//
// A Nacked copy is redelivered as usual and counts only once acked; a handler
// that gives up and dead-letters a message acks it, so that counts too. Do
// not call it from a handler whose own subscription (or one it waits on, through
// a chain of handlers) receives the messages: it would wait for itself until
// ctx ends. To publish to several topics and wait once, use NewConfirmation.
func (ps *PubSub) PublishConfirmed(ctx context.Context, topic string, msgs ...*message.Message) error {
	if ctx == nil {
		return errors.New("mem: PublishConfirmed with nil context")
	}
	if err := ctx.Err(); err != nil {
		// Nothing enqueued yet: failing now spares handlers a message the
		// caller will publish again anyway.
		return fmt.Errorf("%w: %w", ErrUnconfirmed, err)
	}
	c := ps.NewConfirmation()
	if err := c.Publish(topic, msgs...); err != nil {
		return err
	}
	return c.Wait(ctx)
}

// Confirmation is a confirmed publish in two phases: Publish enqueues, as
// many times and to as many topics as needed, then Wait waits once for every
// copy enqueued through it to be acknowledged. An outbox relay enqueues
// every run of a batch first and then waits, so the handlers of different
// topics work on the batch in parallel instead of one run at a time.
//
// A Confirmation is safe for concurrent use but serves one batch: Publish
// fails once Wait has been called. Create it with PubSub.NewConfirmation.
type Confirmation struct {
	ps *PubSub

	// pending counts the copies enqueued and not yet acked, plus one until
	// Wait is first called, so that it cannot reach zero while the batch is
	// still being published (a fast handler could ack the first copies
	// before the next Publish).
	pending atomic.Int64

	once sync.Once
	err  error         // written once, before done is closed
	done chan struct{} // closed when every copy is acked or one is lost

	// mu makes Publish and the sealing in Wait exclusive, so no copy is
	// enqueued after Wait dropped its extra count.
	mu     sync.Mutex
	sealed bool
}

// NewConfirmation returns an empty Confirmation publishing to ps. A
// Confirmation waited on with nothing published through it is confirmed.
func (ps *PubSub) NewConfirmation() *Confirmation {
	c := &Confirmation{ps: ps, done: make(chan struct{})}
	c.pending.Store(1)
	return c
}

// Publish enqueues msgs to topic exactly as PubSub.Publish does, ordering
// included, and makes Wait wait for every copy. An error is Publish's (it
// also fails the confirmation, since some copies may have been enqueued),
// or a call after Wait. With Config.MaxQueued it blocks like PubSub.Publish,
// and a concurrent Wait waits for it to return.
func (c *Confirmation) Publish(topic string, msgs ...*message.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sealed {
		return errWaited
	}
	if err := c.ps.publish(topic, msgs, c); err != nil {
		c.finish(fmt.Errorf("%w: %w", ErrUnconfirmed, err))
		return err
	}
	return nil
}

// Wait waits until every copy published through c has been acknowledged by
// its consumer, and returns nil then. It returns an error wrapping
// ErrUnconfirmed as soon as a copy is discarded unacknowledged (its
// subscription ended, or the PubSub was closed), or when ctx is done first;
// the messages must then be published again later. Wait may be called again
// after a ctx error, with a new ctx, and returns the same outcome to every
// caller.
func (c *Confirmation) Wait(ctx context.Context) error {
	if ctx == nil {
		return errors.New("mem: Confirmation.Wait with nil context")
	}
	c.mu.Lock()
	if !c.sealed {
		c.sealed = true
		c.release()
	}
	c.mu.Unlock()

	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
	}
	// Both may be ready: a decided outcome is worth more than the timeout.
	select {
	case <-c.done:
		return c.err
	default:
		return fmt.Errorf("%w: %w", ErrUnconfirmed, ctx.Err())
	}
}

// release drops one count: a copy was acked, or Wait sealed the batch.
func (c *Confirmation) release() {
	if c.pending.Add(-1) == 0 {
		c.finish(nil)
	}
}

// finish decides the outcome; the first decision stands. A failure decides
// at once, without waiting for the other copies: the whole batch is
// published again anyway.
func (c *Confirmation) finish(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.done)
	})
}
