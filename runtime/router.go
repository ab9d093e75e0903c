package runtime

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"google.golang.org/protobuf/proto"
)

// Dead-letter metadata: why a message was dead-lettered and where from.
const (
	MetaDeadLetterReason  = "eda_deadletter_reason"
	MetaDeadLetterTopic   = "eda_deadletter_topic"
	MetaDeadLetterHandler = "eda_deadletter_handler"
	MetaDeadLetterAttempt = "eda_deadletter_attempts"
)

// DefaultDeadLetterTopic receives dead letters when neither the schema nor
// RouterConfig names a topic.
const DefaultDeadLetterTopic = "eda.dead_letter"

// RouterConfig configures a Router.
type RouterConfig struct {
	// Subscriber is where handlers read messages. Required unless
	// NewSubscriber is set.
	Subscriber message.Subscriber
	// NewSubscriber returns a subscriber for a consumer group, for brokers
	// whose subscribers are bound to one (the group is the handler's
	// DeliveryPolicy.ConsumerGroup, else its name). It takes precedence over
	// Subscriber.
	NewSubscriber func(consumerGroup string) (message.Subscriber, error)
	// Publisher receives dead letters. Required.
	Publisher message.Publisher
	// DeadLetterTopic is the default dead-letter topic. Default
	// DefaultDeadLetterTopic.
	DeadLetterTopic string
	// CloseTimeout bounds how long Close waits for running handlers.
	// Default 30s.
	CloseTimeout time.Duration
	// DedupStore remembers which messages the handlers whose delivery
	// policy has a DedupWindow handled, across instances and restarts (see
	// Deduplicator). Required by those handlers: sqlite.Store.Dedup,
	// postgres.Store.Dedup, redisdedup.Open, or memstore.NewDedupStore in a
	// single process.
	DedupStore DedupStore
	// DedupLease is how long a handler's claim on a message lasts unless
	// renewed (DeduplicatorConfig.Lease): how long a redelivery waits for a
	// consumer that died while handling it. Default DefaultDedupLease.
	DedupLease time.Duration
	// Logger receives the router's logs. Default: none.
	Logger watermill.LoggerAdapter
}

