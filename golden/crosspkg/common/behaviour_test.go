package commonpb_test

import (
	"context"
	"testing"

	commonpb "github.com/protoc-gen-eda/eda/golden/crosspkg/common"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
)

type retired struct {
	got chan edatest.Received[*commonpb.CurrencyRetired]
}

func (r *retired) HandleCurrencyRetired(ctx context.Context, e *commonpb.CurrencyRetired) error {
	return edatest.Record(ctx, r.got, e)
}

var _ commonpb.CurrencyRetiredHandler = (*retired)(nil)

func TestCurrencyRetired(t *testing.T) {
	rec := &retired{got: make(chan edatest.Received[*commonpb.CurrencyRetired], 16)}
	h := edatest.Start(t, func(r *runtime.Router) error {
		return commonpb.RegisterCurrencyRetiredHandler(r, rec)
	})
	if err := commonpb.NewCurrencyRetiredPublisher(h.Publisher).PublishCurrencyRetired(context.Background(), &commonpb.CurrencyRetired{Currency: "FRF"}); err != nil {
		t.Fatal(err)
	}
	got := edatest.Receive(t, rec.got)
	if got.Msg.GetCurrency() != "FRF" {
		t.Errorf("handled %v, want currency FRF", got.Msg)
	}
	env := got.Env
	if env == nil {
		t.Fatal("no envelope in the handler's context")
	}
	if env.Type != commonpb.CurrencyRetiredEventType || env.Subject != "FRF" || env.PartitionKey != "FRF" || env.AggregateType != "" {
		t.Errorf("envelope = %+v, want type %s, subject FRF, no aggregate", *env, commonpb.CurrencyRetiredEventType)
	}
	if commonpb.CurrencyRetiredTopic != "golden.crosspkg.common.CurrencyRetired" {
		t.Errorf("topic = %q", commonpb.CurrencyRetiredTopic)
	}
}
