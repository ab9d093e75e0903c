package options_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"google.golang.org/protobuf/proto"

	"github.com/protoc-gen-eda/eda/golden/options"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
)

// Dead-letter topics of the schema.
const (
	fileDeadLetters  = "golden.options.dead"
	stockDeadLetters = "golden.options.stock_dead"
)

var errBroken = errors.New("warehouse offline")

// warehouse records every message it handles and fails those its fail
// function picks.
type warehouse struct {
	fail     func(proto.Message) bool
	calls    atomic.Int32
	counted  chan edatest.Received[*options.StockCounted]
	reserved chan edatest.Received[*options.StockReserved]
	reserves chan edatest.Received[*options.ReserveStock]
	releases chan edatest.Received[*options.ReleaseStock]
	audits   chan edatest.Received[*options.AuditLogged]
}

func newWarehouse(fail func(proto.Message) bool) *warehouse {
	if fail == nil {
		fail = func(proto.Message) bool { return false }
	}
	return &warehouse{
		fail:     fail,
		counted:  make(chan edatest.Received[*options.StockCounted], 64),
		reserved: make(chan edatest.Received[*options.StockReserved], 64),
		reserves: make(chan edatest.Received[*options.ReserveStock], 64),
		releases: make(chan edatest.Received[*options.ReleaseStock], 64),
		audits:   make(chan edatest.Received[*options.AuditLogged], 64),
	}
}

// handle is every handler of warehouse: it counts the call, records m on ch
// and returns errBroken if w.fail picks m. It counts before recording, so
// that the count is up to date once a call is received.
func handle[T proto.Message](ctx context.Context, w *warehouse, ch chan<- edatest.Received[T], m T) error {
	w.calls.Add(1)
	if err := edatest.Record(ctx, ch, m); err != nil {
		return err
	}
	if w.fail(m) {
		return errBroken
	}
	return nil
}

func (w *warehouse) HandleStockCounted(ctx context.Context, e *options.StockCounted) error {
	return handle(ctx, w, w.counted, e)
}

func (w *warehouse) HandleStockReserved(ctx context.Context, e *options.StockReserved) error {
	return handle(ctx, w, w.reserved, e)
}

func (w *warehouse) HandleReserveStock(ctx context.Context, c *options.ReserveStock) error {
	return handle(ctx, w, w.reserves, c)
}

func (w *warehouse) HandleReleaseStock(ctx context.Context, c *options.ReleaseStock) error {
	return handle(ctx, w, w.releases, c)
}

func (w *warehouse) HandleAuditLogged(ctx context.Context, e *options.AuditLogged) error {
	return handle(ctx, w, w.audits, e)
}

var (
	_ options.WarehouseEventHandler   = (*warehouse)(nil)
	_ options.WarehouseCommandHandler = (*warehouse)(nil)
	_ options.AuditLoggedHandler      = (*warehouse)(nil)
)

func always(proto.Message) bool { return true }

func checkDeadLetter(t *testing.T, msg *message.Message, typ, topic, handler, attempts string) {
	t.Helper()
	md := msg.Metadata
	if got := md.Get(runtime.MetaType); got != typ {
		t.Errorf("dead letter type = %q, want %q", got, typ)
	}
	if got := md.Get(runtime.MetaDeadLetterTopic); got != topic {
		t.Errorf("dead letter topic = %q, want %q", got, topic)
	}
	if got := md.Get(runtime.MetaDeadLetterHandler); got != handler {
		t.Errorf("dead letter handler = %q, want %q", got, handler)
	}
	if got := md.Get(runtime.MetaDeadLetterAttempt); got != attempts {
		t.Errorf("dead letter attempts = %q, want %s", got, attempts)
	}
	if got := md.Get(runtime.MetaDeadLetterReason); !strings.Contains(got, errBroken.Error()) {
		t.Errorf("dead letter reason = %q, want the handler's error", got)
	}
}

// noneOn fails the test if any of chs holds a message.
func noneOn(t *testing.T, chs map[string]<-chan *message.Message) {
	t.Helper()
	for topic, ch := range chs {
		if n := len(ch); n != 0 {
			t.Errorf("%d messages on %s", n, topic)
		}
	}
}

