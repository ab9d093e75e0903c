package multifile_test

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/protoc-gen-eda/eda/golden/multifile"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
)

type received[T any] struct {
	msg T
	env *runtime.Envelope
}

func record[T any](ctx context.Context, ch chan<- received[T], m T) error {
	env, _ := runtime.EnvelopeFrom(ctx)
	ch <- received[T]{msg: m, env: env}
	return nil
}

// cart handles AddItem (declared in cart_commands.proto) by publishing
// ItemAdded (declared in cart_events.proto), both through the Cart
// aggregate's bus and publisher (declared with Cart in cart.proto).
type cart struct {
	events  *multifile.CartEventPublisher
	adds    chan received[*multifile.AddItem]
	added   chan received[*multifile.ItemAdded]
	removed chan received[*multifile.ItemRemoved]
}

func (c *cart) HandleAddItem(ctx context.Context, cmd *multifile.AddItem) error {
	if err := record(ctx, c.adds, cmd); err != nil {
		return err
	}
	return c.events.PublishItemAdded(ctx, &multifile.ItemAdded{CartId: cmd.GetCartId(), Sku: cmd.GetSku()})
}

func (c *cart) HandleItemAdded(ctx context.Context, e *multifile.ItemAdded) error {
	return record(ctx, c.added, e)
}

func (c *cart) HandleItemRemoved(ctx context.Context, e *multifile.ItemRemoved) error {
	return record(ctx, c.removed, e)
}

var (
	_ multifile.CartCommandHandler = (*cart)(nil)
	_ multifile.CartEventHandler   = (*cart)(nil)
)

func TestCartAcrossFiles(t *testing.T) {
	c := &cart{
		adds:    make(chan received[*multifile.AddItem], 16),
		added:   make(chan received[*multifile.ItemAdded], 16),
		removed: make(chan received[*multifile.ItemRemoved], 16),
	}
	h := edatest.Start(t, func(r *runtime.Router) error {
		if err := multifile.RegisterCartCommandHandler(r, c); err != nil {
			return err
		}
		return multifile.RegisterCartEventHandler(r, c)
	})
	c.events = multifile.NewCartEventPublisher(h.Publisher)
	ctx := context.Background()

	add := &multifile.AddItem{CartId: "cart-1", Sku: "sku-42"}
	if err := multifile.NewCartCommandBus(h.Publisher).SendAddItem(ctx, add); err != nil {
		t.Fatal(err)
	}
	cmd := edatest.Receive(t, c.adds)
	if !proto.Equal(cmd.msg, add) {
		t.Errorf("AddItem handled = %v, want %v", cmd.msg, add)
	}
	// AddItem names its aggregate ".golden.multifile.Cart", ItemRemoved
	// "golden.multifile.Cart", ItemAdded "Cart": all the same aggregate.
	if cmd.env == nil || cmd.env.Type != multifile.AddItemCommandType || cmd.env.Subject != "cart-1" ||
		cmd.env.AggregateType != multifile.CartAggregateType {
		t.Fatalf("AddItem envelope = %+v", cmd.env)
	}

	ev := edatest.Receive(t, c.added)
	if ev.msg.GetCartId() != "cart-1" || ev.msg.GetSku() != "sku-42" {
		t.Errorf("ItemAdded handled = %v", ev.msg)
	}
	if ev.env == nil || ev.env.Type != multifile.ItemAddedEventType || ev.env.Subject != "cart-1" ||
		ev.env.AggregateType != multifile.CartAggregateType {
		t.Fatalf("ItemAdded envelope = %+v", ev.env)
	}
	if ev.env.CausationID != cmd.env.ID || ev.env.CorrelationID != cmd.env.CorrelationID {
		t.Errorf("ItemAdded causation/correlation = %q/%q, want %q/%q",
			ev.env.CausationID, ev.env.CorrelationID, cmd.env.ID, cmd.env.CorrelationID)
	}

	removed := &multifile.ItemRemoved{CartId: "cart-1", Sku: "sku-42"}
	if err := c.events.PublishItemRemoved(ctx, removed); err != nil {
		t.Fatal(err)
	}
	rm := edatest.Receive(t, c.removed)
	if !proto.Equal(rm.msg, removed) {
		t.Errorf("ItemRemoved handled = %v, want %v", rm.msg, removed)
	}
	if rm.env == nil || rm.env.Type != multifile.ItemRemovedEventType || rm.env.Subject != "cart-1" ||
		rm.env.AggregateType != multifile.CartAggregateType {
		t.Errorf("ItemRemoved envelope = %+v", rm.env)
	}
}

func TestUnimplementedCartCommandIsDeadLettered(t *testing.T) {
	h := edatest.Start(t, func(r *runtime.Router) error {
		return multifile.RegisterCartCommandHandler(r, multifile.UnimplementedCartCommandHandler{})
	})
	dead := h.Subscribe(t, runtime.DefaultDeadLetterTopic)
	if err := multifile.NewCartCommandBus(h.Publisher).SendAddItem(context.Background(), &multifile.AddItem{CartId: "cart-2"}); err != nil {
		t.Fatal(err)
	}
	msg := edatest.Receive(t, dead)
	if got := msg.Metadata.Get(runtime.MetaType); got != multifile.AddItemCommandType {
		t.Errorf("dead letter type = %q, want %q", got, multifile.AddItemCommandType)
	}
	if got := msg.Metadata.Get(runtime.MetaDeadLetterTopic); got != multifile.CartCommandsTopic {
		t.Errorf("dead letter topic = %q, want %q", got, multifile.CartCommandsTopic)
	}
}
