package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/sourcecontextpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/protoc-gen-eda/eda/runtime"
)

// capturePublisher records what is published through it.
type capturePublisher struct {
	mu     sync.Mutex
	topics []string
	msgs   []*message.Message
	err    error
}

func (c *capturePublisher) Publish(topic string, msgs ...*message.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	for _, m := range msgs {
		c.topics = append(c.topics, topic)
		c.msgs = append(c.msgs, m)
	}
	return nil
}

func (c *capturePublisher) Close() error { return nil }

func (c *capturePublisher) only(t *testing.T) (string, *message.Message) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.msgs) != 1 {
		t.Fatalf("published %d messages, want 1", len(c.msgs))
	}
	return c.topics[0], c.msgs[0]
}

// fixedNow is deliberately not in UTC and has nanoseconds, so the test sees
// both the conversion to UTC and the RFC 3339 nano precision.
var fixedNow = time.Date(2025, 3, 4, 5, 6, 7, 891234567, time.FixedZone("UTC+5:30", 5*3600+1800))

var orderPlaced = &runtime.MessageType{
	Name:          "shop.orders.v1.OrderPlaced",
	Version:       2,
	Topic:         "shop.orders",
	AggregateType: "shop.orders.v1.Order",
}

func newTestPublisher(t *testing.T, pub message.Publisher, mutate func(*runtime.PublisherConfig)) *runtime.Publisher {
	t.Helper()
	cfg := runtime.PublisherConfig{Source: "orders-service", Now: func() time.Time { return fixedNow }}
	if mutate != nil {
		mutate(&cfg)
	}
	p, err := runtime.NewPublisher(pub, cfg)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	return p
}

