package commonpb_test

import (
	"context"
	"testing"

	commonpb "github.com/protoc-gen-eda/eda/golden/crosspkg/common"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
)

type retired struct {
	got chan *commonpb.CurrencyRetired
	env chan *runtime.Envelope
}

func (r *retired) HandleCurrencyRetired(ctx context.Context, e *commonpb.CurrencyRetired) error {
	env, _ := runtime.EnvelopeFrom(ctx)
	r.got <- e
	r.env <- env
	return nil
}

var _ commonpb.CurrencyRetiredHandler = (*retired)(nil)

func TestCurrencyRetired(t *testing.T) {
	rec := &retired{got: make(chan *commonpb.CurrencyRetired, 16), env: make(chan *runtime.Envelope, 16)}
	h := edatest.Start(t, func(r *runtime.Router) error {
		return commonpb.RegisterCurrencyRetiredHandler(r, rec)
	})
	if err := commonpb.NewCurrencyRetiredPublisher(h.Publisher).PublishCurrencyRetired(context.Background(), &commonpb.CurrencyRetired{Currency: "FRF"}); err != nil {
		t.Fatal(err)
	}
	if got := edatest.Receive(t, rec.got); got.GetCurrency() != "FRF" {
		t.Errorf("handled %v, want currency FRF", got)
	}
	env := edatest.Receive(t, rec.env)
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
