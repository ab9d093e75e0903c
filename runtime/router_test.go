package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/protoc-gen-eda/eda/runtime"
)

// waitTimeout bounds every wait; tests pass far below it.
const waitTimeout = 5 * time.Second

const greetingTopic = "greetings"

// fastPolicy retries quickly so that tests exercise retries without waiting.
var fastPolicy = runtime.DeliveryPolicy{
	MaxAttempts:     3,
	InitialBackoff:  time.Millisecond,
	MaxBackoff:      2 * time.Millisecond,
	DeadLetterTopic: "greetings.dlq",
}

func greetingType(p runtime.DeliveryPolicy) *runtime.MessageType {
	return &runtime.MessageType{
		Name:          "test.v1.Greeting",
		Aliases:       []string{"test.v0.Hello", "test.v0.Hi"},
		Version:       3,
		Topic:         greetingTopic,
		AggregateType: "test.v1.Greeter",
		Delivery:      p,
	}
}

func newGoChannel(t *testing.T) *gochannel.GoChannel {
	t.Helper()
	bus := gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: false}, nil)
	t.Cleanup(func() { _ = bus.Close() })
	return bus
}

func newTestRouter(t *testing.T, bus *gochannel.GoChannel, mutate func(*runtime.RouterConfig)) *runtime.Router {
	t.Helper()
	cfg := runtime.RouterConfig{Subscriber: bus, Publisher: bus, CloseTimeout: 2 * time.Second}
	if mutate != nil {
		mutate(&cfg)
	}
	r, err := runtime.NewRouter(cfg)
	if err != nil {
		t.Fatalf("NewRouter: %v", err)
	}
	return r
}

// runRouter runs r until the test ends and returns once it is subscribed.
func runRouter(t *testing.T, r *runtime.Router) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		_ = r.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitTimeout):
			t.Error("router did not stop")
		}
	})
	select {
	case <-r.Running():
	case err := <-done:
		t.Fatalf("Run returned before running: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("router is not running")
	}
}

