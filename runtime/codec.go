package runtime

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Content types of the payloads the runtime writes and reads.
const (
	ContentTypeProtobuf = "application/protobuf"
	ContentTypeJSON     = "application/json"
)

// Codec encodes payloads. Implementations must be safe for concurrent use.
type Codec interface {
	// ContentType is written in the envelope of every message encoded.
	ContentType() string
	Marshal(m proto.Message) ([]byte, error)
	Unmarshal(b []byte, m proto.Message) error
}

// ProtoBinary is the default codec: the protobuf wire format.
var ProtoBinary Codec = protoBinary{}

// ProtoJSON encodes payloads as protojson. It discards unknown fields when
// decoding, so consumers built from an older schema read newer events.
var ProtoJSON Codec = protoJSON{
	marshal:   protojson.MarshalOptions{},
	unmarshal: protojson.UnmarshalOptions{DiscardUnknown: true},
}

type protoBinary struct{}

func (protoBinary) ContentType() string                       { return ContentTypeProtobuf }
func (protoBinary) Marshal(m proto.Message) ([]byte, error)   { return proto.Marshal(m) }
func (protoBinary) Unmarshal(b []byte, m proto.Message) error { return proto.Unmarshal(b, m) }

type protoJSON struct {
	marshal   protojson.MarshalOptions
	unmarshal protojson.UnmarshalOptions
}

func (protoJSON) ContentType() string                         { return ContentTypeJSON }
func (c protoJSON) Marshal(m proto.Message) ([]byte, error)   { return c.marshal.Marshal(m) }
func (c protoJSON) Unmarshal(b []byte, m proto.Message) error { return c.unmarshal.Unmarshal(b, m) }

// CodecFor returns the codec for a content type. An empty content type is the
// protobuf wire format, which is what a message without the attribute holds.
func CodecFor(contentType string) (Codec, error) {
	switch contentType {
	case "", ContentTypeProtobuf:
		return ProtoBinary, nil
	case ContentTypeJSON:
		return ProtoJSON, nil
	}
	return nil, fmt.Errorf("unsupported content type %q", contentType)
}
