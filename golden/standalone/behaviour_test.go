package standalone_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/protoc-gen-eda/eda/golden/standalone"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
)

// recorder implements every generated handler interface of the package and
// pushes what it handles into channels.
type recorder struct {
	payments chan edatest.Received[*standalone.PaymentReceived]
	signups  chan edatest.Received[*standalone.UserSignedUp]
	deletes  chan edatest.Received[*standalone.UserDeleted]
	emails   chan edatest.Received[*standalone.SendEmail]
}

func newRecorder() *recorder {
	return &recorder{
		payments: make(chan edatest.Received[*standalone.PaymentReceived], 16),
		signups:  make(chan edatest.Received[*standalone.UserSignedUp], 16),
		deletes:  make(chan edatest.Received[*standalone.UserDeleted], 16),
		emails:   make(chan edatest.Received[*standalone.SendEmail], 16),
	}
}

func (r *recorder) HandlePaymentReceived(ctx context.Context, e *standalone.PaymentReceived) error {
	return edatest.Record(ctx, r.payments, e)
}

func (r *recorder) HandleUserSignedUp(ctx context.Context, e *standalone.UserSignedUp) error {
	return edatest.Record(ctx, r.signups, e)
}

func (r *recorder) HandleUserDeleted(ctx context.Context, e *standalone.UserDeleted) error {
	return edatest.Record(ctx, r.deletes, e)
}

func (r *recorder) HandleSendEmail(ctx context.Context, c *standalone.SendEmail) error {
	return edatest.Record(ctx, r.emails, c)
}

var (
	_ standalone.PaymentReceivedHandler = (*recorder)(nil)
	_ standalone.UserSignedUpHandler    = (*recorder)(nil)
	_ standalone.UserDeletedHandler     = (*recorder)(nil)
	_ standalone.SendEmailHandler       = (*recorder)(nil)
)

func TestSharedTopicHandlersSkipEachOthersEvents(t *testing.T) {
	if standalone.UserSignedUpTopic != "golden.users" || standalone.UserDeletedTopic != "golden.users" {
		t.Fatalf("topics = %q, %q, want both golden.users", standalone.UserSignedUpTopic, standalone.UserDeletedTopic)
	}
	rec := newRecorder()
	// Both registered under their default names: the names differ, so one
	// router takes both.
	h := edatest.Start(t, func(r *runtime.Router) error {
		if err := standalone.RegisterUserSignedUpHandler(r, rec); err != nil {
			return err
		}
		return standalone.RegisterUserDeletedHandler(r, rec)
	})
	ctx := context.Background()

	if err := standalone.NewUserDeletedPublisher(h.Publisher).PublishUserDeleted(ctx, &standalone.UserDeleted{UserId: "u-1"}); err != nil {
		t.Fatal(err)
	}
	del := edatest.Receive(t, rec.deletes)
	if del.Msg.GetUserId() != "u-1" || del.Env == nil || del.Env.Type != standalone.UserDeletedEventType {
		t.Errorf("UserDeleted handled = %v, envelope %+v", del.Msg, del.Env)
	}
	// The UserSignedUp handler saw it too and skipped it.
	edatest.Eventually(t, "the UserSignedUp handler to skip UserDeleted", func() bool { return h.Router.Stats().Skipped == 1 })

	if err := standalone.NewUserSignedUpPublisher(h.Publisher).PublishUserSignedUp(ctx, &standalone.UserSignedUp{UserId: "u-2"}); err != nil {
		t.Fatal(err)
	}
	up := edatest.Receive(t, rec.signups)
	if up.Msg.GetUserId() != "u-2" || up.Env == nil || up.Env.Type != standalone.UserSignedUpEventType {
		t.Errorf("UserSignedUp handled = %v, envelope %+v", up.Msg, up.Env)
	}
	edatest.Eventually(t, "the UserDeleted handler to skip UserSignedUp", func() bool { return h.Router.Stats().Skipped == 2 })
	edatest.Eventually(t, "both events to be handled", func() bool { return h.Router.Stats().Handled == 2 })

	if s := h.Router.Stats(); s.Handled != 2 || s.DeadLettered != 0 || s.Retried != 0 {
		t.Errorf("stats = %+v, want 2 handled, 2 skipped", s)
	}
	if len(rec.signups) != 0 || len(rec.deletes) != 0 {
		t.Errorf("extra deliveries: %d UserSignedUp, %d UserDeleted", len(rec.signups), len(rec.deletes))
	}
}

