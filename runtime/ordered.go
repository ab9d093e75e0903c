package runtime

import (
	"cmp"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// PrefetchSubscriber is a subscriber that can deliver messages before the
// ones delivered earlier are acknowledged. The router uses it for handlers
// whose DeliveryPolicy.MaxInFlight is above 1: messages of one ordering key
// are handled one at a time, in order; messages of different keys at once.
//
// The broker packages' subscribers implement it where the broker can
// deliver ahead (mem://, nats://, redis://, amqp://); on the others
// (postgres://, kafka://) a handler takes one message at a time whatever
// MaxInFlight says.
type PrefetchSubscriber interface {
	message.Subscriber
	// SubscribePrefetch is Subscribe with up to n messages delivered and
	// not yet acknowledged or nacked. Messages come in the broker's order;
	// each is acknowledged on its own.
	SubscribePrefetch(ctx context.Context, topic string, n int) (<-chan *message.Message, error)
}

// prefetchFactor is how many messages per handler slot an orderedSubscriber
// asks the broker for: with only as many as the slots, one busy key would
// soon hold back the rest, since acknowledgements go in order.
const prefetchFactor = 4

// orderedSubscriber turns a prefetching subscription into one a Watermill
// router can handle concurrently without breaking order:
//
//   - messages with the same key are handed out one at a time, each only
//     once the previous one of its key was acknowledged by the handler;
//   - messages of different keys are handed out at once, up to n; the
//     broker is asked for prefetchFactor times n, so that other keys have
//     messages ready while one key is busy;
//   - the broker's messages are acknowledged in the order the broker
//     delivered them, so an acknowledgement (or a committed offset) never
//     gets ahead of a message not yet handled: after a crash the broker
//     redelivers everything from the oldest unhandled message on.
//
// The router receives copies; the broker's message is acknowledged when its
// copy and every earlier one are. A nacked copy (the router could not
// dead-letter it, or its deduplication store is down) is handed out again
// after a backoff, still ahead of the rest of its key.
type orderedSubscriber struct {
	inner PrefetchSubscriber
	n     int
	// keyOf returns a message's ordering key; nil hands every message out
	// as soon as it arrives (OrderingNone).
	keyOf func(*message.Message) string
	// drain bounds how long Close waits for messages already handed out.
	drain  time.Duration
	logger watermill.LoggerAdapter

	closeOnce sync.Once
	closing   chan struct{}
	mu        sync.Mutex
	running   []chan struct{} // one per subscription, closed when it ends
}

func newOrderedSubscriber(inner PrefetchSubscriber, n int, ordering Ordering, drain time.Duration, logger watermill.LoggerAdapter) *orderedSubscriber {
	o := &orderedSubscriber{inner: inner, n: n, drain: drain, logger: logger, closing: make(chan struct{})}
	if ordering != OrderingNone {
		o.keyOf = orderingKey
	}
	return o
}

// orderingKey is a message's partition key: MetaPartitionKey, else its
// subject (the aggregate id), as the publisher writes them. Messages with
// neither share the empty key, so they keep their order too.
func orderingKey(m *message.Message) string {
	return cmp.Or(m.Metadata.Get(MetaPartitionKey), m.Metadata.Get(MetaSubject))
}

// Subscribe subscribes the inner subscriber with a prefetch of n and
// returns the channel of copies to handle.
func (o *orderedSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	// Registered under mu before subscribing, so that a Close from now on
	// waits for this subscription.
	ended := make(chan struct{})
	o.mu.Lock()
	select {
	case <-o.closing:
		o.mu.Unlock()
		return nil, errors.New("subscriber is closed")
	default:
	}
	o.running = append(o.running, ended)
	o.mu.Unlock()
	in, err := o.inner.SubscribePrefetch(ctx, topic, o.n*prefetchFactor)
	if err != nil {
		close(ended)
		return nil, err
	}
	l := &lanes{
		o:       o,
		ctx:     ctx,
		out:     make(chan *message.Message),
		results: make(chan outcome, o.n),
		retries: make(chan *pending),
		stopped: make(chan struct{}),
		keys:    map[string][]*pending{},
		fields:  watermill.LogFields{"topic": topic},
	}
	go func() {
		defer close(ended)
		l.run(in)
	}()
	return l.out, nil
}

// Close stops handing out messages, waits up to the drain timeout for the
// ones handed out to be handled and acknowledges them, then closes the
// inner subscriber. Messages never handed out are left to the broker to
// redeliver.
func (o *orderedSubscriber) Close() error {
	o.mu.Lock()
	o.closeOnce.Do(func() { close(o.closing) })
	running := o.running
	o.mu.Unlock()
	for _, ended := range running {
		<-ended
	}
	return o.inner.Close()
}

// pending is one message from the broker, from delivery until it is
// acknowledged to the broker.
type pending struct {
	msg  *message.Message
	key  string
	done bool
	// nacks counts the copies the router nacked, for the backoff.
	nacks int
}

type outcome struct {
	p     *pending
	acked bool
}

// lanes is the state of one subscription; run owns it.
type lanes struct {
	o       *orderedSubscriber
	ctx     context.Context
	out     chan *message.Message
	results chan outcome
	retries chan *pending
	// stopped is closed when run returns, ending watchers and timers.
	stopped chan struct{}
	// window holds the broker's messages not yet acknowledged, in delivery
	// order; its done prefix is acknowledged as soon as it forms.
	window []*pending
	// keys holds, per key with a message in the router, that message first
	// and then the ones waiting behind it.
	keys map[string][]*pending
	// ready are the messages to hand out next, in order; next is the copy
	// of ready[0], built once.
	ready    []*pending
	next     *message.Message
	inRouter int
	fields   watermill.LogFields
}

func (l *lanes) run(in <-chan *message.Message) {
	defer close(l.out)
	defer close(l.stopped)
	closing := l.o.closing
	var drainTimer <-chan time.Time
	for {
		var out chan *message.Message
		// Nothing more is handed out once closing or once the broker's
		// subscription ended: acknowledgements could no longer reach it.
		if len(l.ready) > 0 && l.inRouter < l.o.n && closing != nil && in != nil {
			if l.next == nil {
				l.next = l.ready[0].msg.Copy()
				l.next.SetContext(l.ready[0].msg.Context())
			}
			out = l.out
		}
		select {
		case m, ok := <-in:
			if !ok {
				in = nil
				if l.inRouter == 0 {
					return
				}
				continue
			}
			l.arrive(m)
		case out <- l.next:
			go l.watch(l.ready[0], l.next)
			l.ready[0] = nil
			l.ready, l.next = l.ready[1:], nil
			l.inRouter++
		case r := <-l.results:
			l.inRouter--
			l.settle(r)
			if (in == nil || closing == nil) && l.inRouter == 0 {
				return
			}
		case p := <-l.retries:
			l.ready = append([]*pending{p}, l.ready...)
			l.next = nil
		case <-closing:
			// Stop handing out; wait for what the router has.
			closing = nil
			if l.inRouter == 0 {
				return
			}
			drainTimer = time.After(l.o.drain)
		case <-drainTimer:
			l.o.logger.Info("Closing with messages still being handled; the broker will redeliver them", l.fields.Add(watermill.LogFields{"in_flight": l.inRouter}))
			return
		case <-l.ctx.Done():
			return
		}
	}
}

// arrive queues m behind the message of its key in the router, if any.
func (l *lanes) arrive(m *message.Message) {
	p := &pending{msg: m}
	l.window = append(l.window, p)
	if l.o.keyOf == nil {
		l.ready = append(l.ready, p)
		return
	}
	p.key = l.o.keyOf(m)
	q, busy := l.keys[p.key]
	l.keys[p.key] = append(q, p)
	if !busy {
		l.ready = append(l.ready, p)
	}
}

// watch reports the router's outcome for c, the copy of p it handles.
func (l *lanes) watch(p *pending, c *message.Message) {
	r := outcome{p: p}
	select {
	case <-c.Acked():
		r.acked = true
	case <-c.Nacked():
	case <-l.stopped:
		return
	}
	select {
	case l.results <- r:
	case <-l.stopped:
	}
}

// settle records the router's outcome for p and acknowledges the broker's
// messages that are done and have nothing unhandled before them.
func (l *lanes) settle(r outcome) {
	p := r.p
	if !r.acked {
		if p.msg.Context().Err() != nil {
			// The broker's subscription gave the message up (it ends):
			// leave it to be redelivered, and its key blocked.
			return
		}
		// Handed out again after a backoff, still first of its key.
		p.nacks++
		d := DeliveryPolicy{}.withDefaults("").backoff(p.nacks)
		l.o.logger.Info("Message nacked by its handler; handing it out again", l.fields.Add(watermill.LogFields{"message_uuid": p.msg.UUID, "retry_in": d.String()}))
		time.AfterFunc(d, func() {
			select {
			case l.retries <- p:
			case <-l.stopped:
			}
		})
		return
	}
	p.done = true
	if l.o.keyOf != nil {
		q := l.keys[p.key]
		q[0] = nil
		if q = q[1:]; len(q) == 0 {
			delete(l.keys, p.key)
		} else {
			l.keys[p.key] = q
			l.ready = append(l.ready, q[0])
		}
	}
	n := 0
	for n < len(l.window) && l.window[n].done {
		l.window[n].msg.Ack()
		n++
	}
	clear(l.window[:n])
	l.window = l.window[n:]
}
