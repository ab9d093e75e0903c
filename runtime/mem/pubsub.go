package mem

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// ErrClosed is returned by Publish and Subscribe once Close has been called,
// and by a Publish that was blocked on a full queue (Config.MaxQueued) when
// Close was called. Such a Publish may have enqueued the message for some
// subscriptions already; they are being shut down, so it is lost either way.
var ErrClosed = errors.New("mem: pubsub closed")

// PubSub is the in-process message bus. It implements message.Publisher and
// message.Subscriber; one value is meant to be shared by all publishers and
// routers of a process. Create it with New; the zero value is not usable.
type PubSub struct {
	cfg Config

	// mu guards topics and closed. Never held while waiting for a queue or a
	// handler, so a blocked subscription cannot stall unrelated topics.
	mu      sync.RWMutex
	topics  map[string]*topic
	closed  bool
	closing chan struct{} // closed by Close; every wait selects on it
	wg      sync.WaitGroup
}

// topic holds the subscriptions of one topic. Its mutex is held for the whole
// of a Publish, so concurrent publishes are enqueued in the same order into
// every subscription and a Subscribe (with Replay) sees each message either
// in the log or live, never both or neither.
type topic struct {
	name string

	// dead is set, under mu, when the last subscription left a topic without
	// a replay log, before it is removed from PubSub.topics. A Publish or
	// Subscribe that looked the topic up just before then must look again
	// instead of using an orphan.
	dead atomic.Bool

	mu   sync.Mutex
	subs []*subscription
	log  []*envelope // every message ever published, only with Replay
}

// New returns a PubSub configured by cfg, or cfg.Validate's error.
func New(cfg Config) (*PubSub, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &PubSub{
		cfg:     cfg,
		topics:  make(map[string]*topic),
		closing: make(chan struct{}),
	}, nil
}

var (
	_ message.Publisher  = (*PubSub)(nil)
	_ message.Subscriber = (*PubSub)(nil)
)

// Publish enqueues a copy of every message, in argument order, to every
// current subscription of topicName and returns without waiting for any
// handler. The copies share the payload bytes (as message.Copy does), so a
// payload must not be modified after publishing; metadata is copied. The
// message's context is not carried over: a handler must not be cancelled
// because the request that published its input ended.
//
// Messages for a topic with no subscription are dropped, unless Config.Replay
// is set. With Config.MaxQueued, Publish blocks while a subscription of the
// topic is full. Publish is safe for concurrent use; see the package
// documentation for the ordering it guarantees. PublishConfirmed and
// Confirmation publish the same way and also wait for the handlers.
func (ps *PubSub) Publish(topicName string, msgs ...*message.Message) error {
	return ps.publish(topicName, msgs, nil)
}

