package postgres_test

// The benchmarks compare the store with what a hand-written pgx program
// would do on the same server, in the same run, on a table with the same
// columns and indexes. Each has three sub-benchmarks: "eda" and "raw" alone
// (for benchstat and allocations), and "interleaved", which alternates the
// two in one loop, so that both see the same disk and cache weather, and
// reports eda/raw: the store's throughput as a fraction of raw pgx's (1.0
// is parity, higher is better). Run:
//
//	EDA_TEST_POSTGRES_URL=postgres://... go test ./runtime/postgres -run '^$' -bench . -count 6 -benchmem | tee new.txt
//	benchstat -filter '/impl:(eda OR raw)' -col /impl new.txt    # eda vs raw side by side
//	benchstat -filter '/impl:interleaved' new.txt                # the eda/raw ratio

import (
	"context"
	"fmt"
	neturl "net/url"
	goruntime "runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	ordersv1 "github.com/protoc-gen-eda/eda/examples/orders/gen/shop/orders/v1"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/postgres"
)

// Sizes of the benchmarks.
const (
	benchBatch      = 100    // events per append in BenchmarkAppendBatch
	benchStreamLen  = 10_000 // events read per op in BenchmarkReadStream
	benchLongStream = 100_000
	benchTail       = 10
)

// benchEnv is a store on a fresh schema plus a raw table shaped like its
// events table.
type benchEnv struct {
	store *postgres.Store
	raw   pgx.Identifier
	ctx   context.Context
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	f := newFixture(b)
	schema := freshSchema(b, f.url)
	s := f.openConfig(b, postgres.Config{Schema: schema})
	raw := pgx.Identifier{schema, "raw_events"}
	ctx := testContext(b)
	// LIKE ... INCLUDING ALL copies columns, identity, defaults, checks and
	// both unique indexes.
	if _, err := s.Pool().Exec(ctx, fmt.Sprintf(`CREATE TABLE %s (LIKE %s INCLUDING ALL)`,
		raw.Sanitize(), pgx.Identifier{schema, postgres.DefaultTablePrefix + "events"}.Sanitize())); err != nil {
		b.Fatal(err)
	}
	return &benchEnv{store: s, raw: raw, ctx: ctx}
}

// orderPlaced is a realistic payload: an order with three line items.
func orderPlaced(b *testing.B, n int) []byte {
	b.Helper()
	data, err := proto.Marshal(&ordersv1.OrderPlaced{
		OrderId:    "order-" + strconv.Itoa(n),
		CustomerId: "customer-4711",
		Items: []*ordersv1.LineItem{
			{Sku: "SKU-RED-SHIRT-M", Quantity: 2, UnitPriceCents: 1999},
			{Sku: "SKU-BLUE-JEANS-32", Quantity: 1, UnitPriceCents: 5999},
			{Sku: "SKU-SOCKS-3PK", Quantity: 3, UnitPriceCents: 899},
		},
		TotalCents: 12694,
	})
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// envelope is metadata as the runtime's publisher writes it.
var envelope = func() []byte {
	md, err := runtime.EncodeMetadata(map[string]string{
		"eda_source":         "orders",
		"eda_time":           "2025-01-02T03:04:05.123456789Z",
		"eda_subject":        "order-1",
		"eda_schema_version": "1",
		"eda_content_type":   "application/x-protobuf",
		"eda_correlation_id": "0194a0b4-8c1e-7d3a-9f00-5c2b1e9d4a11",
		"eda_causation_id":   "0194a0b4-8c1e-7d3a-9f00-5c2b1e9d4a12",
		"traceparent":        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	})
	if err != nil {
		panic(err)
	}
	return md
}()

func benchEvent(b *testing.B, n int) runtime.EventRecord {
	return runtime.EventRecord{
		ID:            fmt.Sprintf("%s-%d-%d", b.Name(), time.Now().UnixNano(), n),
		Type:          ordersv1.OrderPlacedEventType,
		SchemaVersion: 1,
		ContentType:   "application/x-protobuf",
		Data:          orderPlaced(b, n),
		Metadata:      envelope,
	}
}

// impl is one side of a comparison: op runs iteration i.
type impl func(b *testing.B, i int)

// compare runs the eda, raw and interleaved sub-benchmarks.
func compare(b *testing.B, eda, raw impl) {
	b.Run("impl=eda", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			eda(b, i)
		}
	})
	b.Run("impl=raw", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			raw(b, i)
		}
	})
	b.Run("impl=interleaved", func(b *testing.B) {
		var edaTime, rawTime time.Duration
		timed := func(op impl, i int) time.Duration {
			start := time.Now()
			op(b, i)
			return time.Since(start)
		}
		for i := range b.N {
			// Alternate who goes first, so that neither always runs on a
			// cache the other warmed.
			if i%2 == 0 {
				edaTime += timed(eda, i)
				rawTime += timed(raw, i)
			} else {
				rawTime += timed(raw, i)
				edaTime += timed(eda, i)
			}
		}
		b.ReportMetric(float64(edaTime.Nanoseconds())/float64(b.N), "eda-ns/op")
		b.ReportMetric(float64(rawTime.Nanoseconds())/float64(b.N), "raw-ns/op")
		b.ReportMetric(rawTime.Seconds()/edaTime.Seconds(), "eda/raw")
	})
}

