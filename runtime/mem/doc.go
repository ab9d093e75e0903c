// Package mem is the embedded default message bus of protoc-gen-eda: an
// in-process Watermill Pub/Sub that needs no server.
//
// # Guarantees
//
//   - Order per subscription. Messages published one after another (by one
//     goroutine, or otherwise ordered by happens-before) reach every
//     subscription in that order, and a subscription hands out its next
//     message only after the previous one was acked. A Nacked message is
//     delivered again, after Config.RedeliveryDelay, before anything queued
//     behind it. Per-key ordering of events therefore holds as long as a key's
//     events are published in order.
//   - Fan-out. Every subscription of a topic receives every message published
//     to that topic after it subscribed. There are no consumer groups: two
//     router handlers subscribed to the same topic each see all messages.
//   - At-most-once across restarts. Queues live in memory; whatever is queued
//     or in flight when the process stops (or the PubSub is closed) is lost.
//     Within one PubSub's lifetime a message is redelivered until it is acked,
//     so handlers that Nack must be idempotent. A publisher that keeps its
//     messages durably until they are handled (the outbox relay) gets
//     at-least-once through confirmed publishing; see below.
//   - No subscriber, no delivery. A message published to a topic that has no
//     subscription at that moment is dropped, as GoChannel does. Start the
//     router (wait for Router.Running) before publishing. Config.Replay
//     changes this for tests.
//   - Publish never waits for handling. It only enqueues, so a handler may
//     publish to any topic, including one whose handler is busy or its own,
//     without deadlocking (unless Config.MaxQueued bounds the queues; see
//     there). Confirmed publishing is the exception, and is not for handlers.
//
// # Confirmed publishing
//
// Publish returns once the messages are enqueued, so an outbox relay that
// deletes its rows when Publish returns would lose every message still queued
// when the process dies. PubSub.PublishConfirmed publishes like Publish and
// then waits until every subscription that received a copy has acked it
// (a handler that dead-letters a message acks it too); a Nacked copy counts
// once redelivered and acked. It fails, wrapping ErrUnconfirmed, if a copy is
// discarded first (its subscription ended, or the PubSub closed) or its
// context ends: the caller keeps the messages and publishes them again
// later. A topic without subscriptions confirms at once, as its messages are
// dropped.
//
// A relay publishes a batch as runs of messages to several topics. Waiting
// after each run would serialize the batch on one topic's handlers at a
// time, so confirmation also comes in two phases: PubSub.NewConfirmation,
// then Confirmation.Publish for every run, then one Confirmation.Wait. That
// was chosen over a variant taking a slice of (topic, messages) runs because
// the relay's existing loop stays as it is, with a Confirmation in place of
// the publisher, and no run type is added. Confirmation.Publish shares
// Publish's code, so ordering and copying are the same; plain Publish pays a
// nil check per copy for it.
//
// # Why not GoChannel
//
// Watermill's GoChannel is the usual in-memory choice, but neither of its
// delivery modes suits event handlers. With its default configuration
// Publish starts a goroutine per message per subscriber, so messages race
// each other to the subscriber and a sizeable share of one key's events
// arrive out of order.
// With BlockPublishUntilSubscriberAck the order holds, but Publish keeps a
// per-topic lock until the subscriber acks; a handler that publishes, directly
// or through a chain of handlers, to a topic whose handler is busy then waits
// forever, and sagas do exactly that. This package keeps one FIFO queue per
// subscription and one delivery goroutine per subscription instead, which
// gives GoChannel's blocking mode ordering without coupling publishers to
// consumers.
//
// # Lifecycle
//
// One PubSub serves the whole process. Watermill's Router closes the
// subscribers of its handlers when it is closed (and a handler's publisher
// when the handler stops), which for a shared PubSub means the bus: close
// routers only at shutdown, or hand them a wrapper whose Close does nothing.
package mem
