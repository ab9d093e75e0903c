package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	ordersv1 "github.com/protoc-gen-eda/eda/examples/orders/gen/shop/orders/v1"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/sqlite"
)

// Every benchmark runs the store ("eda") and a hand-written database/sql
// baseline doing the same work ("raw") in the same run, on files with the
// same schema and settings: the ratio is the store's overhead.

const (
	benchStreamType = "shop.orders.v1.Order"
	benchEventType  = "shop.orders.v1.OrderPlaced"
	benchBatch      = 100
	benchReadEvents = 10_000
)

// benchPayload is an encoded OrderPlaced with three items.
var benchPayload = func() []byte {
	b, err := proto.Marshal(&ordersv1.OrderPlaced{
		OrderId:    "order-0001",
		CustomerId: "customer-42",
		Items: []*ordersv1.LineItem{
			{Sku: "sku-apple", Quantity: 3, UnitPriceCents: 120},
			{Sku: "sku-pear", Quantity: 1, UnitPriceCents: 95},
			{Sku: "sku-plum", Quantity: 12, UnitPriceCents: 30},
		},
		TotalCents: 815,
	})
	if err != nil {
		panic(err)
	}
	return b
}()

// benchMetadata is a typical envelope.
var benchMetadata = func() []byte {
	b, err := runtime.EncodeMetadata(map[string]string{
		"source":         "orders-service",
		"time":           "2026-01-02T03:04:05.123456789Z",
		"correlation_id": "0192f0c4-7a3b-7c1d-9e2f-3a4b5c6d7e8f",
		"causation_id":   "0192f0c4-7a3b-7c1d-9e2f-3a4b5c6d7e90",
		"partition_key":  "order-0001",
	})
	if err != nil {
		panic(err)
	}
	return b
}()

var benchIDs atomic.Int64

// benchEvents returns n events with fresh ids.
func benchEvents(n int) []runtime.EventRecord {
	evs := make([]runtime.EventRecord, n)
	for i := range evs {
		evs[i] = runtime.EventRecord{
			ID:            "ev-" + strconv.FormatInt(benchIDs.Add(1), 10),
			Type:          benchEventType,
			SchemaVersion: 1,
			ContentType:   "application/x-protobuf",
			Data:          benchPayload,
			Metadata:      benchMetadata,
		}
	}
	return evs
}

// rawStore is the baseline: what a careful hand-written append and read
// would do with database/sql on the store's schema, with prepared
// statements, one INSERT per event, no idempotency check.
type rawStore struct {
	db                            *sql.DB
	version, insert, readStreamSt *sql.Stmt
}

