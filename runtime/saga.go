package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"google.golang.org/protobuf/proto"
)

// A saga orchestrates a process across aggregates: an event starts an
// instance, each step sends a command and waits for one of its success or
// failure events, and a failure or a timeout runs the compensations of
// the steps already taken, in reverse order.
//
// # Persistence
//
// An instance lives in the EventStore, so every backend persists sagas
// with no table of their own: instance id of saga "shop.checkout" is the
// stream {Type: "shop.checkout", ID: id}, and every transition appends one
// record to it (see sagaRecord for its format). Loading an instance reads
// its stream and keeps the last record.
//
// # Exactly one transition per message
//
// The commands a transition sends, and its timeouts, go in the outbox of
// the same append as the transition, so state and commands commit together
// and the Relay publishes them. The record's id is derived from the saga,
// the instance and the id of the message handled, and the outbox messages'
// ids from the record's: a message handled again (redelivered after a
// crash between commit and acknowledgement) either repeats an append the
// store recognises by its ids, and stores nothing, or finds the instance
// moved on, and is acknowledged as stale. A command is therefore never
// sent twice by the saga; its delivery is at least once, with a stable id
// consumers deduplicate by.
//
// # Timeouts
//
// A step with a timeout, and a saga with one, write a timeout message to
// the outbox with OutboxMessage.DeliverAt set: it waits in the store, not
// in memory, so it fires after a restart too. It is published on
// SagaConfig.TimeoutTopic, and comes back to the saga's handler there. A
// timeout that finds its step over, or the instance finished, is stale.
//
// # Failure
//
// A failure event of the current step, or a timeout, fails the step: the
// saga sends the compensations of the completed steps (those before it
// that have one), latest first, all in one transition, and the instance is
// Compensated. A step that timed out is compensated too, first, since its
// command may have taken effect; one that reported failure is not. The
// schema has no events confirming a compensation, so the saga does not
// wait for them: compensation commands are delivered at least once, and
// their handlers must make them succeed (retrying, dead-lettering for a
// human) rather than fail.

// SagaTimeoutType is the message type of saga timeouts, published on
// SagaConfig.TimeoutTopic. Its payload is JSON (see sagaTimeout).
const SagaTimeoutType = "eda.saga.Timeout"

// sagaConflictRetries is how many times a transition is decided again, on
// a freshly loaded instance, after another transition of the same instance
// committed first. Two events for one instance at the same moment (a
// reply racing its step's timeout) conflict once; more means a hot
// instance, which the router's retry with backoff handles better.
const sagaConflictRetries = 3

// ErrSagaNotFound reports a saga instance that does not exist.
var ErrSagaNotFound = errors.New("saga instance not found")

// SagaEvent routes one event type to a saga: how to find its instance and
// how to record it in state. Build it with SagaOn.
type SagaEvent[S proto.Message] struct {
	// Type is the event's type.
	Type *MessageType
	bind func(msg *message.Message) (id string, apply func(ctx context.Context, state S) error, err error)
}

// SagaOn returns the SagaEvent of event type t: correlate returns the id of
// the instance an event belongs to, and fn records the event in the
// instance's state. Generated code calls it once per success and failure
// event of a saga.
func SagaOn[S proto.Message, T any, PT interface {
	*T
	proto.Message
}](t *MessageType, correlate func(PT) string, fn func(ctx context.Context, state S, event PT) error) SagaEvent[S] {
	ev := SagaEvent[S]{Type: t}
	if correlate == nil || fn == nil {
		return ev // NewSaga reports it
	}
	ev.bind = func(msg *message.Message) (string, func(context.Context, S) error, error) {
		e, err := decodeSagaEvent[T, PT](t, msg)
		if err != nil {
			return "", nil, err
		}
		return correlate(e), func(ctx context.Context, state S) error { return fn(ctx, state, e) }, nil
	}
	return ev
}

