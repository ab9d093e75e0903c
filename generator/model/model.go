// Package model is the intermediate representation between the generator and
// the templates: plain structs, in descriptor order, with every name already
// decided and every value already validated. Templates render it and never
// look back at descriptors or options.
package model

import "time"

// File is one generated `*_eda.pb.go` file, the companion of one `.proto` file.
type File struct {
	// Source is the proto file's path relative to its import root.
	Source string
	// GoPackageName and GoImportPath are the Go package the file lands in,
	// the same as protoc-gen-go's.
	GoPackageName string
	GoImportPath  string
	// Filename is the output path without the `_eda.pb.go` suffix.
	Filename string

	// Messages are the events and commands declared in this file.
	Messages []*Message
	// Aggregates are the aggregates declared in this file, with the events
	// and commands that name them, wherever those are declared.
	Aggregates []*Aggregate
	// Projections and Sagas are the read models and sagas declared in this
	// file.
	Projections []*Projection
	Sagas       []*Saga
}

// Empty reports whether the file has nothing to generate.
func (f *File) Empty() bool {
	return len(f.Messages) == 0 && len(f.Aggregates) == 0 && len(f.Projections) == 0 && len(f.Sagas) == 0
}

// GoIdent is a Go identifier qualified by its import path.
type GoIdent struct {
	GoName       string
	GoImportPath string
	// GoPackageName is the name of the package at GoImportPath.
	GoPackageName string
}

// Doc is the documentation carried over from a proto element.
type Doc struct {
	// Leading is the proto leading comment, trimmed, one line per element.
	Leading []string
	// Deprecated is set when the element has `deprecated = true`.
	Deprecated bool
}

// Kind says whether a message is an event or a command.
type Kind int

// The kinds of messages that travel on a topic.
const (
	Event Kind = iota + 1
	Command
)

func (k Kind) String() string {
	if k == Command {
		return "command"
	}
	return "event"
}

// Message is an event or a command.
type Message struct {
	Kind     Kind
	GoIdent  GoIdent
	FullName string
	Doc      Doc

	// TypeName is the stable type name written in envelopes.
	TypeName string
	// Aliases are former type names accepted when decoding.
	Aliases []string
	// Version is the schema version, at least 1.
	Version uint32
	// Topic is the resolved topic.
	Topic string
	// Aggregate owns the message; nil for a standalone message.
	Aggregate *Aggregate

	// Subject, PartitionKey and Correlation are the fields that fill those
	// envelope attributes; nil when the message has none.
	Subject      *Field
	PartitionKey *Field
	Correlation  *Field

	// Delivery is the resolved delivery policy (file defaults merged).
	Delivery Delivery
	// RetryOnConflict, for a command of an aggregate, lets the repository
	// run it again after a concurrency conflict.
	RetryOnConflict bool

	Names MessageNames
}

// Standalone reports whether the message has no aggregate and so gets a
// publisher (or command bus) and a handler of its own.
func (m *Message) Standalone() bool { return m.Aggregate == nil }

// MessageNames are the Go identifiers generated for one message.
type MessageNames struct {
	// TypeConst is the exported constant holding TypeName.
	TypeConst string
	// Info is the unexported variable describing the message to the runtime.
	Info string
	// Method publishes or sends the message (PublishX, SendX).
	Method string
	// HandlerMethod handles it (HandleX); for a command of an aggregate it is
	// also the aggregate behaviour's method deciding its events.
	HandlerMethod string
	// ApplyMethod is the aggregate behaviour's method folding an event of an
	// aggregate into its state (ApplyX).
	ApplyMethod string
	// HandlerName is the default name of the consumer of a standalone
	// message, derived from its type name: it is wire API.
	HandlerName string
	// TopicConst is the exported constant holding the topic of a standalone
	// message.
	TopicConst string
	// The rest are set for standalone messages only.
	Sender, NewSender, Handler, Register string
}

// FieldKind is the Go type of an envelope field.
type FieldKind int

// The field kinds an envelope attribute may be read from.
const (
	String FieldKind = iota + 1
	Int32
	Int64
	Uint32
	Uint64
)

// Field is a message field read into an envelope attribute.
type Field struct {
	// Getter is the protoc-gen-go getter method, e.g. GetOrderId.
	Getter string
	Kind   FieldKind
}

// Aggregate is an event-sourced aggregate and the messages that name it.
type Aggregate struct {
	GoIdent  GoIdent
	FullName string
	Doc      Doc

	// TypeName is the stable aggregate type.
	TypeName      string
	EventsTopic   string
	CommandsTopic string
	Snapshot      Snapshot

	// Events and Commands name this aggregate, in request order.
	Events   []*Message
	Commands []*Message

	Names AggregateNames
}