func TestStockCountedOwnPolicy(t *testing.T) {
	w := newWarehouse(always)
	h := edatest.Start(t, func(r *runtime.Router) error {
		return options.RegisterWarehouseEventHandler(r, w)
	})
	stockDead := h.Subscribe(t, stockDeadLetters)
	fileDead := h.Subscribe(t, fileDeadLetters)
	defaultDead := h.Subscribe(t, runtime.DefaultDeadLetterTopic)

	event := &options.StockCounted{WarehouseId: "wh-1", Sku: "sku-1", Count: 12}
	if err := options.NewWarehouseEventPublisher(h.Publisher).PublishStockCounted(context.Background(), event); err != nil {
		t.Fatal(err)
	}

	dead := edatest.Receive(t, stockDead)
	checkDeadLetter(t, dead, options.StockCountedEventType, options.WarehouseEventsTopic, "golden.Warehouse.events", "4")
	if got := w.calls.Load(); got != 4 {
		t.Errorf("HandleStockCounted called %d times, want max_attempts 4", got)
	}
	var attempts []edatest.Received[*options.StockCounted]
	for range 4 {
		attempts = append(attempts, edatest.Receive(t, w.counted))
	}
	first := attempts[0]
	if !proto.Equal(first.Msg, event) {
		t.Errorf("handled %v, want %v", first.Msg, event)
	}
	if env := first.Env; env == nil || env.Type != "golden.StockCounted" || env.SchemaVersion != 3 ||
		env.Subject != "wh-1" || env.PartitionKey != "sku-1" || env.AggregateType != "golden.Warehouse" {
		t.Errorf("envelope = %+v", first.Env)
	}
	// initial_backoff 250ms, multiplied by 1.5 per retry.
	for i, want := range []time.Duration{250 * time.Millisecond, 375 * time.Millisecond, 562 * time.Millisecond} {
		if wait := attempts[i+1].At.Sub(attempts[i].At); wait < want {
			t.Errorf("retry %d after %s, want at least %s", i+1, wait, want)
		}
	}
	edatest.Eventually(t, "the dead letter to be counted", func() bool { return h.Router.Stats().DeadLettered == 1 })
	if s := h.Router.Stats(); s.Retried != 3 || s.Handled != 0 {
		t.Errorf("stats = %+v, want 3 retries", s)
	}
	noneOn(t, map[string]<-chan *message.Message{fileDeadLetters: fileDead, runtime.DefaultDeadLetterTopic: defaultDead})
}

func TestStockReservedWithDeliveryOverridesPolicy(t *testing.T) {
	w := newWarehouse(always)
	h := edatest.Start(t, func(r *runtime.Router) error {
		return options.RegisterWarehouseEventHandler(r, w,
			runtime.WithDelivery(runtime.DeliveryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond}))
	})
	stockDead := h.Subscribe(t, stockDeadLetters)
	fileDead := h.Subscribe(t, fileDeadLetters)
	defaultDead := h.Subscribe(t, runtime.DefaultDeadLetterTopic)

	event := &options.StockReserved{WarehouseId: "wh-2", OrderId: "order-9"}
	if err := options.NewWarehouseEventPublisher(h.Publisher).PublishStockReserved(context.Background(), event); err != nil {
		t.Fatal(err)
	}

	// WithDelivery overrides only the fields it sets: the file's dead-letter
	// topic still applies.
	dead := edatest.Receive(t, fileDead)
	checkDeadLetter(t, dead, options.StockReservedEventType, options.WarehouseEventsTopic, "golden.Warehouse.events", "2")
	if got := w.calls.Load(); got != 2 {
		t.Errorf("HandleStockReserved called %d times, want 2", got)
	}
	got := edatest.Receive(t, w.reserved)
	if !proto.Equal(got.Msg, event) {
		t.Errorf("handled %v, want %v", got.Msg, event)
	}
	if env := got.Env; env == nil || env.Type != options.StockReservedEventType || env.SchemaVersion != 1 ||
		env.Subject != "wh-2" || env.CorrelationID != "order-9" {
		t.Errorf("envelope = %+v, want correlation from order_id", got.Env)
	}
	edatest.Eventually(t, "the dead letter to be counted", func() bool { return h.Router.Stats().DeadLettered == 1 })
	if s := h.Router.Stats(); s.Retried != 1 {
		t.Errorf("stats = %+v, want 1 retry", s)
	}
	noneOn(t, map[string]<-chan *message.Message{runtime.DefaultDeadLetterTopic: defaultDead, stockDeadLetters: stockDead})
}

