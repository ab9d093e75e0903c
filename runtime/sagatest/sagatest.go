// Package sagatest is the behaviour suite of the saga runtime
// (runtime.Saga), run on every event store backend: sagas keep their state
// and their timeouts in the store, so each backend must carry them.
//
// A backend's test calls Run with a Backend that opens fresh stores:
//
//	func TestSagas(t *testing.T) {
//		sagatest.Run(t, sagatest.Backend{
//			Open: func(t *testing.T) runtime.EventStore { return memstore.New() },
//		})
//	}
//
// Each test runs the real message flow: a three-step order saga (reserve
// stock, capture payment, ship; the first two have compensations) over
// structpb messages, registered on a runtime.Router over the runtime/mem
// bus, with a runtime.Relay publishing the store's outbox and fake command
// handlers that answer each command with a success or failure event, or
// not at all, as the test scripts. Timeouts are short real durations; the
// tests wait by polling with a deadline, never by sleeping a fixed time.
//
// Tests run in parallel with each other; each has its own store, bus,
// router and relay.
package sagatest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/mem"
)

// Backend opens stores for the suite.
type Backend struct {
	// Open returns a new, empty store. The suite closes it when the test
	// ends.
	Open func(t *testing.T) runtime.EventStore
	// Share, when set, returns another handle on the same data as s, as a
	// restarted process would open it (same database file, same PostgreSQL
	// schema). nil for in-memory stores: the restart tests then reuse s.
	Share func(t *testing.T, s runtime.EventStore) runtime.EventStore
}

// Timeout bounds every wait of the suite. It is generous: a wait ends as
// soon as its condition holds, and only a failing test waits this long.
const Timeout = 30 * time.Second

// poll is how often the suite checks a condition it waits for, and the
// relay's poll interval (which bounds how late a due timeout is relayed).
const poll = 5 * time.Millisecond

// Run runs every behaviour test as a subtest of t.
func Run(t *testing.T, b Backend) {
	t.Helper()
	if b.Open == nil {
		t.Fatal("sagatest: Backend.Open is nil: set it to a function that opens a new, empty store")
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"HappyPath", testHappyPath},
		{"FailureCompensatesEarlierSteps", testFailureCompensates},
		{"FailureOfSecondStep", testFailureOfSecondStep},
		{"StepTimeout", testStepTimeout},
		{"SagaTimeout", testSagaTimeout},
		{"TimeoutAfterStepIsStale", testStaleTimeout},
		{"RedeliveredMessages", testRedelivery},
		{"ConcurrentRedelivery", testConcurrentRedelivery},
		{"LostAppendResult", testLostAppendResult},
		{"CrashResume", testCrashResume},
		{"DurableTimeout", testDurableTimeout},
		{"UnknownInstance", testUnknownInstance},
		{"EmptyCorrelation", testEmptyCorrelation},
		{"ConflictRetried", testConflictRetried},
		{"ConcurrentEvents", testConcurrentEvents},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, b)
		})
	}
}

// Topics of the suite's saga.
const (
	ordersTopic   = "sagatest.orders"
	repliesTopic  = "sagatest.replies"
	commandsTopic = "sagatest.commands"
	sagaName      = "sagatest.order"
	stateType     = "google.protobuf.Struct"
	source        = "sagatest"
)

// The suite's message types. Every message is a structpb.Struct whose
// "order" field is the instance id.
var (
	orderPlaced = event("OrderPlaced", ordersTopic)

	stockReserved    = event("StockReserved", repliesTopic)
	stockUnavailable = event("StockUnavailable", repliesTopic)
	paymentCaptured  = event("PaymentCaptured", repliesTopic)
	paymentDeclined  = event("PaymentDeclined", repliesTopic)
	orderShipped     = event("OrderShipped", repliesTopic)
	shipmentFailed   = event("ShipmentFailed", repliesTopic)

	reserveStock   = command("ReserveStock")
	releaseStock   = command("ReleaseStock")
	capturePayment = command("CapturePayment")
	refundPayment  = command("RefundPayment")
	shipOrder      = command("ShipOrder")
)

func event(name, topic string) *runtime.MessageType {
	return &runtime.MessageType{Name: "sagatest." + name, Version: 1, Topic: topic}
}

func command(name string) *runtime.MessageType {
	return &runtime.MessageType{Name: "sagatest." + name, Version: 1, Topic: commandsTopic, Command: true}
}