// SagaStart is the event that starts a saga instance. Build it with
// StartOn.
type SagaStart[S proto.Message] struct {
	// Type is the event's type.
	Type *MessageType
	bind func(msg *message.Message) (id string, start func(ctx context.Context) (S, error), err error)
}

// StartOn returns the SagaStart of event type t: correlate returns the id
// of the instance the event starts, and fn its initial state.
func StartOn[S proto.Message, T any, PT interface {
	*T
	proto.Message
}](t *MessageType, correlate func(PT) string, fn func(ctx context.Context, event PT) (S, error)) SagaStart[S] {
	st := SagaStart[S]{Type: t}
	if correlate == nil || fn == nil {
		return st // NewSaga reports it
	}
	st.bind = func(msg *message.Message) (string, func(context.Context) (S, error), error) {
		e, err := decodeSagaEvent[T, PT](t, msg)
		if err != nil {
			return "", nil, err
		}
		return correlate(e), func(ctx context.Context) (S, error) { return fn(ctx, e) }, nil
	}
	return st
}

// decodeSagaEvent decodes msg's payload into a new PT. A payload that does
// not decode never will: the error is Permanent.
func decodeSagaEvent[T any, PT interface {
	*T
	proto.Message
}](t *MessageType, msg *message.Message) (PT, error) {
	e := PT(new(T))
	codec, err := CodecFor(msg.Metadata.Get(MetaContentType))
	if err == nil {
		err = codec.Unmarshal(msg.Payload, e)
	}
	if err != nil {
		return nil, Permanent(&decodeError{fmt.Errorf("decode %s: %w", t.Name, err)})
	}
	return e, nil
}

// SagaCommand builds a step's command (or compensation) from the state:
// its type and its Outgoing, as the Publisher takes them. It must not
// modify the state.
type SagaCommand[S proto.Message] func(ctx context.Context, state S) (*MessageType, Outgoing, error)

// SagaStep is one step of a saga: the command it sends, the events that
// end it, and how long it may take.
type SagaStep[S proto.Message] struct {
	// Name identifies the step in persisted instances: renaming a step
	// strands the instances waiting in it.
	Name string
	// Command builds the command the step sends when it starts.
	Command SagaCommand[S]
	// Compensation builds the command that undoes the step; nil when the
	// step needs no compensation.
	Compensation SagaCommand[S]
	// Success lists the events that complete the step; at least one.
	Success []SagaEvent[S]
	// Failure lists the events that fail it.
	Failure []SagaEvent[S]
	// Timeout fails the step if none of its events arrives within it. 0
	// means none.
	Timeout time.Duration
}

// SagaSpec describes a saga with state S. Generated code builds one per
// saga.
type SagaSpec[S proto.Message] struct {
	// Name is the saga's stable name: the stream type of its instances,
	// the prefix of its handler names and its default timeout topic.
	// Renaming it strands the running instances.
	Name string
	// StateType is the proto full name of S: the type of the records that
	// hold an instance's state.
	StateType string
	// New returns an empty state, to decode into.
	New func() S
	// Start is the event that starts an instance.
	Start SagaStart[S]
	// Steps run in order; at least one.
	Steps []SagaStep[S]
	// Timeout bounds the whole saga: reaching it fails the current step. 0
	// means none.
	Timeout time.Duration
	// Delivery is the delivery policy of the saga's handlers.
	Delivery DeliveryPolicy
}

// SagaConfig configures a Saga.
type SagaConfig struct {
	// Store persists the instances; its outbox carries the commands and
	// timeouts. Required.
	Store EventStore
	// Codec encodes the state and the commands. Default ProtoBinary.
	Codec Codec
	// Source identifies this service in the envelope of every command and
	// timeout (see PublisherConfig.Source). Required.
	Source string
	// TimeoutTopic is where timeouts are published, and where the saga
	// listens for them. Default: the saga's name + ".timeouts".
	TimeoutTopic string
	// Now returns the time of transitions, deadlines included. Default
	// time.Now. The stores relay a timeout when their own clock (time.Now)
	// reaches its deadline, so a clock that is not the wall clock delays or
	// hastens timeouts.
	Now func() time.Time
	// Logger receives events that are acknowledged without a transition
	// (an unknown instance, say). Default: none.
	Logger watermill.LoggerAdapter
}

