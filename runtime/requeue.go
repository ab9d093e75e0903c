package runtime

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// MetaRequeued counts how many times a message was requeued from a
// dead-letter topic.
const MetaRequeued = "eda_requeued"

// RequeueOptions configure Requeue.
type RequeueOptions struct {
	// Filter selects the dead letters to requeue. The others are published
	// back to the end of the dead-letter topic and stay there. Nil
	// requeues all.
	Filter func(*message.Message) bool
	// Max stops after this many requeued messages. 0 means no limit.
	Max int
	// Idle stops after this long without a message: the topic is drained.
	// Default 2s.
	Idle time.Duration
	// Logger receives a line per message. Default: none.
	Logger watermill.LoggerAdapter
}

// RequeueStats counts what Requeue did.
type RequeueStats struct {
	// Requeued counts messages published back to their original topic.
	Requeued int
	// Kept counts messages left on the dead-letter topic: filtered out, or
	// without the original topic in their metadata.
	Kept int
	// ByTopic counts the requeued messages per original topic.
	ByTopic map[string]int
}

// Requeue moves dead letters back to the topics they were dead-lettered
// from, after the cause (a bug, an outage) is fixed. It reads
// deadLetterTopic through sub until the topic is idle or read through (a
// message it put back comes round again), Max messages are requeued, or ctx
// ends, and, for each message the filter selects,
// publishes it to the topic named in its MetaDeadLetterTopic metadata with
// the same id, its dead-letter metadata removed and MetaRequeued
// incremented, then acknowledges it. A message is acknowledged only after
// its copy is published, so a crash loses nothing (a message may then be
// requeued twice: consumers deduplicate by id).
//
// sub should be a subscriber of a consumer group of its own, so that
// requeueing does not compete with other readers of the dead-letter topic.
func Requeue(ctx context.Context, sub message.Subscriber, pub message.Publisher, deadLetterTopic string, opts RequeueOptions) (RequeueStats, error) {
	stats := RequeueStats{ByTopic: map[string]int{}}
	if opts.Idle <= 0 {
		opts.Idle = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = watermill.NopLogger{}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, err := sub.Subscribe(ctx, deadLetterTopic)
	if err != nil {
		return stats, fmt.Errorf("subscribe to %s: %w", deadLetterTopic, err)
	}
	idle := time.NewTimer(opts.Idle)
	defer idle.Stop()
	// kept holds the messages put back in this run: meeting one again
	// means the whole topic was read.
	kept := map[string]bool{}
	for opts.Max == 0 || stats.Requeued < opts.Max {
		var msg *message.Message
		select {
		case <-ctx.Done():
			return stats, ctx.Err()
		case <-idle.C:
			return stats, nil
		case m, ok := <-msgs:
			if !ok {
				return stats, nil
			}
			msg = m
		}
		if kept[msg.UUID] {
			msg.Nack()
			return stats, nil
		}
		if err := requeueOne(msg, pub, deadLetterTopic, opts, &stats, kept); err != nil {
			msg.Nack()
			return stats, err
		}
		msg.Ack()
		idle.Reset(opts.Idle)
	}
	return stats, nil
}

// requeueOne publishes msg's copy to its original topic, or back to the
// dead-letter topic when it is not to be requeued.
func requeueOne(msg *message.Message, pub message.Publisher, deadLetterTopic string, opts RequeueOptions, stats *RequeueStats, kept map[string]bool) error {
	target := msg.Metadata.Get(MetaDeadLetterTopic)
	if target == "" || (opts.Filter != nil && !opts.Filter(msg)) {
		if err := pub.Publish(deadLetterTopic, msg.Copy()); err != nil {
			return fmt.Errorf("put message %s back on %s: %w", msg.UUID, deadLetterTopic, err)
		}
		stats.Kept++
		kept[msg.UUID] = true
		return nil
	}
	out := msg.Copy()
	for _, key := range []string{MetaDeadLetterReason, MetaDeadLetterTopic, MetaDeadLetterHandler, MetaDeadLetterAttempt} {
		delete(out.Metadata, key)
	}
	n, _ := strconv.Atoi(msg.Metadata.Get(MetaRequeued))
	out.Metadata.Set(MetaRequeued, strconv.Itoa(n+1))
	if err := pub.Publish(target, out); err != nil {
		return fmt.Errorf("requeue message %s to %s: %w", msg.UUID, target, err)
	}
	stats.Requeued++
	stats.ByTopic[target]++
	opts.Logger.Info("Requeued dead letter", watermill.LogFields{"message_uuid": msg.UUID, "topic": target,
		"reason": msg.Metadata.Get(MetaDeadLetterReason)})
	return nil
}
