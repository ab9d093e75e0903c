package redisstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/protoc-gen-eda/eda/runtime"
)

// marshaler is the wire format of entries, Watermill's: the publisher
// writes it, and both subscription paths read it.
var marshaler = redisstream.DefaultMarshallerUnmarshaller{}

const (
	// nackResendSleep is how long a nacked message waits before
	// SubscribePrefetch delivers it again.
	nackResendSleep = 100 * time.Millisecond
	// retrySleep spaces out retries of failed Redis calls.
	retrySleep = 100 * time.Millisecond
	// readErrorSleep keeps a failing connection from flooding the log.
	readErrorSleep = 500 * time.Millisecond
	// callTimeout bounds one XACK, XAUTOCLAIM or consumer check.
	callTimeout = 10 * time.Second
)

// subscriber is one consumer of a consumer group. Subscribe is Watermill's
// subscriber, one message at a time; SubscribePrefetch reads ahead. Both
// use the same client and consumer name.
type subscriber struct {
	wm       *redisstream.Subscriber
	b        *broker
	client   *redis.Client
	group    string
	consumer string
	// start is where a new group starts, as Watermill's OldestId.
	start string

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	// active counts the running SubscribePrefetch subscriptions per
	// topic: the consumer's pending entries of a topic are theirs.
	active  map[string]int
	running sync.WaitGroup // one per SubscribePrefetch until its channel is closed
}

var _ runtime.PrefetchSubscriber = (*subscriber)(nil)

// Subscribe delivers the messages of topic one at a time, each once the
// previous one is acknowledged (Watermill's subscriber).
func (s *subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, errors.New("redisstream: subscriber closed")
	}
	return s.wm.Subscribe(ctx, topic)
}

// SubscribePrefetch is Subscribe with up to n messages delivered and not
// yet acknowledged or nacked (runtime.PrefetchSubscriber). It reads new
// entries in stream order with XREADGROUP, up to the free slots at once;
// messages claimed from dead consumers, and nacked ones, which come again
// after a short sleep, come between them. Each message is acknowledged
// (XACK) on its own when the consumer acks it. One delivered and never
// acknowledged stays pending with this consumer: another consumer of the
// group claims it after max_idle, and a later subscription of this
// subscriber to the topic, started while no other one runs, reads it again
// at once. An entry that cannot be read as a message is logged and
// acknowledged, to drop it.
func (s *subscriber) SubscribePrefetch(ctx context.Context, topic string, n int) (<-chan *message.Message, error) {
	if n < 1 {
		return nil, fmt.Errorf("redisstream: prefetch %d: want at least 1", n)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("redisstream: subscriber closed")
	}
	// Another subscription of the topic holds the consumer's pending
	// entries: reading them again would deliver them twice.
	ownPending := s.active[topic] == 0
	s.active[topic]++
	s.running.Add(1)
	s.mu.Unlock()

	if err := s.createGroup(ctx, topic); err != nil {
		s.ended(topic)
		return nil, fmt.Errorf("redisstream: create consumer group %s of stream %s: %w", s.group, topic, err)
	}
	p := &prefetch{
		s:     s,
		ctx:   ctx,
		topic: topic,
		out:   make(chan *message.Message),
		stop:  make(chan struct{}),
		slots: make(chan struct{}, n),
		freed: make(chan struct{}, 1),
		held:  map[string]bool{},
		fields: watermill.LogFields{"provider": "redis", "topic": topic, "consumer_group": s.group,
			"consumer_uuid": s.consumer, "prefetch": n},
	}
	go func() {
		select {
		case <-ctx.Done():
		case <-s.closing:
		}
		close(p.stop)
	}()
	go p.run(ownPending)
	return p.out, nil
}

// createGroup creates the consumer group, and the stream if need be, as
// Watermill's subscriber does: at the stream's start, or its end with
// StartLatest.
func (s *subscriber) createGroup(ctx context.Context, topic string) error {
	err := s.client.XGroupCreateMkStream(ctx, topic, s.group, s.start).Err()
	if err != nil && strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return nil
	}
	return err
}

func (s *subscriber) ended(topic string) {
	s.mu.Lock()
	if s.active[topic]--; s.active[topic] == 0 {
		delete(s.active, topic)
	}
	s.mu.Unlock()
	s.running.Done()
}

// Close ends both kinds of subscriptions: first the prefetching ones,
// waiting for their channels to close and the acknowledgements given to
// reach Redis, then Watermill's, which closes the client.
func (s *subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	s.running.Wait()
	return s.wm.Close()
}

