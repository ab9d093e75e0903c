package amqp

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/streadway/amqp"
)

// resubscribeBackoff bounds the wait between attempts to consume again
// after a subscription's channel or connection dropped.
const (
	minResubscribeBackoff = 100 * time.Millisecond
	maxResubscribeBackoff = 5 * time.Second
)

// subscriber is one consumer group's subscriber: Subscribe is Watermill's
// subscriber, which hands out one message at a time; SubscribePrefetch
// consumes the same queue on a channel of its own with a prefetch of n.
type subscriber struct {
	wm     *wamqp.Subscriber
	conn   *wamqp.ConnectionWrapper
	cfg    wamqp.Config // the config wm was made with
	logger watermill.LoggerAdapter
	group  string

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	running sync.WaitGroup // one per SubscribePrefetch until its channel is closed
}

// Subscribe delivers the messages of topic to the subscriber's group, one
// at a time: the next only once the previous one is acked or nacked.
func (s *subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	return s.wm.Subscribe(ctx, topic)
}

// SubscribeInitialize declares the group's queue on topic, bound to the
// topic's exchange, so that it keeps what is published before Subscribe.
func (s *subscriber) SubscribeInitialize(topic string) error {
	return s.wm.SubscribeInitialize(topic)
}

// SubscribePrefetch is Subscribe with up to n messages delivered and not
// yet acked or nacked (runtime.PrefetchSubscriber): it consumes the group's
// queue on a channel of its own with a basic.qos prefetch count of n (at
// most 65535, the most basic.qos takes), so RabbitMQ sends the next
// message only once one of those n is settled. Messages come in the
// queue's order; each is acknowledged on its own. A nacked message is
// requeued and may come back behind messages already delivered. If the
// channel or connection drops, the subscription consumes again once the
// connection is back; RabbitMQ requeues what was not acknowledged.
func (s *subscriber) SubscribePrefetch(ctx context.Context, topic string, n int) (<-chan *message.Message, error) {
	if n < 1 {
		return nil, fmt.Errorf("amqp: prefetch %d: want at least 1", n)
	}
	// basic.qos carries the count in 16 bits.
	n = min(n, math.MaxUint16)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("amqp: subscriber closed")
	}
	p := &prefetch{
		s:        s,
		ctx:      ctx,
		n:        n,
		queue:    s.cfg.Queue.GenerateName(topic),
		exchange: s.cfg.Exchange.GenerateName(topic),
		out:      make(chan *message.Message),
	}
	p.fields = watermill.LogFields{"topic": topic, "consumer_group": s.group, "amqp_queue_name": p.queue, "amqp_exchange_name": p.exchange}
	// The first consumer is set up here, so that its errors are returned.
	c, err := p.consume()
	if err != nil {
		return nil, err
	}
	s.running.Add(1)
	go func() {
		defer s.running.Done()
		defer close(p.out)
		p.run(c)
	}()
	return p.out, nil
}

// Close ends the SubscribePrefetch subscriptions, waiting for their
// goroutines (messages not acknowledged go back to the queue), and closes
// Watermill's subscriber. The connection is the broker's.
func (s *subscriber) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closing)
	}
	s.mu.Unlock()
	s.running.Wait()
	return s.wm.Close()
}

// prefetch is one SubscribePrefetch call.
type prefetch struct {
	s        *subscriber
	ctx      context.Context
	n        int
	queue    string
	exchange string
	out      chan *message.Message
	fields   watermill.LogFields
}

// consumer is a prefetch's channel and what it consumes.
type consumer struct {
	ch         *amqp.Channel
	deliveries <-chan amqp.Delivery
	closed     <-chan *amqp.Error
}

// consume opens a channel, declares the queue and its binding as
// Watermill's Subscribe does, and consumes the queue with a prefetch of n.
func (p *prefetch) consume() (*consumer, error) {
	s := p.s
	if !s.conn.IsConnected() {
		return nil, errors.New("amqp: not connected to the server (reconnecting)")
	}
	ch, err := s.conn.Connection().Channel()
	if err != nil {
		return nil, fmt.Errorf("amqp: open channel: %w", err)
	}
	c := &consumer{ch: ch, closed: ch.NotifyClose(make(chan *amqp.Error, 1))}
	err = s.cfg.TopologyBuilder.BuildTopology(ch, p.queue, p.exchange, s.cfg, s.logger)
	if err != nil {
		err = fmt.Errorf("amqp: declare queue %q bound to exchange %q: %w", p.queue, p.exchange, err)
	} else if err = ch.Qos(p.n, 0, false); err != nil {
		err = fmt.Errorf("amqp: set prefetch %d: %w", p.n, err)
	} else {
		cc := s.cfg.Consume
		c.deliveries, err = ch.Consume(p.queue, cc.Consumer, false, cc.Exclusive, cc.NoLocal, cc.NoWait, cc.Arguments)
		if err != nil {
			err = fmt.Errorf("amqp: consume queue %q: %w", p.queue, err)
		}
	}
	if err != nil {
		_ = ch.Close()
		return nil, err
	}
	return c, nil
}