// collect subscribes to topic (before anything is published to it: gochannel
// drops messages nobody subscribes to) and acknowledges what it receives.
func collect(t *testing.T, bus *gochannel.GoChannel, topic string) <-chan *message.Message {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	in, err := bus.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("Subscribe %s: %v", topic, err)
	}
	out := make(chan *message.Message, 100)
	go func() {
		for m := range in {
			m.Ack()
			select {
			case out <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// eventually polls cond, for counters updated just after the observable effect.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func newBusPublisher(t *testing.T, bus message.Publisher, codec runtime.Codec) *runtime.Publisher {
	t.Helper()
	return newTestPublisher(t, bus, func(c *runtime.PublisherConfig) {
		c.Source = "test-producer"
		c.Codec = codec
	})
}

type received struct {
	value string
	env   *runtime.Envelope
	ok    bool
}

// greeter is a handler whose behaviour depends on the greeting it receives:
// "good" succeeds, anything else does what fail says.
type greeter struct {
	calls atomic.Int32
	fail  func(value string) error
	seen  chan received
}

func newGreeter(fail func(string) error) *greeter {
	return &greeter{fail: fail, seen: make(chan received, 100)}
}

func (g *greeter) handle(ctx context.Context, m *wrapperspb.StringValue) error {
	g.calls.Add(1)
	env, ok := runtime.EnvelopeFrom(ctx)
	g.seen <- received{value: m.GetValue(), env: env, ok: ok}
	if m.GetValue() == "good" || g.fail == nil {
		return nil
	}
	return g.fail(m.GetValue())
}

func (g *greeter) spec(name string, typ *runtime.MessageType) runtime.HandlerSpec {
	return runtime.HandlerSpec{Name: name, Topic: typ.Topic, Routes: []runtime.Route{runtime.On(typ, g.handle)}}
}

// harness is one bus, one router and one publisher for a test.
type harness struct {
	bus    *gochannel.GoChannel
	router *runtime.Router
	pub    *runtime.Publisher
}

func newHarness(t *testing.T, codec runtime.Codec, mutate func(*runtime.RouterConfig)) *harness {
	t.Helper()
	bus := newGoChannel(t)
	return &harness{bus: bus, router: newTestRouter(t, bus, mutate), pub: newBusPublisher(t, bus, codec)}
}

func (h *harness) add(t *testing.T, spec runtime.HandlerSpec, opts ...runtime.HandlerOption) {
	t.Helper()
	if err := h.router.AddHandler(spec, opts...); err != nil {
		t.Fatalf("AddHandler: %v", err)
	}
}

func (h *harness) publish(t *testing.T, ctx context.Context, typ *runtime.MessageType, value string) *message.Message {
	t.Helper()
	msg, err := h.pub.NewMessage(ctx, typ, runtime.Outgoing{Subject: "g-1", Message: wrapperspb.String(value)})
	if err != nil {
		t.Fatal(err)
	}
	sent := msg.Copy()
	h.publishRaw(t, typ.Topic, msg)
	return sent
}

func (h *harness) publishRaw(t *testing.T, topic string, msg *message.Message) {
	t.Helper()
	if err := h.bus.Publish(topic, msg); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func TestRouterDeliversTypedMessageWithEnvelope(t *testing.T) {
	for _, codec := range []runtime.Codec{runtime.ProtoBinary, runtime.ProtoJSON} {
		t.Run(codec.ContentType(), func(t *testing.T) {
			h := newHarness(t, codec, nil)
			typ := greetingType(fastPolicy)
			g := newGreeter(nil)
			h.add(t, g.spec("greeter", typ))
			runRouter(t, h.router)

			sent := h.publish(t, runtime.WithCorrelationID(context.Background(), "corr-1"), typ, "hello")
			got := recv(t, g.seen, "the handler")
			if got.value != "hello" {
				t.Errorf("handler got %q, want %q", got.value, "hello")
			}
			if !got.ok {
				t.Fatal("EnvelopeFrom(handler ctx) found no envelope")
			}
			env := got.env
			if env.ID != sent.UUID || env.Type != typ.Name || env.Source != "test-producer" || env.Subject != "g-1" ||
				env.CorrelationID != "corr-1" || env.SchemaVersion != 3 || env.ContentType != codec.ContentType() ||
				env.AggregateType != typ.AggregateType || env.PartitionKey != "g-1" || !env.Time.Equal(fixedNow) {
				t.Errorf("envelope = %+v; want the one published (id %s)", *env, sent.UUID)
			}
			eventually(t, "Stats().Handled == 1", func() bool { return h.router.Stats().Handled == 1 })
			if s := h.router.Stats(); s.Retried != 0 || s.DeadLettered != 0 || s.Skipped != 0 {
				t.Errorf("stats = %+v, want only one handled", s)
			}
		})
	}
}

func TestRouterRoutesAliasesToTheSameHandler(t *testing.T) {
	h := newHarness(t, nil, nil)
	typ := greetingType(fastPolicy)
	g := newGreeter(nil)
	h.add(t, g.spec("greeter", typ))
	runRouter(t, h.router)

	names := append([]string{typ.Name}, typ.Aliases...)
	for _, name := range names {
		old := *typ
		old.Name = name
		h.publish(t, context.Background(), &old, "from "+name)
	}
	var gotTypes []string
	for range names {
		r := recv(t, g.seen, "a greeting")
		if r.value != "from "+r.env.Type {
			t.Errorf("got %q with type %q", r.value, r.env.Type)
		}
		gotTypes = append(gotTypes, r.env.Type)
	}
	slices.Sort(gotTypes)
	slices.Sort(names)
	if !slices.Equal(gotTypes, names) {
		t.Errorf("handled types %v, want %v", gotTypes, names)
	}
	eventually(t, "three handled", func() bool { return h.router.Stats().Handled == 3 })
}

func TestRouterSkipsUnknownTypes(t *testing.T) {
	h := newHarness(t, nil, nil)
	dlq := collect(t, h.bus, runtime.DefaultDeadLetterTopic)
	typ := greetingType(fastPolicy)
	g := newGreeter(func(string) error { return errors.New("must not be called") })
	h.add(t, g.spec("greeter", typ))
	runRouter(t, h.router)

	newer := &runtime.MessageType{Name: "test.v2.Farewell", Topic: greetingTopic}
	h.publish(t, context.Background(), newer, "bye")
	h.publish(t, context.Background(), typ, "good")

	if r := recv(t, g.seen, "the known message"); r.value != "good" {
		t.Errorf("handler got %q, want only the known message", r.value)
	}
	eventually(t, "Stats().Skipped == 1", func() bool { return h.router.Stats().Skipped == 1 })
	eventually(t, "Stats().Handled == 1", func() bool { return h.router.Stats().Handled == 1 })
	if s := h.router.Stats(); s.DeadLettered != 0 || s.Retried != 0 {
		t.Errorf("stats = %+v; an unknown type is neither retried nor dead-lettered", s)
	}
	if n := g.calls.Load(); n != 1 {
		t.Errorf("handler called %d times, want 1", n)
	}
	select {
	case m := <-dlq:
		t.Errorf("unexpected dead letter %v", m.Metadata)
	default:
	}
}

func TestRouterRetriesAndDeadLetters(t *testing.T) {
	tests := []struct {
		name         string
		fail         func(string) error
		wantCalls    int32
		wantReason   []string
		wantRetried  uint64
		wantAttempts string
	}{
		{
			name:         "transient error exhausts attempts",
			fail:         func(string) error { return errors.New("db unavailable") },
			wantCalls:    3,
			wantAttempts: "3",
			wantRetried:  2,
			wantReason:   []string{"db unavailable"},
		},
		{
			name:         "Permanent error is not retried",
			fail:         func(v string) error { return runtime.Permanent(fmt.Errorf("invalid greeting %q", v)) },
			wantCalls:    1,
			wantAttempts: "1",
			wantReason:   []string{`invalid greeting "bad"`},
		},
		{
			name:         "ErrUnimplemented is not retried",
			fail:         func(string) error { return fmt.Errorf("Greet: %w", runtime.ErrUnimplemented) },
			wantCalls:    1,
			wantAttempts: "1",
			wantReason:   []string{runtime.ErrUnimplemented.Error()},
		},
		{
			// A panic is treated as a failed attempt (retried like an error),
			// then dead-lettered with the panic value as reason.
			name:         "panic",
			fail:         func(string) error { panic("kaboom") },
			wantCalls:    3,
			wantAttempts: "3",
			wantRetried:  2,
			wantReason:   []string{"panic", "kaboom"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, nil)
			dlq := collect(t, h.bus, fastPolicy.DeadLetterTopic)
			defaultDLQ := collect(t, h.bus, runtime.DefaultDeadLetterTopic)
			typ := greetingType(fastPolicy)
			g := newGreeter(tt.fail)
			h.add(t, g.spec("greeter", typ))
			runRouter(t, h.router)

			sent := h.publish(t, context.Background(), typ, "bad")
			dead := recv(t, dlq, "the dead letter")
			if n := g.calls.Load(); n != tt.wantCalls {
				t.Errorf("handler called %d times, want %d", n, tt.wantCalls)
			}
			md := dead.Metadata
			reason := md.Get(runtime.MetaDeadLetterReason)
			for _, s := range tt.wantReason {
				if !strings.Contains(reason, s) {
					t.Errorf("reason %q does not contain %q", reason, s)
				}
			}
			if got := md.Get(runtime.MetaDeadLetterTopic); got != greetingTopic {
				t.Errorf("%s = %q, want %q", runtime.MetaDeadLetterTopic, got, greetingTopic)
			}
			if got := md.Get(runtime.MetaDeadLetterHandler); got != "greeter" {
				t.Errorf("%s = %q, want greeter", runtime.MetaDeadLetterHandler, got)
			}
			if got := md.Get(runtime.MetaDeadLetterAttempt); got != tt.wantAttempts {
				t.Errorf("%s = %q, want %q", runtime.MetaDeadLetterAttempt, got, tt.wantAttempts)
			}
			// The dead letter is the original message plus the reason.
			if dead.UUID != sent.UUID || string(dead.Payload) != string(sent.Payload) {
				t.Errorf("dead letter %s %q differs from the message %s %q", dead.UUID, dead.Payload, sent.UUID, sent.Payload)
			}
			for k, v := range sent.Metadata {
				if md.Get(k) != v {
					t.Errorf("dead letter lost metadata %s=%q (has %q)", k, v, md.Get(k))
				}
			}
			eventually(t, "Stats().DeadLettered == 1", func() bool { return h.router.Stats().DeadLettered == 1 })
			if s := h.router.Stats(); s.Retried != tt.wantRetried || s.Handled != 0 {
				t.Errorf("stats = %+v, want %d retries and nothing handled", s, tt.wantRetried)
			}

			// The router keeps going.
			h.publish(t, context.Background(), typ, "good")
			eventually(t, "the next message to be handled", func() bool { return h.router.Stats().Handled == 1 })
			select {
			case m := <-defaultDLQ:
				t.Errorf("dead letter went to the default topic too: %v", m.Metadata)
			default:
			}
		})
	}
}

func TestRouterDeadLettersUndecodablePayloadsAtOnce(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		payload     []byte
	}{
		{name: "corrupt protobuf", contentType: runtime.ContentTypeProtobuf, payload: []byte{0xff, 0xff, 0xff, 0xff}},
		{name: "corrupt protobuf, no content type", payload: []byte{0x0a, 0x10, 'x'}},
		{name: "invalid JSON", contentType: runtime.ContentTypeJSON, payload: []byte(`{"value":`)},
		{name: "unsupported content type", contentType: "text/csv", payload: []byte("a,b")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, nil)
			dlq := collect(t, h.bus, fastPolicy.DeadLetterTopic)
			typ := greetingType(fastPolicy)
			g := newGreeter(nil)
			h.add(t, g.spec("greeter", typ))
			runRouter(t, h.router)

			msg := message.NewMessage(watermill.NewUUID(), tt.payload)
			msg.Metadata.Set(runtime.MetaType, typ.Name)
			if tt.contentType != "" {
				msg.Metadata.Set(runtime.MetaContentType, tt.contentType)
			}
			h.publishRaw(t, typ.Topic, msg)

			dead := recv(t, dlq, "the dead letter")
			if dead.UUID != msg.UUID {
				t.Errorf("dead letter %s, want %s", dead.UUID, msg.UUID)
			}
			reason := dead.Metadata.Get(runtime.MetaDeadLetterReason)
			if !strings.Contains(reason, "decode") || !strings.Contains(reason, typ.Name) {
				t.Errorf("reason %q does not say the %s payload could not be decoded", reason, typ.Name)
			}
			if tt.contentType == "text/csv" && !strings.Contains(reason, "text/csv") {
				t.Errorf("reason %q does not name the content type", reason)
			}
			if got := dead.Metadata.Get(runtime.MetaDeadLetterAttempt); got != "1" {
				t.Errorf("attempts = %q, want 1: an undecodable payload is not retried", got)
			}
			if n := g.calls.Load(); n != 0 {
				t.Errorf("handler called %d times with an undecodable payload", n)
			}
			eventually(t, "Stats().DeadLettered == 1", func() bool { return h.router.Stats().DeadLettered == 1 })
			if s := h.router.Stats(); s.Retried != 0 {
				t.Errorf("stats = %+v, want no retry", s)
			}
		})
	}
}

