package orderspb_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonpb "github.com/protoc-gen-eda/eda/golden/crosspkg/common"
	orderspb "github.com/protoc-gen-eda/eda/golden/crosspkg/orders"
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

type invoices struct {
	issued  chan received[*orderspb.InvoiceIssued]
	retired chan received[*commonpb.CurrencyRetired]
}

func (i *invoices) HandleInvoiceIssued(ctx context.Context, e *orderspb.InvoiceIssued) error {
	return record(ctx, i.issued, e)
}

func (i *invoices) HandleCurrencyRetired(ctx context.Context, e *commonpb.CurrencyRetired) error {
	return record(ctx, i.retired, e)
}

var (
	_ orderspb.InvoiceEventHandler    = (*invoices)(nil)
	_ commonpb.CurrencyRetiredHandler = (*invoices)(nil)
)

// TestInvoiceIssuedRoundTrip publishes an event whose fields are messages of
// other packages, encoded with each codec, and handles it together with the
// other package's event in one router.
func TestInvoiceIssuedRoundTrip(t *testing.T) {
	inv := &invoices{
		issued:  make(chan received[*orderspb.InvoiceIssued], 16),
		retired: make(chan received[*commonpb.CurrencyRetired], 16),
	}
	h := edatest.Start(t, func(r *runtime.Router) error {
		if err := orderspb.RegisterInvoiceEventHandler(r, inv); err != nil {
			return err
		}
		return commonpb.RegisterCurrencyRetiredHandler(r, inv)
	})

	for _, codec := range []runtime.Codec{runtime.ProtoBinary, runtime.ProtoJSON} {
		t.Run(codec.ContentType(), func(t *testing.T) {
			pub, err := runtime.NewPublisher(h.Bus, runtime.PublisherConfig{Source: "orders", Codec: codec})
			if err != nil {
				t.Fatal(err)
			}
			due := time.Date(2031, time.February, 3, 4, 5, 6, 789000000, time.UTC)
			event := &orderspb.InvoiceIssued{
				InvoiceId: "inv-1",
				Total:     &commonpb.Money{Currency: "EUR", Units: -12345},
				Due:       timestamppb.New(due),
			}
			if err := orderspb.NewInvoiceEventPublisher(pub).PublishInvoiceIssued(context.Background(), event); err != nil {
				t.Fatal(err)
			}
			got := edatest.Receive(t, inv.issued)
			if !proto.Equal(got.msg, event) {
				t.Errorf("handled %v, want %v", got.msg, event)
			}
			if got.msg.GetTotal().GetCurrency() != "EUR" || got.msg.GetTotal().GetUnits() != -12345 {
				t.Errorf("Total = %v", got.msg.GetTotal())
			}
			if !got.msg.GetDue().AsTime().Equal(due) {
				t.Errorf("Due = %v, want %v", got.msg.GetDue().AsTime(), due)
			}
			if got.env == nil || got.env.Type != orderspb.InvoiceIssuedEventType || got.env.Subject != "inv-1" ||
				got.env.AggregateType != orderspb.InvoiceAggregateType || got.env.ContentType != codec.ContentType() {
				t.Errorf("envelope = %+v", got.env)
			}
		})
	}

	if err := commonpb.NewCurrencyRetiredPublisher(h.Publisher).PublishCurrencyRetired(context.Background(), &commonpb.CurrencyRetired{Currency: "DEM"}); err != nil {
		t.Fatal(err)
	}
	if got := edatest.Receive(t, inv.retired); got.msg.GetCurrency() != "DEM" || got.env == nil || got.env.Subject != "DEM" {
		t.Errorf("CurrencyRetired handled = %v, envelope %+v", got.msg, got.env)
	}
	if s := h.Router.Stats(); s.DeadLettered != 0 || s.Skipped != 0 {
		t.Errorf("stats = %+v", s)
	}
}
