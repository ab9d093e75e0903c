package standalone_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/protoc-gen-eda/eda/golden/standalone"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
)

type received[T any] struct {
	msg T
	env *runtime.Envelope
}

// recorder implements every generated handler interface of the package and
// pushes what it handles into channels.
type recorder struct {
	payments chan received[*standalone.PaymentReceived]
	signups  chan received[*standalone.UserSignedUp]
	deletes  chan received[*standalone.UserDeleted]
	emails   chan received[*standalone.SendEmail]
}

func newRecorder() *recorder {
	return &recorder{
		payments: make(chan received[*standalone.PaymentReceived], 16),
		signups:  make(chan received[*standalone.UserSignedUp], 16),
		deletes:  make(chan received[*standalone.UserDeleted], 16),
		emails:   make(chan received[*standalone.SendEmail], 16),
	}
}

func record[T any](ctx context.Context, ch chan<- received[T], m T) error {
	env, _ := runtime.EnvelopeFrom(ctx)
	ch <- received[T]{msg: m, env: env}
	return nil
}

func (r *recorder) HandlePaymentReceived(ctx context.Context, e *standalone.PaymentReceived) error {
	return record(ctx, r.payments, e)
}

func (r *recorder) HandleUserSignedUp(ctx context.Context, e *standalone.UserSignedUp) error {
	return record(ctx, r.signups, e)
}

func (r *recorder) HandleUserDeleted(ctx context.Context, e *standalone.UserDeleted) error {
	return record(ctx, r.deletes, e)
}

func (r *recorder) HandleSendEmail(ctx context.Context, c *standalone.SendEmail) error {
	return record(ctx, r.emails, c)
}

var (
	_ standalone.PaymentReceivedHandler = (*recorder)(nil)
	_ standalone.UserSignedUpHandler    = (*recorder)(nil)
	_ standalone.UserDeletedHandler     = (*recorder)(nil)
	_ standalone.SendEmailHandler       = (*recorder)(nil)
)

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(edatest.Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

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
	if del.msg.GetUserId() != "u-1" || del.env == nil || del.env.Type != standalone.UserDeletedEventType {
		t.Errorf("UserDeleted handled = %v, envelope %+v", del.msg, del.env)
	}
	// The UserSignedUp handler saw it too and skipped it.
	eventually(t, "the UserSignedUp handler to skip UserDeleted", func() bool { return h.Router.Stats().Skipped == 1 })

	if err := standalone.NewUserSignedUpPublisher(h.Publisher).PublishUserSignedUp(ctx, &standalone.UserSignedUp{UserId: "u-2"}); err != nil {
		t.Fatal(err)
	}
	up := edatest.Receive(t, rec.signups)
	if up.msg.GetUserId() != "u-2" || up.env == nil || up.env.Type != standalone.UserSignedUpEventType {
		t.Errorf("UserSignedUp handled = %v, envelope %+v", up.msg, up.env)
	}
	eventually(t, "the UserDeleted handler to skip UserSignedUp", func() bool { return h.Router.Stats().Skipped == 2 })
	eventually(t, "both events to be handled", func() bool { return h.Router.Stats().Handled == 2 })

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
		if got := edatest.Receive(t, rec.signups); got.msg.GetUserId() != "u-3" {
			t.Errorf("handled %v, want user u-3", got.msg)
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
	if !proto.Equal(got.msg, payment) {
		t.Errorf("handled %v, want %v", got.msg, payment)
	}
	if got.env == nil {
		t.Fatal("no envelope in the handler's context")
	}
	env := got.env
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
	if got := edatest.Receive(t, rec.payments); got.env == nil || got.env.CorrelationID != "from-context" || got.env.Subject != "pay-2" {
		t.Errorf("envelope without checkout_id = %+v, want correlation from-context", got.env)
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
	if !proto.Equal(got.msg, cmd) {
		t.Errorf("handled %v, want %v", got.msg, cmd)
	}
	if got.env == nil || got.env.Type != standalone.SendEmailCommandType || got.env.Subject != "" || got.env.AggregateType != "" {
		t.Errorf("envelope = %+v, want type %s and no subject or aggregate", got.env, standalone.SendEmailCommandType)
	}
	// A first message correlates with itself.
	if got.env != nil && got.env.CorrelationID != got.env.ID {
		t.Errorf("CorrelationID = %q, want the message's own id %q", got.env.CorrelationID, got.env.ID)
	}
}
