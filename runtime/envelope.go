package runtime

import (
	"cmp"
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Metadata keys of the envelope. The CloudEvents attributes use the `ce_`
// prefix of the CloudEvents Kafka and AMQP bindings so that a CloudEvents
// aware consumer reads them as they are; the rest are protoc-gen-eda's own.
const (
	MetaID            = "ce_id"
	MetaType          = "ce_type"
	MetaSource        = "ce_source"
	MetaTime          = "ce_time"
	MetaSubject       = "ce_subject"
	MetaContentType   = "ce_datacontenttype"
	MetaSchemaVersion = "eda_schemaversion"
	MetaCorrelationID = "eda_correlationid"
	MetaCausationID   = "eda_causationid"
	MetaAggregateType = "eda_aggregatetype"
	MetaSequence      = "eda_sequence"
	MetaPartitionKey  = "eda_partitionkey"
	// MetaTraceparent carries the W3C trace context.
	MetaTraceparent = "traceparent"
)

// Envelope is the set of attributes every message carries next to its
// payload. Handlers read the envelope of the message they handle with
// EnvelopeFrom.
type Envelope struct {
	// ID is the message id: a UUIDv7, so ids sort by creation time.
	ID string
	// Type is the stable type name of the payload.
	Type string
	// Source identifies the producer (PublisherConfig.Source).
	Source string
	// Time is when the message was published.
	Time time.Time
	// Subject is the aggregate id, when the message has one.
	Subject string
	// ContentType says how the payload is encoded.
	ContentType string
	// SchemaVersion is the payload's schema version.
	SchemaVersion uint32
	// CorrelationID ties together every message caused, directly or not, by
	// the same first message.
	CorrelationID string
	// CausationID is the id of the message whose handling published this one.
	CausationID string
	// AggregateType is the type of the aggregate the message belongs to.
	AggregateType string
	// Sequence is the event's version within its aggregate stream, when it
	// was read from an event store; 0 otherwise.
	Sequence uint64
	// PartitionKey orders the message: same key, same order.
	PartitionKey string
	// Traceparent is the W3C trace context.
	Traceparent string
}

// EnvelopeOf reads the envelope from a Watermill message's metadata. Missing
// attributes take their documented defaults: the message UUID for the id,
// the id for the correlation id, the subject for the partition key, 1 for the
// schema version. A malformed time or sequence reads as zero: the envelope
// describes, it does not validate.
func EnvelopeOf(msg *message.Message) *Envelope {
	env := new(Envelope)
	readEnvelope(msg, env)
	return env
}

func readEnvelope(msg *message.Message, env *Envelope) {
	md := msg.Metadata
	*env = Envelope{
		ID:            md.Get(MetaID),
		Type:          md.Get(MetaType),
		Source:        md.Get(MetaSource),
		Subject:       md.Get(MetaSubject),
		ContentType:   md.Get(MetaContentType),
		CorrelationID: md.Get(MetaCorrelationID),
		CausationID:   md.Get(MetaCausationID),
		AggregateType: md.Get(MetaAggregateType),
		PartitionKey:  md.Get(MetaPartitionKey),
		Traceparent:   md.Get(MetaTraceparent),
	}
	if env.ID == "" {
		env.ID = msg.UUID
	}
	// Attributes equal to their default are left out by the publisher.
	env.SchemaVersion = 1
	if s := md.Get(MetaSchemaVersion); s != "" {
		if v, err := strconv.ParseUint(s, 10, 32); err == nil {
			env.SchemaVersion = uint32(v)
		}
	}
	if env.CorrelationID == "" {
		env.CorrelationID = env.ID
	}
	if env.PartitionKey == "" {
		env.PartitionKey = env.Subject
	}
	if s := md.Get(MetaSequence); s != "" {
		if v, err := strconv.ParseUint(s, 10, 64); err == nil {
			env.Sequence = v
		}
	}
	if s := md.Get(MetaTime); s != "" {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			env.Time = t
		}
	}
}

// handlerContext is a handler's context: the message's context carrying the
// handled message, in one allocation. The envelope is parsed on first use,
// so a handler that never asks for it does not pay for parsing the time.
type handlerContext struct {
	context.Context
	msg  *message.Message
	once sync.Once
	// env is allocated on first use: an Envelope is a few hundred bytes, and
	// most handlers never look at it.
	env *Envelope
}

func (c *handlerContext) Value(key any) any {
	switch key.(type) {
	case envelopeKey:
		c.once.Do(func() { c.env = EnvelopeOf(c.msg) })
		return c.env
	case handledKey:
		return c
	}
	return c.Context.Value(key)
}

// handledKey finds the handlerContext under contexts derived from it.
type handledKey struct{}

type envelopeKey struct{}
type correlationKey struct{}

// WithEnvelope returns a context carrying env, the envelope of the message
// being handled. The router does this for every handler, so messages
// published while handling inherit its correlation id and take its id as
// their causation id.
func WithEnvelope(ctx context.Context, env *Envelope) context.Context {
	return context.WithValue(ctx, envelopeKey{}, env)
}

// EnvelopeFrom returns the envelope of the message being handled, if ctx is a
// handler's context.
func EnvelopeFrom(ctx context.Context) (*Envelope, bool) {
	env, ok := ctx.Value(envelopeKey{}).(*Envelope)
	return env, ok && env != nil
}

// WithCorrelationID returns a context whose publishes carry id as their
// correlation id, for code that starts a flow outside a handler (an HTTP
// request, for instance).
func WithCorrelationID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, correlationKey{}, id)
}

// correlationFrom returns the correlation and causation ids for a message
// published with ctx.
func correlationFrom(ctx context.Context) (correlationID, causationID, traceparent string) {
	if hc, ok := ctx.Value(handledKey{}).(*handlerContext); ok {
		// The three attributes needed, read without parsing the envelope.
		md := hc.msg.Metadata
		id := md.Get(MetaID)
		if id == "" {
			id = hc.msg.UUID
		}
		return cmp.Or(md.Get(MetaCorrelationID), id), id, md.Get(MetaTraceparent)
	}
	if env, ok := EnvelopeFrom(ctx); ok {
		correlationID = env.CorrelationID
		if correlationID == "" {
			correlationID = env.ID
		}
		return correlationID, env.ID, env.Traceparent
	}
	id, _ := ctx.Value(correlationKey{}).(string)
	return id, "", ""
}
