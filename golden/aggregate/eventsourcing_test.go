package aggregate_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"google.golang.org/protobuf/proto"

	"github.com/protoc-gen-eda/eda/golden/aggregate"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/memstore"
)

var (
	errAlreadyOpen = errors.New("account is open already")
	errNotOpen     = errors.New("account is not open")
	errAmount      = errors.New("amount must be positive")
)

// bank is the Account aggregate's behaviour.
type bank struct{}

var _ aggregate.AccountAggregate = bank{}

func (bank) ApplyAccountOpened(s *aggregate.Account, e *aggregate.AccountOpened) {
	s.AccountId = e.GetAccountId()
}

func (bank) ApplyMoneyDeposited(s *aggregate.Account, e *aggregate.MoneyDeposited) {
	s.BalanceCents += e.GetAmountCents()
}

func (bank) HandleOpenAccount(_ context.Context, s *aggregate.Account, c *aggregate.OpenAccount) ([]aggregate.AccountEvent, error) {
	if s.GetAccountId() != "" {
		return nil, errAlreadyOpen
	}
	return []aggregate.AccountEvent{&aggregate.AccountOpened{AccountId: c.GetAccountId(), Owner: c.GetOwner()}}, nil
}

func (bank) HandleDeposit(_ context.Context, s *aggregate.Account, c *aggregate.Deposit) ([]aggregate.AccountEvent, error) {
	switch {
	case s.GetAccountId() == "":
		return nil, errNotOpen
	case c.GetAmountCents() <= 0:
		return nil, errAmount
	}
	return []aggregate.AccountEvent{&aggregate.MoneyDeposited{AccountId: c.GetAccountId(), AmountCents: c.GetAmountCents()}}, nil
}

func opened(id string) *aggregate.AccountOpened {
	return &aggregate.AccountOpened{AccountId: id, Owner: "ada"}
}

func deposited(id string, cents int64) *aggregate.MoneyDeposited {
	return &aggregate.MoneyDeposited{AccountId: id, AmountCents: cents}
}

func TestScenarioPasses(t *testing.T) {
	aggregate.NewAccountScenario(t, bank{}).
		When(&aggregate.OpenAccount{AccountId: "a1", Owner: "ada"}).
		Then(opened("a1"))
	aggregate.NewAccountScenario(t, bank{}).
		Given(opened("a1"), deposited("a1", 5)).
		When(&aggregate.Deposit{AccountId: "a1", AmountCents: 7}).
		Then(deposited("a1", 7))
	aggregate.NewAccountScenario(t, bank{}).
		Given(opened("a1")).
		When(&aggregate.OpenAccount{AccountId: "a1"}).
		ThenError(errAlreadyOpen)
	s := aggregate.NewAccountScenario(t, bank{}).Given(opened("a1"), deposited("a1", 5), deposited("a1", 6))
	if got := s.State().GetBalanceCents(); got != 11 {
		t.Errorf("State().BalanceCents = %d, want 11", got)
	}
}

// recorder is a runtime.TB that keeps what a scenario reports.
type recorder struct{ errs []string }

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// mutating modifies the state it is given, which the scenario must report.
type mutating struct{ bank }

func (mutating) HandleDeposit(_ context.Context, s *aggregate.Account, c *aggregate.Deposit) ([]aggregate.AccountEvent, error) {
	s.BalanceCents = -1
	return []aggregate.AccountEvent{deposited(c.GetAccountId(), c.GetAmountCents())}, nil
}

// misaddressed decides an event for another account.
type misaddressed struct{ bank }

func (misaddressed) HandleDeposit(_ context.Context, _ *aggregate.Account, c *aggregate.Deposit) ([]aggregate.AccountEvent, error) {
	return []aggregate.AccountEvent{deposited("someone-else", c.GetAmountCents())}, nil
}

