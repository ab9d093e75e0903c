package nats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	natsgo "github.com/nats-io/nats.go"
)

// subscriber subscribes one consumer group, on a connection of its own.
//
// It is not watermill-nats' Subscriber, whose v2.1.3 closes a
// subscription's channel while a message callback may still send on it: a
// "send on closed channel" panic when a subscription ends with a message
// waiting to be consumed (the race detector reports it in Watermill's own
// suite). Here a subscription's channel is closed only once its callbacks
// have returned. Messages are read with watermill-nats' NATSMarshaler, so
// the wire format is the same.
type subscriber struct {
	b       *broker
	conn    *natsgo.Conn
	js      natsgo.JetStreamContext
	group   string
	durable string

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	running sync.WaitGroup // one per subscription until its channel is closed
}

// newSubscriber returns a subscriber of group (see the package doc).
func (b *broker) newSubscriber(group string) (message.Subscriber, error) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return nil, errors.New("nats broker is closed")
	}
	conn, err := b.connect(context.Background())
	if err != nil {
		return nil, err
	}
	js, err := conn.JetStream()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("JetStream: %w", err)
	}
	s := &subscriber{b: b, conn: conn, js: js, group: group, closing: make(chan struct{})}
	if group != "" {
		s.durable = streamName(group)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		conn.Close()
		return nil, errors.New("nats broker is closed")
	}
	b.subs = append(b.subs, s)
	return s, nil
}

// Subscribe delivers the messages of topic to the subscriber's group until
// ctx ends or the subscriber is closed; then the channel is closed.
func (s *subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	return s.subscribe(ctx, topic, 0)
}

// SubscribePrefetch is Subscribe with up to n messages delivered and not
// yet acknowledged (runtime.PrefetchSubscriber), in the order JetStream
// pushes them; redeliveries come behind newer messages. The consumer's
// MaxAckPending also bounds what JetStream sends (shared by the group's
// instances): keep it at least n times the instances.
func (s *subscriber) SubscribePrefetch(ctx context.Context, topic string, n int) (<-chan *message.Message, error) {
	if n < 1 {
		return nil, fmt.Errorf("nats: prefetch %d: want at least 1", n)
	}
	return s.subscribe(ctx, topic, n)
}

func (s *subscriber) subscribe(ctx context.Context, topic string, prefetch int) (<-chan *message.Message, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, errors.New("nats subscriber is closed")
	}
	subject, err := s.b.subject(s.js, topic)
	if err != nil {
		return nil, err
	}
	cfg := s.b.cfg
	opts := []natsgo.SubOpt{natsgo.ManualAck()}
	count := cfg.SubscribersCount
	if s.durable != "" {
		stream, err := s.b.ensureConsumer(s.js, subject, s.durable)
		if err != nil {
			return nil, fmt.Errorf("subscribe %s to %s: %w", s.group, topic, err)
		}
		opts = append(opts, natsgo.Bind(stream, s.durable))
	} else {
		opts = append(opts, natsgo.DeliverAll(), natsgo.AckExplicit(), natsgo.AckWait(cfg.AckWaitTimeout))
		if cfg.MaxAckPending > 0 {
			opts = append(opts, natsgo.MaxAckPending(cfg.MaxAckPending))
		}
		// Each subscription of an ephemeral consumer receives every
		// message: more than one would duplicate them.
		count = 1
	}

	sc := &subscription{s: s, ctx: ctx, out: make(chan *message.Message), stop: make(chan struct{}),
		fields: watermill.LogFields{"topic": topic, "subject": subject, "consumer_group": s.group}}
	if prefetch > 0 {
		// One NATS subscription, whose callbacks run one after another,
		// keeps JetStream's order; the slots bound the unacknowledged.
		count = 1
		sc.slots = make(chan struct{}, prefetch)
	}
	for range count {
		sub, err := s.js.QueueSubscribe(subject, s.durable, sc.handle, opts...)
		if err != nil {
			sc.unsubscribe()
			return nil, fmt.Errorf("subscribe %q to %s (subject %s): %w", s.group, topic, subject, err)
		}
		sc.subs = append(sc.subs, sub)
	}
	s.running.Add(1)
	go func() {
		defer s.running.Done()
		select {
		case <-ctx.Done():
		case <-s.closing:
		}
		close(sc.stop)
		sc.unsubscribe()
		// Wait for running callbacks, which return on stop, before
		// closing the channel they send on.
		sc.mu.Lock()
		sc.done = true
		sc.mu.Unlock()
		close(sc.out)
		sc.settling.Wait()
	}()
	return sc.out, nil
}

// SubscribeInitialize creates the stream of topic, if the broker provisions
// streams.
func (s *subscriber) SubscribeInitialize(topic string) error {
	_, err := s.b.subject(s.js, topic)
	return err
}

