package runtime

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Batch is a message.Publisher that keeps what is published to it until
// Flush publishes it, with one Publish call per topic. A Publisher (and so
// a generated publisher) over a Batch publishes asynchronously: each
// PublishX call only encodes and queues its message, and Flush waits until
// the broker has stored them all. Brokers send the messages of one call
// without waiting for each acknowledgement (NATS JetStream pipelines them,
// Kafka and RabbitMQ send them together, PostgreSQL inserts them in one
// statement), which is the fast way to publish many messages.
//
//	batch := runtime.NewBatch(broker.Publisher)
//	pub, err := runtime.NewPublisher(batch, runtime.PublisherConfig{Source: "importer"})
//	events := ordersv1.NewOrderEventPublisher(pub)
//	for _, o := range orders {
//		if err := events.PublishOrderPlaced(ctx, o); err != nil { ... } // encoded and queued
//	}
//	if err := batch.Flush(); err != nil { ... } // published and stored, or kept
//
// A Batch is safe for concurrent use. It holds every message until Flush,
// so a producer of many messages flushes every few thousand.
type Batch struct {
	pub message.Publisher

	mu     sync.Mutex
	topics []string // in the order of their first message
	queued map[string][]*message.Message
	n      int
	closed bool
}

// NewBatch returns an empty Batch over pub.
func NewBatch(pub message.Publisher) *Batch {
	return &Batch{pub: pub, queued: map[string][]*message.Message{}}
}

// ErrBatchClosed is returned by Publish on a closed Batch.
var ErrBatchClosed = errors.New("runtime.Batch is closed")

// Publish queues msgs for topic; Flush publishes them. It does not wait for
// the broker and fails only on a closed Batch.
func (b *Batch) Publish(topic string, msgs ...*message.Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrBatchClosed
	}
	q, ok := b.queued[topic]
	if !ok {
		b.topics = append(b.topics, topic)
	}
	b.queued[topic] = append(q, msgs...)
	b.n += len(msgs)
	return nil
}

// Len returns the number of messages queued.
func (b *Batch) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

// Flush publishes the queued messages, the messages of each topic in one
// Publish call and in the order they were queued, and returns once the
// broker stored them all. Messages queued while it runs wait for the next
// Flush.
//
// When the broker refuses a topic's messages, Flush keeps them, and those of
// the topics it has not tried yet, queued ahead of newer ones, and returns
// the error: the next Flush publishes them again. Some of them may already
// have been stored; they keep their message ids, so the broker's duplicate
// window (NATS) or the consumers' deduplication drops the second copy.
func (b *Batch) Flush() error {
	b.mu.Lock()
	topics, queued := b.topics, b.queued
	b.topics, b.queued, b.n = nil, map[string][]*message.Message{}, 0
	b.mu.Unlock()

	for i, topic := range topics {
		msgs := queued[topic]
		if err := b.pub.Publish(topic, msgs...); err != nil {
			b.requeue(topics[i:], queued)
			return fmt.Errorf("flush %d messages to %s: %w", len(msgs), topic, err)
		}
	}
	return nil
}

// requeue puts the messages of topics back in front of what was queued
// since Flush took them.
func (b *Batch) requeue(topics []string, queued map[string][]*message.Message) {
	b.mu.Lock()
	defer b.mu.Unlock()
	order := append([]string(nil), topics...)
	for _, t := range b.topics {
		if !slices.Contains(topics, t) {
			order = append(order, t)
		}
	}
	for _, t := range topics {
		msgs := queued[t]
		b.queued[t] = append(msgs[:len(msgs):len(msgs)], b.queued[t]...)
		b.n += len(msgs)
	}
	b.topics = order
}

// Close flushes what is queued and makes later Publish calls fail. It does
// not close the underlying publisher, which the Batch does not own.
func (b *Batch) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return b.Flush()
}

var _ message.Publisher = (*Batch)(nil)
