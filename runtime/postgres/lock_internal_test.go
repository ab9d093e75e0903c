package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
)

func TestDefaultNames(t *testing.T) {
	var c Config
	c.setDefaults()
	n := newNames(c)
	if n.events != `"public"."eda_events"` || n.snapshots != `"public"."eda_snapshots"` || n.outbox != `"public"."eda_outbox"` {
		t.Errorf("default tables %s, %s, %s", n.events, n.snapshots, n.outbox)
	}
	keys := map[int64]string{n.appendLock: "append", n.relayLock: "relay", n.migrateLock: "migrate"}
	if len(keys) != 3 {
		t.Errorf("lock keys collide: %v", keys)
	}
	other := newNames(Config{Schema: "public", TablePrefix: "other_"})
	if other.appendLock == n.appendLock {
		t.Error("two prefixes share the append lock")
	}
}

// openInternal opens a store on a fresh schema, dropped when the test
// ends.
func openInternal(t *testing.T) *Store {
	t.Helper()
	url := edatest.ServiceURL(t, edatest.PostgresURLEnv)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "edatest_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Open(ctx, url, Config{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := s.pool.Exec(ctx, `DROP SCHEMA `+s.n.schema+` CASCADE`); err != nil {
			t.Errorf("drop schema: %v", err)
		}
		_ = s.Close()
	})
	return s
}

// holdLock takes an advisory lock in a transaction of its own, released
// when the test ends or release is called.
func holdLock(t *testing.T, s *Store, key int64) (release func()) {
	t.Helper()
	tx, err := s.pool.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(context.Background(), `SELECT pg_advisory_xact_lock($1)`, key); err != nil {
		t.Fatal(err)
	}
	release = func() { _ = tx.Rollback(context.Background()) }
	t.Cleanup(release)
	return release
}

// TestAppendWaitsForTheLock checks that appends serialize on the append
// lock (that is what orders positions by commit), that a waiting append
// honours its context, and that the relay does not wait for appends.
func TestAppendWaitsForTheLock(t *testing.T) {
	s := openInternal(t)
	stream := runtime.StreamID{Type: "t", ID: "1"}
	ev := runtime.EventRecord{ID: "e1", Type: "t", SchemaVersion: 1}
	req := runtime.AppendRequest{Stream: stream, Events: []runtime.EventRecord{ev},
		Outbox: []runtime.OutboxMessage{{Topic: "t", UUID: "e1"}}}

	release := holdLock(t, s, s.n.appendLock)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := s.Append(ctx, req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append behind a held append lock = %v, want context.DeadlineExceeded", err)
	}
	relayCtx, relayCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer relayCancel()
	if _, err := s.RelayOutbox(relayCtx, 10, func([]runtime.OutboxMessage) error { return nil }); err != nil {
		t.Fatalf("RelayOutbox while appends are blocked: %v", err)
	}
	release()
	if _, err := s.Append(relayCtx, req); err != nil {
		t.Fatalf("Append after the lock was released: %v", err)
	}

	// A relay lock held elsewhere: RelayOutbox returns 0, nil at once
	// without calling publish, though a message waits.
	holdLock(t, s, s.n.relayLock)
	n, err := s.RelayOutbox(relayCtx, 10, func([]runtime.OutboxMessage) error {
		t.Error("publish called while another relay holds the outbox")
		return nil
	})
	if n != 0 || err != nil {
		t.Fatalf("RelayOutbox while another relay holds the lock = %d, %v; want 0, nil", n, err)
	}
}

// TestReadStreamTailUsesIndex appends a 100,000-event stream and checks
// that reading its last events touches a handful of pages: the query walks
// the (stream_type, stream_id, sequence) index from after, not the stream.
func TestReadStreamTailUsesIndex(t *testing.T) {
	if testing.Short() {
		t.Skip("appends 100,000 events")
	}
	s := openInternal(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const (
		total   = 100_000
		perCall = 5_000
		tail    = 10
		// maxPages is generous: a btree descent plus the heap pages of ten
		// adjacent rows is under ten.
		maxPages = 40
	)
	long := runtime.StreamID{Type: "t", ID: "long"}
	for v := 0; v < total; v += perCall {
		evs := make([]runtime.EventRecord, perCall)
		for i := range evs {
			evs[i] = runtime.EventRecord{ID: fmt.Sprintf("long-%d", v+i), Type: "t", SchemaVersion: 1, Data: []byte("0123456789abcdef")}
		}
		if _, err := s.Append(ctx, runtime.AppendRequest{Stream: long, ExpectedVersion: uint64(v), Events: evs}); err != nil {
			t.Fatal(err)
		}
	}
	var plan []struct {
		Plan struct {
			NodeType         string `json:"Node Type"`
			IndexName        string `json:"Index Name"`
			SharedHitBlocks  int    `json:"Shared Hit Blocks"`
			SharedReadBlocks int    `json:"Shared Read Blocks"`
			ActualRows       int    `json:"Actual Rows"`
		} `json:"Plan"`
	}
	var raw []byte
	err := s.pool.QueryRow(ctx, `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) `+s.q.readStream,
		pgx.QueryExecModeSimpleProtocol, long.Type, long.ID, int64(total-tail)).Scan(&raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &plan); err != nil || len(plan) != 1 {
		t.Fatalf("parse plan %s: %v", raw, err)
	}
	p := plan[0].Plan
	if p.NodeType != "Index Scan" || p.IndexName != s.n.eventsStreamKey {
		t.Errorf("plan %s using %q, want an Index Scan using %s:\n%s", p.NodeType, p.IndexName, s.n.eventsStreamKey, raw)
	}
	if pages := p.SharedHitBlocks + p.SharedReadBlocks; pages > maxPages || p.ActualRows != tail {
		t.Errorf("reading the last %d events read %d rows and %d pages, want %d rows and at most %d pages", tail, p.ActualRows, pages, tail, maxPages)
	}
	var got []uint64
	if err := s.ReadStream(ctx, long, total-tail, func(r *runtime.EventRecord) error {
		got = append(got, r.Sequence)
		return nil
	}); err != nil || len(got) != tail || got[0] != total-tail+1 {
		t.Errorf("ReadStream after %d = %v, %v", total-tail, got, err)
	}
}