// Close ends the subscriber's subscriptions, waiting up to CloseTimeout for
// their channels to close, and closes its connection.
func (s *subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.running.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-time.After(s.b.cfg.CloseTimeout):
		err = fmt.Errorf("nats subscriber of group %q: subscriptions still running after %s", s.group, s.b.cfg.CloseTimeout)
	}
	s.conn.Close()
	return err
}

// subscription is one Subscribe call: its NATS subscriptions and the
// channel they deliver to.
type subscription struct {
	s      *subscriber
	ctx    context.Context
	out    chan *message.Message
	stop   chan struct{}
	fields watermill.LogFields
	subs   []*natsgo.Subscription
	// slots, with a prefetch, holds a token per message delivered and not
	// yet acknowledged; nil delivers one message at a time.
	slots chan struct{}
	// settling counts the goroutines waiting for the outcome of a
	// prefetched message; the connection stays open until they end.
	settling sync.WaitGroup

	// mu is held, shared, by running callbacks; done is set, exclusively,
	// before out is closed.
	mu   sync.RWMutex
	done bool
}

func (sc *subscription) unsubscribe() {
	for _, sub := range sc.subs {
		// An ephemeral consumer is deleted with its last subscription; a
		// group's durable one was not created by the client and stays.
		if err := sub.Unsubscribe(); err != nil && !errors.Is(err, natsgo.ErrConnectionClosed) {
			sc.s.b.cfg.Logger.Error("Cannot unsubscribe", err, sc.fields)
		}
	}
}

// handle hands one message to the channel and acknowledges it as the
// consumer does. A message not handed over, or not acknowledged within
// AckWaitTimeout, is redelivered by JetStream.
func (sc *subscription) handle(m *natsgo.Msg) {
	sc.mu.RLock()
	defer sc.mu.RUnlock()
	if sc.done {
		return
	}
	logger := sc.s.b.cfg.Logger
	msg, err := (&wmnats.NATSMarshaler{}).Unmarshal(m)
	if err != nil {
		// Redelivering cannot help: terminate it.
		logger.Error("Cannot read message; terminating it", err, sc.fields)
		if err := m.Term(); err != nil {
			logger.Error("Cannot terminate message", err, sc.fields)
		}
		return
	}
	if sc.slots != nil {
		select {
		case sc.slots <- struct{}{}:
		case <-sc.stop:
			return
		}
	}
	ctx, cancel := context.WithCancel(sc.ctx)
	msg.SetContext(ctx)
	select {
	case sc.out <- msg:
	case <-sc.stop:
		cancel()
		if sc.slots != nil {
			<-sc.slots
		}
		return
	}
	if sc.slots == nil {
		sc.settle(m, msg, false)
		cancel()
		return
	}
	// Wait for the outcome aside, so the next message can be delivered.
	sc.settling.Add(1)
	go func() {
		defer sc.settling.Done()
		sc.settle(m, msg, true)
		cancel()
		<-sc.slots
	}()
}

// settle acknowledges or nacks m as the consumer did msg. One at a time, a
// message neither acked nor nacked within AckWaitTimeout is left to be
// redelivered. Prefetched, it may wait behind others before it is even
// handled, so settle tells JetStream it is in progress every half ack wait
// instead, until the consumer settles it or the subscription ends (then
// JetStream redelivers it after the ack wait).
func (sc *subscription) settle(m *natsgo.Msg, msg *message.Message, prefetched bool) {
	logger := sc.s.b.cfg.Logger
	fields := sc.fields.Add(watermill.LogFields{"message_uuid": msg.UUID})
	wait := sc.s.b.cfg.AckWaitTimeout
	if prefetched {
		wait /= 2
	}
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	ack := func() {
		var err error
		if sc.s.b.cfg.AckAsync {
			err = m.Ack()
		} else {
			err = m.AckSync()
		}
		if err != nil {
			logger.Error("Cannot acknowledge message; it will be redelivered", err, fields)
		}
	}
	for {
		select {
		case <-msg.Acked():
			ack()
		case <-msg.Nacked():
			if err := m.Nak(); err != nil {
				logger.Error("Cannot nack message; it will be redelivered after the ack wait", err, fields)
			}
		case <-timeout.C:
			if prefetched {
				if err := m.InProgress(); err != nil {
					logger.Error("Cannot tell JetStream a message is in progress; it may be redelivered", err, fields)
				}
				timeout.Reset(wait)
				continue
			}
			logger.Info("Message not acknowledged within the ack wait; JetStream redelivers it", fields)
		case <-sc.stop:
			// Both may have happened: select picks at random, and an ack
			// the consumer gave must not be dropped because the
			// subscription ends.
			select {
			case <-msg.Acked():
				ack()
			default:
			}
		}
		return
	}
}