func TestPublisherStampsEnvelope(t *testing.T) {
	capture := &capturePublisher{}
	pub := newTestPublisher(t, capture, nil)

	if err := pub.Publish(context.Background(), orderPlaced, runtime.Outgoing{
		Subject: "o-1",
		Message: wrapperspb.String("hello"),
	}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	topic, msg := capture.only(t)
	if topic != orderPlaced.Topic {
		t.Errorf("topic = %q, want %q", topic, orderPlaced.Topic)
	}
	md := msg.Metadata

	id := md.Get(runtime.MetaID)
	parsed, err := uuid.Parse(id)
	if err != nil {
		t.Fatalf("ce_id %q is not a UUID: %v", id, err)
	}
	if parsed.Version() != 7 {
		t.Errorf("ce_id %q is a UUIDv%d, want v7", id, parsed.Version())
	}
	if msg.UUID != id {
		t.Errorf("msg.UUID = %q, want ce_id %q", msg.UUID, id)
	}

	wantTime := fixedNow.UTC().Format(time.RFC3339Nano)
	if got := md.Get(runtime.MetaTime); got != wantTime {
		t.Errorf("ce_time = %q, want %q", got, wantTime)
	}
	tm, err := time.Parse(time.RFC3339Nano, md.Get(runtime.MetaTime))
	if err != nil {
		t.Fatalf("ce_time does not parse as RFC 3339: %v", err)
	}
	if !tm.Equal(fixedNow) {
		t.Errorf("ce_time = %v, want %v", tm, fixedNow)
	}
	if _, offset := tm.Zone(); offset != 0 || !strings.HasSuffix(md.Get(runtime.MetaTime), "Z") {
		t.Errorf("ce_time %q is not in UTC", md.Get(runtime.MetaTime))
	}

	want := map[string]string{
		runtime.MetaID:            id,
		runtime.MetaType:          "shop.orders.v1.OrderPlaced",
		runtime.MetaSource:        "orders-service",
		runtime.MetaTime:          wantTime,
		runtime.MetaSubject:       "o-1",
		runtime.MetaContentType:   runtime.ContentTypeProtobuf,
		runtime.MetaSchemaVersion: "2",
		runtime.MetaAggregateType: "shop.orders.v1.Order",
		// Left out as equal to their defaults: the correlation id (a new
		// flow is correlated with itself) and the partition key (the
		// subject).
	}
	if !maps.Equal(map[string]string(md), want) {
		t.Errorf("metadata =\n%v\nwant\n%v", md, want)
	}
	// Reading restores the defaults.
	if env := runtime.EnvelopeOf(msg); env.CorrelationID != id || env.PartitionKey != "o-1" || env.SchemaVersion != 2 {
		t.Errorf("EnvelopeOf = %+v, want correlation %s, partition key o-1, version 2", env, id)
	}

	var got wrapperspb.StringValue
	if err := proto.Unmarshal(msg.Payload, &got); err != nil || got.GetValue() != "hello" {
		t.Errorf("payload decodes to %q (err %v), want %q", got.GetValue(), err, "hello")
	}
}

func TestPublisherIDsAreUniqueAndSortByTime(t *testing.T) {
	pub := newTestPublisher(t, &capturePublisher{}, func(c *runtime.PublisherConfig) { c.Now = nil })
	var ids []string
	for range 50 {
		msg, err := pub.NewMessage(context.Background(), orderPlaced, runtime.Outgoing{Message: &emptypb.Empty{}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, msg.UUID)
	}
	if !slices.IsSorted(ids) {
		t.Errorf("ids of successive messages do not sort by creation: %v", ids)
	}
	if len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Errorf("duplicate ids: %v", ids)
	}
}

func TestPublisherSubjectPartitionKeyAndAggregateType(t *testing.T) {
	noAggregate := &runtime.MessageType{Name: "x.v1.Pinged", Topic: "x"}
	tests := []struct {
		name                  string
		typ                   *runtime.MessageType
		subject, partitionKey string
		wantSubject, wantKey  string
		wantAggregate         string
	}{
		{name: "key defaults to subject", typ: orderPlaced, subject: "o-1", wantSubject: "o-1", wantKey: "o-1", wantAggregate: "shop.orders.v1.Order"},
		{name: "key differs from subject", typ: orderPlaced, subject: "o-1", partitionKey: "customer-9", wantSubject: "o-1", wantKey: "customer-9", wantAggregate: "shop.orders.v1.Order"},
		{name: "key without subject", typ: orderPlaced, partitionKey: "k", wantKey: "k", wantAggregate: "shop.orders.v1.Order"},
		{name: "neither, no aggregate", typ: noAggregate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := newTestPublisher(t, &capturePublisher{}, nil)
			msg, err := pub.NewMessage(context.Background(), tt.typ, runtime.Outgoing{
				Subject: tt.subject, PartitionKey: tt.partitionKey, Message: &emptypb.Empty{},
			})
			if err != nil {
				t.Fatal(err)
			}
			// The partition key is written only when it differs from the
			// subject, its default.
			wantKeyMeta := tt.wantKey
			if wantKeyMeta == tt.wantSubject {
				wantKeyMeta = ""
			}
			for key, want := range map[string]string{
				runtime.MetaSubject:       tt.wantSubject,
				runtime.MetaPartitionKey:  wantKeyMeta,
				runtime.MetaAggregateType: tt.wantAggregate,
			} {
				got, present := msg.Metadata[key]
				if got != want || present != (want != "") {
					t.Errorf("%s = %q (present %v), want %q (absent when empty)", key, got, present, want)
				}
			}
			if env := runtime.EnvelopeOf(msg); env.PartitionKey != tt.wantKey {
				t.Errorf("EnvelopeOf(...).PartitionKey = %q, want %q", env.PartitionKey, tt.wantKey)
			}
		})
	}
}

