package editions_test

import (
	"context"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/protoc-gen-eda/eda/golden/editions"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
)

type lights struct {
	switched chan edatest.Received[*editions.LightSwitched]
}

func (l *lights) HandleLightSwitched(ctx context.Context, e *editions.LightSwitched) error {
	return edatest.Record(ctx, l.switched, e)
}

var _ editions.LightEventHandler = (*lights)(nil)

func TestDelimitedScheduleRoundTrips(t *testing.T) {
	l := &lights{switched: make(chan edatest.Received[*editions.LightSwitched], 16)}
	h := edatest.Start(t, func(r *runtime.Router) error {
		return editions.RegisterLightEventHandler(r, l)
	})
	wire := h.Subscribe(t, editions.LightEventsTopic)

	event := &editions.LightSwitched{
		LightId:  proto.String("light-1"),
		On:       proto.Bool(false), // explicit presence: false is sent
		Schedule: &editions.Schedule{Cron: proto.String("0 7 * * 1-5")},
	}
	if err := editions.NewLightEventPublisher(h.Publisher).PublishLightSwitched(context.Background(), event); err != nil {
		t.Fatal(err)
	}

	got := edatest.Receive(t, l.switched)
	if !proto.Equal(got.Msg, event) {
		t.Errorf("handled %v, want %v", got.Msg, event)
	}
	if got.Msg.GetSchedule().GetCron() != "0 7 * * 1-5" {
		t.Errorf("schedule = %v", got.Msg.GetSchedule())
	}
	if got.Msg.On == nil || *got.Msg.On {
		t.Errorf("On = %v, want an explicit false", got.Msg.On)
	}
	if got.Env == nil || got.Env.Type != editions.LightSwitchedEventType || got.Env.Subject != "light-1" ||
		got.Env.AggregateType != editions.LightAggregateType {
		t.Errorf("envelope = %+v", got.Env)
	}

	// On the wire, schedule (field 3) is a group, not a length-prefixed
	// message.
	msg := edatest.Receive(t, wire)
	types := map[protowire.Number]protowire.Type{}
	for b := msg.Payload; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad payload %x: %v", msg.Payload, protowire.ParseError(n))
		}
		types[num] = typ
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			t.Fatalf("bad payload %x: %v", msg.Payload, protowire.ParseError(m))
		}
		b = b[m:]
	}
	if typ, ok := types[3]; !ok || typ != protowire.StartGroupType {
		t.Errorf("schedule encoded with wire type %v (present %v), want a group (%v)", typ, ok, protowire.StartGroupType)
	}
	if typ, ok := types[2]; !ok || typ != protowire.VarintType {
		t.Errorf("on = false not on the wire (wire type %v, present %v)", typ, ok)
	}
}