// Validate reports what is missing.
func (c SagaConfig) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("SagaConfig.Store is required: the event store that persists the instances"))
	}
	if c.Source == "" {
		errs = append(errs, errors.New("SagaConfig.Source is required: name the producer of the commands, for example the service name"))
	}
	return errors.Join(errs...)
}

// SagaStatus is where a saga instance stands.
type SagaStatus int

// The statuses of a saga instance.
const (
	// SagaRunning waits for an event of its current step.
	SagaRunning SagaStatus = iota + 1
	// SagaCompleted finished every step.
	SagaCompleted
	// SagaCompensated had a step fail and sent the compensations.
	SagaCompensated
)

// sagaStatusNames are the statuses as persisted and printed.
var sagaStatusNames = map[SagaStatus]string{
	SagaRunning:     "running",
	SagaCompleted:   "completed",
	SagaCompensated: "compensated",
}

func (s SagaStatus) String() string {
	if name, ok := sagaStatusNames[s]; ok {
		return name
	}
	return fmt.Sprintf("SagaStatus(%d)", int(s))
}

// terminal reports whether an instance in status s takes no more events.
func (s SagaStatus) terminal() bool { return s != SagaRunning }

// SagaInstance is one saga instance as stored.
type SagaInstance[S proto.Message] struct {
	// ID is the instance id: the correlation value of its events.
	ID string
	// State is the instance's state.
	State S
	// Status says where it stands.
	Status SagaStatus
	// Step is the index of the current step; for a compensated instance,
	// of the step that failed; for a completed one, len(Steps).
	Step int
	// StepName is the name of that step; empty for a completed instance.
	StepName string
	// Version is the number of transitions: its stream's version.
	Version uint64
	// Deadline is when the current step, or the saga, times out,
	// whichever is sooner; zero for none or for a finished instance.
	Deadline time.Time
	// Failure says why the instance compensated: the failure event's type,
	// "timeout of step <name>" or "timeout of saga".
	Failure string
}

// SagaStats counts what a Saga did with the messages it handled, in this
// process. A transition counts when its append returns: one whose commit
// the store confirmed to a copy of the message racing it, or not at all
// (a connection lost after the commit), may count twice or not at all,
// while the store holds it once.
type SagaStats struct {
	// Started, Completed and Compensated count instances.
	Started, Completed, Compensated uint64
	// Unmatched counts events and timeouts for instances that do not
	// exist; they are acknowledged.
	Unmatched uint64
	// Stale counts messages acknowledged without a transition: a start
	// event for an existing instance, an event for another step or a
	// finished instance, a redelivered message, a timeout whose step is
	// over.
	Stale uint64
}

type sagaStats struct{ started, completed, compensated, unmatched, stale atomic.Uint64 }

// sagaRole is what an event type does to an instance.
type sagaRole int

const (
	sagaRoleStart sagaRole = iota
	sagaRoleSuccess
	sagaRoleFailure
)

// sagaRoute is one event type of a saga.
type sagaRoute[S proto.Message] struct {
	typ  *MessageType
	role sagaRole
	step int // for sagaRoleSuccess and sagaRoleFailure
	// event is the success or failure event; nil for the start event.
	event *SagaEvent[S]
}

