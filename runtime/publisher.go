package runtime

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
)

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Source identifies this producer in every envelope (CloudEvents
	// `source`), for example the service name. Required.
	Source string
	// Codec encodes payloads. Default ProtoBinary.
	Codec Codec
	// Now returns the publish time. Default time.Now; tests set a fixed clock.
	Now func() time.Time
	// NewID returns a new message id. Default: a UUIDv7 string.
	NewID func() (string, error)
}

func (c *PublisherConfig) setDefaults() {
	if c.Codec == nil {
		c.Codec = ProtoBinary
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.NewID == nil {
		c.NewID = newUUIDv7
	}
}

// Validate reports what is missing.
func (c PublisherConfig) Validate() error {
	if c.Source == "" {
		return errors.New("PublisherConfig.Source is required: name the producer, for example the service name")
	}
	return nil
}

func newUUIDv7() (string, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// Publisher stamps the envelope on typed messages and publishes them through a
// Watermill publisher. Generated publishers and command buses wrap one. It is
// safe for concurrent use if the underlying publisher is.
type Publisher struct {
	pub message.Publisher
	cfg PublisherConfig
}

// NewPublisher returns a Publisher over pub.
func NewPublisher(pub message.Publisher, cfg PublisherConfig) (*Publisher, error) {
	if pub == nil {
		return nil, errors.New("runtime.NewPublisher: nil message.Publisher")
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Publisher{pub: pub, cfg: cfg}, nil
}

// Outgoing is one message to publish with the envelope attributes read from
// its fields. Generated code fills it.
type Outgoing struct {
	// Subject is the aggregate id.
	Subject string
	// PartitionKey orders the message; empty means Subject.
	PartitionKey string
	// CorrelationID, when set, replaces the one inherited from ctx.
	CorrelationID string
	// Sequence is the event's version in its aggregate stream, set when the
	// message comes from an event store; 0 leaves it out.
	Sequence uint64
	// Message is the payload.
	Message proto.Message
}

// envelopeSize bounds the metadata entries Publish usually writes. A Go map
// holds 8 entries in one group; past that every copy of the metadata (and
// brokers copy it) allocates more, which is why attributes equal to their
// documented default are left out (see Publisher.NewMessage).
const envelopeSize = 8

// Publish encodes out.Message and publishes it on t.Topic with a new envelope.
// The correlation id comes from out, else from the message being handled in
// ctx (whose id becomes the causation id), else from WithCorrelationID, else
// it is the new message's own id.
func (p *Publisher) Publish(ctx context.Context, t *MessageType, out Outgoing) error {
	msg, err := p.NewMessage(ctx, t, out)
	if err != nil {
		return err
	}
	if err := p.pub.Publish(t.Topic, msg); err != nil {
		return fmt.Errorf("publish %s to %s: %w", t.Name, t.Topic, err)
	}
	return nil
}

// NewMessage builds the Watermill message Publish would publish, for code that
// publishes it itself (an outbox writing it in a transaction, for instance).
//
// Attributes equal to their documented default are not written, to keep the
// metadata small: the schema version when it is 1, the correlation id when it
// is the message's own id, the partition key when it is the subject.
// EnvelopeOf restores them.
func (p *Publisher) NewMessage(ctx context.Context, t *MessageType, out Outgoing) (*message.Message, error) {
	return newMessage(ctx, &p.cfg, t, out)
}

// newMessage builds a message with its envelope; cfg has its defaults set.
func newMessage(ctx context.Context, cfg *PublisherConfig, t *MessageType, out Outgoing) (*message.Message, error) {
	id, payload, md, err := newEnvelope(ctx, cfg, t, out)
	if err != nil {
		return nil, err
	}
	msg := message.NewMessage(id, payload)
	msg.Metadata = md
	msg.SetContext(ctx)
	return msg, nil
}

// newEnvelope encodes out.Message and builds its envelope: what a message
// is made of, for callers (the event store) that need no message.
func newEnvelope(ctx context.Context, cfg *PublisherConfig, t *MessageType, out Outgoing) (id string, payload []byte, md message.Metadata, err error) {
	if out.Message == nil {
		return "", nil, nil, fmt.Errorf("publish %s: nil message", t.Name)
	}
	payload, err = cfg.Codec.Marshal(out.Message)
	if err != nil {
		return "", nil, nil, fmt.Errorf("encode %s: %w", t.Name, err)
	}
	id, err = cfg.NewID()
	if err != nil {
		return "", nil, nil, fmt.Errorf("new message id: %w", err)
	}
	correlationID, causationID, traceparent := correlationFrom(ctx)
	if out.CorrelationID != "" {
		correlationID = out.CorrelationID
	}
	if correlationID == "" {
		correlationID = id
	}
	partitionKey := out.PartitionKey
	if partitionKey == "" {
		partitionKey = out.Subject
	}

	md = make(message.Metadata, envelopeSize)
	md[MetaID] = id
	md[MetaType] = t.Name
	md[MetaSource] = cfg.Source
	md[MetaTime] = cfg.Now().UTC().Format(time.RFC3339Nano)
	md[MetaContentType] = cfg.Codec.ContentType()
	if t.Version > 1 {
		md[MetaSchemaVersion] = strconv.FormatUint(uint64(t.Version), 10)
	}
	if correlationID != id {
		md[MetaCorrelationID] = correlationID
	}
	setIf(md, MetaSubject, out.Subject)
	if partitionKey != out.Subject {
		md[MetaPartitionKey] = partitionKey
	}
	setIf(md, MetaCausationID, causationID)
	setIf(md, MetaAggregateType, t.AggregateType)
	if out.Sequence != 0 {
		md[MetaSequence] = strconv.FormatUint(out.Sequence, 10)
	}
	setIf(md, MetaTraceparent, traceparent)
	return id, payload, md, nil
}

func setIf(md message.Metadata, key, value string) {
	if value != "" {
		md[key] = value
	}
}