func TestRouterDeadLetterTopicDefaults(t *testing.T) {
	tests := []struct {
		name      string
		routerDLQ string
		policyDLQ string
		want      string
	}{
		{name: "policy topic", routerDLQ: "router.dlq", policyDLQ: "policy.dlq", want: "policy.dlq"},
		{name: "RouterConfig topic", routerDLQ: "router.dlq", want: "router.dlq"},
		{name: "built-in default", want: runtime.DefaultDeadLetterTopic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, func(c *runtime.RouterConfig) { c.DeadLetterTopic = tt.routerDLQ })
			chans := map[string]<-chan *message.Message{}
			for _, topic := range []string{"router.dlq", "policy.dlq", runtime.DefaultDeadLetterTopic} {
				chans[topic] = collect(t, h.bus, topic)
			}
			typ := greetingType(runtime.DeliveryPolicy{MaxAttempts: 1, DeadLetterTopic: tt.policyDLQ})
			h.add(t, newGreeter(func(string) error { return errors.New("no") }).spec("greeter", typ))
			runRouter(t, h.router)

			sent := h.publish(t, context.Background(), typ, "bad")
			if dead := recv(t, chans[tt.want], "a dead letter on "+tt.want); dead.UUID != sent.UUID {
				t.Errorf("dead letter %s, want %s", dead.UUID, sent.UUID)
			}
			eventually(t, "DeadLettered == 1", func() bool { return h.router.Stats().DeadLettered == 1 })
			for topic, ch := range chans {
				select {
				case m := <-ch:
					t.Errorf("unexpected dead letter on %s: %v", topic, m.Metadata)
				default:
				}
			}
		})
	}
}