func (c *RouterConfig) setDefaults() {
	if c.DeadLetterTopic == "" {
		c.DeadLetterTopic = DefaultDeadLetterTopic
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
}

// Validate reports what is missing.
func (c RouterConfig) Validate() error {
	var errs []error
	if c.Subscriber == nil && c.NewSubscriber == nil {
		errs = append(errs, errors.New("RouterConfig: set Subscriber or NewSubscriber"))
	}
	if c.Publisher == nil {
		errs = append(errs, errors.New("RouterConfig.Publisher is required: dead letters are published with it"))
	}
	return errors.Join(errs...)
}

// Router runs typed handlers over a Watermill router. Register handlers with
// the generated RegisterXHandler functions before Run.
type Router struct {
	cfg    RouterConfig
	router *message.Router
	stats  stats
	// groups holds each handler's consumer group and inFlight how many
	// messages it handles at once; written by AddHandler before Run, read
	// after.
	groups   map[string]string
	inFlight map[string]int
	// dedup is nil without RouterConfig.DedupStore.
	dedup *Deduplicator
	// subs are the subscribers NewSubscriber returned, closed by Run.
	subs []message.Subscriber
}

// NewRouter returns a Router.
func NewRouter(cfg RouterConfig) (*Router, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r, err := message.NewRouter(message.RouterConfig{CloseTimeout: cfg.CloseTimeout}, cfg.Logger)
	if err != nil {
		return nil, err
	}
	rt := &Router{cfg: cfg, router: r, groups: map[string]string{}, inFlight: map[string]int{}}
	if cfg.DedupStore != nil {
		if rt.dedup, err = NewDeduplicator(DeduplicatorConfig{Store: cfg.DedupStore, Lease: cfg.DedupLease, Logger: cfg.Logger}); err != nil {
			return nil, err
		}
	}
	return rt, nil
}

// ConsumerGroup returns the consumer group the handler called name reads
// in: its delivery policy's ConsumerGroup, else its name; "" for a name no
// handler has. Telemetry names the group of a handler's spans with it.
func (r *Router) ConsumerGroup(handler string) string {
	return r.groups[handler]
}

// MaxInFlight returns how many messages the handler called name handles at
// once: its delivery policy's MaxInFlight when its subscriber can deliver
// ahead (a PrefetchSubscriber) and its ordering is not OrderingTopic, else
// 1; 0 for a name no handler has.
func (r *Router) MaxInFlight(handler string) int {
	return r.inFlight[handler]
}

// Run runs the handlers until ctx is done or Close is called.
// Subscribers the router got from RouterConfig.NewSubscriber are closed
// when it returns: a subscriber still closing could otherwise take one more
// message that no handler will acknowledge (on Redis it then waits for
// another consumer to claim it).
func (r *Router) Run(ctx context.Context) error {
	err := r.router.Run(ctx)
	var errs []error
	for _, sub := range r.subs {
		if cerr := sub.Close(); cerr != nil {
			errs = append(errs, cerr)
		}
	}
	if err == nil && len(errs) > 0 {
		return fmt.Errorf("close subscribers: %w", errors.Join(errs...))
	}
	return err
}

// Running is closed when every handler is subscribed.
func (r *Router) Running() chan struct{} { return r.router.Running() }

// Close stops the handlers, waiting up to CloseTimeout for running ones.
func (r *Router) Close() error { return r.router.Close() }

// Watermill returns the underlying Watermill router, to add middleware or
// plugins.
func (r *Router) Watermill() *message.Router { return r.router }

// Stats counts what the router's handlers did with messages.
type Stats struct {
	// Handled messages were acknowledged after a handler returned nil.
	Handled uint64
	// Retried counts retries (not messages).
	Retried uint64
	// DeadLettered messages went to a dead-letter topic.
	DeadLettered uint64
	// Skipped messages had a type the handler does not know (a newer event,
	// for instance) and were acknowledged without handling.
	Skipped uint64
	// Duplicates were handled already within their DedupWindow and were
	// acknowledged without handling.
	Duplicates uint64
}

type stats struct{ handled, retried, deadLettered, skipped atomic.Uint64 }

// Stats returns the counters since the router was created.
func (r *Router) Stats() Stats {
	st := Stats{
		Handled:      r.stats.handled.Load(),
		Retried:      r.stats.retried.Load(),
		DeadLettered: r.stats.deadLettered.Load(),
		Skipped:      r.stats.skipped.Load(),
	}
	if r.dedup != nil {
		st.Duplicates = r.dedup.Stats().Duplicates
	}
	return st
}

// Route handles one message type within a handler. Build it with On.
type Route struct {
	Type   *MessageType
	handle func(ctx context.Context, msg *message.Message) error
}

// decodeError marks a payload that cannot be decoded.
type decodeError struct{ err error }

func (e *decodeError) Error() string { return e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }

// On returns the route that decodes messages of type t into a new PT and
// calls fn. Generated registration functions call it once per message type.
func On[T any, PT interface {
	*T
	proto.Message
}](t *MessageType, fn func(context.Context, PT) error) Route {
	return Route{Type: t, handle: func(ctx context.Context, msg *message.Message) error {
		m := PT(new(T))
		codec, err := CodecFor(msg.Metadata.Get(MetaContentType))
		if err == nil {
			err = codec.Unmarshal(msg.Payload, m)
		}
		if err != nil {
			return Permanent(&decodeError{fmt.Errorf("decode %s: %w", t.Name, err)})
		}
		return fn(ctx, m)
	}}
}

// HandlerSpec is a subscription to one topic with a route per message type.
type HandlerSpec struct {
	// Name identifies the handler in the router and, by default, its
	// consumer group. It is wire API: renaming it re-consumes a durable topic.
	Name   string
	Topic  string
	Routes []Route
}

// HandlerOption changes a handler at registration.
type HandlerOption func(*HandlerSpec)

// WithName replaces the handler's default name, to register two handlers of
// the same messages in one router or to pick the consumer group.
func WithName(name string) HandlerOption {
	return func(s *HandlerSpec) { s.Name = name }
}

// WithTopic subscribes the handler to topic instead of the schema's: for a
// topic per tenant or per test run, or one renamed at the broker. Messages
// on it are still dispatched by their type.
func WithTopic(topic string) HandlerOption {
	return func(s *HandlerSpec) { s.Topic = topic }
}

// WithDelivery overrides the schema's delivery policy of every route, field
// by field: the non-zero fields of p replace the schema's, the others (the
// consumer group, say) stay as the schema declares them.
func WithDelivery(p DeliveryPolicy) HandlerOption {
	return func(s *HandlerSpec) {
		routes := make([]Route, len(s.Routes))
		for i, rt := range s.Routes {
			t := *rt.Type
			t.Delivery = t.Delivery.override(p)
			routes[i] = Route{Type: &t, handle: rt.handle}
		}
		s.Routes = routes
	}
}

type route struct {
	Route
	policy DeliveryPolicy
}

// AddHandler subscribes spec to its topic. Messages are dispatched by their
// type (or a former type name, for renamed types); a type the spec does not
// know is acknowledged and counted as skipped, so old consumers survive new
// events. A failing handler is retried with backoff, in place, so that
// messages behind it stay in order; after the last attempt, or at once for a
// payload that cannot be decoded or a Permanent error, the message goes to
// the dead-letter topic with the reason, and the next message is handled.
func (r *Router) AddHandler(spec HandlerSpec, opts ...HandlerOption) error {
	for _, o := range opts {
		o(&spec)
	}
	if spec.Name == "" || spec.Topic == "" || len(spec.Routes) == 0 {
		return fmt.Errorf("AddHandler: a handler needs a name, a topic and at least one route (got %q on %q)", spec.Name, spec.Topic)
	}
	if _, dup := r.router.Handlers()[spec.Name]; dup {
		return fmt.Errorf("AddHandler: a handler named %q is already registered; register the second with runtime.WithName", spec.Name)
	}
	routes := make(map[string]*route, len(spec.Routes))
	var subscription DeliveryPolicy
	for i, rt := range spec.Routes {
		p := rt.Type.Delivery
		if err := p.Validate(); err != nil {
			return fmt.Errorf("handler %s: delivery policy of %s: %w", spec.Name, rt.Type.Name, err)
		}
		if p.DedupWindow > 0 && r.dedup == nil {
			return fmt.Errorf("handler %s: %s asks for deduplication (dedup_window %s): set RouterConfig.DedupStore (sqlite.Store.Dedup, postgres.Store.Dedup, redisdedup.Open)", spec.Name, rt.Type.Name, p.DedupWindow)
		}
		if i == 0 {
			subscription = p
		} else if p.ConsumerGroup != subscription.ConsumerGroup || p.MaxPerSecond != subscription.MaxPerSecond ||
			p.MaxInFlight != subscription.MaxInFlight || p.Ordering != subscription.Ordering {
			return fmt.Errorf("handler %s: %s and %s share a subscription but ask for different consumer groups, rates, in-flight bounds or orderings", spec.Name, spec.Routes[0].Type.Name, rt.Type.Name)
		}
		entry := &route{Route: rt, policy: p.withDefaults(r.cfg.DeadLetterTopic)}
		for _, name := range append([]string{rt.Type.Name}, rt.Type.Aliases...) {
			if _, dup := routes[name]; dup {
				return fmt.Errorf("handler %s: two routes for type %s", spec.Name, name)
			}
			routes[name] = entry
		}
	}
	group := cmp.Or(subscription.ConsumerGroup, spec.Name)
	r.groups[spec.Name] = group
	sub := r.cfg.Subscriber
	if r.cfg.NewSubscriber != nil {
		var err error
		if sub, err = r.cfg.NewSubscriber(group); err != nil {
			return fmt.Errorf("handler %s: subscriber for consumer group %s: %w", spec.Name, group, err)
		}
		r.subs = append(r.subs, sub)
	}
	throttle := newThrottle(subscription.MaxPerSecond)
	// Watermill's router runs every message it receives on a goroutine of its
	// own; the slots bound how many the handler takes at once whatever the
	// subscriber does. One, unless the subscriber can deliver ahead: then
	// an orderedSubscriber hands out up to MaxInFlight messages, one per
	// ordering key at a time, and acknowledges them in the broker's order.
	inFlight := 1
	if ps, ok := sub.(PrefetchSubscriber); ok && subscription.MaxInFlight > 1 && subscription.Ordering != OrderingTopic {
		inFlight = subscription.MaxInFlight
		sub = newOrderedSubscriber(ps, inFlight, subscription.Ordering, r.cfg.CloseTimeout, r.cfg.Logger)
	}
	r.inFlight[spec.Name] = inFlight
	slot := make(chan struct{}, inFlight)
	r.router.AddConsumerHandler(spec.Name, spec.Topic, sub, func(msg *message.Message) error {
		// Try the free slot first: evaluating Done on the cancellable context
		// Watermill gives every message allocates its channel.
		select {
		case slot <- struct{}{}:
		default:
			select {
			case slot <- struct{}{}:
			case <-msg.Context().Done():
				return msg.Context().Err()
			}
		}
		defer func() { <-slot }()
		if err := throttle.wait(msg.Context()); err != nil {
			return err
		}
		return r.dispatch(spec.Name, spec.Topic, routes, msg)
	})
	return nil
}

// dispatch handles one message: decode, call, retry, dead-letter. It returns
// an error (a Nack, so the broker redelivers) only when the dead letter
// itself cannot be published: nothing is lost.
func (r *Router) dispatch(handler, topic string, routes map[string]*route, msg *message.Message) error {
	typ := msg.Metadata.Get(MetaType)
	rt, ok := routes[typ]
	if !ok {
		if typ == "" {
			return r.deadLetter(handler, topic, r.cfg.DeadLetterTopic, msg, 0, errors.New("message has no type ("+MetaType+" metadata)"))
		}
		r.stats.skipped.Add(1)
		r.cfg.Logger.Debug("Skipping message of a type this handler does not know", watermill.LogFields{"handler": handler, "type": typ, "message_uuid": msg.UUID})
		return nil
	}
	var ctx context.Context = &handlerContext{Context: msg.Context(), msg: msg}
	p := rt.policy
	var (
		attempts int
		err      error
	)
	if p.DedupWindow > 0 {
		// The envelope id, as EnvelopeOf reads it, without parsing the rest.
		id := cmp.Or(msg.Metadata.Get(MetaID), msg.UUID)
		err = r.dedup.Handle(ctx, handler, id, p.DedupWindow, func(ctx context.Context) (herr error) {
			attempts, herr = r.attempt(ctx, handler, typ, rt, msg)
			return herr
		})
	} else {
		attempts, err = r.attempt(ctx, handler, typ, rt, msg)
	}
	// The message's context ended (the router closes) or the
	// deduplication store is down: the message is not at fault; nack it
	// and let the broker redeliver it.
	if err == nil || msg.Context().Err() != nil || errors.Is(err, ErrDedupStore) {
		return err
	}
	return r.deadLetter(handler, topic, p.DeadLetterTopic, msg, attempts, err)
}

// attempt calls the handler, retrying in place with backoff, until it
// succeeds, fails permanently or runs out of attempts. It returns the
// attempts made and the last error.
func (r *Router) attempt(ctx context.Context, handler, typ string, rt *route, msg *message.Message) (int, error) {
	p := rt.policy
	for attempt := 1; ; attempt++ {
		err := callSafely(rt, ctx, msg)
		if err == nil {
			r.stats.handled.Add(1)
			return attempt, nil
		}
		// A lost deduplication claim is for Deduplicator.Handle to sort
		// out: retrying would only lose it again.
		if attempt >= p.MaxAttempts || IsPermanent(err) || errors.Is(err, ErrDedupClaimLost) {
			return attempt, err
		}
		r.stats.retried.Add(1)
		r.cfg.Logger.Info("Retrying message", watermill.LogFields{"handler": handler, "type": typ, "attempt": attempt, "err": err.Error()})
		select {
		case <-time.After(p.backoff(attempt)):
		case <-msg.Context().Done():
			return attempt, msg.Context().Err()
		}
	}
}

// callSafely turns a handler panic into an error, so a panicking handler
// costs one message (dead-lettered with the panic as reason), not the process.
func callSafely(rt *route, ctx context.Context, msg *message.Message) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return rt.handle(ctx, msg)
}

