package aggregate_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/protoc-gen-eda/eda/golden/aggregate"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/memstore"
)

var account1 = runtime.StreamID{Type: aggregate.AccountAggregateType, ID: "a1"}

// depositN opens account a1 and makes n deposits of 1 cent.
func depositN(t *testing.T, repo *aggregate.AccountRepository, n int) {
	t.Helper()
	ctx := context.Background()
	if _, err := repo.Execute(ctx, &aggregate.OpenAccount{AccountId: "a1"}); err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := repo.Execute(ctx, &aggregate.Deposit{AccountId: "a1", AmountCents: 1}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSnapshots(t *testing.T) {
	ctx := context.Background()
	store := memstore.New()
	repo := newRepo(t, store, runtime.RepositoryConfig{})
	depositN(t, repo, 6) // version 7; the annotation says every 3 events

	snap, err := store.LoadSnapshot(ctx, account1)
	if err != nil {
		t.Fatal(err)
	}
	var state aggregate.Account
	if err := proto.Unmarshal(snap.Data, &state); err != nil {
		t.Fatal(err)
	}
	if snap.Version != 6 || snap.SchemaVersion != 2 || state.GetBalanceCents() != 5 {
		t.Fatalf("snapshot at version %d, schema %d, balance %d; want version 6, schema 2 (the annotation's), balance 5", snap.Version, snap.SchemaVersion, state.GetBalanceCents())
	}

	// Load starts from the snapshot: a doctored one shows through.
	doctored := func(schemaVersion uint32, data []byte) {
		t.Helper()
		if err := store.SaveSnapshot(ctx, runtime.Snapshot{Stream: account1, Version: 7, SchemaVersion: schemaVersion, ContentType: snap.ContentType, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	marked, _ := proto.Marshal(&aggregate.Account{AccountId: "a1", BalanceCents: 1000})
	doctored(2, marked)
	if got, version, err := repo.Load(ctx, "a1"); err != nil || got.GetBalanceCents() != 1000 || version != 7 {
		t.Errorf("Load = balance %d at %d (%v), want the snapshot's 1000 at 7", got.GetBalanceCents(), version, err)
	}
	// A snapshot of another schema version is discarded: events rebuild.
	marked2, _ := proto.Marshal(&aggregate.Account{AccountId: "a1", BalanceCents: 2000})
	if err := store.SaveSnapshot(ctx, runtime.Snapshot{Stream: account1, Version: 8, SchemaVersion: 1, ContentType: snap.ContentType, Data: marked2}); err != nil {
		t.Fatal(err)
	}
	if got, version, err := repo.Load(ctx, "a1"); err != nil || got.GetBalanceCents() != 6 || version != 7 {
		t.Errorf("Load with an old-schema snapshot = balance %d at %d (%v), want 6 at 7 from events", got.GetBalanceCents(), version, err)
	}
	// So is one that does not decode.
	if err := store.SaveSnapshot(ctx, runtime.Snapshot{Stream: account1, Version: 9, SchemaVersion: 2, ContentType: snap.ContentType, Data: []byte{0xff, 0xff}}); err != nil {
		t.Fatal(err)
	}
	if got, _, err := repo.Load(ctx, "a1"); err != nil || got.GetBalanceCents() != 6 {
		t.Errorf("Load with a corrupt snapshot = balance %d (%v), want 6 from events", got.GetBalanceCents(), err)
	}
}

// appendRaw appends one stored event as another writer (or an older
// version of the service) would have.
func appendRaw(t *testing.T, store runtime.EventStore, version uint64, rec runtime.EventRecord) {
	t.Helper()
	rec.ID = strings.ReplaceAll(t.Name(), "/", "-") + "-" + rec.Type
	if rec.SchemaVersion == 0 {
		rec.SchemaVersion = 1
	}
	if rec.ContentType == "" {
		rec.ContentType = runtime.ProtoBinary.ContentType()
	}
	if _, err := store.Append(context.Background(), runtime.AppendRequest{Stream: account1, ExpectedVersion: version, Events: []runtime.EventRecord{rec}}); err != nil {
		t.Fatal(err)
	}
}

func TestLoadErrorsNameStreamAndVersion(t *testing.T) {
	tests := []struct {
		name string
		rec  runtime.EventRecord
		want string
	}{
		{"unknown type", runtime.EventRecord{Type: "golden.aggregate.CashWithdrawn"}, `load stream golden.aggregate.Account/a1: event at version 2 (golden.aggregate.CashWithdrawn): unknown event type "golden.aggregate.CashWithdrawn"`},
		{"corrupt payload", runtime.EventRecord{Type: aggregate.MoneyDepositedEventType, Data: []byte{0x0a}}, "load stream golden.aggregate.Account/a1: event at version 2 (golden.aggregate.MoneyDeposited): decode golden.aggregate.MoneyDeposited:"},
		{"unknown content type", runtime.EventRecord{Type: aggregate.MoneyDepositedEventType, ContentType: "text/csv"}, "event at version 2 (golden.aggregate.MoneyDeposited)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := memstore.New()
			repo := newRepo(t, store, runtime.RepositoryConfig{})
			depositN(t, repo, 0)
			appendRaw(t, store, 1, tt.rec)
			_, _, err := repo.Load(context.Background(), "a1")
			var le *runtime.LoadError
			if !errors.As(err, &le) || le.Version != 2 || le.Stream != account1 || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load: err = %v, want a LoadError at version 2 containing %q", err, tt.want)
			}
			if !runtime.IsPermanent(err) {
				t.Errorf("a LoadError must be permanent: retrying reads the same bytes")
			}
		})
	}
}

func TestUpcasters(t *testing.T) {
	ctx := context.Background()
	store := memstore.New()
	up := runtime.NewUpcasters()
	// A retired event type, whose payload was the amount in whole units as
	// field 2, becomes MoneyDeposited.
	if err := up.Register("golden.aggregate.CashDeposited", 1, func(_ context.Context, rec *runtime.EventRecord) error {
		var old aggregate.MoneyDeposited
		if err := proto.Unmarshal(rec.Data, &old); err != nil {
			return err
		}
		data, err := proto.Marshal(&aggregate.MoneyDeposited{AccountId: old.GetAccountId(), AmountCents: old.GetAmountCents() * 100})
		if err != nil {
			return err
		}
		rec.Type, rec.SchemaVersion, rec.Data = aggregate.MoneyDepositedEventType, 1, data
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := up.Register("golden.aggregate.CashDeposited", 1, func(context.Context, *runtime.EventRecord) error { return nil }); err == nil {
		t.Error("registering a second upcaster for one type and version succeeded")
	}
	// One that does not raise the version is a bug the runtime reports.
	if err := up.Register("golden.aggregate.Stuck", 1, func(context.Context, *runtime.EventRecord) error { return nil }); err != nil {
		t.Fatal(err)
	}

	repo := newRepo(t, store, runtime.RepositoryConfig{Upcasters: up})
	depositN(t, repo, 1)
	old, _ := proto.Marshal(&aggregate.MoneyDeposited{AccountId: "a1", AmountCents: 3})
	appendRaw(t, store, 2, runtime.EventRecord{Type: "golden.aggregate.CashDeposited", Data: old})
	state, version, err := repo.Load(ctx, "a1")
	if err != nil || version != 3 || state.GetBalanceCents() != 301 {
		t.Fatalf("Load = balance %d at %d (%v), want 301 at 3", state.GetBalanceCents(), version, err)
	}

	appendRaw(t, store, 3, runtime.EventRecord{Type: "golden.aggregate.Stuck"})
	if _, _, err := repo.Load(ctx, "a1"); err == nil || !strings.Contains(err.Error(), "must raise it") {
		t.Errorf("Load with an upcaster that does not advance: err = %v", err)
	}
}

func TestClosedStore(t *testing.T) {
	store := memstore.New()
	repo := newRepo(t, store, runtime.RepositoryConfig{})
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := repo.Load(context.Background(), "a1"); !errors.Is(err, runtime.ErrStoreClosed) {
		t.Errorf("Load on a closed store: err = %v, want ErrStoreClosed", err)
	}
	if _, err := repo.Execute(context.Background(), &aggregate.OpenAccount{AccountId: "a1"}); !errors.Is(err, runtime.ErrStoreClosed) {
		t.Errorf("Execute on a closed store: err = %v, want ErrStoreClosed", err)
	}
}