func TestRouterDeadLettersMessagesWithoutType(t *testing.T) {
	for _, routerDLQ := range []string{"", "router.dlq"} {
		t.Run("router dlq "+routerDLQ, func(t *testing.T) {
			h := newHarness(t, nil, func(c *runtime.RouterConfig) { c.DeadLetterTopic = routerDLQ })
			want := routerDLQ
			if want == "" {
				want = runtime.DefaultDeadLetterTopic
			}
			dlq := collect(t, h.bus, want)
			typ := greetingType(fastPolicy) // its own DLQ is not used: the type is unknown
			g := newGreeter(nil)
			h.add(t, g.spec("greeter", typ))
			runRouter(t, h.router)

			msg := message.NewMessage(watermill.NewUUID(), []byte("?"))
			h.publishRaw(t, greetingTopic, msg)
			dead := recv(t, dlq, "the dead letter")
			md := dead.Metadata
			if dead.UUID != msg.UUID {
				t.Errorf("dead letter %s, want %s", dead.UUID, msg.UUID)
			}
			if r := md.Get(runtime.MetaDeadLetterReason); !strings.Contains(r, runtime.MetaType) {
				t.Errorf("reason %q does not name %s", r, runtime.MetaType)
			}
			if md.Get(runtime.MetaDeadLetterHandler) != "greeter" || md.Get(runtime.MetaDeadLetterTopic) != greetingTopic ||
				md.Get(runtime.MetaDeadLetterAttempt) != "0" {
				t.Errorf("dead-letter metadata = %v", md)
			}
			if n := g.calls.Load(); n != 0 {
				t.Errorf("handler called %d times", n)
			}
			eventually(t, "DeadLettered == 1", func() bool { return h.router.Stats().DeadLettered == 1 })
			if s := h.router.Stats(); s.Skipped != 0 {
				t.Errorf("stats = %+v: a message without a type is not skipped", s)
			}
		})
	}
}