// Snapshot is an aggregate's snapshot policy.
type Snapshot struct {
	Every   uint32
	Version uint32
}

// AggregateNames are the Go identifiers generated for one aggregate.
type AggregateNames struct {
	// Base is the aggregate's name in Go identifiers: the state message's Go
	// name without a trailing "State".
	Base string

	TypeConst, EventsTopicConst, CommandsTopicConst string

	EventPublisher, NewEventPublisher                                   string
	EventHandler, UnimplementedEventHandler, RegisterEventHandler       string
	CommandBus, NewCommandBus                                           string
	CommandHandler, UnimplementedCommandHandler, RegisterCommandHandler string

	// EventsHandlerName and CommandsHandlerName are the default consumer
	// names, derived from the aggregate type: they are wire API.
	EventsHandlerName, CommandsHandlerName string

	// Event sourcing. Event and Command are the interfaces every event and
	// command of the aggregate implements, through the unexported methods
	// EventMethod and CommandMethod. Behaviour is the interface the user
	// implements. EventSpecs, Spec and Decide are unexported helpers.
	Event, Command, EventMethod, CommandMethod string
	Behaviour                                  string
	EventSpecs, Spec, Decide                   string
	Repository, NewRepository                  string
	Scenario, NewScenario                      string
}

// EventSourced reports whether the aggregate gets a behaviour interface and
// a repository: it needs at least one event to fold.
func (a *Aggregate) EventSourced() bool { return len(a.Events) > 0 }

// Delivery is a resolved delivery policy. Zero values mean the runtime's
// default.
type Delivery struct {
	MaxAttempts       uint32
	InitialBackoff    time.Duration
	MaxBackoff        time.Duration
	BackoffMultiplier float64
	DeadLetterTopic   string
	MaxInFlight       uint32
	MaxPerSecond      uint32
	ConsumerGroup     string
	// Ordering is "", "none", "partition_key" or "topic".
	Ordering    string
	DedupWindow time.Duration
}

// IsZero reports whether the policy sets nothing.
func (d Delivery) IsZero() bool { return d == Delivery{} }

// Projection is a read model built from events.
type Projection struct {
	GoIdent  GoIdent
	FullName string
	Doc      Doc

	// Name is the stable projection name that keys its checkpoint.
	Name string
	// Events are the events it consumes, in declaration order.
	Events []*Message

	Names ProjectionNames
}

// ProjectionNames are the Go identifiers generated for one projection.
type ProjectionNames struct {
	// Handler is the generic interface the user implements; Spec builds the
	// runtime.ProjectionSpec from it and New the runtime.Projection.
	Handler, Spec, New string
}

// OnMethod is the name of the projection handler's method for event m.
func (p *Projection) OnMethod(m *Message) string { return "On" + m.GoIdent.GoName }

// Saga is a process manager: state correlated across events that sends
// commands step by step and compensates on failure.
type Saga struct {
	GoIdent  GoIdent
	FullName string
	Doc      Doc

	// Name is the stable saga name: its instances' stream type, handler
	// names and timeout topic derive from it.
	Name string
	// Start is the event that begins an instance.
	Start *SagaEvent
	Steps []*SagaStep
	// Events are the success and failure events of every step, each once,
	// in step order.
	Events []*SagaEvent
	// Timeout bounds the whole saga; 0 means none.
	Timeout  time.Duration
	Delivery Delivery

	Names SagaNames
}

// SagaEvent is an event a saga consumes, with the field that holds the
// instance id.
type SagaEvent struct {
	Message     *Message
	Correlation *Field
	// Method is the behaviour's method that records the event in the state
	// (OnX), or "Start" for the start event.
	Method string
	// StateFields are the Go names of the state's fields the generated
	// skeleton copies from the event's fields of the same name and type.
	StateFields []string
}

// SagaStep is one step of a saga.
type SagaStep struct {
	Name string
	// Command is sent when the step starts; Compensation, when set, undoes
	// it after a later step fails.
	Command, Compensation *Message
	Success, Failure      []*SagaEvent
	Timeout               time.Duration
	// Method builds the step's command; CompensateMethod its compensation.
	Method, CompensateMethod string
	// CommandFields and CompensationFields are the Go names of the
	// commands' fields the generated skeleton copies from the state.
	CommandFields, CompensationFields []string
}

// SagaNames are the Go identifiers generated for one saga.
type SagaNames struct {
	// Behaviour is the interface the user implements; Spec builds the
	// runtime.SagaSpec from it and New the runtime.Saga. Skeleton is the
	// unexported type of the starting implementation generated beside.
	Behaviour, Spec, New, Skeleton string
}