// prefetch is one SubscribePrefetch call.
type prefetch struct {
	s     *subscriber
	ctx   context.Context
	topic string
	out   chan *message.Message
	// stop is closed when ctx ends or the subscriber closes.
	stop chan struct{}
	// slots holds a token per message delivered and not yet settled.
	slots chan struct{}
	// freed wakes run when a slot frees.
	freed  chan struct{}
	fields watermill.LogFields
	// settling counts the goroutines waiting for a delivered message's
	// outcome; out is closed once they and run have returned.
	settling sync.WaitGroup

	mu sync.Mutex
	// held are the ids of the entries delivered and not yet settled: a
	// claim that returns one (its handler is slower than max_idle) must
	// not deliver it a second time.
	held map[string]bool
}

// run reads entries and delivers them until stop, then closes out once no
// goroutine sends on it. It reads, in turn: the consumer's own pending
// entries, left by an earlier subscription (if ownPending); entries pending
// with any consumer for longer than max_idle, every claim_interval; new
// entries.
func (p *prefetch) run(ownPending bool) {
	defer func() {
		p.settling.Wait()
		close(p.out)
		p.s.ended(p.topic)
	}()
	cfg := p.s.b.cfg
	pendingFrom := ""
	if ownPending {
		pendingFrom = "0"
	}
	claimFrom, nextClaim := "0-0", time.Now()
	nextCheck := time.Now().Add(redisstream.DefaultCheckConsumersInterval)
	for {
		free := cap(p.slots) - len(p.slots)
		if free == 0 {
			select {
			case <-p.freed:
				continue
			case <-p.stop:
				return
			}
		}
		select {
		case <-p.stop:
			return
		default:
		}
		var (
			entries []redis.XMessage
			err     error
		)
		switch {
		case pendingFrom != "":
			entries, err = p.read(pendingFrom, free)
			if err == nil {
				if len(entries) == 0 {
					pendingFrom = ""
				} else {
					pendingFrom = entries[len(entries)-1].ID
				}
			}
		case !time.Now().Before(nextClaim):
			entries, claimFrom, err = p.claim(claimFrom, free)
			if err == nil && claimFrom == "0-0" {
				nextClaim = time.Now().Add(cfg.ClaimInterval)
			}
		default:
			entries, err = p.read(">", free)
		}
		if err != nil {
			p.s.b.cfg.Logger.Error("Cannot read from Redis; retrying", err, p.fields)
			if !p.sleep(readErrorSleep) {
				return
			}
			continue
		}
		for _, e := range entries {
			if !p.deliver(e) {
				return
			}
		}
		if !time.Now().Before(nextCheck) {
			p.removeIdleConsumers()
			nextCheck = time.Now().Add(redisstream.DefaultCheckConsumersInterval)
		}
	}
}

