package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/mem"
	"github.com/protoc-gen-eda/eda/runtime/memstore"
)

// The behaviour of sagas over a bus, on every store, is in runtime/sagatest;
// these tests cover the API's edges and the persisted format on memstore.

// A two-step saga over structpb messages whose "id" field is the instance.
var (
	tripRequested = &runtime.MessageType{Name: "test.TripRequested", Topic: "test.trips"}
	roomBooked    = &runtime.MessageType{Name: "test.RoomBooked", Topic: "test.hotel", Aliases: []string{"test.RoomReserved"}}
	roomFull      = &runtime.MessageType{Name: "test.RoomFull", Topic: "test.hotel"}
	seatBooked    = &runtime.MessageType{Name: "test.SeatBooked", Topic: "test.flights"}
	bookRoom      = &runtime.MessageType{Name: "test.BookRoom", Topic: "test.commands", Command: true}
	cancelRoom    = &runtime.MessageType{Name: "test.CancelRoom", Topic: "test.commands", Command: true}
	bookSeat      = &runtime.MessageType{Name: "test.BookSeat", Topic: "test.commands", Command: true}
)

func tripID(m *structpb.Struct) string { return m.GetFields()["id"].GetStringValue() }

func tripState(id string) *structpb.Struct {
	return &structpb.Struct{Fields: map[string]*structpb.Value{"id": structpb.NewStringValue(id)}}
}

func tripCommand(t *runtime.MessageType) runtime.SagaCommand[*structpb.Struct] {
	return func(_ context.Context, s *structpb.Struct) (*runtime.MessageType, runtime.Outgoing, error) {
		return t, runtime.Outgoing{Subject: tripID(s), Message: tripState(tripID(s))}, nil
	}
}

func tripNote(context.Context, *structpb.Struct, *structpb.Struct) error { return nil }

func tripSpec() runtime.SagaSpec[*structpb.Struct] {
	return runtime.SagaSpec[*structpb.Struct]{
		Name:      "test.trip",
		StateType: "google.protobuf.Struct",
		New:       func() *structpb.Struct { return new(structpb.Struct) },
		Start: runtime.StartOn[*structpb.Struct, structpb.Struct](tripRequested, tripID, func(_ context.Context, e *structpb.Struct) (*structpb.Struct, error) {
			return tripState(tripID(e)), nil
		}),
		Steps: []runtime.SagaStep[*structpb.Struct]{
			{Name: "room", Command: tripCommand(bookRoom), Compensation: tripCommand(cancelRoom), Timeout: time.Minute,
				Success: []runtime.SagaEvent[*structpb.Struct]{runtime.SagaOn[*structpb.Struct, structpb.Struct](roomBooked, tripID, tripNote)},
				Failure: []runtime.SagaEvent[*structpb.Struct]{runtime.SagaOn[*structpb.Struct, structpb.Struct](roomFull, tripID, tripNote)}},
			{Name: "seat", Command: tripCommand(bookSeat),
				Success: []runtime.SagaEvent[*structpb.Struct]{runtime.SagaOn[*structpb.Struct, structpb.Struct](seatBooked, tripID, tripNote)}},
		},
		Timeout: time.Hour,
	}
}

// sagaNow is the clock of the format tests.
var sagaNow = time.Date(2025, 3, 4, 5, 6, 7, 8000, time.UTC)

func newTripSaga(t *testing.T, store runtime.EventStore, spec runtime.SagaSpec[*structpb.Struct]) *runtime.Saga[*structpb.Struct] {
	t.Helper()
	s, err := runtime.NewSaga(spec, runtime.SagaConfig{Store: store, Source: "trips", Now: func() time.Time { return sagaNow }})
	if err != nil {
		t.Fatalf("NewSaga: %v", err)
	}
	return s
}