// replies maps each step command to its success and failure events.
var replies = map[*runtime.MessageType][2]*runtime.MessageType{
	reserveStock:   {stockReserved, stockUnavailable},
	capturePayment: {paymentCaptured, paymentDeclined},
	shipOrder:      {orderShipped, shipmentFailed},
}

// Step names.
const (
	stepReserve = "reserve"
	stepCharge  = "charge"
	stepShip    = "ship"
)

// specOptions varies the suite's saga.
type specOptions struct {
	// stepTimeouts by step name.
	stepTimeouts map[string]time.Duration
	sagaTimeout  time.Duration
}

// orderOf reads a message's instance id.
func orderOf(m *structpb.Struct) string { return m.GetFields()["order"].GetStringValue() }

// newOrder returns a message of order id.
func newOrder(id string) *structpb.Struct {
	return &structpb.Struct{Fields: map[string]*structpb.Value{"order": structpb.NewStringValue(id)}}
}

// logOf returns the state's log: the names of the events it recorded.
func logOf(state *structpb.Struct) []string {
	var out []string
	for _, v := range state.GetFields()["log"].GetListValue().GetValues() {
		out = append(out, v.GetStringValue())
	}
	return out
}

// record appends name to the state's log.
func record(state *structpb.Struct, name string) {
	if state.Fields == nil {
		state.Fields = map[string]*structpb.Value{}
	}
	l := state.Fields["log"].GetListValue()
	if l == nil {
		l = &structpb.ListValue{}
		state.Fields["log"] = structpb.NewListValue(l)
	}
	l.Values = append(l.Values, structpb.NewStringValue(name))
}

// on is the SagaEvent of t, recording t's name in the state's log.
func on(t *runtime.MessageType) runtime.SagaEvent[*structpb.Struct] {
	return runtime.SagaOn[*structpb.Struct, structpb.Struct](t, orderOf, func(_ context.Context, state *structpb.Struct, _ *structpb.Struct) error {
		record(state, t.Name)
		return nil
	})
}

// send returns the SagaCommand sending t for the state's order.
func send(t *runtime.MessageType) runtime.SagaCommand[*structpb.Struct] {
	return func(_ context.Context, state *structpb.Struct) (*runtime.MessageType, runtime.Outgoing, error) {
		id := orderOf(state)
		return t, runtime.Outgoing{Subject: id, Message: newOrder(id)}, nil
	}
}

// newSpec returns the suite's saga: reserve (compensated by release),
// charge (compensated by refund), ship (no compensation).
func newSpec(o specOptions) runtime.SagaSpec[*structpb.Struct] {
	return runtime.SagaSpec[*structpb.Struct]{
		Name:      sagaName,
		StateType: stateType,
		New:       func() *structpb.Struct { return new(structpb.Struct) },
		Start: runtime.StartOn[*structpb.Struct, structpb.Struct](orderPlaced, orderOf, func(_ context.Context, e *structpb.Struct) (*structpb.Struct, error) {
			state := newOrder(orderOf(e))
			record(state, orderPlaced.Name)
			return state, nil
		}),
		Steps: []runtime.SagaStep[*structpb.Struct]{
			{Name: stepReserve, Command: send(reserveStock), Compensation: send(releaseStock),
				Success: []runtime.SagaEvent[*structpb.Struct]{on(stockReserved)}, Failure: []runtime.SagaEvent[*structpb.Struct]{on(stockUnavailable)},
				Timeout: o.stepTimeouts[stepReserve]},
			{Name: stepCharge, Command: send(capturePayment), Compensation: send(refundPayment),
				Success: []runtime.SagaEvent[*structpb.Struct]{on(paymentCaptured)}, Failure: []runtime.SagaEvent[*structpb.Struct]{on(paymentDeclined)},
				Timeout: o.stepTimeouts[stepCharge]},
			{Name: stepShip, Command: send(shipOrder),
				Success: []runtime.SagaEvent[*structpb.Struct]{on(orderShipped)}, Failure: []runtime.SagaEvent[*structpb.Struct]{on(shipmentFailed)},
				Timeout: o.stepTimeouts[stepShip]},
		},
		Timeout: o.sagaTimeout,
		// Quick retries: the suite's failures are conflicts, not outages.
		Delivery: runtime.DeliveryPolicy{InitialBackoff: poll, MaxBackoff: 10 * poll},
	}
}

// orderSaga and instance are the suite's saga and its instances.
type (
	orderSaga = runtime.Saga[*structpb.Struct]
	instance  = runtime.SagaInstance[*structpb.Struct]
)