func TestRouterHandlerPublishInheritsCorrelation(t *testing.T) {
	tests := []struct {
		name            string
		ctx             context.Context
		wantCorrelation string // "incoming" means the handled message's id
	}{
		{name: "correlated flow", ctx: runtime.WithCorrelationID(context.Background(), "checkout-42"), wantCorrelation: "checkout-42"},
		{name: "first message of a flow", ctx: context.Background(), wantCorrelation: "incoming"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, nil)
			reply := &runtime.MessageType{Name: "test.v1.Reply", Topic: "replies"}
			replies := collect(t, h.bus, reply.Topic)
			typ := greetingType(fastPolicy)
			handlerErr := make(chan error, 1)
			h.add(t, runtime.HandlerSpec{Name: "replier", Topic: typ.Topic, Routes: []runtime.Route{
				runtime.On(typ, func(ctx context.Context, m *wrapperspb.StringValue) error {
					err := h.pub.Publish(ctx, reply, runtime.Outgoing{Message: wrapperspb.String("re: " + m.GetValue())})
					handlerErr <- err
					return err
				}),
			}})
			runRouter(t, h.router)

			sent := h.publish(t, tt.ctx, typ, "hi")
			if err := recv(t, handlerErr, "the handler"); err != nil {
				t.Fatalf("publish from handler: %v", err)
			}
			out := recv(t, replies, "the reply")
			want := tt.wantCorrelation
			if want == "incoming" {
				want = sent.UUID
			}
			if got := out.Metadata.Get(runtime.MetaCausationID); got != sent.UUID {
				t.Errorf("causation id = %q, want the handled message's id %q", got, sent.UUID)
			}
			if got := out.Metadata.Get(runtime.MetaCorrelationID); got != want {
				t.Errorf("correlation id = %q, want %q", got, want)
			}
			if out.UUID == sent.UUID {
				t.Error("reply reused the handled message's id")
			}
			var v wrapperspb.StringValue
			if err := proto.Unmarshal(out.Payload, &v); err != nil || v.GetValue() != "re: hi" {
				t.Errorf("reply payload %q, %v", v.GetValue(), err)
			}
		})
	}
}