func TestSecondHandlerOfSameEventNeedsWithName(t *testing.T) {
	first, second := newRecorder(), newRecorder()
	h := edatest.Start(t, func(r *runtime.Router) error {
		if err := standalone.RegisterUserSignedUpHandler(r, first); err != nil {
			return err
		}
		err := standalone.RegisterUserSignedUpHandler(r, second)
		if err == nil || !strings.Contains(err.Error(), "WithName") {
			t.Errorf("second registration under the default name: err = %v, want one pointing to WithName", err)
		}
		return standalone.RegisterUserSignedUpHandler(r, second, runtime.WithName("golden.users.audit"))
	})

	if err := standalone.NewUserSignedUpPublisher(h.Publisher).PublishUserSignedUp(context.Background(), &standalone.UserSignedUp{UserId: "u-3"}); err != nil {
		t.Fatal(err)
	}
	for _, rec := range []*recorder{first, second} {
		if got := edatest.Receive(t, rec.signups); got.Msg.GetUserId() != "u-3" {
			t.Errorf("handled %v, want user u-3", got.Msg)
		}
	}
}

func TestPaymentReceivedEnvelopeFromFields(t *testing.T) {
	rec := newRecorder()
	h := edatest.Start(t, func(r *runtime.Router) error {
		return standalone.RegisterPaymentReceivedHandler(r, rec)
	})
	pub := standalone.NewPaymentReceivedPublisher(h.Publisher)

	// The correlation_id field wins over a correlation in the context.
	ctx := runtime.WithCorrelationID(context.Background(), "from-context")
	payment := &standalone.PaymentReceived{PaymentId: "pay-1", CheckoutId: "checkout-7", AmountCents: 4200}
	if err := pub.PublishPaymentReceived(ctx, payment); err != nil {
		t.Fatal(err)
	}
	got := edatest.Receive(t, rec.payments)
	if !proto.Equal(got.Msg, payment) {
		t.Errorf("handled %v, want %v", got.Msg, payment)
	}
	if got.Env == nil {
		t.Fatal("no envelope in the handler's context")
	}
	env := got.Env
	if env.Type != standalone.PaymentReceivedEventType {
		t.Errorf("Type = %q", env.Type)
	}
	if env.Subject != "pay-1" {
		t.Errorf("Subject = %q, want the payment_id pay-1", env.Subject)
	}
	if env.CorrelationID != "checkout-7" {
		t.Errorf("CorrelationID = %q, want the checkout_id checkout-7", env.CorrelationID)
	}
	if env.AggregateType != "" {
		t.Errorf("AggregateType = %q, want none for a standalone event", env.AggregateType)
	}

	// Without the field, the context's correlation applies.
	if err := pub.PublishPaymentReceived(ctx, &standalone.PaymentReceived{PaymentId: "pay-2"}); err != nil {
		t.Fatal(err)
	}
	if got := edatest.Receive(t, rec.payments); got.Env == nil || got.Env.CorrelationID != "from-context" || got.Env.Subject != "pay-2" {
		t.Errorf("envelope without checkout_id = %+v, want correlation from-context", got.Env)
	}
}

func TestSendEmailCommand(t *testing.T) {
	rec := newRecorder()
	h := edatest.Start(t, func(r *runtime.Router) error {
		return standalone.RegisterSendEmailHandler(r, rec)
	})
	cmd := &standalone.SendEmail{To: "ada@example.com", Subject: "Welcome"}
	if err := standalone.NewSendEmailSender(h.Publisher).SendSendEmail(context.Background(), cmd); err != nil {
		t.Fatal(err)
	}
	got := edatest.Receive(t, rec.emails)
	if !proto.Equal(got.Msg, cmd) {
		t.Errorf("handled %v, want %v", got.Msg, cmd)
	}
	if got.Env == nil || got.Env.Type != standalone.SendEmailCommandType || got.Env.Subject != "" || got.Env.AggregateType != "" {
		t.Errorf("envelope = %+v, want type %s and no subject or aggregate", got.Env, standalone.SendEmailCommandType)
	}
	// A first message correlates with itself.
	if got.Env != nil && got.Env.CorrelationID != got.Env.ID {
		t.Errorf("CorrelationID = %q, want the message's own id %q", got.Env.CorrelationID, got.Env.ID)
	}
}
