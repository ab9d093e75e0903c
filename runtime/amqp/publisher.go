package amqp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/streadway/amqp"
)

// confirmBatch is how many messages one Publish sends before it waits for
// their confirms; each channel's confirmation queue holds that many, so
// that the client library never blocks delivering one.
const confirmBatch = 256

// confirmPublisher publishes in confirm mode over a shared connection,
// keeping idle channels for reuse. It is safe for concurrent use: each
// Publish takes a channel of its own.
type confirmPublisher struct {
	conn   *wamqp.ConnectionWrapper
	cfg    wamqp.Config
	logger watermill.LoggerAdapter

	mu       sync.Mutex
	idle     []*confirmChannel
	declared map[string]bool
	closed   bool
	running  sync.WaitGroup
}

// confirmChannel is a channel in confirm mode.
type confirmChannel struct {
	ch       *amqp.Channel
	confirms chan amqp.Confirmation
	closed   chan *amqp.Error
}

func newConfirmPublisher(conn *wamqp.ConnectionWrapper, cfg wamqp.Config, logger watermill.LoggerAdapter) *confirmPublisher {
	return &confirmPublisher{conn: conn, cfg: cfg, logger: logger, declared: map[string]bool{}}
}

// Publish publishes msgs to topic's exchange and returns once the broker
// confirmed every one, or with the first error. Messages before a failed
// one may have been published.
func (p *confirmPublisher) Publish(topic string, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errors.New("amqp: publisher closed")
	}
	p.running.Add(1)
	p.mu.Unlock()
	defer p.running.Done()

	cc, err := p.channel()
	if err != nil {
		return err
	}
	if err := p.publish(cc, topic, msgs); err != nil {
		_ = cc.ch.Close()
		return err
	}
	p.mu.Lock()
	if p.closed {
		_ = cc.ch.Close()
	} else {
		p.idle = append(p.idle, cc)
	}
	p.mu.Unlock()
	return nil
}

// channel returns an idle channel that is still open, or a new one.
func (p *confirmPublisher) channel() (*confirmChannel, error) {
	p.mu.Lock()
	for len(p.idle) > 0 {
		cc := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		select {
		case <-cc.closed:
			// Closed by the server or with the connection: drop it.
			continue
		default:
		}
		p.mu.Unlock()
		return cc, nil
	}
	p.mu.Unlock()
	if !p.conn.IsConnected() {
		return nil, errors.New("amqp: not connected to the server (reconnecting): publish again later")
	}
	ch, err := p.conn.Connection().Channel()
	if err != nil {
		return nil, fmt.Errorf("amqp: open channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("amqp: put channel in confirm mode: %w", err)
	}
	return &confirmChannel{
		ch:       ch,
		confirms: ch.NotifyPublish(make(chan amqp.Confirmation, confirmBatch)),
		closed:   ch.NotifyClose(make(chan *amqp.Error, 1)),
	}, nil
}

func (p *confirmPublisher) publish(cc *confirmChannel, topic string, msgs []*message.Message) error {
	exchange := p.cfg.Exchange.GenerateName(topic)
	if err := p.declare(cc, topic, exchange); err != nil {
		return err
	}
	routingKey := p.cfg.Publish.GenerateRoutingKey(topic)
	for batch := range slices.Chunk(msgs, confirmBatch) {
		for _, msg := range batch {
			pub, err := p.cfg.Marshaler.Marshal(msg)
			if err != nil {
				return fmt.Errorf("amqp: marshal message %s: %w", msg.UUID, err)
			}
			if err := cc.ch.Publish(exchange, routingKey, false, false, pub); err != nil {
				return fmt.Errorf("amqp: publish message %s to exchange %q: %w", msg.UUID, exchange, err)
			}
		}
		for _, msg := range batch {
			if err := waitConfirm(msg.Context(), cc, msg, exchange); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitConfirm waits for the confirm of msg, the next one on cc.
func waitConfirm(ctx context.Context, cc *confirmChannel, msg *message.Message, exchange string) error {
	select {
	case c, ok := <-cc.confirms:
		if !ok {
			return fmt.Errorf("amqp: channel closed before the broker confirmed message %s to exchange %q: publish again", msg.UUID, exchange)
		}
		if !c.Ack {
			return fmt.Errorf("amqp: broker refused message %s to exchange %q (nack): publish again", msg.UUID, exchange)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("amqp: waiting for the broker to confirm message %s: %w", msg.UUID, ctx.Err())
	}
}

// declare declares topic's exchange once per publisher.
func (p *confirmPublisher) declare(cc *confirmChannel, topic, exchange string) error {
	p.mu.Lock()
	done := p.declared[topic]
	p.mu.Unlock()
	if done {
		return nil
	}
	if err := p.cfg.TopologyBuilder.ExchangeDeclare(cc.ch, exchange, p.cfg); err != nil {
		return fmt.Errorf("amqp: declare exchange %q: %w", exchange, err)
	}
	p.mu.Lock()
	p.declared[topic] = true
	p.mu.Unlock()
	return nil
}

// Close waits for running Publish calls and closes the idle channels; the
// connection is the broker's to close.
func (p *confirmPublisher) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.running.Wait()
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	var errs []error
	for _, cc := range idle {
		select {
		case <-cc.closed:
			continue
		default:
		}
		if err := cc.ch.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