// tripMessage returns a message of type typ for instance id, with a fixed
// UUID so that the tests are deterministic.
func tripMessage(t *testing.T, typ *runtime.MessageType, id, msgID string) *message.Message {
	t.Helper()
	pub, err := runtime.NewPublisher(&recordingPublisher{}, runtime.PublisherConfig{Source: "test", NewID: func() (string, error) { return msgID, nil }})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := pub.NewMessage(context.Background(), typ, runtime.Outgoing{Subject: id, Message: tripState(id)})
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func sagaOutbox(t *testing.T, store runtime.EventStore) []runtime.OutboxMessage {
	t.Helper()
	var out []runtime.OutboxMessage
	if _, err := store.RelayOutbox(context.Background(), 0, func(msgs []runtime.OutboxMessage) error {
		out = append(out, msgs...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSagaConfigValidate(t *testing.T) {
	if err := (runtime.SagaConfig{Store: memstore.New(), Source: "s"}).Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
	err := runtime.SagaConfig{}.Validate()
	for _, field := range []string{"Store", "Source"} {
		if err == nil || !strings.Contains(err.Error(), "SagaConfig."+field) {
			t.Errorf("empty config: error %v does not name %s", err, field)
		}
	}
	if _, err := runtime.NewSaga(tripSpec(), runtime.SagaConfig{Source: "s"}); err == nil {
		t.Error("NewSaga without a store succeeded")
	}
}

func TestNewSagaChecksSpec(t *testing.T) {
	zeroEvent := runtime.SagaEvent[*structpb.Struct]{Type: seatBooked}
	for _, tc := range []struct {
		name   string
		change func(*runtime.SagaSpec[*structpb.Struct])
		want   []string
	}{
		{"no name", func(s *runtime.SagaSpec[*structpb.Struct]) { s.Name = "" }, []string{"no Name"}},
		{"no state type or New", func(s *runtime.SagaSpec[*structpb.Struct]) { s.StateType, s.New = "", nil }, []string{"no StateType", "no New"}},
		{"no steps", func(s *runtime.SagaSpec[*structpb.Struct]) { s.Steps = nil }, []string{"no steps"}},
		{"duplicate step", func(s *runtime.SagaSpec[*structpb.Struct]) { s.Steps[1].Name = "room" }, []string{`steps 0 and 1 are both named "room"`}},
		{"no command, no success", func(s *runtime.SagaSpec[*structpb.Struct]) { s.Steps[1].Command, s.Steps[1].Success = nil, nil }, []string{"has no Command", "no Success event"}},
		{"negative timeouts", func(s *runtime.SagaSpec[*structpb.Struct]) { s.Timeout, s.Steps[0].Timeout = -1, -1 }, []string{"saga's Timeout", `step 0 ("room"): Timeout`}},
		{"event twice", func(s *runtime.SagaSpec[*structpb.Struct]) { s.Steps[1].Failure = s.Steps[0].Success }, []string{"test.RoomBooked is used twice"}},
		{"alias twice", func(s *runtime.SagaSpec[*structpb.Struct]) {
			typ := *seatBooked
			typ.Aliases = []string{"test.RoomReserved"}
			s.Steps[1].Success = []runtime.SagaEvent[*structpb.Struct]{runtime.SagaOn[*structpb.Struct, structpb.Struct](&typ, tripID, tripNote)}
		}, []string{"test.RoomReserved is used twice"}},
		{"start is a step's event", func(s *runtime.SagaSpec[*structpb.Struct]) {
			s.Steps[1].Failure = []runtime.SagaEvent[*structpb.Struct]{runtime.SagaOn[*structpb.Struct, structpb.Struct](tripRequested, tripID, tripNote)}
		}, []string{"test.TripRequested is used twice"}},
		{"zero SagaEvent", func(s *runtime.SagaSpec[*structpb.Struct]) {
			s.Steps[1].Success = []runtime.SagaEvent[*structpb.Struct]{zeroEvent}
		}, []string{"was not built with SagaOn"}},
		{"nil correlate", func(s *runtime.SagaSpec[*structpb.Struct]) {
			s.Start = runtime.StartOn[*structpb.Struct, structpb.Struct](tripRequested, nil, func(context.Context, *structpb.Struct) (*structpb.Struct, error) { return nil, nil })
		}, []string{"start event (test.TripRequested) was not built"}},
		{"no type", func(s *runtime.SagaSpec[*structpb.Struct]) { s.Start.Type = nil }, []string{"start event has no Type"}},
		{"no topic", func(s *runtime.SagaSpec[*structpb.Struct]) {
			s.Steps[1].Success = []runtime.SagaEvent[*structpb.Struct]{runtime.SagaOn[*structpb.Struct, structpb.Struct](&runtime.MessageType{Name: "x"}, tripID, tripNote)}
		}, []string{`type "x" needs a name and a topic`}},
		{"reserved type", func(s *runtime.SagaSpec[*structpb.Struct]) {
			s.Steps[1].Success = []runtime.SagaEvent[*structpb.Struct]{runtime.SagaOn[*structpb.Struct, structpb.Struct](&runtime.MessageType{Name: runtime.SagaTimeoutType, Topic: "t"}, tripID, tripNote)}
		}, []string{"reserved for saga timeouts"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tripSpec()
			tc.change(&spec)
			_, err := runtime.NewSaga(spec, runtime.SagaConfig{Store: memstore.New(), Source: "s"})
			if err == nil {
				t.Fatal("NewSaga succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestSagaStatusString(t *testing.T) {
	for s, want := range map[runtime.SagaStatus]string{
		runtime.SagaRunning: "running", runtime.SagaCompleted: "completed", runtime.SagaCompensated: "compensated", 0: "SagaStatus(0)",
	} {
		if got := s.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(s), got, want)
		}
	}
}

// TestSagaPersistedFormat checks what a start transition stores: the
// record and its metadata, the command, and the two timeouts, whose
// DeliverAt is their deadline. These are wire API.
func TestSagaPersistedFormat(t *testing.T) {
	store := memstore.New()
	s := newTripSaga(t, store, tripSpec())
	start := tripMessage(t, tripRequested, "t-1", "0190a0b0-0000-7000-8000-000000000001")
	if err := s.Handle(context.Background(), start); err != nil {
		t.Fatal(err)
	}
	var recs []runtime.EventRecord
	_ = store.ReadStream(context.Background(), runtime.StreamID{Type: "test.trip", ID: "t-1"}, 0, func(r *runtime.EventRecord) error {
		recs = append(recs, *r)
		return nil
	})
	if len(recs) != 1 {
		t.Fatalf("stream holds %d records, want 1", len(recs))
	}
	rec := recs[0]
	if rec.Type != "google.protobuf.Struct" || rec.SchemaVersion != 1 || rec.ContentType != runtime.ContentTypeProtobuf {
		t.Errorf("record type %s v%d %s, want the state type, v1, protobuf", rec.Type, rec.SchemaVersion, rec.ContentType)
	}
	if v := uuid.MustParse(rec.ID).Version(); v != 8 {
		t.Errorf("record id %s is a version %d UUID, want 8", rec.ID, v)
	}
	md, err := runtime.DecodeMetadata(rec.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	stepDeadline, sagaDeadline := sagaNow.Add(time.Minute), sagaNow.Add(time.Hour)
	for k, want := range map[string]string{
		"eda_saga_status":        "running",
		"eda_saga_step":          "room",
		"eda_saga_step_deadline": stepDeadline.Format(time.RFC3339Nano),
		"eda_saga_deadline":      sagaDeadline.Format(time.RFC3339Nano),
		runtime.MetaSource:       "trips",
		runtime.MetaCausationID:  start.UUID,
	} {
		if md[k] != want {
			t.Errorf("record metadata %s = %q, want %q", k, md[k], want)
		}
	}
	if _, ok := md["eda_saga_failure"]; ok {
		t.Error("a running instance's record has a failure")
	}

	// The test's clock lies in the past: the timeouts are due already.
	msgs := sagaOutbox(t, store)
	if len(msgs) != 3 {
		t.Fatalf("outbox relays %d messages, want the command and two timeouts", len(msgs))
	}
	cmd := msgs[0]
	cmdMD, _ := runtime.DecodeMetadata(cmd.Metadata)
	if cmd.Topic != bookRoom.Topic || cmdMD[runtime.MetaType] != bookRoom.Name || cmdMD[runtime.MetaID] != cmd.UUID || cmdMD[runtime.MetaCausationID] != start.UUID {
		t.Errorf("command %s on %s with metadata %v", cmd.UUID, cmd.Topic, cmdMD)
	}

	inst, err := s.Load(context.Background(), "t-1")
	if err != nil {
		t.Fatal(err)
	}
	if inst.Status != runtime.SagaRunning || inst.Step != 0 || inst.StepName != "room" || inst.Version != 1 || !inst.Deadline.Equal(stepDeadline) {
		t.Errorf("instance = %v step %d %q version %d deadline %v; want running in room at 1, deadline %v", inst.Status, inst.Step, inst.StepName, inst.Version, inst.Deadline, stepDeadline)
	}
}

// TestSagaTimeoutMessages reads the timeouts a start writes, through a
// store whose Append records requests.
func TestSagaTimeoutMessages(t *testing.T) {
	store := &sagaAppendRecorder{EventStore: memstore.New()}
	s := newTripSaga(t, store, tripSpec())
	if err := s.Handle(context.Background(), tripMessage(t, tripRequested, "t-1", "m-1")); err != nil {
		t.Fatal(err)
	}
	out := store.reqs[0].Outbox
	if len(out) != 3 {
		t.Fatalf("start wrote %d outbox messages, want the command and two timeouts", len(out))
	}
	for i, want := range []struct {
		scope, step string
		at          time.Time
	}{{"saga", "", sagaNow.Add(time.Hour)}, {"step", "room", sagaNow.Add(time.Minute)}} {
		m := out[i+1]
		md, _ := runtime.DecodeMetadata(m.Metadata)
		var p map[string]any
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			t.Fatalf("timeout payload %q: %v", m.Payload, err)
		}
		if m.Topic != "test.trip.timeouts" || md[runtime.MetaType] != runtime.SagaTimeoutType || md[runtime.MetaContentType] != runtime.ContentTypeJSON || md[runtime.MetaSubject] != "t-1" {
			t.Errorf("timeout %d on %s with metadata %v", i, m.Topic, md)
		}
		if !m.DeliverAt.Equal(want.at) {
			t.Errorf("timeout %d DeliverAt %v, want %v", i, m.DeliverAt, want.at)
		}
		if p["saga"] != "test.trip" || p["id"] != "t-1" || p["scope"] != want.scope || p["version"] != 1.0 || (want.step != "" && p["step"] != want.step) {
			t.Errorf("timeout %d payload %s", i, m.Payload)
		}
	}
	if s.TimeoutTopic() != "test.trip.timeouts" || s.Name() != "test.trip" {
		t.Errorf("TimeoutTopic, Name = %q, %q", s.TimeoutTopic(), s.Name())
	}

	// The same message on another store derives the same ids.
	again := &sagaAppendRecorder{EventStore: memstore.New()}
	if err := newTripSaga(t, again, tripSpec()).Handle(context.Background(), tripMessage(t, tripRequested, "t-1", "m-1")); err != nil {
		t.Fatal(err)
	}
	if a, b := store.reqs[0], again.reqs[0]; a.Events[0].ID != b.Events[0].ID || !slices.EqualFunc(a.Outbox, b.Outbox, func(x, y runtime.OutboxMessage) bool { return x.UUID == y.UUID }) {
		t.Error("one message handled on two stores gave different ids")
	}
}

// sagaAppendRecorder records every append request.
type sagaAppendRecorder struct {
	runtime.EventStore
	reqs []runtime.AppendRequest
}

func (r *sagaAppendRecorder) Append(ctx context.Context, req runtime.AppendRequest) (runtime.AppendResult, error) {
	r.reqs = append(r.reqs, req)
	return r.EventStore.Append(ctx, req)
}

// TestSagaCallbackErrors makes each kind of callback fail: Handle returns
// the error, not Permanent (the router retries), and stores nothing.
func TestSagaCallbackErrors(t *testing.T) {
	boom := errors.New("boom")
	fail := func(context.Context, *structpb.Struct) (*runtime.MessageType, runtime.Outgoing, error) {
		return nil, runtime.Outgoing{}, boom
	}
	for _, tc := range []struct {
		name   string
		change func(*runtime.SagaSpec[*structpb.Struct])
		msgs   []*runtime.MessageType // handled in order; the last fails
	}{
		{"start", func(s *runtime.SagaSpec[*structpb.Struct]) {
			s.Start = runtime.StartOn[*structpb.Struct, structpb.Struct](tripRequested, tripID, func(context.Context, *structpb.Struct) (*structpb.Struct, error) { return nil, boom })
		}, []*runtime.MessageType{tripRequested}},
		{"first command", func(s *runtime.SagaSpec[*structpb.Struct]) { s.Steps[0].Command = fail }, []*runtime.MessageType{tripRequested}},
		{"next command", func(s *runtime.SagaSpec[*structpb.Struct]) { s.Steps[1].Command = fail }, []*runtime.MessageType{tripRequested, roomBooked}},
		{"event", func(s *runtime.SagaSpec[*structpb.Struct]) {
			s.Steps[0].Success = []runtime.SagaEvent[*structpb.Struct]{runtime.SagaOn[*structpb.Struct, structpb.Struct](roomBooked, tripID, func(context.Context, *structpb.Struct, *structpb.Struct) error { return boom })}
		}, []*runtime.MessageType{tripRequested, roomBooked}},
		{"compensation", func(s *runtime.SagaSpec[*structpb.Struct]) { s.Steps[0].Compensation = fail }, []*runtime.MessageType{tripRequested, roomBooked, tripTimeout}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tripSpec()
			tc.change(&spec)
			store := memstore.New()
			s := newTripSaga(t, store, spec)
			var err error
			for i, typ := range tc.msgs {
				msg := tripMessage(t, typ, "t-1", uuid.NewString())
				if typ == tripTimeout {
					msg = sagaTimeoutMessage("test.trip", "t-1", "saga", "", 1)
				}
				if err = s.Handle(context.Background(), msg); i < len(tc.msgs)-1 && err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
			}
			if !errors.Is(err, boom) || runtime.IsPermanent(err) {
				t.Fatalf("Handle = %v, want the callback's error, not permanent", err)
			}
			var n int
			_ = store.ReadStream(context.Background(), runtime.StreamID{Type: "test.trip", ID: "t-1"}, 0, func(*runtime.EventRecord) error { n++; return nil })
			if n != len(tc.msgs)-1 {
				t.Errorf("stream holds %d transitions, want %d: the failed one stores nothing", n, len(tc.msgs)-1)
			}
		})
	}
}

// tripTimeout stands for a saga timeout in TestSagaCallbackErrors.
var tripTimeout = &runtime.MessageType{Name: runtime.SagaTimeoutType}

// sagaTimeoutMessage builds a timeout message as the saga writes it.
func sagaTimeoutMessage(saga, id, scope, step string, version uint64) *message.Message {
	payload, _ := json.Marshal(map[string]any{"saga": saga, "id": id, "scope": scope, "step": step, "version": version})
	msg := message.NewMessage(uuid.NewString(), payload)
	msg.Metadata.Set(runtime.MetaType, runtime.SagaTimeoutType)
	msg.Metadata.Set(runtime.MetaContentType, runtime.ContentTypeJSON)
	return msg
}

// TestSagaPermanentErrors hands Handle messages it can never handle.
func TestSagaPermanentErrors(t *testing.T) {
	s := newTripSaga(t, memstore.New(), tripSpec())
	noUUID := tripMessage(t, tripRequested, "t-1", "x")
	noUUID.UUID = ""
	delete(noUUID.Metadata, runtime.MetaID)
	garbled := tripMessage(t, tripRequested, "t-1", "y")
	garbled.Payload = []byte{0xff}
	badTimeout := sagaTimeoutMessage("test.trip", "t-1", "saga", "", 1)
	badTimeout.Payload = []byte("{")
	unknownScope := sagaTimeoutMessage("test.trip", "t-1", "week", "", 1)
	other := message.NewMessage(uuid.NewString(), nil)
	other.Metadata.Set(runtime.MetaType, "test.Other")
	for name, tc := range map[string]struct {
		msg  *message.Message
		want string
	}{
		"empty correlation": {tripMessage(t, tripRequested, "", "z"), "empty correlation value"},
		"no message id":     {noUUID, "no message id"},
		"garbled payload":   {garbled, "decode test.TripRequested"},
		"garbled timeout":   {badTimeout, "decode " + runtime.SagaTimeoutType},
		"unknown scope":     {unknownScope, `unknown scope "week"`},
		"unknown type":      {other, `no event of type "test.Other"`},
	} {
		err := s.Handle(context.Background(), tc.msg)
		if !runtime.IsPermanent(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Handle = %v, want a permanent error saying %q", name, err, tc.want)
		}
	}
}

// TestSagaTimeoutRules checks when a timeout fails a step and when it is
// stale, and what it compensates.
func TestSagaTimeoutRules(t *testing.T) {
	store := memstore.New()
	s := newTripSaga(t, store, tripSpec())
	ctx := context.Background()
	handle := func(msg *message.Message) {
		t.Helper()
		if err := s.Handle(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	// Timeouts for an instance that does not exist, or of another saga.
	handle(sagaTimeoutMessage("test.trip", "nobody", "saga", "", 1))
	handle(sagaTimeoutMessage("test.other", "t-1", "saga", "", 1))
	handle(tripMessage(t, tripRequested, "t-1", uuid.NewString()))
	// A step timeout armed at another version, or for another step.
	handle(sagaTimeoutMessage("test.trip", "t-1", "step", "room", 2))
	handle(sagaTimeoutMessage("test.trip", "t-1", "step", "seat", 1))
	if st := s.Stats(); st.Unmatched != 1 || st.Stale != 2 || st.Started != 1 {
		t.Fatalf("stats = %+v, want 1 unmatched, 2 stale, 1 started", st)
	}
	sagaOutbox(t, store) // the first command
	// The room step's own timeout: the step fails, and is compensated.
	handle(sagaTimeoutMessage("test.trip", "t-1", "step", "room", 1))
	inst, err := s.Load(ctx, "t-1")
	if err != nil || inst.Status != runtime.SagaCompensated || inst.Failure != "timeout of step room" || !inst.Deadline.IsZero() {
		t.Fatalf("after the step's timeout: %+v, %v", inst, err)
	}
	msgs := sagaOutbox(t, store)
	if len(msgs) != 1 {
		t.Fatalf("compensation sent %d messages, want CancelRoom", len(msgs))
	}
	if md, _ := runtime.DecodeMetadata(msgs[0].Metadata); md[runtime.MetaType] != cancelRoom.Name {
		t.Errorf("compensation sent %s, want %s", md[runtime.MetaType], cancelRoom.Name)
	}
	// The saga's timeout arrives after the end: stale.
	handle(sagaTimeoutMessage("test.trip", "t-1", "saga", "", 1))
	if st := s.Stats(); st.Stale != 3 || st.Compensated != 1 {
		t.Errorf("stats = %+v, want the late saga timeout stale", st)
	}
}

// TestSagaAliasAndLoad handles a reply under its former type name, and
// loads what is stored: missing, then an instance whose step the spec no
// longer has.
func TestSagaAliasAndLoad(t *testing.T) {
	store := memstore.New()
	s := newTripSaga(t, store, tripSpec())
	ctx := context.Background()
	if _, err := s.Load(ctx, "t-1"); !errors.Is(err, runtime.ErrSagaNotFound) {
		t.Errorf("Load of a missing instance = %v, want ErrSagaNotFound", err)
	}
	for _, msg := range []*message.Message{tripMessage(t, tripRequested, "t-1", uuid.NewString()), tripMessage(t, &runtime.MessageType{Name: "test.RoomReserved", Topic: "test.hotel"}, "t-1", uuid.NewString())} {
		if err := s.Handle(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	inst, err := s.Load(ctx, "t-1")
	if err != nil || inst.StepName != "seat" || !inst.Deadline.Equal(sagaNow.Add(time.Hour)) {
		t.Fatalf("after the aliased reply: step %q deadline %v (%v), want seat with the saga's deadline", inst.StepName, inst.Deadline, err)
	}
	renamed := tripSpec()
	renamed.Steps[1].Name = "flight"
	_, err = newTripSaga(t, store, renamed).Load(ctx, "t-1")
	var le *runtime.LoadError
	if !errors.As(err, &le) || !runtime.IsPermanent(err) || !strings.Contains(err.Error(), `step "seat"`) {
		t.Errorf("Load with the step renamed = %v, want a permanent LoadError naming the step", err)
	}
}

// TestSagaRegister checks the handlers Register adds: one per topic, named
// after the saga, and the prefix WithName sets.
func TestSagaRegister(t *testing.T) {
	bus, err := mem.New(mem.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	for _, tc := range []struct {
		opts   []runtime.HandlerOption
		prefix string
	}{{nil, "test.trip"}, {[]runtime.HandlerOption{runtime.WithName("custom")}, "custom"}} {
		r, err := runtime.NewRouter(runtime.RouterConfig{Subscriber: bus, Publisher: bus})
		if err != nil {
			t.Fatal(err)
		}
		s := newTripSaga(t, memstore.New(), tripSpec())
		if err := s.Register(r, tc.opts...); err != nil {
			t.Fatalf("Register: %v", err)
		}
		var got []string
		for name := range r.Watermill().Handlers() {
			got = append(got, name)
		}
		slices.Sort(got)
		want := []string{tc.prefix + ".on.test.flights", tc.prefix + ".on.test.hotel", tc.prefix + ".on.test.trip.timeouts", tc.prefix + ".on.test.trips"}
		if !slices.Equal(got, want) {
			t.Errorf("handlers = %v, want %v", got, want)
		}
		if err := s.Register(r, tc.opts...); err == nil || !strings.Contains(err.Error(), "already registered") {
			t.Errorf("second Register = %v, want a duplicate handler error", err)
		}
	}
}
