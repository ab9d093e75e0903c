package aggregate_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/protoc-gen-eda/eda/golden/aggregate"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
)

// accounts handles OpenAccount by publishing AccountOpened and leaves Deposit
// to the embedded UnimplementedAccountCommandHandler.
type accounts struct {
	aggregate.UnimplementedAccountCommandHandler
	events *aggregate.AccountEventPublisher
	opens  chan edatest.Received[*aggregate.OpenAccount]
}

func (a *accounts) HandleOpenAccount(ctx context.Context, c *aggregate.OpenAccount) error {
	if err := edatest.Record(ctx, a.opens, c); err != nil {
		return err
	}
	return a.events.PublishAccountOpened(ctx, &aggregate.AccountOpened{AccountId: c.GetAccountId(), Owner: c.GetOwner()})
}

// openedOnly handles AccountOpened and leaves MoneyDeposited to the embedded
// UnimplementedAccountEventHandler.
type openedOnly struct {
	aggregate.UnimplementedAccountEventHandler
	opened chan edatest.Received[*aggregate.AccountOpened]
}

func (o *openedOnly) HandleAccountOpened(ctx context.Context, e *aggregate.AccountOpened) error {
	return edatest.Record(ctx, o.opened, e)
}

var (
	_ aggregate.AccountEventHandler   = (*openedOnly)(nil)
	_ aggregate.AccountCommandHandler = (*accounts)(nil)
)

func newAccounts() *accounts {
	return &accounts{opens: make(chan edatest.Received[*aggregate.OpenAccount], 16)}
}

func newOpenedOnly() *openedOnly {
	return &openedOnly{opened: make(chan edatest.Received[*aggregate.AccountOpened], 16)}
}

func TestCommandHandlerPublishesEventWithCausation(t *testing.T) {
	cmds, events := newAccounts(), newOpenedOnly()
	h := edatest.Start(t, func(r *runtime.Router) error {
		if err := aggregate.RegisterAccountCommandHandler(r, cmds); err != nil {
			return err
		}
		return aggregate.RegisterAccountEventHandler(r, events)
	})
	cmds.events = aggregate.NewAccountEventPublisher(h.Publisher)

	ctx := runtime.WithCorrelationID(context.Background(), "signup-flow-1")
	open := &aggregate.OpenAccount{AccountId: "acc-1", Owner: "Ada"}
	if err := aggregate.NewAccountCommandBus(h.Publisher).SendOpenAccount(ctx, open); err != nil {
		t.Fatal(err)
	}

	cmd := edatest.Receive(t, cmds.opens)
	if !proto.Equal(cmd.Msg, open) {
		t.Errorf("command handled = %v, want %v", cmd.Msg, open)
	}
	if cmd.Env == nil {
		t.Fatal("command handler context carries no envelope")
	}
	if cmd.Env.Type != aggregate.OpenAccountCommandType || cmd.Env.Subject != "acc-1" ||
		cmd.Env.AggregateType != aggregate.AccountAggregateType || cmd.Env.CorrelationID != "signup-flow-1" ||
		cmd.Env.CausationID != "" {
		t.Errorf("command envelope = %+v", *cmd.Env)
	}

	ev := edatest.Receive(t, events.opened)
	if ev.Msg.GetAccountId() != "acc-1" || ev.Msg.GetOwner() != "Ada" {
		t.Errorf("event handled = %v", ev.Msg)
	}
	if ev.Env == nil {
		t.Fatal("event handler context carries no envelope")
	}
	env := ev.Env
	if env.Type != aggregate.AccountOpenedEventType {
		t.Errorf("Type = %q, want %q", env.Type, aggregate.AccountOpenedEventType)
	}
	if env.Subject != "acc-1" {
		t.Errorf("Subject = %q, want acc-1", env.Subject)
	}
	if env.PartitionKey != "acc-1" {
		t.Errorf("PartitionKey = %q, want the subject acc-1", env.PartitionKey)
	}
	if env.AggregateType != aggregate.AccountAggregateType {
		t.Errorf("AggregateType = %q, want %q", env.AggregateType, aggregate.AccountAggregateType)
	}
	if env.CausationID != cmd.Env.ID {
		t.Errorf("CausationID = %q, want the command's id %q", env.CausationID, cmd.Env.ID)
	}
	if env.CorrelationID != cmd.Env.CorrelationID {
		t.Errorf("CorrelationID = %q, want the command's %q", env.CorrelationID, cmd.Env.CorrelationID)
	}
	if env.ID == "" || env.ID == cmd.Env.ID {
		t.Errorf("event ID = %q, want a new id (command %q)", env.ID, cmd.Env.ID)
	}
	if env.SchemaVersion != 1 || env.Source != "edatest" || env.ContentType != runtime.ContentTypeProtobuf {
		t.Errorf("envelope = %+v", *env)
	}
}