// Saga runs a saga: it handles the saga's events and timeouts, persists
// its instances in the EventStore and sends its commands through the
// store's outbox. It is safe for concurrent use; two messages for one
// instance at once are serialized by the store's optimistic concurrency.
type Saga[S proto.Message] struct {
	spec         SagaSpec[S]
	store        EventStore
	env          PublisherConfig
	timeoutTopic string
	logger       watermill.LoggerAdapter
	// routes maps every event type name and alias to its route.
	routes map[string]*sagaRoute[S]
	// steps maps step names to indexes, for loading instances.
	steps map[string]int
	stats sagaStats
}

// NewSaga returns the saga of spec, after checking spec: a name and a state
// type, unique step names, every function set, at least one success event
// per step, and every event type in one place only.
func NewSaga[S proto.Message](spec SagaSpec[S], cfg SagaConfig) (*Saga[S], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Saga[S]{
		spec:         spec,
		store:        cfg.Store,
		env:          PublisherConfig{Source: cfg.Source, Codec: cfg.Codec, Now: cfg.Now},
		timeoutTopic: cfg.TimeoutTopic,
		logger:       cfg.Logger,
		routes:       make(map[string]*sagaRoute[S]),
		steps:        make(map[string]int, len(spec.Steps)),
	}
	s.env.setDefaults()
	if s.timeoutTopic == "" {
		s.timeoutTopic = spec.Name + ".timeouts"
	}
	if s.logger == nil {
		s.logger = watermill.NopLogger{}
	}
	if err := s.index(); err != nil {
		return nil, fmt.Errorf("runtime.NewSaga %s: %w", spec.Name, err)
	}
	return s, nil
}

// index checks the spec and fills routes and steps, reporting every
// problem at once.
func (s *Saga[S]) index() error {
	spec := &s.spec
	var errs []error
	if spec.Name == "" {
		errs = append(errs, errors.New("the SagaSpec has no Name"))
	}
	if spec.StateType == "" {
		errs = append(errs, errors.New("the SagaSpec has no StateType: set it to the state message's proto full name"))
	}
	if spec.New == nil {
		errs = append(errs, errors.New("the SagaSpec has no New function"))
	}
	if spec.Timeout < 0 {
		errs = append(errs, fmt.Errorf("the saga's Timeout %v is negative", spec.Timeout))
	}
	if len(spec.Steps) == 0 {
		errs = append(errs, errors.New("the saga has no steps"))
	}
	add := func(where string, t *MessageType, r *sagaRoute[S], bound bool) {
		switch {
		case t == nil:
			errs = append(errs, fmt.Errorf("%s has no Type", where))
			return
		case t.Name == "" || t.Topic == "":
			errs = append(errs, fmt.Errorf("%s: type %q needs a name and a topic", where, t.Name))
			return
		case !bound:
			errs = append(errs, fmt.Errorf("%s (%s) was not built with SagaOn or StartOn, or has a nil function", where, t.Name))
		}
		for _, name := range append([]string{t.Name}, t.Aliases...) {
			if name == SagaTimeoutType {
				errs = append(errs, fmt.Errorf("%s: type %s is reserved for saga timeouts", where, name))
			} else if _, dup := s.routes[name]; dup {
				errs = append(errs, fmt.Errorf("%s: event type %s is used twice in the saga: an event may start it or end one step", where, name))
			}
			s.routes[name] = r
		}
	}
	add("the start event", spec.Start.Type, &sagaRoute[S]{typ: spec.Start.Type, role: sagaRoleStart}, spec.Start.bind != nil)
	for i := range spec.Steps {
		st := &spec.Steps[i]
		where := fmt.Sprintf("step %d (%q)", i, st.Name)
		if st.Name == "" {
			errs = append(errs, fmt.Errorf("step %d has no Name", i))
		} else if j, dup := s.steps[st.Name]; dup {
			errs = append(errs, fmt.Errorf("steps %d and %d are both named %q", j, i, st.Name))
		} else {
			s.steps[st.Name] = i
		}
		if st.Command == nil {
			errs = append(errs, fmt.Errorf("%s has no Command", where))
		}
		if len(st.Success) == 0 {
			errs = append(errs, fmt.Errorf("%s has no Success event: it could never complete", where))
		}
		if st.Timeout < 0 {
			errs = append(errs, fmt.Errorf("%s: Timeout %v is negative", where, st.Timeout))
		}
		for k := range st.Success {
			ev := &st.Success[k]
			add(where+" success event", ev.Type, &sagaRoute[S]{typ: ev.Type, role: sagaRoleSuccess, step: i, event: ev}, ev.bind != nil)
		}
		for k := range st.Failure {
			ev := &st.Failure[k]
			add(where+" failure event", ev.Type, &sagaRoute[S]{typ: ev.Type, role: sagaRoleFailure, step: i, event: ev}, ev.bind != nil)
		}
	}
	return errors.Join(errs...)
}

