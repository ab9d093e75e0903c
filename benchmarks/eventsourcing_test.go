package benchmarks

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"

	ordersv1 "github.com/protoc-gen-eda/eda/examples/orders/gen/shop/orders/v1"
	"github.com/protoc-gen-eda/eda/golden/aggregate"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/memstore"
	"github.com/protoc-gen-eda/eda/runtime/postgres"
	"github.com/protoc-gen-eda/eda/runtime/sqlite"
)

// account is the Account aggregate's behaviour for the benchmarks: the
// smallest fold there is, so that the repository's own cost shows.
type account struct{}

func (account) ApplyAccountOpened(s *aggregate.Account, e *aggregate.AccountOpened) {
	s.AccountId = e.GetAccountId()
}

func (account) ApplyMoneyDeposited(s *aggregate.Account, e *aggregate.MoneyDeposited) {
	s.BalanceCents += e.GetAmountCents()
}

func (account) HandleOpenAccount(_ context.Context, _ *aggregate.Account, c *aggregate.OpenAccount) ([]aggregate.AccountEvent, error) {
	return []aggregate.AccountEvent{&aggregate.AccountOpened{AccountId: c.GetAccountId()}}, nil
}

func (account) HandleDeposit(_ context.Context, _ *aggregate.Account, c *aggregate.Deposit) ([]aggregate.AccountEvent, error) {
	return []aggregate.AccountEvent{&aggregate.MoneyDeposited{AccountId: c.GetAccountId(), AmountCents: c.GetAmountCents()}}, nil
}

// handFold is what a careful engineer writes to rebuild an Account from its
// stored events without generated code: a switch on the type name, a
// proto.Unmarshal into a new event, the same two Apply bodies.
func handFold(ctx context.Context, store runtime.EventStore, id string) (*aggregate.Account, uint64, error) {
	state := new(aggregate.Account)
	var version uint64
	err := store.ReadStream(ctx, runtime.StreamID{Type: aggregate.AccountAggregateType, ID: id}, 0, func(rec *runtime.EventRecord) error {
		switch rec.Type {
		case aggregate.AccountOpenedEventType:
			e := new(aggregate.AccountOpened)
			if err := proto.Unmarshal(rec.Data, e); err != nil {
				return err
			}
			state.AccountId = e.GetAccountId()
		case aggregate.MoneyDepositedEventType:
			e := new(aggregate.MoneyDeposited)
			if err := proto.Unmarshal(rec.Data, e); err != nil {
				return err
			}
			state.BalanceCents += e.GetAmountCents()
		default:
			return fmt.Errorf("unknown event type %s", rec.Type)
		}
		version = rec.Sequence
		return nil
	})
	return state, version, err
}

