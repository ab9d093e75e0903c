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

type invoices struct {
	issued  chan edatest.Received[*orderspb.InvoiceIssued]
	retired chan edatest.Received[*commonpb.CurrencyRetired]
}

func (i *invoices) HandleInvoiceIssued(ctx context.Context, e *orderspb.InvoiceIssued) error {
	return edatest.Record(ctx, i.issued, e)
}

func (i *invoices) HandleCurrencyRetired(ctx context.Context, e *commonpb.CurrencyRetired) error {
	return edatest.Record(ctx, i.retired, e)
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
		issued:  make(chan edatest.Received[*orderspb.InvoiceIssued], 16),
		retired: make(chan edatest.Received[*commonpb.CurrencyRetired], 16),
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
			if !proto.Equal(got.Msg, event) {
				t.Errorf("handled %v, want %v", got.Msg, event)
			}
			if got.Msg.GetTotal().GetCurrency() != "EUR" || got.Msg.GetTotal().GetUnits() != -12345 {
				t.Errorf("Total = %v", got.Msg.GetTotal())
			}
			if !got.Msg.GetDue().AsTime().Equal(due) {
				t.Errorf("Due = %v, want %v", got.Msg.GetDue().AsTime(), due)
			}
			if got.Env == nil || got.Env.Type != orderspb.InvoiceIssuedEventType || got.Env.Subject != "inv-1" ||
				got.Env.AggregateType != orderspb.InvoiceAggregateType || got.Env.ContentType != codec.ContentType() {
				t.Errorf("envelope = %+v", got.Env)
			}
		})
	}

	if err := commonpb.NewCurrencyRetiredPublisher(h.Publisher).PublishCurrencyRetired(context.Background(), &commonpb.CurrencyRetired{Currency: "DEM"}); err != nil {
		t.Fatal(err)
	}
	if got := edatest.Receive(t, inv.retired); got.Msg.GetCurrency() != "DEM" || got.Env == nil || got.Env.Subject != "DEM" {
		t.Errorf("CurrencyRetired handled = %v, envelope %+v", got.Msg, got.Env)
	}
	if s := h.Router.Stats(); s.DeadLettered != 0 || s.Skipped != 0 {
		t.Errorf("stats = %+v", s)
	}
}
