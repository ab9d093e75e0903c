package multifile_test

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/protoc-gen-eda/eda/golden/multifile"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
)

// cart handles AddItem (declared in cart_commands.proto) by publishing
// ItemAdded (declared in cart_events.proto), both through the Cart
// aggregate's bus and publisher (declared with Cart in cart.proto).
type cart struct {
	events  *multifile.CartEventPublisher
	adds    chan edatest.Received[*multifile.AddItem]
	added   chan edatest.Received[*multifile.ItemAdded]
	removed chan edatest.Received[*multifile.ItemRemoved]
}

func (c *cart) HandleAddItem(ctx context.Context, cmd *multifile.AddItem) error {
	if err := edatest.Record(ctx, c.adds, cmd); err != nil {
		return err
	}
	return c.events.PublishItemAdded(ctx, &multifile.ItemAdded{CartId: cmd.GetCartId(), Sku: cmd.GetSku()})
}

func (c *cart) HandleItemAdded(ctx context.Context, e *multifile.ItemAdded) error {
	return edatest.Record(ctx, c.added, e)
}

func (c *cart) HandleItemRemoved(ctx context.Context, e *multifile.ItemRemoved) error {
	return edatest.Record(ctx, c.removed, e)
}

var (
	_ multifile.CartCommandHandler = (*cart)(nil)
	_ multifile.CartEventHandler   = (*cart)(nil)
)

func TestCartAcrossFiles(t *testing.T) {
	c := &cart{
		adds:    make(chan edatest.Received[*multifile.AddItem], 16),
		added:   make(chan edatest.Received[*multifile.ItemAdded], 16),
		removed: make(chan edatest.Received[*multifile.ItemRemoved], 16),
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
	if !proto.Equal(cmd.Msg, add) {
		t.Errorf("AddItem handled = %v, want %v", cmd.Msg, add)
	}
	// AddItem names its aggregate ".golden.multifile.Cart", ItemRemoved
	// "golden.multifile.Cart", ItemAdded "Cart": all the same aggregate.
	if cmd.Env == nil || cmd.Env.Type != multifile.AddItemCommandType || cmd.Env.Subject != "cart-1" ||
		cmd.Env.AggregateType != multifile.CartAggregateType {
		t.Fatalf("AddItem envelope = %+v", cmd.Env)
	}

	ev := edatest.Receive(t, c.added)
	if ev.Msg.GetCartId() != "cart-1" || ev.Msg.GetSku() != "sku-42" {
		t.Errorf("ItemAdded handled = %v", ev.Msg)
	}
	if ev.Env == nil || ev.Env.Type != multifile.ItemAddedEventType || ev.Env.Subject != "cart-1" ||
		ev.Env.AggregateType != multifile.CartAggregateType {
		t.Fatalf("ItemAdded envelope = %+v", ev.Env)
	}
	if ev.Env.CausationID != cmd.Env.ID || ev.Env.CorrelationID != cmd.Env.CorrelationID {
		t.Errorf("ItemAdded causation/correlation = %q/%q, want %q/%q",
			ev.Env.CausationID, ev.Env.CorrelationID, cmd.Env.ID, cmd.Env.CorrelationID)
	}

	removed := &multifile.ItemRemoved{CartId: "cart-1", Sku: "sku-42"}
	if err := c.events.PublishItemRemoved(ctx, removed); err != nil {
		t.Fatal(err)
	}
	rm := edatest.Receive(t, c.removed)
	if !proto.Equal(rm.Msg, removed) {
		t.Errorf("ItemRemoved handled = %v, want %v", rm.Msg, removed)
	}
	if rm.Env == nil || rm.Env.Type != multifile.ItemRemovedEventType || rm.Env.Subject != "cart-1" ||
		rm.Env.AggregateType != multifile.CartAggregateType {
		t.Errorf("ItemRemoved envelope = %+v", rm.Env)
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