// run hands out c's deliveries and, when c drops, consumes again until ctx
// ends or the subscriber is closed.
func (p *prefetch) run(c *consumer) {
	logger := p.s.logger
	backoff := minResubscribeBackoff
	for {
		if !p.deliver(c) {
			return
		}
		logger.Error("AMQP channel closed; consuming again once connected", nil, p.fields)
		for {
			// Connected() may still be the dropped connection's: consume
			// then fails and is retried after the backoff.
			select {
			case <-p.s.conn.Connected():
			case <-p.s.closing:
				return
			case <-p.ctx.Done():
				return
			}
			var err error
			if c, err = p.consume(); err == nil {
				logger.Info("Consuming again", p.fields)
				backoff = minResubscribeBackoff
				break
			}
			logger.Error("Cannot consume again; retrying", err, p.fields.Add(watermill.LogFields{"retry_in": backoff.String()}))
			select {
			case <-time.After(backoff):
			case <-p.s.closing:
				return
			case <-p.ctx.Done():
				return
			}
			backoff = min(2*backoff, maxResubscribeBackoff)
		}
	}
}

// deliver hands out c's deliveries until c drops (it returns true) or ctx
// ends or the subscriber closes (false). Either way it closes c's channel,
// after the acknowledgements the consumer gave: RabbitMQ requeues the
// messages delivered and not acknowledged.
func (p *prefetch) deliver(c *consumer) (again bool) {
	stop := make(chan struct{})
	var settling sync.WaitGroup
	defer func() {
		close(stop)
		settling.Wait()
		if err := c.ch.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
			p.s.logger.Error("Cannot close AMQP channel", err, p.fields)
		}
	}()
	for {
		select {
		case d, ok := <-c.deliveries:
			if !ok {
				// The server cancelled the consumer (the queue was deleted)
				// or the channel closed.
				return true
			}
			msg, err := p.s.cfg.Marshaler.Unmarshal(d)
			if err != nil {
				// Redelivering cannot help: reject it (to the queue's
				// dead-letter exchange, if it has one).
				p.s.logger.Error("Cannot read message; rejecting it", err, p.fields)
				if err := d.Nack(false, false); err != nil {
					p.s.logger.Error("Cannot reject message", err, p.fields)
				}
				continue
			}
			ctx, cancel := context.WithCancel(p.ctx)
			msg.SetContext(ctx)
			select {
			case p.out <- msg:
			case <-c.closed:
				cancel()
				return true
			case <-p.s.closing:
				cancel()
				return false
			case <-p.ctx.Done():
				cancel()
				return false
			}
			settling.Add(1)
			go func() {
				defer settling.Done()
				defer cancel()
				p.settle(d, msg, stop)
			}()
		case <-c.closed:
			return true
		case <-p.s.closing:
			return false
		case <-p.ctx.Done():
			return false
		}
	}
}

// settle acknowledges or requeues d as the consumer does msg. Once stop is
// closed it gives up waiting: the message is requeued when the channel
// closes, unless the consumer already acked it.
func (p *prefetch) settle(d amqp.Delivery, msg *message.Message, stop <-chan struct{}) {
	fields := p.fields.Add(watermill.LogFields{"message_uuid": msg.UUID})
	ack := func() {
		if err := d.Ack(false); err != nil {
			p.s.logger.Error("Cannot acknowledge message; it will be redelivered", err, fields)
		}
	}
	select {
	case <-msg.Acked():
		ack()
	case <-msg.Nacked():
		if err := d.Nack(false, true); err != nil {
			p.s.logger.Error("Cannot nack message; it will be redelivered once its channel closes", err, fields)
		}
	case <-stop:
		// Both may have happened: select picks at random, and an ack the
		// consumer gave must not be dropped because the subscription ends.
		select {
		case <-msg.Acked():
			ack()
		default:
		}
	}
}