func TestRouterHandlerNames(t *testing.T) {
	h := newHarness(t, nil, nil)
	typ := greetingType(fastPolicy)
	first, second := newGreeter(nil), newGreeter(nil)
	h.add(t, first.spec("greeter", typ))

	err := h.router.AddHandler(second.spec("greeter", typ))
	if err == nil {
		t.Fatal("a second handler named greeter was accepted")
	}
	if !strings.Contains(err.Error(), "runtime.WithName") || !strings.Contains(err.Error(), `"greeter"`) {
		t.Errorf("error %q should name the handler and point to runtime.WithName", err)
	}
	h.add(t, second.spec("greeter", typ), runtime.WithName("greeter-audit"))
	if got := h.router.Watermill().Handlers(); len(got) != 2 || got["greeter"] == nil || got["greeter-audit"] == nil {
		t.Errorf("handlers = %v, want greeter and greeter-audit", got)
	}
	runRouter(t, h.router)

	h.publish(t, context.Background(), typ, "both")
	if r := recv(t, first.seen, "the first handler"); r.value != "both" {
		t.Errorf("first got %q", r.value)
	}
	if r := recv(t, second.seen, "the second handler"); r.value != "both" {
		t.Errorf("second got %q", r.value)
	}
}

func TestRouterWithDeliveryOverridesSchemaPolicy(t *testing.T) {
	h := newHarness(t, nil, nil)
	schemaPolicy := runtime.DeliveryPolicy{MaxAttempts: 5, InitialBackoff: 20 * time.Millisecond, DeadLetterTopic: "schema.dlq"}
	typ := greetingType(schemaPolicy)
	override := runtime.DeliveryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond, DeadLetterTopic: "override.dlq"}
	schemaDLQ := collect(t, h.bus, "schema.dlq")
	overrideDLQ := collect(t, h.bus, "override.dlq")
	g := newGreeter(func(string) error { return errors.New("no") })
	h.add(t, g.spec("greeter", typ), runtime.WithDelivery(override))
	if typ.Delivery != schemaPolicy {
		t.Errorf("WithDelivery changed the shared MessageType: %+v", typ.Delivery)
	}
	runRouter(t, h.router)

	h.publish(t, context.Background(), typ, "bad")
	dead := recv(t, overrideDLQ, "a dead letter on the override topic")
	if got := dead.Metadata.Get(runtime.MetaDeadLetterAttempt); got != "2" {
		t.Errorf("attempts = %q, want 2", got)
	}
	if n := g.calls.Load(); n != 2 {
		t.Errorf("handler called %d times, want 2", n)
	}
	select {
	case m := <-schemaDLQ:
		t.Errorf("dead letter on the schema topic: %v", m.Metadata)
	default:
	}
}