func TestUnimplementedCommandIsDeadLettered(t *testing.T) {
	cmds := newAccounts()
	h := edatest.Start(t, func(r *runtime.Router) error {
		return aggregate.RegisterAccountCommandHandler(r, cmds)
	})
	cmds.events = aggregate.NewAccountEventPublisher(h.Publisher)
	dead := h.Subscribe(t, runtime.DefaultDeadLetterTopic)

	deposit := &aggregate.Deposit{AccountId: "acc-2", AmountCents: 1250}
	if err := aggregate.NewAccountCommandBus(h.Publisher).SendDeposit(context.Background(), deposit); err != nil {
		t.Fatal(err)
	}

	msg := edatest.Receive(t, dead)
	md := msg.Metadata
	if reason := md.Get(runtime.MetaDeadLetterReason); !strings.Contains(reason, "not implemented") {
		t.Errorf("dead-letter reason = %q, want it to say not implemented", reason)
	}
	if got := md.Get(runtime.MetaType); got != aggregate.DepositCommandType {
		t.Errorf("dead letter type = %q, want %q", got, aggregate.DepositCommandType)
	}
	if got := md.Get(runtime.MetaDeadLetterTopic); got != aggregate.AccountCommandsTopic {
		t.Errorf("dead letter topic = %q, want %q", got, aggregate.AccountCommandsTopic)
	}
	if got := md.Get(runtime.MetaDeadLetterHandler); got != "golden.aggregate.Account.commands" {
		t.Errorf("dead letter handler = %q", got)
	}
	// ErrUnimplemented is permanent: no retry.
	if got := md.Get(runtime.MetaDeadLetterAttempt); got != "1" {
		t.Errorf("dead letter attempts = %q, want 1", got)
	}
	var payload aggregate.Deposit
	if err := proto.Unmarshal(msg.Payload, &payload); err != nil || !proto.Equal(&payload, deposit) {
		t.Errorf("dead letter payload = %v (%v), want %v", &payload, err, deposit)
	}
	edatest.Eventually(t, "the dead letter to be counted", func() bool { return h.Router.Stats().DeadLettered == 1 })
	if s := h.Router.Stats(); s.Retried != 0 || s.Handled != 0 {
		t.Errorf("stats = %+v, want no retry and nothing handled", s)
	}
	if len(cmds.opens) != 0 {
		t.Error("HandleOpenAccount was called for a Deposit")
	}
}

func TestUnimplementedEventIsAcknowledged(t *testing.T) {
	events := newOpenedOnly()
	h := edatest.Start(t, func(r *runtime.Router) error {
		return aggregate.RegisterAccountEventHandler(r, events)
	})
	dead := h.Subscribe(t, runtime.DefaultDeadLetterTopic)
	pub := aggregate.NewAccountEventPublisher(h.Publisher)
	ctx := context.Background()

	// One subscription handles in order: once AccountOpened arrives, the
	// MoneyDeposited before it was handled by the embedded no-op.
	if err := pub.PublishMoneyDeposited(ctx, &aggregate.MoneyDeposited{AccountId: "acc-3", AmountCents: 99}); err != nil {
		t.Fatal(err)
	}
	if err := pub.PublishAccountOpened(ctx, &aggregate.AccountOpened{AccountId: "acc-3", Owner: "Grace"}); err != nil {
		t.Fatal(err)
	}

	ev := edatest.Receive(t, events.opened)
	if ev.Msg.GetAccountId() != "acc-3" || ev.Msg.GetOwner() != "Grace" {
		t.Errorf("AccountOpened handled = %v", ev.Msg)
	}
	edatest.Eventually(t, "both events to be handled", func() bool { return h.Router.Stats().Handled == 2 })
	if s := h.Router.Stats(); s.DeadLettered != 0 || s.Retried != 0 || s.Skipped != 0 {
		t.Errorf("stats = %+v, want both events acknowledged as handled", s)
	}
	if len(dead) != 0 {
		t.Errorf("%d messages dead-lettered", len(dead))
	}
	if len(events.opened) != 0 {
		t.Errorf("AccountOpened handled %d more times", len(events.opened))
	}
}
