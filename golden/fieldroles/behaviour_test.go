package fieldroles_test

import (
	"context"
	"math"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/protoc-gen-eda/eda/golden/fieldroles"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
)

type recorder struct {
	opened    chan edatest.Received[*fieldroles.TicketOpened]
	escalated chan edatest.Received[*fieldroles.TicketEscalated]
	sensors   chan edatest.Received[*fieldroles.SensorRead]
	meters    chan edatest.Received[*fieldroles.MeterRead]
}

func (r *recorder) HandleTicketOpened(ctx context.Context, e *fieldroles.TicketOpened) error {
	return edatest.Record(ctx, r.opened, e)
}

func (r *recorder) HandleTicketEscalated(ctx context.Context, e *fieldroles.TicketEscalated) error {
	return edatest.Record(ctx, r.escalated, e)
}

func (r *recorder) HandleSensorRead(ctx context.Context, e *fieldroles.SensorRead) error {
	return edatest.Record(ctx, r.sensors, e)
}

func (r *recorder) HandleMeterRead(ctx context.Context, e *fieldroles.MeterRead) error {
	return edatest.Record(ctx, r.meters, e)
}

var (
	_ fieldroles.TicketEventHandler = (*recorder)(nil)
	_ fieldroles.SensorReadHandler  = (*recorder)(nil)
	_ fieldroles.MeterReadHandler   = (*recorder)(nil)
)

func start(t *testing.T) (*edatest.Harness, *recorder) {
	t.Helper()
	rec := &recorder{
		opened:    make(chan edatest.Received[*fieldroles.TicketOpened], 16),
		escalated: make(chan edatest.Received[*fieldroles.TicketEscalated], 16),
		sensors:   make(chan edatest.Received[*fieldroles.SensorRead], 16),
		meters:    make(chan edatest.Received[*fieldroles.MeterRead], 16),
	}
	h := edatest.Start(t, func(r *runtime.Router) error {
		if err := fieldroles.RegisterTicketEventHandler(r, rec); err != nil {
			return err
		}
		if err := fieldroles.RegisterSensorReadHandler(r, rec); err != nil {
			return err
		}
		return fieldroles.RegisterMeterReadHandler(r, rec)
	})
	return h, rec
}

// checkEnvelope compares the envelope attributes read from fields.
func checkEnvelope(t *testing.T, env *runtime.Envelope, typ, subject, partitionKey, aggregateType string) {
	t.Helper()
	if env == nil {
		t.Fatal("no envelope in the handler's context")
	}
	if env.Type != typ {
		t.Errorf("Type = %q, want %q", env.Type, typ)
	}
	if env.Subject != subject {
		t.Errorf("Subject = %q, want %q", env.Subject, subject)
	}
	if env.PartitionKey != partitionKey {
		t.Errorf("PartitionKey = %q, want %q", env.PartitionKey, partitionKey)
	}
	if env.AggregateType != aggregateType {
		t.Errorf("AggregateType = %q, want %q", env.AggregateType, aggregateType)
	}
}

func TestTicketOpenedInfersIDAndReadsRoles(t *testing.T) {
	h, rec := start(t)
	ctx := runtime.WithCorrelationID(context.Background(), "from-context")
	event := &fieldroles.TicketOpened{TicketId: math.MaxUint64, Queue: "billing", ConversationId: "conv-9"}
	if err := fieldroles.NewTicketEventPublisher(h.Publisher).PublishTicketOpened(ctx, event); err != nil {
		t.Fatal(err)
	}
	got := edatest.Receive(t, rec.opened)
	if !proto.Equal(got.Msg, event) {
		t.Errorf("handled %v, want %v", got.Msg, event)
	}
	// ticket_id is not annotated: it is the aggregate id because Ticket's id
	// field has that name.
	checkEnvelope(t, got.Env, fieldroles.TicketOpenedEventType, "18446744073709551615", "billing", fieldroles.TicketAggregateType)
	if got.Env.CorrelationID != "conv-9" {
		t.Errorf("CorrelationID = %q, want the conversation_id conv-9", got.Env.CorrelationID)
	}
}

func TestTicketEscalatedExplicitID(t *testing.T) {
	h, rec := start(t)
	event := &fieldroles.TicketEscalated{Id: 1 << 40}
	if err := fieldroles.NewTicketEventPublisher(h.Publisher).PublishTicketEscalated(context.Background(), event); err != nil {
		t.Fatal(err)
	}
	got := edatest.Receive(t, rec.escalated)
	if got.Msg.GetId() != 1<<40 {
		t.Errorf("handled %v", got.Msg)
	}
	// No partition_key field: the subject orders it.
	checkEnvelope(t, got.Env, fieldroles.TicketEscalatedEventType, "1099511627776", "1099511627776", fieldroles.TicketAggregateType)
}

func TestSensorReadSignedIDAndFixed64Key(t *testing.T) {
	h, rec := start(t)
	event := &fieldroles.SensorRead{Sensor: math.MinInt32, Reading: math.MaxUint64}
	if err := fieldroles.NewSensorReadPublisher(h.Publisher).PublishSensorRead(context.Background(), event); err != nil {
		t.Fatal(err)
	}
	got := edatest.Receive(t, rec.sensors)
	if !proto.Equal(got.Msg, event) {
		t.Errorf("handled %v, want %v", got.Msg, event)
	}
	checkEnvelope(t, got.Env, fieldroles.SensorReadEventType, "-2147483648", "18446744073709551615", "")

	event = &fieldroles.SensorRead{Sensor: -7, Reading: 3}
	if err := fieldroles.NewSensorReadPublisher(h.Publisher).PublishSensorRead(context.Background(), event); err != nil {
		t.Fatal(err)
	}
	got = edatest.Receive(t, rec.sensors)
	checkEnvelope(t, got.Env, fieldroles.SensorReadEventType, "-7", "3", "")
}

func TestMeterReadSignedIDAndFixed32Key(t *testing.T) {
	h, rec := start(t)
	event := &fieldroles.MeterRead{Meter: math.MinInt64, Region: math.MaxUint32}
	if err := fieldroles.NewMeterReadPublisher(h.Publisher).PublishMeterRead(context.Background(), event); err != nil {
		t.Fatal(err)
	}
	got := edatest.Receive(t, rec.meters)
	if !proto.Equal(got.Msg, event) {
		t.Errorf("handled %v, want %v", got.Msg, event)
	}
	checkEnvelope(t, got.Env, fieldroles.MeterReadEventType, "-9223372036854775808", "4294967295", "")
	// No correlation_id field and no context correlation: the event
	// correlates with itself.
	if got.Env.CorrelationID != got.Env.ID {
		t.Errorf("CorrelationID = %q, want own id %q", got.Env.CorrelationID, got.Env.ID)
	}
}