// read reads up to count entries: new ones (from ">"), waiting up to
// BlockTime, or the consumer's pending ones after from.
func (p *prefetch) read(from string, count int) ([]redis.XMessage, error) {
	block := p.s.b.cfg.BlockTime
	if from != ">" {
		// History does not block; BLOCK 0 would wait forever for new ones.
		block = -1
	}
	// Not the subscription's context: cancelling a read that Redis has
	// answered would leave its entries pending unseen until claimed. The
	// block bounds how long stop waits.
	streams, err := p.s.client.XReadGroup(context.Background(), &redis.XReadGroupArgs{
		Group:    p.s.group,
		Consumer: p.s.consumer,
		Streams:  []string{p.topic, from},
		Count:    int64(count),
		Block:    block,
	}).Result()
	if errors.Is(err, redis.Nil) || len(streams) == 0 {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return streams[0].Messages, nil
}

// claim takes up to count entries pending for longer than MaxIdleTime with
// any consumer of the group, scanning the group's pending entries from
// start; it returns where the next scan goes on, "0-0" once through.
// Entries this subscription holds are claimed, which resets their idle
// time, but not delivered again.
func (p *prefetch) claim(start string, count int) ([]redis.XMessage, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	entries, next, err := p.s.client.XAutoClaim(ctx, &redis.XAutoClaimArgs{
		Stream:   p.topic,
		Group:    p.s.group,
		Consumer: p.s.consumer,
		MinIdle:  p.s.b.cfg.MaxIdleTime,
		Start:    start,
		Count:    int64(count),
	}).Result()
	if err != nil {
		return nil, "0-0", err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	claimed := entries[:0]
	for _, e := range entries {
		if !p.held[e.ID] {
			claimed = append(claimed, e)
		}
	}
	if len(claimed) > 0 {
		p.s.b.cfg.Logger.Info("Claimed messages pending with other consumers", p.fields.Add(watermill.LogFields{"count": len(claimed)}))
	}
	return claimed, next, nil
}

// deliver sends the message of entry e on out, taking a slot, and waits for
// its outcome aside. It reports false if stopped first: the entry stays
// pending, to be claimed or read again.
func (p *prefetch) deliver(e redis.XMessage) bool {
	logger := p.s.b.cfg.Logger
	fields := p.fields.Add(watermill.LogFields{"xid": e.ID})
	if len(e.Values) == 0 {
		// Trimmed (maxlen) or deleted while pending.
		p.drop(e.ID, fields)
		return true
	}
	msg, err := marshaler.Unmarshal(e.Values)
	if err != nil {
		// Reading it again cannot help.
		logger.Error("Cannot read message; acknowledging it to drop it", err, fields)
		p.drop(e.ID, fields)
		return true
	}
	fields = fields.Add(watermill.LogFields{"message_uuid": msg.UUID})
	// Never blocks: run reads no more entries than there are free slots.
	p.slots <- struct{}{}
	ctx, cancel := context.WithCancel(p.ctx)
	msg.SetContext(ctx)
	select {
	case p.out <- msg:
	case <-p.stop:
		cancel()
		<-p.slots
		return false
	}
	p.mu.Lock()
	p.held[e.ID] = true
	p.mu.Unlock()
	p.settling.Add(1)
	go func() {
		defer p.settling.Done()
		p.settle(e.ID, msg, fields)
		cancel()
		p.mu.Lock()
		delete(p.held, e.ID)
		p.mu.Unlock()
		<-p.slots
		select {
		case p.freed <- struct{}{}:
		default:
		}
	}()
	return true
}

// settle acknowledges entry id when the consumer acks msg, and delivers a
// copy again after a sleep when it nacks it. On stop, the entry stays
// pending unless msg was acked.
func (p *prefetch) settle(id string, msg *message.Message, fields watermill.LogFields) {
	ctx := msg.Context()
	for {
		select {
		case <-msg.Acked():
			p.ack(id, fields)
			return
		case <-msg.Nacked():
			if !p.sleep(nackResendSleep) {
				return
			}
			msg = msg.Copy()
			msg.SetContext(ctx)
			select {
			case p.out <- msg:
			case <-p.stop:
				return
			}
		case <-p.stop:
			// Both may have happened: select picks at random, and an ack
			// the consumer gave must not be dropped because the
			// subscription ends.
			select {
			case <-msg.Acked():
				p.ack(id, fields)
			default:
			}
			return
		}
	}
}

// ack acknowledges entry id, retrying until it succeeds or the
// subscription stops; then one more try is the last.
func (p *prefetch) ack(id string, fields watermill.LogFields) {
	for tries := 1; ; tries++ {
		err := p.xack(id)
		if err == nil {
			return
		}
		if tries == 1 {
			p.s.b.cfg.Logger.Error("Cannot acknowledge message; retrying", err, fields)
		}
		if !p.sleep(retrySleep) {
			if err := p.xack(id); err != nil {
				p.s.b.cfg.Logger.Error("Cannot acknowledge message; another consumer will claim it after max_idle", err, fields)
			}
			return
		}
	}
}

// drop acknowledges entry id, which will not be delivered, once.
func (p *prefetch) drop(id string, fields watermill.LogFields) {
	if err := p.xack(id); err != nil {
		p.s.b.cfg.Logger.Error("Cannot acknowledge message; another consumer will claim it after max_idle", err, fields)
	}
}

func (p *prefetch) xack(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	return p.s.client.XAck(ctx, p.topic, p.s.group, id).Err()
}

// removeIdleConsumers deletes the group's consumers that have had nothing
// pending and done nothing for Watermill's DefaultConsumerTimeout, as
// Watermill's subscriber does: every subscriber is a consumer of its own,
// so those of stopped processes would pile up.
func (p *prefetch) removeIdleConsumers() {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	consumers, err := p.s.client.XInfoConsumers(ctx, p.topic, p.s.group).Result()
	if err != nil {
		p.s.b.cfg.Logger.Error("Cannot list the group's consumers", err, p.fields)
		return
	}
	for _, c := range consumers {
		if c.Pending > 0 || c.Idle < redisstream.DefaultConsumerTimeout {
			continue
		}
		if err := p.s.client.XGroupDelConsumer(ctx, p.topic, p.s.group, c.Name).Err(); err != nil {
			p.s.b.cfg.Logger.Error("Cannot remove idle consumer", err, p.fields.Add(watermill.LogFields{"consumer": c.Name}))
		}
	}
}

// sleep waits for d, reporting false if the subscription stops first.
func (p *prefetch) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.stop:
		return false
	}
}