func TestStockCountedAliases(t *testing.T) {
	w := newWarehouse(nil)
	h := edatest.Start(t, func(r *runtime.Router) error {
		return options.RegisterWarehouseEventHandler(r, w)
	})
	dead := h.Subscribe(t, runtime.DefaultDeadLetterTopic)
	// StockCounted as an older producer published it. The runtime's
	// description of StockCounted is not exported, so rebuild it from the
	// exported names.
	stockCounted := &runtime.MessageType{
		Name:          options.StockCountedEventType,
		Version:       3,
		Topic:         options.WarehouseEventsTopic,
		AggregateType: options.WarehouseAggregateType,
	}
	for i, alias := range []string{"golden.StockTaken", "golden.v0.StockTaken"} {
		event := &options.StockCounted{WarehouseId: "wh-3", Sku: alias, Count: int64(i + 1)}
		msg, err := h.Publisher.NewMessage(context.Background(), stockCounted, runtime.Outgoing{Subject: "wh-3", Message: event})
		if err != nil {
			t.Fatal(err)
		}
		msg.Metadata.Set(runtime.MetaType, alias)
		if err := h.Bus.Publish(options.WarehouseEventsTopic, msg); err != nil {
			t.Fatal(err)
		}
		got := edatest.Receive(t, w.counted)
		if !proto.Equal(got.Msg, event) {
			t.Errorf("%s handled as %v, want %v", alias, got.Msg, event)
		}
		if got.Env == nil || got.Env.Type != alias {
			t.Errorf("%s: envelope = %+v", alias, got.Env)
		}
	}
	edatest.Eventually(t, "both to be handled", func() bool { return h.Router.Stats().Handled == 2 })
	if s := h.Router.Stats(); s.Skipped != 0 || s.DeadLettered != 0 {
		t.Errorf("stats = %+v, want the aliases handled, not skipped", s)
	}
	if len(dead) != 0 || len(w.reserved) != 0 {
		t.Errorf("%d dead letters, %d StockReserved", len(dead), len(w.reserved))
	}
}

func TestReserveStockCommand(t *testing.T) {
	w := newWarehouse(func(m proto.Message) bool {
		c, ok := m.(*options.ReserveStock)
		return ok && c.GetOrderId() == "bad"
	})
	h := edatest.Start(t, func(r *runtime.Router) error {
		return options.RegisterWarehouseCommandHandler(r, w)
	})
	fileDead := h.Subscribe(t, fileDeadLetters)
	bus := options.NewWarehouseCommandBus(h.Publisher)
	ctx := context.Background()

	cmd := &options.ReserveStock{WarehouseId: "wh-4", OrderId: "order-1"}
	if err := bus.SendReserveStock(ctx, cmd); err != nil {
		t.Fatal(err)
	}
	got := edatest.Receive(t, w.reserves)
	if !proto.Equal(got.Msg, cmd) {
		t.Errorf("handled %v, want %v", got.Msg, cmd)
	}
	if env := got.Env; env == nil || env.Type != "golden.ReserveStock" || env.SchemaVersion != 2 ||
		env.Subject != "wh-4" || env.AggregateType != "golden.Warehouse" {
		t.Errorf("envelope = %+v, want type golden.ReserveStock version 2", got.Env)
	}

	// max_attempts 1: no retry; dead-lettered to the file's topic.
	if err := bus.SendReserveStock(ctx, &options.ReserveStock{WarehouseId: "wh-4", OrderId: "bad"}); err != nil {
		t.Fatal(err)
	}
	dead := edatest.Receive(t, fileDead)
	checkDeadLetter(t, dead, options.ReserveStockCommandType, options.WarehouseCommandsTopic, "golden.Warehouse.commands", "1")
	if got := dead.Metadata.Get(runtime.MetaSchemaVersion); got != "2" {
		t.Errorf("dead letter schema version = %q, want 2", got)
	}
	if got := w.calls.Load(); got != 2 {
		t.Errorf("HandleReserveStock called %d times, want 2 (one per command)", got)
	}

	release := &options.ReleaseStock{WarehouseId: "wh-4", OrderId: "order-1"}
	if err := bus.SendReleaseStock(ctx, release); err != nil {
		t.Fatal(err)
	}
	rel := edatest.Receive(t, w.releases)
	if !proto.Equal(rel.Msg, release) || rel.Env == nil || rel.Env.Type != options.ReleaseStockCommandType || rel.Env.SchemaVersion != 1 {
		t.Errorf("ReleaseStock handled = %v, envelope %+v", rel.Msg, rel.Env)
	}
}

func TestAuditLogged(t *testing.T) {
	w := newWarehouse(nil)
	h := edatest.Start(t, func(r *runtime.Router) error {
		return options.RegisterAuditLoggedHandler(r, w)
	})
	event := &options.AuditLogged{Entry: "stock counted"}
	if err := options.NewAuditLoggedPublisher(h.Publisher).PublishAuditLogged(context.Background(), event); err != nil {
		t.Fatal(err)
	}
	got := edatest.Receive(t, w.audits)
	if !proto.Equal(got.Msg, event) || got.Env == nil || got.Env.Type != options.AuditLoggedEventType || got.Env.Subject != "" {
		t.Errorf("AuditLogged handled = %v, envelope %+v", got.Msg, got.Env)
	}
}