// openRaw creates the schema with the store, then opens the file as the
// store does (WAL, synchronous=NORMAL, BEGIN IMMEDIATE) with one writer.
func openRaw(b *testing.B) *rawStore {
	b.Helper()
	path := filepath.Join(b.TempDir(), "raw.db")
	s, err := sqlite.Open(context.Background(), path, sqlite.Config{})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	b.Cleanup(func() { db.Close() })
	r := &rawStore{db: db}
	for _, p := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&r.version, `SELECT coalesce(max(sequence), 0) FROM eda_events WHERE stream_type = ? AND stream_id = ?`},
		{&r.insert, `INSERT INTO eda_events (id, stream_type, stream_id, sequence, type, schema_version, content_type, data, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&r.readStreamSt, `SELECT position, id, sequence, type, schema_version, content_type, data, metadata, recorded_at FROM eda_events WHERE stream_type = ? AND stream_id = ? AND sequence > ? ORDER BY sequence`},
	} {
		if *p.dst, err = db.Prepare(p.query); err != nil {
			b.Fatal(err)
		}
	}
	return r
}

func (r *rawStore) append(ctx context.Context, stream runtime.StreamID, expected uint64, evs []runtime.EventRecord) error {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var v int64
	if err := tx.StmtContext(ctx, r.version).QueryRowContext(ctx, stream.Type, stream.ID).Scan(&v); err != nil {
		return err
	}
	if uint64(v) != expected {
		return fmt.Errorf("conflict: at %d", v)
	}
	ins := tx.StmtContext(ctx, r.insert)
	now := time.Now().UnixNano()
	for i, e := range evs {
		if _, err := ins.ExecContext(ctx, e.ID, stream.Type, stream.ID, v+int64(i)+1, e.Type, int64(e.SchemaVersion), e.ContentType, e.Data, e.Metadata, now); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func (r *rawStore) readStream(ctx context.Context, stream runtime.StreamID, fn func(*runtime.EventRecord) error) error {
	rows, err := r.readStreamSt.QueryContext(ctx, stream.Type, stream.ID, 0)
	if err != nil {
		return err
	}
	defer rows.Close()
	var rec runtime.EventRecord
	rec.Stream = stream
	var pos, seq, schema, recorded int64
	var data, md sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&pos, &rec.ID, &seq, &rec.Type, &schema, &rec.ContentType, &data, &md, &recorded); err != nil {
			return err
		}
		rec.Position, rec.Sequence, rec.SchemaVersion = uint64(pos), uint64(seq), uint32(schema)
		rec.Data, rec.Metadata, rec.RecordedAt = data, md, time.Unix(0, recorded).UTC()
		if err := fn(&rec); err != nil {
			return err
		}
	}
	return rows.Err()
}

func benchStream() runtime.StreamID {
	return runtime.StreamID{Type: benchStreamType, ID: "order-" + uuid.NewString()}
}

// benchAppend appends batch events per transaction to one stream. Making
// the events (fresh ids) is timed in both: stopping the timer costs more
// with -benchmem than an append.
func benchAppend(b *testing.B, batch int) {
	ctx := context.Background()
	b.Run("eda", func(b *testing.B) {
		s := openStore(b, filepath.Join(b.TempDir(), "eda.db"), sqlite.Config{})
		stream := benchStream()
		version := uint64(0)
		for b.Loop() {
			evs := benchEvents(batch)
			if _, err := s.Append(ctx, runtime.AppendRequest{Stream: stream, ExpectedVersion: version, Events: evs}); err != nil {
				b.Fatal(err)
			}
			version += uint64(batch)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/event")
	})
	b.Run("raw", func(b *testing.B) {
		r := openRaw(b)
		stream := benchStream()
		version := uint64(0)
		for b.Loop() {
			evs := benchEvents(batch)
			if err := r.append(ctx, stream, version, evs); err != nil {
				b.Fatal(err)
			}
			version += uint64(batch)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/event")
	})
}

// BenchmarkAppend1 appends one event per transaction.
func BenchmarkAppend1(b *testing.B) { benchAppend(b, 1) }

// BenchmarkAppend100 appends batches of 100 events.
func BenchmarkAppend100(b *testing.B) { benchAppend(b, benchBatch) }

// BenchmarkReadStream10k reads a stream of 10,000 events and decodes every
// payload.
func BenchmarkReadStream10k(b *testing.B) {
	ctx := context.Background()
	decode := func(msg *ordersv1.OrderPlaced, items *int) func(*runtime.EventRecord) error {
		return func(r *runtime.EventRecord) error {
			msg.Reset()
			if err := proto.Unmarshal(r.Data, msg); err != nil {
				return err
			}
			*items += len(msg.Items)
			return nil
		}
	}
	check := func(b *testing.B, items int) {
		if want := b.N * benchReadEvents * 3; items != want {
			b.Fatalf("decoded %d items, want %d", items, want)
		}
	}
	b.Run("eda", func(b *testing.B) {
		s := openStore(b, filepath.Join(b.TempDir(), "eda.db"), sqlite.Config{})
		stream := benchStream()
		for v := 0; v < benchReadEvents; v += benchBatch {
			if _, err := s.Append(ctx, runtime.AppendRequest{Stream: stream, ExpectedVersion: uint64(v), Events: benchEvents(benchBatch)}); err != nil {
				b.Fatal(err)
			}
		}
		var msg ordersv1.OrderPlaced
		items := 0
		fn := decode(&msg, &items)
		for b.Loop() {
			if err := s.ReadStream(ctx, stream, 0, fn); err != nil {
				b.Fatal(err)
			}
		}
		check(b, items)
	})
	b.Run("raw", func(b *testing.B) {
		r := openRaw(b)
		stream := benchStream()
		for v := 0; v < benchReadEvents; v += benchBatch {
			if err := r.append(ctx, stream, uint64(v), benchEvents(benchBatch)); err != nil {
				b.Fatal(err)
			}
		}
		var msg ordersv1.OrderPlaced
		items := 0
		fn := decode(&msg, &items)
		for b.Loop() {
			if err := r.readStream(ctx, stream, fn); err != nil {
				b.Fatal(err)
			}
		}
		check(b, items)
	})
}

// BenchmarkAppendParallel appends one event per transaction from 8
// goroutines per CPU, each to its own stream: the write path under
// contention. "eda" is Open's layout (one writer connection, writers queue
// in Go); "eda-shared-pool" is New on a pool of 8 connections (writers still
// queue in Go, on any connection); "raw" is the baseline on that pool, whose
// writers meet in SQLite's busy handler instead.
func BenchmarkAppendParallel(b *testing.B) {
	const perCPU = 8
	ctx := context.Background()
	run := func(b *testing.B, s runtime.EventStore) {
		b.SetParallelism(perCPU)
		b.RunParallel(func(pb *testing.PB) {
			stream := benchStream()
			version := uint64(0)
			for pb.Next() {
				if _, err := s.Append(ctx, runtime.AppendRequest{Stream: stream, ExpectedVersion: version, Events: benchEvents(1)}); err != nil {
					b.Error(err)
					return
				}
				version++
			}
		})
	}
	b.Run("eda", func(b *testing.B) {
		run(b, openStore(b, filepath.Join(b.TempDir(), "eda.db"), sqlite.Config{}))
	})
	b.Run("eda-shared-pool", func(b *testing.B) {
		r := openRaw(b)
		r.db.SetMaxOpenConns(perCPU)
		s, err := sqlite.New(ctx, r.db, sqlite.Config{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		run(b, s)
	})
	b.Run("raw", func(b *testing.B) {
		r := openRaw(b)
		r.db.SetMaxOpenConns(perCPU)
		b.SetParallelism(perCPU)
		b.RunParallel(func(pb *testing.PB) {
			stream := benchStream()
			version := uint64(0)
			for pb.Next() {
				if err := r.append(ctx, stream, version, benchEvents(1)); err != nil {
					b.Error(err)
					return
				}
				version++
			}
		})
	})
}
