package runtime

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/protoc-gen-eda/eda/runtime/mem"
)

// OutboxSource is the part of an EventStore a Relay reads.
type OutboxSource interface {
	RelayOutbox(ctx context.Context, limit int, publish func([]OutboxMessage) error) (int, error)
}

// RelayConfig configures a Relay.
type RelayConfig struct {
	// Publisher is the broker the outbox is published to. Required.
	Publisher message.Publisher
	// BatchSize is the most messages published per claim of the outbox.
	// Default 100.
	BatchSize int
	// PollInterval is how often the relay looks for messages written by
	// other processes, and for delayed messages (OutboxMessage.DeliverAt,
	// saga timeouts) that have come due, and how long it waits after an
	// error: a delayed message is relayed up to PollInterval after its
	// time. Messages appended through a store that implements
	// OutboxNotifier are relayed at once. Default 100ms.
	PollInterval time.Duration
	// Logger receives relay errors, which the relay retries. Default: none.
	Logger watermill.LoggerAdapter
}

// Defaults of RelayConfig.
const (
	DefaultRelayBatchSize    = 100
	DefaultRelayPollInterval = 100 * time.Millisecond
)

// Validate reports what is missing or out of range.
func (c RelayConfig) Validate() error {
	var errs []error
	if c.Publisher == nil {
		errs = append(errs, errors.New("RelayConfig.Publisher is required: the broker to publish the outbox to"))
	}
	if c.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("RelayConfig.BatchSize is %d: it must not be negative", c.BatchSize))
	}
	if c.PollInterval < 0 {
		errs = append(errs, fmt.Errorf("RelayConfig.PollInterval is %v: it must not be negative", c.PollInterval))
	}
	return errors.Join(errs...)
}

// Relay publishes the outbox of an event store to a broker: in outbox order,
// at least once (a message whose publication is interrupted is published
// again), so consumers deduplicate by message id. A delayed message is
// published once due, by the poll that finds it so (see
// EventStore.RelayOutbox). On the in-process bus
// (*mem.PubSub) a message counts as published once its handlers have
// acknowledged it, so the outbox also covers a crash with messages queued in
// memory; start the relay after the router is running (Router.Running), since
// the bus drops messages of topics nobody subscribes to yet. Several relays may run
// against one store: the store's claim keeps them from publishing the same
// messages at the same time.
type Relay struct {
	src       OutboxSource
	cfg       RelayConfig
	ready     <-chan struct{}
	published atomic.Uint64
}

// NewRelay returns a relay of src's outbox.
func NewRelay(src OutboxSource, cfg RelayConfig) (*Relay, error) {
	if src == nil {
		return nil, errors.New("runtime.NewRelay: nil OutboxSource")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultRelayBatchSize
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultRelayPollInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = watermill.NopLogger{}
	}
	r := &Relay{src: src, cfg: cfg}
	if n, ok := src.(OutboxNotifier); ok {
		r.ready = n.OutboxReady()
	}
	return r, nil
}

// Published is the number of messages the relay has published.
func (r *Relay) Published() uint64 { return r.published.Load() }

// Run relays until ctx is done, then returns nil. Errors are logged and
// retried after PollInterval, except a closed store, which ends Run with
// the error.
func (r *Relay) Run(ctx context.Context) error {
	poll := time.NewTicker(r.cfg.PollInterval)
	defer poll.Stop()
	for {
		_, err := r.Flush(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrStoreClosed):
			return err
		case err != nil:
			r.cfg.Logger.Error("Cannot relay the outbox; retrying", err, nil)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.ready:
		case <-poll.C:
		}
	}
}

// Flush publishes waiting messages until the outbox is empty or another
// relay holds its claim, and returns how many it published.
func (r *Relay) Flush(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := r.src.RelayOutbox(ctx, r.cfg.BatchSize, func(batch []OutboxMessage) error { return r.publish(ctx, batch) })
		total += n
		if err != nil {
			return total, fmt.Errorf("relay outbox: %w", err)
		}
		if n < r.cfg.BatchSize {
			return total, nil
		}
	}
}

// publish publishes one batch in order, a run of messages to one topic per
// call, so that brokers that batch can. On the in-process bus it waits until
// every handler has acknowledged the batch before the store deletes it: a
// process that dies with a message still queued in memory publishes it again
// after restart instead of losing it.
func (r *Relay) publish(ctx context.Context, batch []OutboxMessage) error {
	msgs := make([]*message.Message, len(batch))
	for i, m := range batch {
		md, err := DecodeMetadata(m.Metadata)
		if err != nil {
			return fmt.Errorf("outbox message %s at position %d: %w", m.UUID, m.Position, err)
		}
		msgs[i] = message.NewMessage(m.UUID, m.Payload)
		msgs[i].Metadata = md
	}
	publish := r.cfg.Publisher.Publish
	var confirm *mem.Confirmation
	if bus, ok := r.cfg.Publisher.(*mem.PubSub); ok {
		confirm = bus.NewConfirmation()
		publish = confirm.Publish
	}
	for start := 0; start < len(batch); {
		end := start + 1
		for end < len(batch) && batch[end].Topic == batch[start].Topic {
			end++
		}
		if err := publish(batch[start].Topic, msgs[start:end]...); err != nil {
			return fmt.Errorf("publish to %s: %w", batch[start].Topic, err)
		}
		start = end
	}
	if confirm != nil {
		if err := confirm.Wait(ctx); err != nil {
			return err
		}
	}
	r.published.Add(uint64(len(batch)))
	return nil
}