func TestPublisherCorrelation(t *testing.T) {
	handled := &runtime.Envelope{ID: "incoming-1", CorrelationID: "root-0", Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	firstOfFlow := &runtime.Envelope{ID: "incoming-2"}
	bg := context.Background()
	tests := []struct {
		name            string
		ctx             context.Context
		outgoing        string
		wantCorrelation string // "self" means the new message's id
		wantCausation   string
		wantTraceparent string
	}{
		{name: "new flow", ctx: bg, wantCorrelation: "self"},
		{name: "WithCorrelationID", ctx: runtime.WithCorrelationID(bg, "req-7"), wantCorrelation: "req-7"},
		{name: "handler context", ctx: runtime.WithEnvelope(bg, handled), wantCorrelation: "root-0", wantCausation: "incoming-1", wantTraceparent: handled.Traceparent},
		{name: "handler context without correlation id", ctx: runtime.WithEnvelope(bg, firstOfFlow), wantCorrelation: "incoming-2", wantCausation: "incoming-2"},
		{name: "handler context wins over WithCorrelationID", ctx: runtime.WithEnvelope(runtime.WithCorrelationID(bg, "req-7"), handled), wantCorrelation: "root-0", wantCausation: "incoming-1", wantTraceparent: handled.Traceparent},
		{name: "Outgoing wins over handler context", ctx: runtime.WithEnvelope(bg, handled), outgoing: "explicit", wantCorrelation: "explicit", wantCausation: "incoming-1", wantTraceparent: handled.Traceparent},
		{name: "Outgoing wins over WithCorrelationID", ctx: runtime.WithCorrelationID(bg, "req-7"), outgoing: "explicit", wantCorrelation: "explicit"},
		{name: "Outgoing in a new flow", ctx: bg, outgoing: "explicit", wantCorrelation: "explicit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := newTestPublisher(t, &capturePublisher{}, nil)
			msg, err := pub.NewMessage(tt.ctx, orderPlaced, runtime.Outgoing{CorrelationID: tt.outgoing, Message: &emptypb.Empty{}})
			if err != nil {
				t.Fatal(err)
			}
			want := tt.wantCorrelation
			if want == "self" {
				want = msg.UUID
			}
			md := msg.Metadata
			if got := runtime.EnvelopeOf(msg).CorrelationID; got != want {
				t.Errorf("correlation id = %q, want %q", got, want)
			}
			// A correlation equal to the message's own id is not written.
			if _, written := md[runtime.MetaCorrelationID]; written != (want != msg.UUID) {
				t.Errorf("eda_correlationid written = %v, want %v", written, want != msg.UUID)
			}
			if got, ok := md[runtime.MetaCausationID]; got != tt.wantCausation || ok != (tt.wantCausation != "") {
				t.Errorf("causation id = %q (present %v), want %q", got, ok, tt.wantCausation)
			}
			if got, ok := md[runtime.MetaTraceparent]; got != tt.wantTraceparent || ok != (tt.wantTraceparent != "") {
				t.Errorf("traceparent = %q (present %v), want %q", got, ok, tt.wantTraceparent)
			}
			if msg.UUID == "incoming-1" || msg.UUID == "incoming-2" {
				t.Errorf("new message reused the handled message's id %q", msg.UUID)
			}
		})
	}
}