// newSaga returns a saga of spec on store.
func newSaga(t *testing.T, store runtime.EventStore, o specOptions) *orderSaga {
	t.Helper()
	s, err := runtime.NewSaga(newSpec(o), runtime.SagaConfig{Store: store, Source: source})
	if err != nil {
		t.Fatalf("NewSaga: %v", err)
	}
	return s
}

// Replies a fake command handler gives.
const (
	replySuccess = "success" // the default
	replyFailure = "failure"
	replyNone    = "none"
)

// received is a command a fake handler got.
type received struct {
	typ   string
	order string
	env   runtime.Envelope
}

// world is one service: a saga on a store, a router on a bus with the
// saga's handlers and fake command handlers, and a relay.
type world struct {
	t      *testing.T
	ctx    context.Context
	store  runtime.EventStore
	saga   *orderSaga
	router *runtime.Router
	relay  *runtime.Relay
	pub    *runtime.Publisher
	bus    *mem.PubSub

	mu       sync.Mutex
	script   map[string]map[*runtime.MessageType]string // order -> command -> reply
	commands []received
	dead     []*message.Message
}

// open opens a store of b, closed when the test ends.
func open(t *testing.T, b Backend) runtime.EventStore {
	t.Helper()
	s := b.Open(t)
	if s == nil {
		t.Fatal("Backend.Open returned a nil store")
	}
	t.Cleanup(func() { closeQuietly(t, s) })
	return s
}

// reopen returns the store a restarted process would use: a second handle
// on s's data when the backend can share, s itself otherwise. s is closed
// when shared, as the first process is gone.
func reopen(t *testing.T, b Backend, s runtime.EventStore) runtime.EventStore {
	t.Helper()
	if b.Share == nil {
		return s
	}
	s2 := b.Share(t, s)
	if s2 == nil {
		t.Fatal("Backend.Share returned a nil store")
	}
	t.Cleanup(func() { closeQuietly(t, s2) })
	closeQuietly(t, s)
	return s2
}

func closeQuietly(t *testing.T, s runtime.EventStore) {
	t.Helper()
	if err := s.Close(); err != nil && !errors.Is(err, runtime.ErrStoreClosed) {
		t.Errorf("Close: %v", err)
	}
}

// testContext returns a context ending after Timeout or with the test.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), Timeout)
	t.Cleanup(cancel)
	return ctx
}

// newWorld starts a service on store, stopped when the test ends.
func newWorld(t *testing.T, store runtime.EventStore, o specOptions) *world {
	t.Helper()
	ctx, cancel := context.WithCancel(testContext(t))
	bus, err := mem.New(mem.Config{})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, ctx: ctx, store: store, saga: newSaga(t, store, o), bus: bus, script: map[string]map[*runtime.MessageType]string{}}
	if w.router, err = runtime.NewRouter(runtime.RouterConfig{Subscriber: bus, Publisher: bus}); err != nil {
		t.Fatal(err)
	}
	if err := w.saga.Register(w.router); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if w.pub, err = runtime.NewPublisher(bus, runtime.PublisherConfig{Source: "sagatest.services"}); err != nil {
		t.Fatal(err)
	}
	var routes []runtime.Route
	for _, c := range []*runtime.MessageType{reserveStock, releaseStock, capturePayment, refundPayment, shipOrder} {
		routes = append(routes, runtime.On(c, func(ctx context.Context, m *structpb.Struct) error { return w.handleCommand(ctx, c, m) }))
	}
	if err := w.router.AddHandler(runtime.HandlerSpec{Name: "sagatest.services", Topic: commandsTopic, Routes: routes}); err != nil {
		t.Fatal(err)
	}
	dead, err := bus.Subscribe(ctx, runtime.DefaultDeadLetterTopic)
	if err != nil {
		t.Fatal(err)
	}
	if w.relay, err = runtime.NewRelay(store, runtime.RelayConfig{Publisher: bus, PollInterval: poll}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for m := range dead {
			w.mu.Lock()
			w.dead = append(w.dead, m)
			w.mu.Unlock()
			m.Ack()
		}
	})
	wg.Go(func() {
		if err := w.router.Run(ctx); err != nil {
			t.Errorf("router: %v", err)
		}
	})
	select {
	case <-w.router.Running():
	case <-ctx.Done():
		t.Fatal("router did not start")
	}
	// The relay starts once the handlers are subscribed: the bus drops
	// messages to a topic nobody subscribes to.
	wg.Go(func() {
		if err := w.relay.Run(ctx); err != nil && !errors.Is(err, runtime.ErrStoreClosed) {
			t.Errorf("relay: %v", err)
		}
	})
	t.Cleanup(func() {
		cancel()
		if err := w.router.Close(); err != nil {
			t.Errorf("router Close: %v", err)
		}
		_ = bus.Close()
		wg.Wait()
	})
	return w
}