// publish is Publish, tracking every copy it enqueues with c unless c is nil.
// One function serves both so that confirmed publishing has exactly
// Publish's ordering and copy semantics; plain Publish pays one nil check per
// copy for it.
func (ps *PubSub) publish(topicName string, msgs []*message.Message, c *Confirmation) error {
	for i, m := range msgs {
		if m == nil {
			return fmt.Errorf("mem: publish to %q: message %d is nil", topicName, i)
		}
	}
	t, err := ps.lookup(topicName, ps.cfg.Replay)
	if t == nil || err != nil {
		return err // nil error: nobody listens, the messages are dropped
	}

	// Copy before taking the topic lock to keep its critical section short.
	// One backing array serves all messages of the call: a single allocation
	// in the common one-message case.
	envs := make([]envelope, len(msgs))
	for i, m := range msgs {
		envs[i] = newEnvelope(m)
		envs[i].conf = c
	}

	for {
		t.mu.Lock()
		if !t.dead.Load() {
			break
		}
		t.mu.Unlock()
		if t, err = ps.lookup(topicName, ps.cfg.Replay); t == nil || err != nil {
			return err
		}
	}
	defer t.mu.Unlock()

	for i := range envs {
		e := &envs[i]
		if ps.cfg.Replay {
			t.log = append(t.log, e.untracked())
		}
		for _, s := range t.subs {
			if err := s.push(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// lookup returns the live topic named name, creating it if create is set;
// otherwise a nil topic means there is no subscription.
func (ps *PubSub) lookup(name string, create bool) (*topic, error) {
	ps.mu.RLock()
	closed, t := ps.closed, ps.topics[name]
	ps.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	if t != nil && t.dead.Load() {
		t = nil // being removed; it has no subscription left
	}
	if t != nil || !create {
		return t, nil
	}

	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.closed {
		return nil, ErrClosed
	}
	t = ps.topics[name]
	if t == nil || t.dead.Load() {
		t = &topic{name: name}
		ps.topics[name] = t
	}
	return t, nil
}

// Subscribe returns a channel delivering, one at a time, the messages
// published to topicName from now on (with Config.Replay, also those
// published before). The next message is sent only after the previous one
// was acked; a Nacked message is sent again after Config.RedeliveryDelay.
// Each delivered message's context derives from ctx and is cancelled once
// the message is acked or nacked, or the subscription ends.
//
// The channel is closed when ctx is done or the PubSub is closed. Messages
// still queued then (and the one being handled) are discarded, which fails
// the confirmations waiting for them. Each call creates an independent
// subscription that receives every message of the topic (fan-out).
func (ps *PubSub) Subscribe(ctx context.Context, topicName string) (<-chan *message.Message, error) {
	return ps.subscribe(ctx, topicName, 0)
}

// SubscribePrefetch is Subscribe with up to n messages delivered before
// the oldest of them is acked (runtime.PrefetchSubscriber). Messages are
// delivered in publish order; a nacked one is delivered again after
// RedeliveryDelay, behind those already delivered. A message leaves the
// queue (and counts as acked for confirmations) once it and every older
// one are acked.
func (ps *PubSub) SubscribePrefetch(ctx context.Context, topicName string, n int) (<-chan *message.Message, error) {
	if n < 1 {
		return nil, fmt.Errorf("mem: prefetch %d: want at least 1", n)
	}
	return ps.subscribe(ctx, topicName, n)
}

func (ps *PubSub) subscribe(ctx context.Context, topicName string, prefetch int) (<-chan *message.Message, error) {
	if ctx == nil {
		return nil, errors.New("mem: subscribe with nil context")
	}
	s := &subscription{
		ps:   ps,
		ctx:  ctx,
		out:  make(chan *message.Message),
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	if ps.cfg.MaxQueued > 0 {
		s.space = make(chan struct{}, 1)
	}

	// wg.Add under the lock that Close takes to set closed, so that no Add
	// can race with Close's Wait.
	ps.mu.Lock()
	if ps.closed {
		ps.mu.Unlock()
		return nil, ErrClosed
	}
	ps.wg.Add(1)
	ps.mu.Unlock()

	for {
		t, err := ps.lookup(topicName, true)
		if err != nil {
			// Closed meanwhile: the goroutine started below would exit at
			// once; skip it but keep the channel contract.
			ps.wg.Done()
			return nil, err
		}
		t.mu.Lock()
		if t.dead.Load() {
			t.mu.Unlock()
			continue
		}
		for _, e := range t.log {
			s.q.push(e)
		}
		t.subs = append(t.subs, s)
		s.topic = t
		t.mu.Unlock()
		break
	}

	ps.cfg.Logger.Debug("mem: subscribed", watermill.LogFields{"topic": topicName, "prefetch": prefetch})
	if prefetch > 0 {
		s.prefetch = prefetch
		go s.runPrefetch()
	} else {
		go s.run()
	}
	return s.out, nil
}

// detach removes s from its topic and drops the topic once nobody uses it,
// so that short-lived topics do not accumulate.
func (ps *PubSub) detach(s *subscription) {
	t := s.topic
	t.mu.Lock()
	for i, other := range t.subs {
		if other == s {
			last := len(t.subs) - 1
			copy(t.subs[i:], t.subs[i+1:])
			t.subs[last] = nil
			t.subs = t.subs[:last]
			break
		}
	}
	unused := len(t.subs) == 0 && len(t.log) == 0
	if unused {
		t.dead.Store(true)
	}
	t.mu.Unlock()

	if unused {
		ps.mu.Lock()
		if ps.topics[t.name] == t {
			delete(ps.topics, t.name)
		}
		ps.mu.Unlock()
	}
}

// Close stops every subscription, closing their channels, and waits for
// their goroutines. It does not wait for handlers: a message being handled
// is simply never redelivered, and confirmations waiting for a message fail
// (see Confirmation). Publish and Subscribe fail with ErrClosed
// afterwards. Close is idempotent and safe for concurrent use; it always
// returns nil (the error is there for message.Publisher and
// message.Subscriber).
func (ps *PubSub) Close() error {
	ps.mu.Lock()
	first := !ps.closed
	if first {
		ps.closed = true
		close(ps.closing)
	}
	ps.mu.Unlock()

	ps.wg.Wait()

	if first {
		ps.mu.Lock()
		ps.topics = nil // release replay logs
		ps.mu.Unlock()
		ps.cfg.Logger.Debug("mem: closed", nil)
	}
	return nil
}

// subscription is one Subscribe call: a FIFO queue fed by Publish and one
// goroutine (run) that delivers its head and waits for the ack. Keeping the
// head in the queue until it is acked is what makes a Nack redeliver it
// before anything behind it.
type subscription struct {
	ps    *PubSub
	topic *topic
	ctx   context.Context
	out   chan *message.Message

	// wake carries at most one token: "the queue went from empty to
	// non-empty". A token instead of a sync.Cond so that run can also select
	// on ctx and Close.
	wake chan struct{}
	// space carries at most one token: "a slot was freed". Only with
	// MaxQueued. One token suffices: a publisher waits while holding the
	// topic lock, so at most one waits per subscription.
	space chan struct{}
	// done is closed once the subscription no longer accepts messages, so a
	// publisher blocked on it moves on.
	done chan struct{}

	// prefetch is how many messages run hands out before the oldest is
	// acked: 0 means one at a time (run), else runPrefetch.
	prefetch int

	mu      sync.Mutex
	q       ring
	stopped bool
	// endErr says why the subscription stopped (ErrClosed or
	// errSubscriptionEnded), for the confirmations of the copies it discards.
	// Set with stopped.
	endErr error
}

// push appends e, waiting for space if the queue is bounded and full.
func (s *subscription) push(e *envelope) error {
	max := s.ps.cfg.MaxQueued
	for {
		s.mu.Lock()
		if s.stopped {
			endErr := s.endErr
			s.mu.Unlock()
			// Like a copy queued when the subscription stopped: discarded,
			// not dropped for want of a subscription, because a subscription
			// was there when Publish looked.
			e.discarded(s.topic.name, endErr)
			return nil
		}
		if max == 0 || s.q.len() < max {
			e.track()
			s.q.push(e)
			// A prefetching subscription may be waiting for more while
			// its queue holds the messages it handed out.
			first := s.q.len() == 1 || s.prefetch > 0
			s.mu.Unlock()
			if first {
				select {
				case s.wake <- struct{}{}:
				default: // a token is already pending
				}
			}
			return nil
		}
		s.mu.Unlock()

		select {
		case <-s.space:
		case <-s.done:
		case <-s.ps.closing:
			return ErrClosed
		}
	}
}

func (s *subscription) run() {
	defer s.stop()
	for {
		e, ok := s.head()
		if !ok {
			return
		}
		for {
			acked, ok := s.deliver(e)
			if !ok {
				return
			}
			if acked {
				break
			}
			if !s.wait(s.ps.cfg.RedeliveryDelay) {
				return
			}
		}
		s.pop()
		e.acked()
	}
}

// handout is a message a prefetching subscription delivered.
type handout struct {
	e     *envelope
	acked bool
}

// prefetchEvent is an outcome of a handout's delivery (acked or not), or
// due: its redelivery delay passed.
type prefetchEvent struct {
	h          *handout
	acked, due bool
}

// runPrefetch delivers the queue's messages up to prefetch ahead of the
// oldest unacked one. The queue keeps every delivered message until it and
// all older ones are acked, so Close fails the confirmations of the
// unacked ones, as run does.
func (s *subscription) runPrefetch() {
	defer s.stop()
	events := make(chan prefetchEvent, s.prefetch)
	var (
		window []*handout // delivered, oldest first; window[i] is queue position i
		redo   []*handout // nacked and due, to deliver again
		next   *message.Message
		nextH  *handout
		again  bool // next is a redelivery: nextH is in window already
	)
	for {
		if next == nil {
			if len(redo) > 0 {
				nextH, redo, again = redo[0], redo[1:], true
			} else if len(window) < s.prefetch {
				s.mu.Lock()
				if s.q.len() > len(window) {
					nextH, again = &handout{e: s.q.at(len(window))}, false
				}
				s.mu.Unlock()
			}
			if nextH != nil {
				next = nextH.e.message()
				ctx, cancel := context.WithCancel(s.ctx)
				next.SetContext(ctx)
				go s.await(next, nextH, cancel, events)
			}
		}
		var out chan *message.Message
		if next != nil && !s.ended() {
			out = s.out
		}
		select {
		case out <- next:
			if !again {
				window = append(window, nextH)
			}
			next, nextH = nil, nil
		case ev := <-events:
			switch {
			case ev.due:
				redo = append(redo, ev.h)
			case ev.acked:
				ev.h.acked = true
				n := 0
				for n < len(window) && window[n].acked {
					n++
				}
				for _, h := range window[:n] {
					s.pop()
					h.e.acked()
				}
				clear(window[:n])
				window = window[n:]
			default:
				go s.redeliverAfter(ev.h, events)
			}
		case <-s.wake:
		case <-s.ctx.Done():
			return
		case <-s.ps.closing:
			return
		}
	}
}

// await reports whether m, a delivery of h, was acked or nacked.
func (s *subscription) await(m *message.Message, h *handout, cancel context.CancelFunc, events chan<- prefetchEvent) {
	defer cancel()
	ev := prefetchEvent{h: h}
	select {
	case <-m.Acked():
		ev.acked = true
	case <-m.Nacked():
	case <-s.done:
		return
	}
	select {
	case events <- ev:
	case <-s.done:
	}
}

// redeliverAfter reports h due for redelivery after RedeliveryDelay.
func (s *subscription) redeliverAfter(h *handout, events chan<- prefetchEvent) {
	t := time.NewTimer(s.ps.cfg.RedeliveryDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.done:
		return
	}
	select {
	case events <- prefetchEvent{h: h, due: true}:
	case <-s.done:
	}
}

// head waits until the queue is non-empty and returns its oldest message
// without removing it; false means the subscription is over.
func (s *subscription) head() (*envelope, bool) {
	for {
		s.mu.Lock()
		if s.q.len() > 0 {
			e := s.q.peek()
			s.mu.Unlock()
			return e, true
		}
		s.mu.Unlock()

		select {
		case <-s.wake:
		case <-s.ctx.Done():
			return nil, false
		case <-s.ps.closing:
			return nil, false
		}
	}
}

// deliver hands out one attempt of e and waits for its outcome; ok is false
// when the subscription ended first.
func (s *subscription) deliver(e *envelope) (acked, ok bool) {
	// Checked up front because select picks randomly among ready cases: a
	// consumer waiting on the channel must not get one more message after
	// cancelling.
	if s.ended() {
		return false, false
	}
	m := e.message()
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	m.SetContext(ctx)

	select {
	case s.out <- m:
	case <-s.ctx.Done():
		return false, false
	case <-s.ps.closing:
		return false, false
	}

	select {
	case <-m.Acked():
		return true, true
	case <-m.Nacked():
		return false, true
	case <-s.ctx.Done():
		return false, false
	case <-s.ps.closing:
		return false, false
	}
}

func (s *subscription) ended() bool {
	if s.ctx.Err() != nil {
		return true
	}
	select {
	case <-s.ps.closing:
		return true
	default:
		return false
	}
}

// wait sleeps for d unless the subscription ends first.
func (s *subscription) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	case <-s.ps.closing:
		return false
	}
}

func (s *subscription) pop() {
	s.mu.Lock()
	s.q.pop()
	s.mu.Unlock()
	if s.space != nil {
		select {
		case s.space <- struct{}{}:
		default:
		}
	}
}

func (s *subscription) stop() {
	endErr := errSubscriptionEnded
	select {
	case <-s.ps.closing:
		endErr = ErrClosed
	default:
	}
	s.mu.Lock()
	s.stopped = true
	s.endErr = endErr
	// Queued messages, including the one being handled, are discarded:
	// fail their confirmations, then free them.
	s.q.each(func(e *envelope) { e.discarded(s.topic.name, endErr) })
	s.q.reset()
	s.mu.Unlock()
	close(s.done)
	close(s.out)
	s.ps.detach(s)
	s.ps.cfg.Logger.Debug("mem: subscription stopped", watermill.LogFields{"topic": s.topic.name})
	s.ps.wg.Done()
}