func TestPublisherProtoJSON(t *testing.T) {
	capture := &capturePublisher{}
	pub := newTestPublisher(t, capture, func(c *runtime.PublisherConfig) { c.Codec = runtime.ProtoJSON })
	in, err := structpb.NewStruct(map[string]any{"sku": "A-1", "qty": 3.0, "tags": []any{"x", true}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(context.Background(), orderPlaced, runtime.Outgoing{Message: in}); err != nil {
		t.Fatal(err)
	}
	_, msg := capture.only(t)
	ct := msg.Metadata.Get(runtime.MetaContentType)
	if ct != "application/json" {
		t.Errorf("content type = %q, want application/json", ct)
	}
	if !json.Valid(msg.Payload) {
		t.Errorf("payload is not JSON: %q", msg.Payload)
	}
	codec, err := runtime.CodecFor(ct)
	if err != nil {
		t.Fatal(err)
	}
	out := &structpb.Struct{}
	if err := codec.Unmarshal(msg.Payload, out); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(in, out) {
		t.Errorf("round trip = %v, want %v", out, in)
	}
}

func TestPublisherErrors(t *testing.T) {
	errBroker := errors.New("broker down")
	tests := []struct {
		name    string
		pub     *capturePublisher
		mutate  func(*runtime.PublisherConfig)
		out     runtime.Outgoing
		wantIs  error
		wantSub []string
	}{
		{name: "nil message", out: runtime.Outgoing{}, wantSub: []string{"nil message", orderPlaced.Name}},
		{name: "encode error", out: runtime.Outgoing{Message: wrapperspb.String("\xff\xfe")}, wantSub: []string{"encode", orderPlaced.Name}},
		{
			name: "id error",
			mutate: func(c *runtime.PublisherConfig) {
				c.NewID = func() (string, error) { return "", errors.New("entropy exhausted") }
			},
			out:     runtime.Outgoing{Message: &emptypb.Empty{}},
			wantSub: []string{"entropy exhausted"},
		},
		{
			name:    "broker error",
			pub:     &capturePublisher{err: errBroker},
			out:     runtime.Outgoing{Message: &emptypb.Empty{}},
			wantIs:  errBroker,
			wantSub: []string{orderPlaced.Name, orderPlaced.Topic},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			capture := tt.pub
			if capture == nil {
				capture = &capturePublisher{}
			}
			pub := newTestPublisher(t, capture, tt.mutate)
			err := pub.Publish(context.Background(), orderPlaced, tt.out)
			if err == nil {
				t.Fatal("Publish succeeded, want an error")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v does not wrap %v", err, tt.wantIs)
			}
			for _, s := range tt.wantSub {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if tt.wantIs == nil && len(capture.msgs) != 0 {
				t.Errorf("published %d messages despite the error", len(capture.msgs))
			}
		})
	}
}

func TestPublisherCustomID(t *testing.T) {
	n := 0
	pub := newTestPublisher(t, &capturePublisher{}, func(c *runtime.PublisherConfig) {
		c.NewID = func() (string, error) { n++; return fmt.Sprintf("id-%d", n), nil }
	})
	msg, err := pub.NewMessage(context.Background(), orderPlaced, runtime.Outgoing{Message: &emptypb.Empty{}})
	if err != nil {
		t.Fatal(err)
	}
	if corr := runtime.EnvelopeOf(msg).CorrelationID; msg.UUID != "id-1" || msg.Metadata.Get(runtime.MetaID) != "id-1" || corr != "id-1" {
		t.Errorf("uuid %q, ce_id %q, correlation %q; want id-1 for all", msg.UUID, msg.Metadata.Get(runtime.MetaID), corr)
	}
}

func TestNewPublisherValidation(t *testing.T) {
	if _, err := runtime.NewPublisher(nil, runtime.PublisherConfig{Source: "s"}); err == nil {
		t.Error("NewPublisher(nil) succeeded, want an error")
	}
	_, err := runtime.NewPublisher(&capturePublisher{}, runtime.PublisherConfig{})
	if err == nil || !strings.Contains(err.Error(), "Source") {
		t.Errorf("NewPublisher without Source: err = %v, want one naming Source", err)
	}
	if err := (runtime.PublisherConfig{}).Validate(); err == nil {
		t.Error("Validate of an empty config succeeded")
	}
	if err := (runtime.PublisherConfig{Source: "s"}).Validate(); err != nil {
		t.Errorf("Validate with Source: %v", err)
	}
	if _, err := runtime.NewPublisher(&capturePublisher{}, runtime.PublisherConfig{Source: "s"}); err != nil {
		t.Errorf("NewPublisher with defaults: %v", err)
	}
}

func TestEnvelopeOfRoundTripsNewMessage(t *testing.T) {
	handled := &runtime.Envelope{ID: "in-1", CorrelationID: "root", Traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	pub := newTestPublisher(t, &capturePublisher{}, func(c *runtime.PublisherConfig) { c.Codec = runtime.ProtoJSON })
	msg, err := pub.NewMessage(runtime.WithEnvelope(context.Background(), handled), orderPlaced, runtime.Outgoing{
		Subject: "o-1", PartitionKey: "c-1", Message: wrapperspb.String("x"),
	})
	if err != nil {
		t.Fatal(err)
	}
	got := runtime.EnvelopeOf(msg)
	if !got.Time.Equal(fixedNow) {
		t.Errorf("Time = %v, want %v", got.Time, fixedNow)
	}
	got.Time = time.Time{}
	want := runtime.Envelope{
		ID:            msg.UUID,
		Type:          orderPlaced.Name,
		Source:        "orders-service",
		Subject:       "o-1",
		ContentType:   runtime.ContentTypeJSON,
		SchemaVersion: 2,
		CorrelationID: "root",
		CausationID:   "in-1",
		AggregateType: orderPlaced.AggregateType,
		PartitionKey:  "c-1",
		Traceparent:   handled.Traceparent,
	}
	if *got != want {
		t.Errorf("EnvelopeOf =\n%+v\nwant\n%+v", *got, want)
	}
}

func TestEnvelopeOfLenient(t *testing.T) {
	msg := message.NewMessage("uuid-1", nil)
	msg.Metadata.Set(runtime.MetaSchemaVersion, "not-a-number")
	msg.Metadata.Set(runtime.MetaTime, "yesterday")
	msg.Metadata.Set(runtime.MetaSequence, "42")
	env := runtime.EnvelopeOf(msg)
	if env.ID != "uuid-1" {
		t.Errorf("ID = %q, want the message UUID when ce_id is missing", env.ID)
	}
	if env.SchemaVersion != 1 || !env.Time.IsZero() {
		t.Errorf("malformed values read as %d and %v, want the default version 1 and a zero time", env.SchemaVersion, env.Time)
	}
	if env.Sequence != 42 {
		t.Errorf("Sequence = %d, want 42", env.Sequence)
	}
	msg.Metadata.Set(runtime.MetaID, "ce-1")
	if env := runtime.EnvelopeOf(msg); env.ID != "ce-1" {
		t.Errorf("ID = %q, want ce_id over the message UUID", env.ID)
	}
}

func TestEnvelopeFrom(t *testing.T) {
	if env, ok := runtime.EnvelopeFrom(context.Background()); ok || env != nil {
		t.Errorf("EnvelopeFrom(background) = %v, %v; want nil, false", env, ok)
	}
	in := &runtime.Envelope{ID: "x"}
	if env, ok := runtime.EnvelopeFrom(runtime.WithEnvelope(context.Background(), in)); !ok || env != in {
		t.Errorf("EnvelopeFrom = %v, %v; want the envelope stored", env, ok)
	}
}

func TestCodecFor(t *testing.T) {
	tests := []struct {
		contentType string
		want        runtime.Codec
		wantCT      string
	}{
		{"", runtime.ProtoBinary, runtime.ContentTypeProtobuf},
		{"application/protobuf", runtime.ProtoBinary, runtime.ContentTypeProtobuf},
		{"application/json", runtime.ProtoJSON, runtime.ContentTypeJSON},
		{"text/plain", nil, ""},
		{"application/xml", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.contentType, func(t *testing.T) {
			got, err := runtime.CodecFor(tt.contentType)
			if tt.want == nil {
				if err == nil || !strings.Contains(err.Error(), tt.contentType) {
					t.Errorf("CodecFor(%q) = %v, %v; want an error naming the content type", tt.contentType, got, err)
				}
				return
			}
			if err != nil || got != tt.want || got.ContentType() != tt.wantCT {
				t.Errorf("CodecFor(%q) = %v, %v; want codec with content type %q", tt.contentType, got, err, tt.wantCT)
			}
		})
	}
}

func TestCodecsRoundTrip(t *testing.T) {
	in := wrapperspb.String("héllo")
	for _, codec := range []runtime.Codec{runtime.ProtoBinary, runtime.ProtoJSON} {
		t.Run(codec.ContentType(), func(t *testing.T) {
			b, err := codec.Marshal(in)
			if err != nil {
				t.Fatal(err)
			}
			out := &wrapperspb.StringValue{}
			if err := codec.Unmarshal(b, out); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(in, out) {
				t.Errorf("round trip = %v, want %v", out, in)
			}
		})
	}
}

func TestProtoJSONDiscardsUnknownFields(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		new     func() proto.Message
		check   func(proto.Message) bool
	}{
		{
			name:    "plain message",
			payload: `{"fileName":"a.proto","addedInV2":{"nested":[1,2,3]}}`,
			new:     func() proto.Message { return &sourcecontextpb.SourceContext{} },
			check:   func(m proto.Message) bool { return m.(*sourcecontextpb.SourceContext).GetFileName() == "a.proto" },
		},
		{
			name:    "empty",
			payload: `{"addedInV2":true}`,
			new:     func() proto.Message { return &emptypb.Empty{} },
			check:   func(proto.Message) bool { return true },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The strict decoder rejects the payload, so the codec's leniency
			// is what is tested.
			if err := protojson.Unmarshal([]byte(tt.payload), tt.new()); err == nil {
				t.Fatal("strict protojson accepted the payload; the test proves nothing")
			}
			m := tt.new()
			if err := runtime.ProtoJSON.Unmarshal([]byte(tt.payload), m); err != nil {
				t.Fatalf("ProtoJSON.Unmarshal: %v", err)
			}
			if !tt.check(m) {
				t.Errorf("decoded %v lost the known fields", m)
			}
		})
	}
}