func TestScenarioReportsFailures(t *testing.T) {
	deposit := &aggregate.Deposit{AccountId: "a1", AmountCents: 7}
	tests := []struct {
		name string
		run  func(tb runtime.TB)
		want string
	}{
		{"wrong events", func(tb runtime.TB) {
			aggregate.NewAccountScenario(tb, bank{}).Given(opened("a1")).When(deposit).Then(deposited("a1", 8))
		}, "decided events differ"},
		{"error instead of events", func(tb runtime.TB) {
			aggregate.NewAccountScenario(tb, bank{}).When(deposit).Then(deposited("a1", 7))
		}, "got error: account is not open"},
		{"events instead of error", func(tb runtime.TB) {
			aggregate.NewAccountScenario(tb, bank{}).Given(opened("a1")).When(deposit).ThenError(errNotOpen)
		}, "want an error, got 1 event(s)"},
		{"other error", func(tb runtime.TB) {
			aggregate.NewAccountScenario(tb, bank{}).Given(opened("a1")).When(&aggregate.Deposit{AccountId: "a1"}).ThenError(errNotOpen)
		}, `got error "amount must be positive", want one matching "account is not open"`},
		{"state modified", func(tb runtime.TB) {
			aggregate.NewAccountScenario(tb, mutating{}).Given(opened("a1")).When(deposit).Then(deposited("a1", 7))
		}, "modified the state"},
		{"event for another aggregate", func(tb runtime.TB) {
			aggregate.NewAccountScenario(tb, misaddressed{}).Given(opened("a1")).When(deposit).Then(deposited("someone-else", 7))
		}, `has aggregate id "someone-else", but the command is for "a1"`},
		{"nil command", func(tb runtime.TB) {
			aggregate.NewAccountScenario(tb, bank{}).When(nil).Then()
		}, "got error: nil command"},
		{"then before when", func(tb runtime.TB) {
			aggregate.NewAccountScenario(tb, bank{}).Then()
		}, "Then called before When"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r recorder
			tt.run(&r)
			if len(r.errs) == 0 || !strings.Contains(strings.Join(r.errs, "\n"), tt.want) {
				t.Errorf("reported %q, want a report containing %q", r.errs, tt.want)
			}
		})
	}
}