func TestRouterNewSubscriberConsumerGroups(t *testing.T) {
	bus := newGoChannel(t)
	var groups []string
	r := newTestRouter(t, bus, func(c *runtime.RouterConfig) {
		c.Subscriber = nil
		c.NewSubscriber = func(group string) (message.Subscriber, error) {
			if group == "broken" {
				return nil, errors.New("no such group")
			}
			groups = append(groups, group)
			return bus, nil
		}
	})
	g := newGreeter(nil)
	if err := r.AddHandler(g.spec("greeter", greetingType(fastPolicy))); err != nil {
		t.Fatal(err)
	}
	withGroup := greetingType(runtime.DeliveryPolicy{ConsumerGroup: "billing"})
	if err := r.AddHandler(g.spec("billing-handler", withGroup)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(groups, []string{"greeter", "billing"}) {
		t.Errorf("consumer groups = %v, want [greeter billing]", groups)
	}
	err := r.AddHandler(g.spec("other", greetingType(runtime.DeliveryPolicy{ConsumerGroup: "broken"})))
	if err == nil || !strings.Contains(err.Error(), "no such group") {
		t.Errorf("AddHandler with a failing NewSubscriber = %v", err)
	}
}

func TestRouterAddHandlerRejects(t *testing.T) {
	typ := greetingType(fastPolicy)
	route := func(typ *runtime.MessageType) runtime.Route {
		return runtime.On(typ, func(context.Context, *wrapperspb.StringValue) error { return nil })
	}
	withPolicy := func(p runtime.DeliveryPolicy) *runtime.MessageType { return greetingType(p) }
	other := func(name string, aliases []string, p runtime.DeliveryPolicy) *runtime.MessageType {
		return &runtime.MessageType{Name: name, Aliases: aliases, Topic: greetingTopic, Delivery: p}
	}
	tests := []struct {
		name    string
		spec    runtime.HandlerSpec
		opts    []runtime.HandlerOption
		wantSub []string
	}{
		{name: "no name", spec: runtime.HandlerSpec{Topic: "t", Routes: []runtime.Route{route(typ)}}, wantSub: []string{"name"}},
		{name: "WithName empty", spec: runtime.HandlerSpec{Name: "n", Topic: "t", Routes: []runtime.Route{route(typ)}}, opts: []runtime.HandlerOption{runtime.WithName("")}, wantSub: []string{"name"}},
		{name: "no topic", spec: runtime.HandlerSpec{Name: "n", Routes: []runtime.Route{route(typ)}}, wantSub: []string{"topic"}},
		{name: "no routes", spec: runtime.HandlerSpec{Name: "n", Topic: "t"}, wantSub: []string{"route"}},
		{
			name:    "dedup window",
			spec:    runtime.HandlerSpec{Name: "n", Topic: "t", Routes: []runtime.Route{route(withPolicy(runtime.DeliveryPolicy{DedupWindow: time.Minute}))}},
			wantSub: []string{"dedup", typ.Name, "DedupStore"},
		},
		{
			name:    "dedup window through WithDelivery",
			spec:    runtime.HandlerSpec{Name: "n", Topic: "t", Routes: []runtime.Route{route(typ)}},
			opts:    []runtime.HandlerOption{runtime.WithDelivery(runtime.DeliveryPolicy{DedupWindow: time.Second})},
			wantSub: []string{"dedup"},
		},
		{
			name:    "invalid policy",
			spec:    runtime.HandlerSpec{Name: "n", Topic: "t", Routes: []runtime.Route{route(withPolicy(runtime.DeliveryPolicy{MaxAttempts: -1}))}},
			wantSub: []string{"MaxAttempts", typ.Name},
		},
		{
			name: "routes with different rates",
			spec: runtime.HandlerSpec{Name: "n", Topic: "t", Routes: []runtime.Route{
				route(typ), route(other("test.v1.Other", nil, runtime.DeliveryPolicy{MaxPerSecond: 5})),
			}},
			wantSub: []string{"rates"},
		},
		{
			name: "routes with different consumer groups",
			spec: runtime.HandlerSpec{Name: "n", Topic: "t", Routes: []runtime.Route{
				route(typ), route(other("test.v1.Other", nil, runtime.DeliveryPolicy{ConsumerGroup: "g"})),
			}},
			wantSub: []string{"consumer groups"},
		},
		{
			name: "alias collides with a type",
			spec: runtime.HandlerSpec{Name: "n", Topic: "t", Routes: []runtime.Route{
				route(typ), route(other("test.v1.Other", []string{"test.v0.Hi"}, fastPolicy)),
			}},
			wantSub: []string{"two routes", "test.v0.Hi"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bus := newGoChannel(t)
			r := newTestRouter(t, bus, nil)
			err := r.AddHandler(tt.spec, tt.opts...)
			if err == nil {
				t.Fatalf("AddHandler accepted it, want an error mentioning %v", tt.wantSub)
			}
			for _, s := range tt.wantSub {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if n := len(r.Watermill().Handlers()); n != 0 {
				t.Errorf("a rejected handler was registered (%d handlers)", n)
			}
		})
	}
}

func TestNewRouterValidation(t *testing.T) {
	bus := newGoChannel(t)
	newSub := func(string) (message.Subscriber, error) { return bus, nil }
	tests := []struct {
		name    string
		cfg     runtime.RouterConfig
		wantSub []string // empty: valid
	}{
		{name: "no subscriber", cfg: runtime.RouterConfig{Publisher: bus}, wantSub: []string{"Subscriber"}},
		{name: "no publisher", cfg: runtime.RouterConfig{Subscriber: bus}, wantSub: []string{"Publisher"}},
		{name: "empty", cfg: runtime.RouterConfig{}, wantSub: []string{"Subscriber", "Publisher"}},
		{name: "NewSubscriber instead of Subscriber", cfg: runtime.RouterConfig{NewSubscriber: newSub, Publisher: bus}},
		{name: "Subscriber", cfg: runtime.RouterConfig{Subscriber: bus, Publisher: bus}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := runtime.NewRouter(tt.cfg)
			if len(tt.wantSub) == 0 {
				if err != nil || r == nil {
					t.Errorf("NewRouter = %v, %v; want a router", r, err)
				}
				return
			}
			if err == nil {
				t.Fatal("NewRouter accepted the config")
			}
			for _, s := range tt.wantSub {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if verr := tt.cfg.Validate(); verr == nil {
				t.Error("Validate accepted what NewRouter rejected")
			}
		})
	}
}

func TestRouterThrottlesMaxPerSecond(t *testing.T) {
	h := newHarness(t, nil, nil)
	typ := greetingType(runtime.DeliveryPolicy{MaxPerSecond: 50})
	g := newGreeter(nil)
	h.add(t, g.spec("greeter", typ))
	runRouter(t, h.router)

	const n = 10
	start := time.Now()
	for i := range n {
		h.publish(t, context.Background(), typ, fmt.Sprint(i))
	}
	for range n {
		recv(t, g.seen, "a greeting")
	}
	// 10 messages at 50/s: the first at once, then 9 intervals of 20ms.
	if elapsed := time.Since(start); elapsed < 170*time.Millisecond {
		t.Errorf("%d messages at 50/s were handled in %v, want at least ~180ms", n, elapsed)
	}
}

// The doc of DeliveryPolicy.MaxInFlight says the router handles a
// subscription's messages one at a time; Watermill's router starts a goroutine
// per message it receives, so this only holds if the subscriber waits for the
// ack before delivering the next message, which gochannel does not.
func TestRouterHandlesOneMessageAtATime(t *testing.T) {
	h := newHarness(t, nil, nil)
	typ := greetingType(runtime.DeliveryPolicy{MaxInFlight: 1})
	var inFlight, maxInFlight atomic.Int32
	entered := make(chan struct{}, 10)
	done := make(chan struct{}, 10)
	h.add(t, runtime.HandlerSpec{Name: "serial", Topic: typ.Topic, Routes: []runtime.Route{
		runtime.On(typ, func(context.Context, *wrapperspb.StringValue) error {
			n := inFlight.Add(1)
			for {
				m := maxInFlight.Load()
				if n <= m || maxInFlight.CompareAndSwap(m, n) {
					break
				}
			}
			entered <- struct{}{}
			// Stay in flight long enough for a concurrent delivery of the
			// second message to show.
			if n == 1 {
				time.Sleep(200 * time.Millisecond)
			}
			inFlight.Add(-1)
			done <- struct{}{}
			return nil
		}),
	}})
	runRouter(t, h.router)

	h.publish(t, context.Background(), typ, "1")
	recv(t, entered, "the first message")
	h.publish(t, context.Background(), typ, "2")
	recv(t, done, "a message to finish")
	recv(t, done, "the other message to finish")
	if m := maxInFlight.Load(); m != 1 {
		t.Errorf("%d messages of one subscription were handled at once, want 1 (MaxInFlight 1)", m)
	}
}