// handleCommand records a command and answers it as the script says.
func (w *world) handleCommand(ctx context.Context, c *runtime.MessageType, m *structpb.Struct) error {
	env, _ := runtime.EnvelopeFrom(ctx)
	order := orderOf(m)
	w.mu.Lock()
	w.commands = append(w.commands, received{typ: c.Name, order: order, env: *env})
	reply := w.script[order][c]
	w.mu.Unlock()
	events, isStep := replies[c]
	switch {
	case !isStep || reply == replyNone:
		return nil
	case reply == replyFailure:
		return w.pub.Publish(ctx, events[1], runtime.Outgoing{Subject: order, Message: newOrder(order)})
	}
	return w.pub.Publish(ctx, events[0], runtime.Outgoing{Subject: order, Message: newOrder(order)})
}

// answer scripts the reply to command c of order.
func (w *world) answer(order string, c *runtime.MessageType, reply string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.script[order] == nil {
		w.script[order] = map[*runtime.MessageType]string{}
	}
	w.script[order][c] = reply
}

// start publishes the event that starts order's saga, and returns its id.
func (w *world) start(order string) string {
	w.t.Helper()
	msg, err := w.pub.NewMessage(w.ctx, orderPlaced, runtime.Outgoing{Subject: order, Message: newOrder(order)})
	if err != nil {
		w.t.Fatal(err)
	}
	if err := w.bus.Publish(ordersTopic, msg); err != nil {
		w.t.Fatal(err)
	}
	return msg.UUID
}

// commandsOf returns the types of the commands order's handlers got, in
// arrival order.
func (w *world) commandsOf(order string) []received {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []received
	for _, c := range w.commands {
		if c.order == order {
			out = append(out, c)
		}
	}
	return out
}

// typesOf returns the command types of cs.
func typesOf(cs []received) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.typ
	}
	return out
}

// names returns the names of types.
func names(types ...*runtime.MessageType) []string {
	out := make([]string, len(types))
	for i, t := range types {
		out[i] = t.Name
	}
	return out
}

// eventually polls cond until it returns "" (done) or Timeout passes,
// then fails the test with cond's last answer.
func eventually(t *testing.T, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not done after %v: %s", what, Timeout, why)
		}
		time.Sleep(poll)
	}
}

// waitStatus waits until order's instance has status, and returns it.
func (w *world) waitStatus(order string, status runtime.SagaStatus) instance {
	w.t.Helper()
	return waitStatus(w.t, w.saga, order, status)
}

func waitStatus(t *testing.T, s *orderSaga, order string, status runtime.SagaStatus) instance {
	t.Helper()
	var inst instance
	eventually(t, fmt.Sprintf("instance %s %v", order, status), func() string {
		var err error
		inst, err = s.Load(t.Context(), order)
		switch {
		case errors.Is(err, runtime.ErrSagaNotFound):
			return "not started"
		case err != nil:
			t.Fatalf("Load: %v", err)
		case inst.Status != status:
			return fmt.Sprintf("status %v at step %q", inst.Status, inst.StepName)
		}
		return ""
	})
	return inst
}

// waitCommands waits until order's handlers got want, and checks that
// they got exactly want, in order.
func (w *world) waitCommands(order string, want ...*runtime.MessageType) []received {
	w.t.Helper()
	wantNames := names(want...)
	var got []received
	eventually(w.t, "commands of "+order, func() string {
		got = w.commandsOf(order)
		if len(got) < len(want) {
			return fmt.Sprintf("got %v, want %v", typesOf(got), wantNames)
		}
		return ""
	})
	if !slices.Equal(typesOf(got), wantNames) {
		w.t.Errorf("commands of %s = %v, want %v", order, typesOf(got), wantNames)
	}
	return got
}

// streamLength returns the number of transitions stored for order.
func streamLength(t *testing.T, store runtime.EventStore, order string) int {
	t.Helper()
	n := 0
	err := store.ReadStream(t.Context(), runtime.StreamID{Type: sagaName, ID: order}, 0, func(*runtime.EventRecord) error {
		n++
		return nil
	})
	if err != nil {
		t.Fatalf("ReadStream: %v", err)
	}
	return n
}
