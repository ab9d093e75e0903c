package optional_test

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/protoc-gen-eda/eda/golden/optional"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
)

type devices struct {
	optional.UnimplementedDeviceEventHandler
	registered chan edatest.Received[*optional.DeviceRegistered]
}

func (d *devices) HandleDeviceRegistered(ctx context.Context, e *optional.DeviceRegistered) error {
	return edatest.Record(ctx, d.registered, e)
}

var _ optional.DeviceEventHandler = (*devices)(nil)

func TestOptionalRoles(t *testing.T) {
	d := &devices{registered: make(chan edatest.Received[*optional.DeviceRegistered], 16)}
	h := edatest.Start(t, func(r *runtime.Router) error {
		return optional.RegisterDeviceEventHandler(r, d)
	})
	pub := optional.NewDeviceEventPublisher(h.Publisher)
	background := context.Background()
	withCorrelation := runtime.WithCorrelationID(background, "request-5")

	for _, tc := range []struct {
		name            string
		ctx             context.Context
		event           *optional.DeviceRegistered
		wantSubject     string
		wantCorrelation string // "" means the event's own id
	}{
		{
			name:        "trace unset",
			ctx:         background,
			event:       &optional.DeviceRegistered{DeviceId: proto.String("dev-1")},
			wantSubject: "dev-1",
		},
		{
			name:            "trace unset, correlation in context",
			ctx:             withCorrelation,
			event:           &optional.DeviceRegistered{DeviceId: proto.String("dev-2")},
			wantSubject:     "dev-2",
			wantCorrelation: "request-5",
		},
		{
			name:            "trace set",
			ctx:             withCorrelation,
			event:           &optional.DeviceRegistered{DeviceId: proto.String("dev-3"), Trace: proto.String("trace-3")},
			wantSubject:     "dev-3",
			wantCorrelation: "trace-3",
		},
		{
			// Present but empty is no correlation id.
			name:        "trace set to empty",
			ctx:         background,
			event:       &optional.DeviceRegistered{DeviceId: proto.String("dev-4"), Trace: proto.String("")},
			wantSubject: "dev-4",
		},
		{
			name:            "device_id unset",
			ctx:             background,
			event:           &optional.DeviceRegistered{Trace: proto.String("trace-5")},
			wantCorrelation: "trace-5",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := pub.PublishDeviceRegistered(tc.ctx, tc.event); err != nil {
				t.Fatal(err)
			}
			got := edatest.Receive(t, d.registered)
			if !proto.Equal(got.Msg, tc.event) {
				t.Errorf("handled %v, want %v", got.Msg, tc.event)
			}
			// Presence survives the round trip.
			if (got.Msg.DeviceId == nil) != (tc.event.DeviceId == nil) || (got.Msg.Trace == nil) != (tc.event.Trace == nil) {
				t.Errorf("presence changed: sent %v, handled %v", tc.event, got.Msg)
			}
			if got.Env == nil {
				t.Fatal("no envelope in the handler's context")
			}
			if got.Env.Subject != tc.wantSubject {
				t.Errorf("Subject = %q, want %q", got.Env.Subject, tc.wantSubject)
			}
			if got.Env.PartitionKey != tc.wantSubject {
				t.Errorf("PartitionKey = %q, want the subject %q", got.Env.PartitionKey, tc.wantSubject)
			}
			want := tc.wantCorrelation
			if want == "" {
				want = got.Env.ID
			}
			if got.Env.CorrelationID != want {
				t.Errorf("CorrelationID = %q, want %q (event id %q)", got.Env.CorrelationID, want, got.Env.ID)
			}
			if got.Env.Type != optional.DeviceRegisteredEventType || got.Env.AggregateType != optional.DeviceAggregateType {
				t.Errorf("envelope = %+v", *got.Env)
			}
		})
	}
}
