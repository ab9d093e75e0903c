package telemetry

import (
	"cmp"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/protoc-gen-eda/eda/runtime"
)

const schemaURL = semconv.SchemaURL

// Attributes of this package's own, next to the semantic conventions'.
const (
	// AttrMessageType is the envelope's stable type name (ce_type).
	AttrMessageType = attribute.Key("eda.message.type")
	// AttrHandler is the runtime handler that processed the message.
	AttrHandler = attribute.Key("eda.handler.name")
	// AttrDeadLetterTopic is where a failed message was dead-lettered.
	AttrDeadLetterTopic = attribute.Key("eda.dead_letter.topic")
	// AttrDeadLetterAttempts counts the attempts before dead-lettering.
	AttrDeadLetterAttempts = attribute.Key("eda.dead_letter.attempts")
)

// Operation names: the span names' first word and messaging.operation.name.
const (
	opPublish = "publish"
	opProcess = "process"
)

// messageAttributes are the attributes both spans take from a message.
func (t *tracing) messageAttributes(topic string, msg *message.Message, extra ...attribute.KeyValue) []attribute.KeyValue {
	md := msg.Metadata
	id := cmp.Or(md.Get(runtime.MetaID), msg.UUID)
	attrs := make([]attribute.KeyValue, 0, 8+len(extra))
	attrs = append(attrs,
		semconv.MessagingSystemKey.String(t.system),
		semconv.MessagingDestinationName(topic),
		semconv.MessagingMessageID(id),
		// The envelope leaves the correlation id out when it is the
		// message's own id; the conversation is still that id.
		semconv.MessagingMessageConversationID(cmp.Or(md.Get(runtime.MetaCorrelationID), id)),
		semconv.MessagingMessageBodySize(len(msg.Payload)),
	)
	if typ := md.Get(runtime.MetaType); typ != "" {
		attrs = append(attrs, AttrMessageType.String(typ))
	}
	return append(attrs, extra...)
}