func (r *Router) deadLetter(handler, topic, dlq string, msg *message.Message, attempts int, reason error) error {
	dead := msg.Copy()
	dead.Metadata.Set(MetaDeadLetterReason, reason.Error())
	dead.Metadata.Set(MetaDeadLetterTopic, topic)
	dead.Metadata.Set(MetaDeadLetterHandler, handler)
	dead.Metadata.Set(MetaDeadLetterAttempt, fmt.Sprint(attempts))
	if err := r.cfg.Publisher.Publish(dlq, dead); err != nil {
		r.cfg.Logger.Error("Cannot dead-letter message; it will be redelivered", err, watermill.LogFields{"handler": handler, "message_uuid": msg.UUID})
		return fmt.Errorf("dead-letter to %s: %w (after: %v)", dlq, err, reason)
	}
	r.stats.deadLettered.Add(1)
	r.cfg.Logger.Error("Message dead-lettered", reason, watermill.LogFields{"handler": handler, "dead_letter_topic": dlq, "message_uuid": msg.UUID})
	return nil
}

// throttle spaces messages evenly at a rate per second; nil means unlimited.
type throttle struct {
	interval time.Duration
	mu       sync.Mutex
	next     time.Time
}

func newThrottle(perSecond int) *throttle {
	if perSecond <= 0 {
		return nil
	}
	return &throttle{interval: time.Second / time.Duration(perSecond)}
}

func (t *throttle) wait(ctx context.Context) error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	now := time.Now()
	at := t.next
	if at.Before(now) {
		at = now
	}
	t.next = at.Add(t.interval)
	t.mu.Unlock()
	if d := at.Sub(now); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