func newRepo(t *testing.T, store runtime.EventStore, cfg runtime.RepositoryConfig) *aggregate.AccountRepository {
	t.Helper()
	if cfg.Source == "" {
		cfg.Source = "golden/aggregate"
	}
	repo, err := aggregate.NewAccountRepository(store, bank{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

func TestRepositoryExecutesCommands(t *testing.T) {
	ctx := context.Background()
	store := memstore.New()
	repo := newRepo(t, store, runtime.RepositoryConfig{})

	if _, err := repo.Execute(ctx, &aggregate.OpenAccount{AccountId: "a1", Owner: "ada"}); err != nil {
		t.Fatal(err)
	}
	for _, cents := range []int64{10, 20, 30, 40} {
		events, err := repo.Execute(ctx, &aggregate.Deposit{AccountId: "a1", AmountCents: cents})
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != 1 || !proto.Equal(events[0], deposited("a1", cents)) {
			t.Fatalf("Execute returned %v, want the MoneyDeposited event", events)
		}
	}
	state, version, err := repo.Load(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	if version != 5 || state.GetBalanceCents() != 100 || state.GetAccountId() != "a1" {
		t.Errorf("Load = %v at version %d, want balance 100 at version 5", state, version)
	}

	// A domain error is permanent and keeps its identity.
	_, err = repo.Execute(ctx, &aggregate.OpenAccount{AccountId: "a1"})
	if !errors.Is(err, errAlreadyOpen) || !runtime.IsPermanent(err) {
		t.Errorf("opening twice: err = %v, want errAlreadyOpen, permanent", err)
	}
	if _, err := repo.Execute(ctx, &aggregate.Deposit{AmountCents: 1}); err == nil || !strings.Contains(err.Error(), "no aggregate id") {
		t.Errorf("a command without an aggregate id: err = %v", err)
	}
	if _, err := repo.Execute(ctx, nil); !errors.Is(err, runtime.ErrNilCommand) {
		t.Errorf("nil command: err = %v, want ErrNilCommand", err)
	}

	// An aggregate without events loads empty at version 0.
	state, version, err = repo.Load(ctx, "nobody")
	if err != nil || version != 0 || state.GetAccountId() != "" {
		t.Errorf("Load of a new aggregate = %v, %d, %v", state, version, err)
	}
}

func TestRepositoryStoresEnvelopeAndOutbox(t *testing.T) {
	ctx := runtime.WithCorrelationID(context.Background(), "req-7")
	store := memstore.New()
	repo := newRepo(t, store, runtime.RepositoryConfig{Source: "bank"})
	if _, err := repo.Execute(ctx, &aggregate.OpenAccount{AccountId: "a1", Owner: "ada"}); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Execute(ctx, &aggregate.Deposit{AccountId: "a1", AmountCents: 5}); err != nil {
		t.Fatal(err)
	}

	var stored []runtime.EventRecord
	if err := store.ReadStream(ctx, runtime.StreamID{Type: aggregate.AccountAggregateType, ID: "a1"}, 0, func(r *runtime.EventRecord) error {
		stored = append(stored, *r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(stored) != 2 || stored[1].Type != aggregate.MoneyDepositedEventType || stored[1].Sequence != 2 {
		t.Fatalf("stored %+v, want AccountOpened then MoneyDeposited", stored)
	}

	var published []*message.Message
	n, err := store.RelayOutbox(ctx, 10, func(batch []runtime.OutboxMessage) error {
		for _, m := range batch {
			md, err := runtime.DecodeMetadata(m.Metadata)
			if err != nil {
				return err
			}
			if m.Topic != aggregate.AccountEventsTopic {
				t.Errorf("outbox topic %q, want %q", m.Topic, aggregate.AccountEventsTopic)
			}
			msg := message.NewMessage(m.UUID, m.Payload)
			msg.Metadata = md
			published = append(published, msg)
		}
		return nil
	})
	if err != nil || n != 2 {
		t.Fatalf("RelayOutbox = %d, %v; want 2 messages", n, err)
	}
	env := runtime.EnvelopeOf(published[1])
	want := runtime.Envelope{ID: stored[1].ID, Type: aggregate.MoneyDepositedEventType, Source: "bank", Subject: "a1",
		AggregateType: aggregate.AccountAggregateType, Sequence: 2, CorrelationID: "req-7", PartitionKey: "a1"}
	if env.ID != want.ID || env.Type != want.Type || env.Source != want.Source || env.Subject != want.Subject ||
		env.AggregateType != want.AggregateType || env.Sequence != want.Sequence || env.CorrelationID != want.CorrelationID ||
		env.PartitionKey != want.PartitionKey {
		t.Errorf("envelope = %+v, want %+v", env, want)
	}
	var e aggregate.MoneyDeposited
	if err := proto.Unmarshal(published[1].Payload, &e); err != nil || e.GetAmountCents() != 5 {
		t.Errorf("payload = %v (%v), want the deposit", &e, err)
	}
}

func TestRepositoryConcurrency(t *testing.T) {
	ctx := context.Background()
	store := memstore.New()
	repo := newRepo(t, store, runtime.RepositoryConfig{ConflictRetries: 100})
	if _, err := repo.Execute(ctx, &aggregate.OpenAccount{AccountId: "a1"}); err != nil {
		t.Fatal(err)
	}

	// Two writers that loaded the same version: one wins, the other gets a
	// typed conflict and nothing of it is stored.
	s1, v1, _ := repo.Load(ctx, "a1")
	s2, v2, _ := repo.Load(ctx, "a1")
	if _, err := repo.Save(ctx, "a1", s1, v1, deposited("a1", 1)); err != nil {
		t.Fatal(err)
	}
	_, err := repo.Save(ctx, "a1", s2, v2, deposited("a1", 2))
	var conflict *runtime.ConcurrencyError
	if !errors.As(err, &conflict) || conflict.Expected != 1 || conflict.Actual != 2 {
		t.Fatalf("second Save: err = %v, want a ConcurrencyError expecting 1, at 2", err)
	}
	if _, err := repo.Save(ctx, "a1", s2, v2, deposited("other", 2)); err == nil || !strings.Contains(err.Error(), `aggregate id "other"`) {
		t.Errorf("saving another aggregate's event: err = %v", err)
	}

	// Deposit allows retry_on_conflict: concurrent deposits all land.
	const writers = 16
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Go(func() {
			_, err := repo.Execute(ctx, &aggregate.Deposit{AccountId: "a1", AmountCents: 10})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent deposit: %v", err)
		}
	}
	state, version, err := repo.Load(ctx, "a1")
	if err != nil || version != 2+writers || state.GetBalanceCents() != 1+10*writers {
		t.Errorf("after concurrent deposits: balance %d at version %d (%v), want %d at %d", state.GetBalanceCents(), version, err, 1+10*writers, 2+writers)
	}
}

// racing is a behaviour whose OpenAccount handler lets another writer append
// first, so the command always meets a conflict.
type racing struct {
	bank
	repo **aggregate.AccountRepository
}

func (r racing) HandleOpenAccount(ctx context.Context, s *aggregate.Account, c *aggregate.OpenAccount) ([]aggregate.AccountEvent, error) {
	if _, err := (*r.repo).Save(ctx, c.GetAccountId(), nil, 0, opened(c.GetAccountId())); err != nil {
		return nil, err
	}
	return []aggregate.AccountEvent{opened(c.GetAccountId())}, nil
}

func TestConflictWithoutRetryIsPermanent(t *testing.T) {
	var repo *aggregate.AccountRepository
	repo, err := aggregate.NewAccountRepository(memstore.New(), racing{repo: &repo}, runtime.RepositoryConfig{Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = repo.Execute(context.Background(), &aggregate.OpenAccount{AccountId: "a1"})
	if !errors.Is(err, runtime.ErrConcurrency) || !runtime.IsPermanent(err) || !strings.Contains(err.Error(), "retry_on_conflict") {
		t.Errorf("err = %v, want a permanent conflict naming retry_on_conflict", err)
	}
}

func TestCommandsFromTheBus(t *testing.T) {
	store := memstore.New()
	repo := newRepo(t, store, runtime.RepositoryConfig{})
	events := newOpenedOnly()
	h := edatest.Start(t, func(r *runtime.Router) error {
		if err := aggregate.RegisterAccountCommandHandler(r, repo); err != nil {
			return err
		}
		return aggregate.RegisterAccountEventHandler(r, events)
	})
	relay, err := runtime.NewRelay(store, runtime.RelayConfig{Publisher: h.Bus})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay: %v", err)
		}
	})
	deadLetters := h.Subscribe(t, runtime.DefaultDeadLetterTopic)

	bus := aggregate.NewAccountCommandBus(h.Publisher)
	if err := bus.SendOpenAccount(ctx, &aggregate.OpenAccount{AccountId: "a1", Owner: "ada"}); err != nil {
		t.Fatal(err)
	}
	got := edatest.Receive(t, events.opened)
	if !proto.Equal(got.Msg, opened("a1")) || got.Env.Sequence != 1 || got.Env.CausationID == "" {
		t.Errorf("received %v with envelope %+v, want AccountOpened at sequence 1 caused by the command", got.Msg, got.Env)
	}

	// A domain error from the bus is dead-lettered at once, with its reason.
	if err := bus.SendDeposit(ctx, &aggregate.Deposit{AccountId: "nobody", AmountCents: 1}); err != nil {
		t.Fatal(err)
	}
	dl := edatest.Receive(t, deadLetters)
	if reason := dl.Metadata.Get(runtime.MetaDeadLetterReason); !strings.Contains(reason, errNotOpen.Error()) {
		t.Errorf("dead-letter reason %q, want %q", reason, errNotOpen)
	}
	if attempts := dl.Metadata.Get(runtime.MetaDeadLetterAttempt); attempts != "1" {
		t.Errorf("dead-lettered after %s attempts, want 1", attempts)
	}
}

func TestRepositoryConfig(t *testing.T) {
	if _, err := aggregate.NewAccountRepository(nil, bank{}, runtime.RepositoryConfig{Source: "s"}); err == nil {
		t.Error("a repository without a store was created")
	}
	_, err := aggregate.NewAccountRepository(memstore.New(), bank{}, runtime.RepositoryConfig{ConflictRetries: -1})
	if err == nil || !strings.Contains(err.Error(), "Source is required") || !strings.Contains(err.Error(), "ConflictRetries is -1") {
		t.Errorf("err = %v, want both problems reported", err)
	}
}