// fillAccount appends an AccountOpened and n-1 MoneyDeposited straight to
// the store, 1,000 per append, so that no snapshot is written: the load
// replays every event.
func fillAccount(b *testing.B, store runtime.EventStore, id string, n int) {
	b.Helper()
	const batch = 1000
	ctx := context.Background()
	var version uint64
	for version < uint64(n) {
		req := runtime.AppendRequest{Stream: runtime.StreamID{Type: aggregate.AccountAggregateType, ID: id}, ExpectedVersion: version}
		for i := 0; i < batch && version+uint64(len(req.Events)) < uint64(n); i++ {
			seq := version + uint64(len(req.Events)) + 1
			var m proto.Message = &aggregate.MoneyDeposited{AccountId: id, AmountCents: 1}
			typ := aggregate.MoneyDepositedEventType
			if seq == 1 {
				m, typ = &aggregate.AccountOpened{AccountId: id, Owner: "ada"}, aggregate.AccountOpenedEventType
			}
			data, err := proto.Marshal(m)
			if err != nil {
				b.Fatal(err)
			}
			req.Events = append(req.Events, runtime.EventRecord{ID: fmt.Sprintf("%s-%d", id, seq), Type: typ, SchemaVersion: 1, ContentType: runtime.ProtoBinary.ContentType(), Data: data})
		}
		res, err := store.Append(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		version = res.Version
	}
}

// benchLoad compares the generated repository's Load with handFold over the
// same stream of n events in store, and reports generated's speed as a
// ratio of handwritten's (events/s over events/s).
func benchLoad(b *testing.B, store runtime.EventStore, n int) {
	repo, err := aggregate.NewAccountRepository(store, account{}, runtime.RepositoryConfig{Source: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	fillAccount(b, store, "a1", n)
	ctx := context.Background()
	check := func(s *aggregate.Account, v uint64, err error) {
		if err != nil || v != uint64(n) || s.GetBalanceCents() != int64(n-1) {
			b.Fatalf("loaded balance %d at version %d (%v), want %d at %d", s.GetBalanceCents(), v, err, n-1, n)
		}
	}
	b.Run("generated", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			check(repo.Load(ctx, "a1"))
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("handwritten", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			check(handFold(ctx, store, "a1"))
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("interleaved", func(b *testing.B) {
		interleave(b,
			func() { check(repo.Load(ctx, "a1")) },
			func() { check(handFold(ctx, store, "a1")) })
	})
}

// interleave alternates the generated and the baseline variant in one loop,
// so that both see the same machine (the other core's load, the cache, the
// disk), and reports generated's throughput as a fraction of the baseline's:
// "gen/base" 1.0 is parity, higher is better. The two take turns going
// first, since the second of a pair finds the connection and caches warm.
func interleave(b *testing.B, generated, baseline func()) {
	var gen, base time.Duration
	timed := func(f func()) time.Duration {
		start := time.Now()
		f()
		return time.Since(start)
	}
	odd := false
	for b.Loop() {
		if odd {
			base += timed(baseline)
			gen += timed(generated)
		} else {
			gen += timed(generated)
			base += timed(baseline)
		}
		odd = !odd
	}
	b.ReportMetric(base.Seconds()/gen.Seconds(), "gen/base")
}

// BenchmarkRehydrateMemory: the generated repository against a hand-written
// fold, both reading 10,000 events from the in-memory store. Target: at
// least 0.9x handwritten's events/s.
func BenchmarkRehydrateMemory(b *testing.B) {
	benchLoad(b, memstore.New(), 10_000)
}

// BenchmarkRehydrateSQLite is the same on the embedded SQLite store.
func BenchmarkRehydrateSQLite(b *testing.B) {
	store, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sqlite.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	benchLoad(b, store, 10_000)
}

// openPostgres returns a store in a fresh schema, dropped at the end, and a
// pool on the same database for the raw baselines.
func openPostgres(b *testing.B) (*postgres.Store, *pgxpool.Pool, string) {
	url := edatest.ServiceURL(b, edatest.PostgresURLEnv)
	ctx := context.Background()
	schema := fmt.Sprintf("eda_bench_%d", time.Now().UnixNano())
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	store, err := postgres.New(ctx, pool, postgres.Config{Schema: schema})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		store.Close()
		if _, err := pool.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			b.Error(err)
		}
		pool.Close()
	})
	return store, pool, schema
}

// BenchmarkRehydratePostgres: the generated repository's Load of a
// 10,000-event stream against a raw pgx query of the same rows, scanning
// type and payload and decoding each with proto.Unmarshal into the same
// fold. Target: at least 0.85x raw's events/s.
func BenchmarkRehydratePostgres(b *testing.B) {
	const n = 10_000
	store, pool, schema := openPostgres(b)
	repo, err := aggregate.NewAccountRepository(store, account{}, runtime.RepositoryConfig{Source: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	fillAccount(b, store, "a1", n)
	ctx := context.Background()
	b.Run("generated", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s, v, err := repo.Load(ctx, "a1")
			if err != nil || v != n || s.GetBalanceCents() != n-1 {
				b.Fatalf("Load = %v, %d, %v", s, v, err)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	query := fmt.Sprintf(`SELECT type, data FROM %s.eda_events WHERE stream_type = $1 AND stream_id = $2 ORDER BY sequence`, schema)
	b.Run("raw-pgx", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if count, err := rawPGFold(ctx, pool, query); err != nil || count != n {
				b.Fatalf("raw read %d rows (%v), want %d", count, err, n)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("interleaved", func(b *testing.B) {
		interleave(b,
			func() {
				if _, v, err := repo.Load(ctx, "a1"); err != nil || v != n {
					b.Fatalf("Load: %d, %v", v, err)
				}
			},
			func() {
				if count, err := rawPGFold(ctx, pool, query); err != nil || count != n {
					b.Fatalf("raw: %d, %v", count, err)
				}
			})
	})
}

// rawPGFold is the raw-pgx baseline as a function, for interleave.
func rawPGFold(ctx context.Context, pool *pgxpool.Pool, query string) (int, error) {
	rows, err := pool.Query(ctx, query, aggregate.AccountAggregateType, "a1")
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	state := new(aggregate.Account)
	var typ string
	var data []byte
	count := 0
	for rows.Next() {
		if err := rows.Scan(&typ, &data); err != nil {
			return count, err
		}
		switch typ {
		case aggregate.AccountOpenedEventType:
			e := new(aggregate.AccountOpened)
			if err := proto.Unmarshal(data, e); err != nil {
				return count, err
			}
			state.AccountId = e.GetAccountId()
		case aggregate.MoneyDepositedEventType:
			e := new(aggregate.MoneyDeposited)
			if err := proto.Unmarshal(data, e); err != nil {
				return count, err
			}
			state.BalanceCents += e.GetAmountCents()
		}
		count++
	}
	return count, rows.Err()
}

// fillOrders gives order id n events through the generated repository, 100
// per Save, so that the annotation's snapshot policy (every 100 events)
// stores a snapshot after each: one OrderPlaced, then OrderShipped events.
func fillOrders(b *testing.B, repo *ordersv1.OrderRepository, id string, n int) {
	b.Helper()
	ctx := context.Background()
	state, version, err := repo.Load(ctx, id)
	if err != nil {
		b.Fatal(err)
	}
	items := []*ordersv1.LineItem{{Sku: "book", Quantity: 2, UnitPriceCents: 1250}}
	for version < uint64(n) {
		var events []ordersv1.OrderEvent
		for i := version; i < uint64(n) && len(events) < 100; i++ {
			if i == 0 {
				events = append(events, &ordersv1.OrderPlaced{OrderId: id, CustomerId: "alice", Items: items, TotalCents: 2500})
			} else {
				events = append(events, &ordersv1.OrderShipped{OrderId: id, Carrier: "post"})
			}
		}
		if version, err = repo.Save(ctx, id, state, version, events...); err != nil {
			b.Fatal(err)
		}
	}
}

// orderBehaviour folds Order events; commands are not used here.
type orderBehaviour struct{ ordersv1.OrderAggregate }

func (orderBehaviour) ApplyOrderPlaced(s *ordersv1.Order, e *ordersv1.OrderPlaced) {
	s.OrderId, s.Items, s.Status = e.GetOrderId(), e.GetItems(), ordersv1.OrderStatus_ORDER_STATUS_PLACED
}

func (orderBehaviour) ApplyOrderShipped(s *ordersv1.Order, _ *ordersv1.OrderShipped) {
	s.Status = ordersv1.OrderStatus_ORDER_STATUS_SHIPPED
}

func (orderBehaviour) ApplyOrderCancelled(s *ordersv1.Order, _ *ordersv1.OrderCancelled) {
	s.Status = ordersv1.OrderStatus_ORDER_STATUS_CANCELLED
}

// benchSnapshots loads a 100,000-event Order and a 100-event Order, each
// with a snapshot at its last version. Target: the long stream loads within
// 2x the short one's time: a snapshot makes load time independent of the
// stream's length.
func benchSnapshots(b *testing.B, store runtime.EventStore) {
	repo, err := ordersv1.NewOrderRepository(store, orderBehaviour{}, runtime.RepositoryConfig{Source: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{100_000, 100} {
		id := fmt.Sprintf("order-%d", n)
		fillOrders(b, repo, id, n)
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				s, v, err := repo.Load(ctx, id)
				if err != nil || v != uint64(n) || s.GetStatus() != ordersv1.OrderStatus_ORDER_STATUS_SHIPPED {
					b.Fatalf("Load = %v at %d (%v)", s.GetStatus(), v, err)
				}
			}
		})
	}
}

// BenchmarkSnapshotLoad* compare loading a long and a short stream with
// snapshots, on each store.
func BenchmarkSnapshotLoadMemory(b *testing.B) { benchSnapshots(b, memstore.New()) }

func BenchmarkSnapshotLoadSQLite(b *testing.B) {
	store, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sqlite.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	benchSnapshots(b, store)
}

func BenchmarkSnapshotLoadPostgres(b *testing.B) {
	store, _, _ := openPostgres(b)
	benchSnapshots(b, store)
}