// Name returns the saga's name.
func (s *Saga[S]) Name() string { return s.spec.Name }

// TimeoutTopic returns the topic of the saga's timeouts.
func (s *Saga[S]) TimeoutTopic() string { return s.timeoutTopic }

// Stats returns the counters since the saga was created.
func (s *Saga[S]) Stats() SagaStats {
	return SagaStats{
		Started:     s.stats.started.Load(),
		Completed:   s.stats.completed.Load(),
		Compensated: s.stats.compensated.Load(),
		Unmatched:   s.stats.unmatched.Load(),
		Stale:       s.stats.stale.Load(),
	}
}

// Register adds the saga's handlers to r: one per distinct topic of its
// events (start, success and failure; the types of one topic share a
// handler) and of its timeouts. Each takes the saga's delivery policy.
//
// A handler is named "<saga name>.on.<topic>". The names are wire API:
// they are the default consumer groups, and renaming one re-consumes a
// durable topic. WithName(n) replaces the saga name in them; opts apply to
// every handler otherwise, as in Router.AddHandler.
func (s *Saga[S]) Register(r *Router, opts ...HandlerOption) error {
	base := HandlerSpec{Name: s.spec.Name}
	for _, o := range opts {
		o(&base)
	}
	byTopic := make(map[string][]Route)
	var topics []string // in spec order, so registration is deterministic
	addRoute := func(t *MessageType, handle func(ctx context.Context, msg *message.Message) error) {
		typ := *t
		typ.Delivery = s.spec.Delivery
		if _, seen := byTopic[typ.Topic]; !seen {
			topics = append(topics, typ.Topic)
		}
		byTopic[typ.Topic] = append(byTopic[typ.Topic], Route{Type: &typ, handle: handle})
	}
	seen := make(map[*sagaRoute[S]]bool)
	for _, t := range s.eventTypes() {
		rt := s.routes[t.Name]
		if seen[rt] {
			continue
		}
		seen[rt] = true
		addRoute(t, func(ctx context.Context, msg *message.Message) error { return s.handleEvent(ctx, msg, rt) })
	}
	addRoute(&MessageType{Name: SagaTimeoutType, Topic: s.timeoutTopic}, s.handleTimeout)
	for _, topic := range topics {
		spec := HandlerSpec{Name: base.Name + ".on." + topic, Topic: topic, Routes: byTopic[topic]}
		// The name last, so that WithName in opts sets the prefix only.
		if err := r.AddHandler(spec, slices.Concat(opts, []HandlerOption{WithName(spec.Name)})...); err != nil {
			return fmt.Errorf("saga %s: %w", s.spec.Name, err)
		}
	}
	return nil
}

// eventTypes lists the saga's event types in spec order: the start event,
// then each step's success and failure events.
func (s *Saga[S]) eventTypes() []*MessageType {
	types := []*MessageType{s.spec.Start.Type}
	for _, st := range s.spec.Steps {
		for _, ev := range st.Success {
			types = append(types, ev.Type)
		}
		for _, ev := range st.Failure {
			types = append(types, ev.Type)
		}
	}
	return types
}