// BenchmarkAppendOne appends one event per transaction, to a new stream
// each time, against a raw INSERT of the same row in autocommit mode (one
// round trip, the cheapest way pgx can write it).
func BenchmarkAppendOne(b *testing.B) {
	env := newBenchEnv(b)
	insert := fmt.Sprintf(`INSERT INTO %s (id, stream_type, stream_id, sequence, type, schema_version, content_type, data, metadata, recorded_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())`, env.raw.Sanitize())
	var seq int
	next := func() int { seq++; return seq }
	compare(b,
		func(b *testing.B, _ int) {
			n := next()
			ev := benchEvent(b, n)
			_, err := env.store.Append(env.ctx, runtime.AppendRequest{
				Stream: runtime.StreamID{Type: "shop.orders.v1.Order", ID: "order-" + strconv.Itoa(n)},
				Events: []runtime.EventRecord{ev},
			})
			if err != nil {
				b.Fatal(err)
			}
		},
		func(b *testing.B, _ int) {
			n := next()
			ev := benchEvent(b, n)
			_, err := env.store.Pool().Exec(env.ctx, insert, ev.ID, "shop.orders.v1.Order", "order-"+strconv.Itoa(n), int64(1),
				ev.Type, int64(ev.SchemaVersion), ev.ContentType, ev.Data, ev.Metadata)
			if err != nil {
				b.Fatal(err)
			}
		})
	// For information: the usual append of a command's event with its
	// outbox message (no raw counterpart).
	b.Run("impl=eda+outbox", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			n := next()
			ev := benchEvent(b, n)
			_, err := env.store.Append(env.ctx, runtime.AppendRequest{
				Stream: runtime.StreamID{Type: "shop.orders.v1.Order", ID: "order-" + strconv.Itoa(n)},
				Events: []runtime.EventRecord{ev},
				Outbox: []runtime.OutboxMessage{{Topic: "shop.orders.v1.events", UUID: ev.ID, Metadata: ev.Metadata, Payload: ev.Data}},
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAppendBatch appends benchBatch events in one transaction, to a
// new stream each time, against a raw CopyFrom of the same rows.
func BenchmarkAppendBatch(b *testing.B) {
	env := newBenchEnv(b)
	columns := []string{"id", "stream_type", "stream_id", "sequence", "type", "schema_version", "content_type", "data", "metadata", "recorded_at"}
	var stream int
	batch := func(b *testing.B) (runtime.StreamID, []runtime.EventRecord) {
		stream++
		evs := make([]runtime.EventRecord, benchBatch)
		for i := range evs {
			evs[i] = benchEvent(b, stream*benchBatch+i)
		}
		return runtime.StreamID{Type: "shop.orders.v1.Order", ID: "order-" + strconv.Itoa(stream)}, evs
	}
	compare(b,
		func(b *testing.B, _ int) {
			id, evs := batch(b)
			if _, err := env.store.Append(env.ctx, runtime.AppendRequest{Stream: id, Events: evs}); err != nil {
				b.Fatal(err)
			}
		},
		func(b *testing.B, _ int) {
			id, evs := batch(b)
			now := time.Now()
			rows := make([][]any, len(evs))
			for i, e := range evs {
				rows[i] = []any{e.ID, id.Type, id.ID, int64(i + 1), e.Type, int64(e.SchemaVersion), e.ContentType, e.Data, e.Metadata, now}
			}
			n, err := env.store.Pool().CopyFrom(env.ctx, env.raw, columns, pgx.CopyFromRows(rows))
			if err != nil || n != benchBatch {
				b.Fatalf("CopyFrom = %d, %v", n, err)
			}
		})
}

// fillStream appends n events to stream in batches.
func fillStream(b *testing.B, s *postgres.Store, stream runtime.StreamID, n int) {
	b.Helper()
	const perAppend = 2_000
	for v := 0; v < n; v += perAppend {
		evs := make([]runtime.EventRecord, min(perAppend, n-v))
		for i := range evs {
			evs[i] = benchEvent(b, v+i)
		}
		if _, err := s.Append(testContext(b), runtime.AppendRequest{Stream: stream, ExpectedVersion: uint64(v), Events: evs}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadStream reads a benchStreamLen-event stream and decodes every
// payload, as rehydrating an aggregate does, against a raw Query, Scan and
// proto.Unmarshal of the same rows with the same query.
func BenchmarkReadStream(b *testing.B) {
	env := newBenchEnv(b)
	stream := runtime.StreamID{Type: "shop.orders.v1.Order", ID: "order-long"}
	fillStream(b, env.store, stream, benchStreamLen)
	query := fmt.Sprintf(`SELECT sequence, position, id, type, schema_version, content_type, data, metadata, recorded_at
FROM %s WHERE stream_type = $1 AND stream_id = $2 AND sequence > $3 ORDER BY sequence`,
		pgx.Identifier{env.raw[0], postgres.DefaultTablePrefix + "events"}.Sanitize())
	var total int64 // keeps the decoded values alive
	compare(b,
		func(b *testing.B, _ int) {
			n := 0
			err := env.store.ReadStream(env.ctx, stream, 0, func(r *runtime.EventRecord) error {
				var m ordersv1.OrderPlaced
				if err := proto.Unmarshal(r.Data, &m); err != nil {
					return err
				}
				total += m.TotalCents
				n++
				return nil
			})
			if err != nil || n != benchStreamLen {
				b.Fatalf("read %d events: %v", n, err)
			}
		},
		func(b *testing.B, _ int) {
			rows, err := env.store.Pool().Query(env.ctx, query, stream.Type, stream.ID, int64(0))
			if err != nil {
				b.Fatal(err)
			}
			var (
				seq, pos, sv   int64
				id, typ, ct    string
				data, metadata []byte
				recordedAt     time.Time
				n              int
			)
			for rows.Next() {
				if err := rows.Scan(&seq, &pos, &id, &typ, &sv, &ct, &data, &metadata, &recordedAt); err != nil {
					b.Fatal(err)
				}
				var m ordersv1.OrderPlaced
				if err := proto.Unmarshal(data, &m); err != nil {
					b.Fatal(err)
				}
				total += m.TotalCents
				n++
			}
			if err := rows.Err(); err != nil || n != benchStreamLen {
				b.Fatalf("read %d events: %v", n, err)
			}
		})
	if total == 0 {
		b.Fatal("nothing decoded")
	}
}

// BenchmarkReadStreamTail reads the last benchTail events of a
// benchLongStream-event stream and all of a benchTail-event stream: the
// index makes the two cost the same.
func BenchmarkReadStreamTail(b *testing.B) {
	env := newBenchEnv(b)
	long := runtime.StreamID{Type: "shop.orders.v1.Order", ID: "order-long"}
	short := runtime.StreamID{Type: "shop.orders.v1.Order", ID: "order-short"}
	fillStream(b, env.store, long, benchLongStream)
	fillStream(b, env.store, short, benchTail)
	read := func(stream runtime.StreamID, after uint64) func(b *testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				n := 0
				if err := env.store.ReadStream(env.ctx, stream, after, func(*runtime.EventRecord) error { n++; return nil }); err != nil || n != benchTail {
					b.Fatalf("read %d events: %v", n, err)
				}
			}
		}
	}
	b.Run("stream=long", read(long, benchLongStream-benchTail))
	b.Run("stream=short", read(short, 0))
}

// benchWriters is the number of concurrent appenders in
// BenchmarkAppendConcurrent.
const benchWriters = 16

// BenchmarkAppendConcurrent measures what the append lock costs: many
// writers appending one event each to their own streams, which raw INSERTs
// do in parallel (sharing WAL flushes: group commit) and the store
// serializes. The ratio is the price of a global log that pollers can
// follow without missing events.
func BenchmarkAppendConcurrent(b *testing.B) {
	f := newFixture(b)
	schema := freshSchema(b, f.url)
	u, err := neturl.Parse(f.url)
	if err != nil {
		b.Fatal(err)
	}
	q := u.Query()
	q.Set("pool_max_conns", strconv.Itoa(benchWriters))
	u.RawQuery = q.Encode()
	s := f.openURL(b, u.String(), postgres.Config{Schema: schema})
	env := &benchEnv{store: s, raw: pgx.Identifier{schema, "raw_events"}, ctx: testContext(b)}
	if _, err := s.Pool().Exec(env.ctx, fmt.Sprintf(`CREATE TABLE %s (LIKE %s INCLUDING ALL)`,
		env.raw.Sanitize(), pgx.Identifier{schema, postgres.DefaultTablePrefix + "events"}.Sanitize())); err != nil {
		b.Fatal(err)
	}
	insert := fmt.Sprintf(`INSERT INTO %s (id, stream_type, stream_id, sequence, type, schema_version, content_type, data, metadata, recorded_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())`, env.raw.Sanitize())
	var streams atomic.Int64
	run := func(op func(b *testing.B, n int) error) func(b *testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(max(1, benchWriters/goruntime.GOMAXPROCS(0)))
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := op(b, int(streams.Add(1))); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
		}
	}
	b.Run("impl=eda", run(func(b *testing.B, n int) error {
		_, err := s.Append(env.ctx, runtime.AppendRequest{
			Stream: runtime.StreamID{Type: "shop.orders.v1.Order", ID: "order-" + strconv.Itoa(n)},
			Events: []runtime.EventRecord{benchEvent(b, n)},
		})
		return err
	}))
	b.Run("impl=raw", run(func(b *testing.B, n int) error {
		ev := benchEvent(b, n)
		_, err := s.Pool().Exec(env.ctx, insert, ev.ID, "shop.orders.v1.Order", "order-"+strconv.Itoa(n), int64(1),
			ev.Type, int64(ev.SchemaVersion), ev.ContentType, ev.Data, ev.Metadata)
		return err
	}))
}
