package kafka

import (
	"github.com/IBM/sarama"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/protoc-gen-eda/eda/runtime"
)

// Marshaler maps a message to a Kafka record as Watermill's
// DefaultMarshaler does (metadata as headers, the id in the
// _watermill_message_uuid header, the payload as the value) and keys the
// record by the message's partition key, so that one key's messages share
// a partition and stay in order.
//
// Watermill's NewWithPartitioningMarshaler would key a message without a
// partition key by the empty string, sending every such message to one
// partition; Marshaler leaves those unkeyed, spread over partitions.
type Marshaler struct{}

var _ wkafka.MarshalerUnmarshaler = Marshaler{}

// Marshal returns the record of msg on topic.
func (Marshaler) Marshal(topic string, msg *message.Message) (*sarama.ProducerMessage, error) {
	rec, err := wkafka.DefaultMarshaler{}.Marshal(topic, msg)
	if err != nil {
		return nil, err
	}
	if key := PartitionKey(msg); key != "" {
		rec.Key = sarama.StringEncoder(key)
	}
	return rec, nil
}

// Unmarshal returns the message of a record.
func (Marshaler) Unmarshal(rec *sarama.ConsumerMessage) (*message.Message, error) {
	return wkafka.DefaultMarshaler{}.Unmarshal(rec)
}

// PartitionKey is the key the runtime orders msg by: its
// runtime.MetaPartitionKey metadata, else its subject
// (runtime.MetaSubject), as runtime.Envelope reads them; "" when it has
// neither.
func PartitionKey(msg *message.Message) string {
	if key := msg.Metadata.Get(runtime.MetaPartitionKey); key != "" {
		return key
	}
	return msg.Metadata.Get(runtime.MetaSubject)
}
