package benchmarks

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"

	"github.com/protoc-gen-eda/eda/golden/aggregate"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/sqlite"
)

// The projection benchmarks fold projEvents stored events, projStreams
// accounts of projEvents/projStreams events each, into a read model of one
// row per account (events counted, balance summed): one upsert per event,
// the same SQL for the runtime's Projection and for the hand-written fold
// it is compared with. Both commit a transaction, with a checkpoint, every
// projBatch events.
const (
	projEvents  = 100_000
	projStreams = 1_000
	projBatch   = 100
	// projAppend is the events per append when filling the log: the log
	// interleaves the accounts in runs of this many events.
	projAppend = 10
	// projPage is the page the hand-written fold reads the log in.
	projPage = 1_000
)

var (
	benchOpenedType    = &runtime.MessageType{Name: aggregate.AccountOpenedEventType, Version: 1}
	benchDepositedType = &runtime.MessageType{Name: aggregate.MoneyDepositedEventType, Version: 1}
)

// fillProjectionLog appends projEvents events, projAppend per append,
// round robin over the accounts: an AccountOpened first, then
// MoneyDeposited events of 1 cent.
func fillProjectionLog(b *testing.B, store runtime.EventStore) {
	b.Helper()
	ctx := context.Background()
	perStream := projEvents / projStreams
	for round := 0; round < perStream/projAppend; round++ {
		for s := range projStreams {
			id := fmt.Sprintf("acct-%d", s)
			req := runtime.AppendRequest{Stream: runtime.StreamID{Type: aggregate.AccountAggregateType, ID: id}, ExpectedVersion: uint64(round * projAppend)}
			for i := range projAppend {
				seq := round*projAppend + i + 1
				var m proto.Message = &aggregate.MoneyDeposited{AccountId: id, AmountCents: 1}
				typ := aggregate.MoneyDepositedEventType
				if seq == 1 {
					m, typ = &aggregate.AccountOpened{AccountId: id, Owner: "ada"}, aggregate.AccountOpenedEventType
				}
				data, err := proto.Marshal(m)
				if err != nil {
					b.Fatal(err)
				}
				req.Events = append(req.Events, runtime.EventRecord{ID: fmt.Sprintf("%s-%d", id, seq), Type: typ, SchemaVersion: 1, ContentType: runtime.ContentTypeProtobuf, Data: data})
			}
			if _, err := store.Append(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// wantBalances is what every fold must produce: projStreams rows holding
// projEvents events and a balance of one cent per deposit.
const wantBalances = projEvents - projStreams

// benchProjection runs the generated and hand-written folds, each
// iteration into a fresh read model (a new projection name and table), and
// reports events/s and, interleaved, gen/base.
func benchProjection(b *testing.B, generated, baseline func(run int) error, check func(gen bool, run int) error) {
	run := 0
	once := func(gen bool) func() {
		return func() {
			run++
			f := baseline
			if gen {
				f = generated
			}
			if err := f(run); err != nil {
				b.Fatal(err)
			}
		}
	}
	sub := func(name string, gen bool) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			f := once(gen)
			for b.Loop() {
				f()
			}
			b.ReportMetric(float64(projEvents)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
			if err := check(gen, run); err != nil {
				b.Fatal(err)
			}
		})
	}
	sub("generated", true)
	sub("handwritten", false)
	b.Run("interleaved", func(b *testing.B) {
		interleave(b, once(true), once(false))
	})
}

// SQL of the read model, with the table's name for %[1]s.
const (
	sqliteBalancesTable  = `CREATE TABLE %[1]s (account_id TEXT PRIMARY KEY, events INTEGER NOT NULL, balance INTEGER NOT NULL)`
	sqliteBalancesUpsert = `INSERT INTO %[1]s (account_id, events, balance) VALUES (?, 1, ?)
		ON CONFLICT (account_id) DO UPDATE SET events = events + 1, balance = balance + excluded.balance`
	sqliteBalancesCheck = `SELECT count(*), coalesce(sum(events), 0), coalesce(sum(balance), 0) FROM %[1]s`
	// The hand-written fold's checkpoint.
	sqliteCheckpointTable  = `CREATE TABLE IF NOT EXISTS hand_checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL)`
	sqliteCheckpointUpsert = `INSERT INTO hand_checkpoints (name, position) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET position = excluded.position`
)

// BenchmarkProjectionSQLite: a Projection's CatchUp over 100,000 stored
// events against a hand-written fold of the same rows, on a database file.
// Target: at least 0.8x the hand-written fold's events/s.
//
// Most of the gap is not the runtime's: handlers write through the
// store's writer connection, whose prepared statements use up SQLite's
// lookaside memory, so each statement a handler runs unprepared is parsed
// with malloc instead (35 lookaside misses per upsert, none on a fresh
// connection), about 30% slower. With as many statements prepared on the
// hand-written fold's connection, the two run at parity.
func BenchmarkProjectionSQLite(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "bench.db")
	store, err := sqlite.Open(ctx, path, sqlite.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	fillProjectionLog(b, store)
	// The hand-written fold writes through a connection of its own, set up
	// as the store sets up its writer.
	db, err := sql.Open("sqlite", "file:"+path+"?_txlock=immediate&_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, sqliteCheckpointTable); err != nil {
		b.Fatal(err)
	}
	projections := store.Projections()
	table := func(gen bool, run int) string {
		if gen {
			return runtime.ProjectionTx[*sql.Tx]{Generation: 1}.Table(fmt.Sprintf("balances_%d", run))
		}
		return fmt.Sprintf("hand_balances_%d", run)
	}
	benchProjection(b,
		func(run int) error { return sqliteProjection(ctx, store, projections, run) },
		func(run int) error { return sqliteHandFold(ctx, store, db, table(false, run), run) },
		func(gen bool, run int) error {
			var rows, events, balance int
			if err := store.DB().QueryRowContext(ctx, fmt.Sprintf(sqliteBalancesCheck, table(gen, run))).Scan(&rows, &events, &balance); err != nil {
				return err
			}
			if rows != projStreams || events != projEvents || balance != wantBalances {
				return fmt.Errorf("%s holds %d rows, %d events, balance %d; want %d, %d, %d", table(gen, run), rows, events, balance, projStreams, projEvents, wantBalances)
			}
			return nil
		})
}

// sqliteProjection folds the log with a Projection, as generated code
// would declare it: a route per event type writing through p.Tx.
func sqliteProjection(ctx context.Context, store runtime.EventStore, ps runtime.ProjectionStore[*sql.Tx], run int) error {
	base := fmt.Sprintf("balances_%d", run)
	sqlOf := perGeneration(func(p runtime.ProjectionTx[*sql.Tx]) string { return fmt.Sprintf(sqliteBalancesUpsert, p.Table(base)) })
	upsert := func(ctx context.Context, p runtime.ProjectionTx[*sql.Tx], account string, cents int64) error {
		_, err := p.Tx.ExecContext(ctx, sqlOf(p), account, cents)
		return err
	}
	spec := runtime.ProjectionSpec[*sql.Tx]{
		Name: fmt.Sprintf("bench.balances.%d", run),
		Routes: []runtime.ProjectionRoute[*sql.Tx]{
			runtime.Project[*sql.Tx, aggregate.AccountOpened](benchOpenedType, func(ctx context.Context, p runtime.ProjectionTx[*sql.Tx], e *aggregate.AccountOpened, _ *runtime.EventRecord) error {
				return upsert(ctx, p, e.GetAccountId(), 0)
			}),
			runtime.Project[*sql.Tx, aggregate.MoneyDeposited](benchDepositedType, func(ctx context.Context, p runtime.ProjectionTx[*sql.Tx], e *aggregate.MoneyDeposited, _ *runtime.EventRecord) error {
				return upsert(ctx, p, e.GetAccountId(), e.GetAmountCents())
			}),
		},
		Setup: func(ctx context.Context, p runtime.ProjectionTx[*sql.Tx]) error {
			_, err := p.Tx.ExecContext(ctx, fmt.Sprintf(sqliteBalancesTable, p.Table(base)))
			return err
		},
	}
	p, err := runtime.NewProjection(store, ps, spec, runtime.ProjectionConfig{BatchSize: projBatch})
	if err != nil {
		return err
	}
	n, err := p.CatchUp(ctx)
	if err == nil && n != projEvents {
		err = fmt.Errorf("CatchUp applied %d events, want %d", n, projEvents)
	}
	return err
}

// perGeneration returns build's result for the generation of p, built once
// per generation: a handler's statement names its generation's table, which
// changes only with a rebuild, so there is no need to format it per event.
func perGeneration[Tx any](build func(runtime.ProjectionTx[Tx]) string) func(runtime.ProjectionTx[Tx]) string {
	gen, text := 0, ""
	return func(p runtime.ProjectionTx[Tx]) string {
		if p.Generation != gen {
			gen, text = p.Generation, build(p)
		}
		return text
	}
}

// sqliteHandFold is what a careful engineer writes without the runtime:
// read the log in pages, decode by type name, upsert, and commit with a
// checkpoint every projBatch events.
func sqliteHandFold(ctx context.Context, store runtime.EventStore, db *sql.DB, table string, run int) error {
	name := fmt.Sprintf("hand.balances.%d", run)
	if _, err := db.ExecContext(ctx, fmt.Sprintf(sqliteBalancesTable, table)); err != nil {
		return err
	}
	upsert := fmt.Sprintf(sqliteBalancesUpsert, table)
	var (
		tx      *sql.Tx
		inTx    int
		last    uint64
		applied int
	)
	commit := func() error {
		if _, err := tx.ExecContext(ctx, sqliteCheckpointUpsert, name, int64(last)); err != nil {
			return err
		}
		err := tx.Commit()
		tx, inTx = nil, 0
		return err
	}
	fold := func(rec *runtime.EventRecord) error {
		if tx == nil {
			var err error
			if tx, err = db.BeginTx(ctx, nil); err != nil {
				return err
			}
		}
		account, cents, ok, err := accountDelta(rec)
		if !ok || err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, upsert, account, cents); err != nil {
			return err
		}
		applied++
		last = rec.Position
		if inTx++; inTx == projBatch {
			return commit()
		}
		return nil
	}
	for after := uint64(0); ; after = last {
		n := 0
		if err := store.ReadAll(ctx, after, projPage, func(rec *runtime.EventRecord) error { n++; return fold(rec) }); err != nil {
			if tx != nil {
				_ = tx.Rollback()
			}
			return err
		}
		if n < projPage {
			break
		}
	}
	if tx != nil {
		if err := commit(); err != nil {
			return err
		}
	}
	if applied != projEvents {
		return fmt.Errorf("the hand-written fold applied %d events, want %d", applied, projEvents)
	}
	return nil
}

// PostgreSQL versions of the read model's SQL, with the qualified table's
// name for %[1]s.
const (
	pgBalancesTable  = `CREATE TABLE %[1]s (account_id text PRIMARY KEY, events bigint NOT NULL, balance bigint NOT NULL)`
	pgBalancesUpsert = `INSERT INTO %[1]s AS b (account_id, events, balance) VALUES ($1, 1, $2)
ON CONFLICT (account_id) DO UPDATE SET events = b.events + 1, balance = b.balance + excluded.balance`
	pgBalancesCheck    = `SELECT count(*), coalesce(sum(events), 0), coalesce(sum(balance), 0) FROM %[1]s`
	pgCheckpointTable  = `CREATE TABLE IF NOT EXISTS %[1]s (name text PRIMARY KEY, position bigint NOT NULL)`
	pgCheckpointUpsert = `INSERT INTO %[1]s (name, position) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET position = excluded.position`
)

// BenchmarkProjectionPostgres is BenchmarkProjectionSQLite on PostgreSQL;
// the hand-written fold writes through a pool of its own. Target: at least
// 0.8x the hand-written fold's events/s.
func BenchmarkProjectionPostgres(b *testing.B) {
	ctx := context.Background()
	store, pool, schema := openPostgres(b)
	fillProjectionLog(b, store)
	qualify := func(table string) string { return pgx.Identifier{schema, table}.Sanitize() }
	checkpoints := qualify("hand_checkpoints")
	if _, err := pool.Exec(ctx, fmt.Sprintf(pgCheckpointTable, checkpoints)); err != nil {
		b.Fatal(err)
	}
	projections := store.Projections()
	table := func(gen bool, run int) string {
		if gen {
			return qualify(runtime.ProjectionTx[pgx.Tx]{Generation: 1}.Table(fmt.Sprintf("balances_%d", run)))
		}
		return qualify(fmt.Sprintf("hand_balances_%d", run))
	}
	benchProjection(b,
		func(run int) error { return pgProjection(ctx, store, projections, schema, run) },
		func(run int) error { return pgHandFold(ctx, store, pool, table(false, run), checkpoints, run) },
		func(gen bool, run int) error {
			var rows, events, balance int
			if err := pool.QueryRow(ctx, fmt.Sprintf(pgBalancesCheck, table(gen, run))).Scan(&rows, &events, &balance); err != nil {
				return err
			}
			if rows != projStreams || events != projEvents || balance != wantBalances {
				return fmt.Errorf("%s holds %d rows, %d events, balance %d; want %d, %d, %d", table(gen, run), rows, events, balance, projStreams, projEvents, wantBalances)
			}
			return nil
		})
}

// pgProjection is sqliteProjection on PostgreSQL.
func pgProjection(ctx context.Context, store runtime.EventStore, ps runtime.ProjectionStore[pgx.Tx], schema string, run int) error {
	base := fmt.Sprintf("balances_%d", run)
	table := func(p runtime.ProjectionTx[pgx.Tx]) string { return pgx.Identifier{schema, p.Table(base)}.Sanitize() }
	sqlOf := perGeneration(func(p runtime.ProjectionTx[pgx.Tx]) string { return fmt.Sprintf(pgBalancesUpsert, table(p)) })
	upsert := func(ctx context.Context, p runtime.ProjectionTx[pgx.Tx], account string, cents int64) error {
		_, err := p.Tx.Exec(ctx, sqlOf(p), account, cents)
		return err
	}
	spec := runtime.ProjectionSpec[pgx.Tx]{
		Name: fmt.Sprintf("bench.balances.%d", run),
		Routes: []runtime.ProjectionRoute[pgx.Tx]{
			runtime.Project[pgx.Tx, aggregate.AccountOpened](benchOpenedType, func(ctx context.Context, p runtime.ProjectionTx[pgx.Tx], e *aggregate.AccountOpened, _ *runtime.EventRecord) error {
				return upsert(ctx, p, e.GetAccountId(), 0)
			}),
			runtime.Project[pgx.Tx, aggregate.MoneyDeposited](benchDepositedType, func(ctx context.Context, p runtime.ProjectionTx[pgx.Tx], e *aggregate.MoneyDeposited, _ *runtime.EventRecord) error {
				return upsert(ctx, p, e.GetAccountId(), e.GetAmountCents())
			}),
		},
		Setup: func(ctx context.Context, p runtime.ProjectionTx[pgx.Tx]) error {
			_, err := p.Tx.Exec(ctx, fmt.Sprintf(pgBalancesTable, table(p)))
			return err
		},
	}
	p, err := runtime.NewProjection(store, ps, spec, runtime.ProjectionConfig{BatchSize: projBatch})
	if err != nil {
		return err
	}
	n, err := p.CatchUp(ctx)
	if err == nil && n != projEvents {
		err = fmt.Errorf("CatchUp applied %d events, want %d", n, projEvents)
	}
	return err
}

// pgHandFold is sqliteHandFold on PostgreSQL, through pgx.
func pgHandFold(ctx context.Context, store runtime.EventStore, pool *pgxpool.Pool, table, checkpoints string, run int) error {
	name := fmt.Sprintf("hand.balances.%d", run)
	if _, err := pool.Exec(ctx, fmt.Sprintf(pgBalancesTable, table)); err != nil {
		return err
	}
	upsert := fmt.Sprintf(pgBalancesUpsert, table)
	saveCheckpoint := fmt.Sprintf(pgCheckpointUpsert, checkpoints)
	var (
		tx      pgx.Tx
		inTx    int
		last    uint64
		applied int
	)
	commit := func() error {
		if _, err := tx.Exec(ctx, saveCheckpoint, name, int64(last)); err != nil {
			return err
		}
		err := tx.Commit(ctx)
		tx, inTx = nil, 0
		return err
	}
	fold := func(rec *runtime.EventRecord) error {
		if tx == nil {
			var err error
			if tx, err = pool.Begin(ctx); err != nil {
				return err
			}
		}
		account, cents, ok, err := accountDelta(rec)
		if !ok || err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, upsert, account, cents); err != nil {
			return err
		}
		applied++
		last = rec.Position
		if inTx++; inTx == projBatch {
			return commit()
		}
		return nil
	}
	for after := uint64(0); ; after = last {
		n := 0
		if err := store.ReadAll(ctx, after, projPage, func(rec *runtime.EventRecord) error { n++; return fold(rec) }); err != nil {
			if tx != nil {
				_ = tx.Rollback(ctx)
			}
			return err
		}
		if n < projPage {
			break
		}
	}
	if tx != nil {
		if err := commit(); err != nil {
			return err
		}
	}
	if applied != projEvents {
		return fmt.Errorf("the hand-written fold applied %d events, want %d", applied, projEvents)
	}
	return nil
}

// accountDelta decodes what the hand-written folds apply of an event: the
// account and the amount it adds; ok is false for a type they do not fold.
func accountDelta(rec *runtime.EventRecord) (account string, cents int64, ok bool, err error) {
	switch rec.Type {
	case aggregate.AccountOpenedEventType:
		e := new(aggregate.AccountOpened)
		err = proto.Unmarshal(rec.Data, e)
		return e.GetAccountId(), 0, true, err
	case aggregate.MoneyDepositedEventType:
		e := new(aggregate.MoneyDeposited)
		err = proto.Unmarshal(rec.Data, e)
		return e.GetAccountId(), e.GetAmountCents(), true, err
	}
	return "", 0, false, nil
}
