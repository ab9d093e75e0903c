package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/postgres"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  postgres.Config
		want []string // substrings of the error; none means valid
	}{
		{"zero", postgres.Config{}, nil},
		{"custom", postgres.Config{Schema: "Orders Schema", TablePrefix: "shop_"}, nil},
		{"long schema", postgres.Config{Schema: strings.Repeat("s", 64)}, []string{"Schema", "longer than 63"}},
		{"long prefix", postgres.Config{TablePrefix: strings.Repeat("p", 38)}, []string{"TablePrefix", "longer than 37"}},
		{"NUL", postgres.Config{Schema: "a\x00b", TablePrefix: "x\x00"}, []string{"Schema must not contain a NUL", "TablePrefix must not contain a NUL"}},
		{"all at once", postgres.Config{Schema: strings.Repeat("s", 64), TablePrefix: "\x00"}, []string{"Schema", "TablePrefix must not"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error mentioning %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

// TestRoundTripBytes checks that data and metadata come back byte for byte,
// nil as nil and empty as empty, on every query mode pgx offers: the simple
// protocol returns text-format columns, which take the decoder's slow path.
func TestRoundTripBytes(t *testing.T) {
	f := newFixture(t)
	modes := []pgx.QueryExecMode{
		pgx.QueryExecModeCacheStatement,
		pgx.QueryExecModeCacheDescribe,
		pgx.QueryExecModeDescribeExec,
		pgx.QueryExecModeExec,
		pgx.QueryExecModeSimpleProtocol,
	}
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			pool := f.pool(t, func(c *pgxpool.Config) { c.ConnConfig.DefaultQueryExecMode = mode })
			s, err := postgres.New(testContext(t), pool, postgres.Config{Schema: freshSchema(t, f.url)})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// Metadata with unsorted keys and spaces: jsonb would rewrite it.
			weird := []byte(`{"z": "1",  "a":"\u00e9"}`)
			evs := []runtime.EventRecord{event(t, 1), event(t, 2), event(t, 3), event(t, 4)}
			evs[0].Data, evs[0].Metadata = nil, nil
			evs[1].Data, evs[1].Metadata = []byte{}, []byte{}
			evs[2].Data, evs[2].Metadata = []byte{0, 1, 2, 0xff, '\\', 'x'}, weird
			evs[3].SchemaVersion = 1<<32 - 1 // a uint32 beyond int32
			stream := runtime.StreamID{Type: "test.v1.Thing", ID: "thing-é-1"}
			res := mustAppend(t, s, runtime.AppendRequest{Stream: stream, Events: evs})
			if res.Version != 4 || res.LastPosition-res.FirstPosition != 3 {
				t.Fatalf("AppendResult = %+v, want version 4 and 4 consecutive positions", res)
			}
			for _, got := range [][]runtime.EventRecord{readStream(t, s, stream, 0), readAll(t, s, 0, 0)} {
				if len(got) != len(evs) {
					t.Fatalf("read %d events, want %d", len(got), len(evs))
				}
				for i, g := range got {
					w := evs[i]
					if g.ID != w.ID || g.Type != w.Type || g.ContentType != w.ContentType || g.SchemaVersion != w.SchemaVersion ||
						g.Stream != stream || g.Sequence != uint64(i+1) || g.Position != res.FirstPosition+uint64(i) {
						t.Errorf("event %d = %+v, want %+v at sequence %d", i, g, w, i+1)
					}
					if !bytes.Equal(g.Data, w.Data) || (g.Data == nil) != (w.Data == nil) {
						t.Errorf("event %d: Data = %#v, want %#v", i, g.Data, w.Data)
					}
					if !bytes.Equal(g.Metadata, w.Metadata) || (g.Metadata == nil) != (w.Metadata == nil) {
						t.Errorf("event %d: Metadata = %#v, want %#v", i, g.Metadata, w.Metadata)
					}
					if d := time.Since(g.RecordedAt); d < -time.Minute || d > time.Minute {
						t.Errorf("event %d: RecordedAt %v is not about now", i, g.RecordedAt)
					}
				}
			}
			// The snapshot and outbox paths too.
			snap := runtime.Snapshot{Stream: stream, Version: 4, SchemaVersion: 2, ContentType: "application/json", Data: weird}
			if err := s.SaveSnapshot(testContext(t), snap); err != nil {
				t.Fatal(err)
			}
			got, err := s.LoadSnapshot(testContext(t), stream)
			if err != nil || got.Version != 4 || got.SchemaVersion != 2 || got.ContentType != snap.ContentType || !bytes.Equal(got.Data, weird) || got.Stream != stream {
				t.Errorf("LoadSnapshot = %+v, %v; want %+v", got, err, snap)
			}
		})
	}
}

// TestConcurrentMigration starts several stores on one new schema at once:
// the migration lock must keep CREATE SCHEMA and CREATE TABLE from racing.
func TestConcurrentMigration(t *testing.T) {
	f := newFixture(t)
	cfg := postgres.Config{Schema: freshSchema(t, f.url), TablePrefix: "race_"}
	const starters = 8
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, starters)
	)
	for i := range starters {
		wg.Go(func() {
			<-start
			s, err := postgres.Open(testContext(t), f.url, cfg)
			if err == nil {
				err = s.Close()
			}
			errs[i] = err
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("store %d: %v", i, err)
		}
	}
	// And again, now that the tables exist: the fast path.
	s := f.openConfig(t, cfg)
	mustAppend(t, s, runtime.AppendRequest{Stream: runtime.StreamID{Type: "t", ID: "1"}, Events: events(t, 1)})
}

// TestPrefixesAreIndependent checks that two prefixes in one schema are
// two stores.
func TestPrefixesAreIndependent(t *testing.T) {
	f := newFixture(t)
	schema := freshSchema(t, f.url)
	a := f.openConfig(t, postgres.Config{Schema: schema, TablePrefix: "a_"})
	b := f.openConfig(t, postgres.Config{Schema: schema, TablePrefix: "b_"})
	stream := runtime.StreamID{Type: "t", ID: "1"}
	mustAppend(t, a, runtime.AppendRequest{Stream: stream, Events: events(t, 2)})
	if got := readAll(t, b, 0, 0); len(got) != 0 {
		t.Errorf("store b sees %d events of store a", len(got))
	}
	mustAppend(t, b, runtime.AppendRequest{Stream: stream, ExpectedVersion: 0, Events: events(t, 1)})
}

// TestAppendErrors covers the error mapping: version conflicts (found by the
// version check) and duplicate ids (found by the unique index).
func TestAppendErrors(t *testing.T) {
	f := newFixture(t)
	s := f.open(t)
	ctx := testContext(t)
	stream := runtime.StreamID{Type: "t", ID: "a"}
	first := events(t, 3)
	res := mustAppend(t, s, runtime.AppendRequest{Stream: stream, Events: first})

	// A retry, at the original expected version (the check fails) and at
	// AnyVersion (the id index fails), returns the first result.
	for _, expected := range []uint64{0, runtime.AnyVersion} {
		again, err := s.Append(ctx, runtime.AppendRequest{Stream: stream, ExpectedVersion: expected, Events: first})
		if err != nil || again != res {
			t.Errorf("retry at %d = %+v, %v; want %+v, nil", expected, again, err, res)
		}
	}

	_, err := s.Append(ctx, runtime.AppendRequest{Stream: stream, ExpectedVersion: 1, Events: events(t, 1)})
	var ce *runtime.ConcurrencyError
	if !errors.As(err, &ce) || ce.Actual != 3 || ce.Expected != 1 || ce.Stream != stream {
		t.Errorf("append at stale version: %v, want ConcurrencyError expected 1 actual 3", err)
	}

	dups := []struct {
		name string
		req  runtime.AppendRequest
	}{
		{"same ids in another stream", runtime.AppendRequest{Stream: runtime.StreamID{Type: "t", ID: "b"}, Events: first}},
		{"part of the ids", runtime.AppendRequest{Stream: stream, ExpectedVersion: 3, Events: []runtime.EventRecord{event(t, 9), first[0]}}},
		{"part of the ids at a stale version", runtime.AppendRequest{Stream: stream, ExpectedVersion: 1, Events: []runtime.EventRecord{first[2], event(t, 9)}}},
		{"another order", runtime.AppendRequest{Stream: stream, ExpectedVersion: runtime.AnyVersion, Events: []runtime.EventRecord{first[1], first[0]}}},
		{"an id twice in one request", func() runtime.AppendRequest {
			e := event(t, 9)
			return runtime.AppendRequest{Stream: stream, ExpectedVersion: 3, Events: []runtime.EventRecord{e, e}}
		}()},
	}
	for _, d := range dups {
		if _, err := s.Append(ctx, d.req); !errors.Is(err, runtime.ErrDuplicateEvent) {
			t.Errorf("%s: err = %v, want ErrDuplicateEvent", d.name, err)
		}
	}
	if got := readAll(t, s, 0, 0); len(got) != 3 {
		t.Errorf("store holds %d events after the failed appends, want 3", len(got))
	}

	_, err = s.Append(ctx, runtime.AppendRequest{Stream: stream, ExpectedVersion: 1 << 63, Events: events(t, 1)})
	if err == nil || !strings.Contains(err.Error(), "past the largest sequence a store holds") {
		t.Errorf("append at version 2^63: %v, want a range error", err)
	}
	// A text field PostgreSQL cannot hold fails with an error, not a panic.
	_, err = s.Append(ctx, runtime.AppendRequest{Stream: runtime.StreamID{Type: "t", ID: "nul\x00"}, Events: events(t, 1)})
	if err == nil || !strings.Contains(err.Error(), "append to stream t/nul") {
		t.Errorf("append with a NUL in the stream id: %v, want an error naming the stream", err)
	}
}

// TestReadFnError checks that fn's error comes back as it is and that the
// connection, left mid-result, is usable afterwards.
func TestReadFnError(t *testing.T) {
	f := newFixture(t)
	pool := f.pool(t, func(c *pgxpool.Config) { c.MaxConns = 1 })
	s, err := postgres.New(testContext(t), pool, postgres.Config{Schema: freshSchema(t, f.url)})
	if err != nil {
		t.Fatal(err)
	}
	stream := runtime.StreamID{Type: "t", ID: "1"}
	mustAppend(t, s, runtime.AppendRequest{Stream: stream, Events: events(t, 50)})
	stop := errors.New("stop")
	calls := 0
	err = s.ReadStream(testContext(t), stream, 0, func(*runtime.EventRecord) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if err != stop || calls != 3 {
		t.Errorf("ReadStream = %v after %d calls, want the fn's error after 3", err, calls)
	}
	if got := readStream(t, s, stream, 47); len(got) != 3 || got[0].Sequence != 48 {
		t.Errorf("read after 47 = %d events, want 48..50", len(got))
	}
}

// TestClosed checks every method after Close, and that Close leaves a
// borrowed pool open.
func TestClosed(t *testing.T) {
	f := newFixture(t)
	pool := f.pool(t, nil)
	s, err := postgres.New(testContext(t), pool, postgres.Config{Schema: freshSchema(t, f.url)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	ctx := testContext(t)
	stream := runtime.StreamID{Type: "t", ID: "1"}
	noop := func(*runtime.EventRecord) error { return nil }
	calls := map[string]error{}
	_, calls["Append"] = s.Append(ctx, runtime.AppendRequest{Stream: stream, Events: events(t, 1)})
	calls["ReadStream"] = s.ReadStream(ctx, stream, 0, noop)
	calls["ReadAll"] = s.ReadAll(ctx, 0, 0, noop)
	calls["SaveSnapshot"] = s.SaveSnapshot(ctx, runtime.Snapshot{Stream: stream, Version: 1})
	_, calls["LoadSnapshot"] = s.LoadSnapshot(ctx, stream)
	_, calls["RelayOutbox"] = s.RelayOutbox(ctx, 10, func([]runtime.OutboxMessage) error { return nil })
	for name, err := range calls {
		if !errors.Is(err, runtime.ErrStoreClosed) {
			t.Errorf("%s after Close = %v, want ErrStoreClosed", name, err)
		}
	}
	if err := pool.Ping(ctx); err != nil {
		t.Errorf("the borrowed pool was closed: %v", err)
	}
}

// TestClosedPool checks that a store whose owned pool is closed under a
// call in flight reports ErrStoreClosed, and that a caller closing its own
// pool gives errors, not panics.
func TestClosedPool(t *testing.T) {
	f := newFixture(t)
	pool := f.pool(t, nil)
	s, err := postgres.New(testContext(t), pool, postgres.Config{Schema: freshSchema(t, f.url)})
	if err != nil {
		t.Fatal(err)
	}
	pool.Close()
	ctx := testContext(t)
	stream := runtime.StreamID{Type: "t", ID: "1"}
	if _, err := s.Append(ctx, runtime.AppendRequest{Stream: stream, Events: events(t, 1)}); err == nil {
		t.Error("Append on a closed pool succeeded")
	}
	if err := s.ReadStream(ctx, stream, 0, func(*runtime.EventRecord) error { return nil }); err == nil {
		t.Error("ReadStream on a closed pool succeeded")
	}
	if _, err := s.RelayOutbox(ctx, 1, func([]runtime.OutboxMessage) error { return nil }); err == nil {
		t.Error("RelayOutbox on a closed pool succeeded")
	}
}

// TestKilledConnections terminates every connection of the store's pool
// from outside: calls fail with errors (or succeed on a new connection),
// never panic, and the store recovers.
func TestKilledConnections(t *testing.T) {
	f := newFixture(t)
	app := "edatest-killed-" + newID(t)[len(t.Name()):]
	s := f.openURL(t, withAppName(t, f.url, app), postgres.Config{Schema: freshSchema(t, f.url)})
	ctx := testContext(t)
	stream := runtime.StreamID{Type: "t", ID: "1"}
	mustAppend(t, s, runtime.AppendRequest{Stream: stream, Events: events(t, 1)})
	killer := f.pool(t, nil)
	noop := func(*runtime.EventRecord) error { return nil }
	calls := []struct {
		name string
		fn   func() error
	}{
		{"Append", func() error {
			_, err := s.Append(ctx, runtime.AppendRequest{Stream: stream, ExpectedVersion: runtime.AnyVersion, Events: events(t, 1)})
			return err
		}},
		{"ReadStream", func() error { return s.ReadStream(ctx, stream, 0, noop) }},
		{"ReadAll", func() error { return s.ReadAll(ctx, 0, 0, noop) }},
		{"SaveSnapshot", func() error { return s.SaveSnapshot(ctx, runtime.Snapshot{Stream: stream, Version: 1}) }},
		{"LoadSnapshot", func() error { _, err := s.LoadSnapshot(ctx, stream); return err }},
		{"RelayOutbox", func() error {
			_, err := s.RelayOutbox(ctx, 10, func([]runtime.OutboxMessage) error { return nil })
			return err
		}},
	}
	failures := 0
	for _, c := range calls {
		if n := terminate(t, killer, app); n == 0 {
			t.Fatalf("%s: no connection of the store to terminate", c.name)
		}
		if err := c.fn(); err != nil {
			failures++
			if !strings.Contains(err.Error(), "postgres: ") {
				t.Errorf("%s on a killed connection: %v, want an error saying what failed", c.name, err)
			}
		}
		// Recovered: the pool replaces dead connections.
		eventually(t, 10*time.Second, c.name+" does not recover after its connection was killed", func() bool { return c.fn() == nil })
	}
	t.Logf("%d of %d calls on a killed connection failed (the others got a fresh connection)", failures, len(calls))
}

// terminate kills the backends whose application_name is app and returns
// how many there were.
func terminate(t testing.TB, killer *pgxpool.Pool, app string) int {
	t.Helper()
	var n int
	err := killer.QueryRow(testContext(t), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCancelledContext checks that a cancelled context gives an error,
// not a hang.
func TestCancelledContext(t *testing.T) {
	f := newFixture(t)
	s := f.open(t)
	stream := runtime.StreamID{Type: "t", ID: "1"}
	mustAppend(t, s, runtime.AppendRequest{Stream: stream, Events: events(t, 1)})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	noop := func(*runtime.EventRecord) error { return nil }
	calls := map[string]error{}
	_, calls["Append"] = s.Append(ctx, runtime.AppendRequest{Stream: stream, ExpectedVersion: 1, Events: events(t, 1)})
	calls["ReadStream"] = s.ReadStream(ctx, stream, 0, noop)
	calls["ReadAll"] = s.ReadAll(ctx, 0, 0, noop)
	calls["SaveSnapshot"] = s.SaveSnapshot(ctx, runtime.Snapshot{Stream: stream, Version: 1})
	_, calls["LoadSnapshot"] = s.LoadSnapshot(ctx, stream)
	_, calls["RelayOutbox"] = s.RelayOutbox(ctx, 10, func([]runtime.OutboxMessage) error { return nil })
	for name, err := range calls {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context = %v, want context.Canceled", name, err)
		}
	}
	if got := readStream(t, s, stream, 0); len(got) != 1 {
		t.Errorf("stream holds %d events after the cancelled append, want 1", len(got))
	}
}

// TestAppendShapes covers each append statement (one or many events, no,
// one or many outbox messages): what a successful append stores, and that
// a conflicting one stores nothing, outbox included.
func TestAppendShapes(t *testing.T) {
	f := newFixture(t)
	s := f.open(t)
	ctx := testContext(t)
	for _, nev := range []int{1, 3} {
		for _, nmsg := range []int{0, 1, 3} {
			t.Run(fmt.Sprintf("events=%d/outbox=%d", nev, nmsg), func(t *testing.T) {
				stream := runtime.StreamID{Type: "t", ID: fmt.Sprintf("shape-%d-%d", nev, nmsg)}
				mustAppend(t, s, runtime.AppendRequest{Stream: stream, Events: events(t, 2)})
				evs := events(t, nev)
				msgs := make([]runtime.OutboxMessage, nmsg)
				for i := range msgs {
					msgs[i] = runtime.OutboxMessage{Topic: "topic-" + strconv.Itoa(i), UUID: newID(t), Metadata: []byte(`{"i":"` + strconv.Itoa(i) + `"}`), Payload: []byte{byte(i)}}
				}
				req := runtime.AppendRequest{Stream: stream, ExpectedVersion: 1, Events: evs, Outbox: msgs}
				var ce *runtime.ConcurrencyError
				if _, err := s.Append(ctx, req); !errors.As(err, &ce) || ce.Actual != 2 {
					t.Fatalf("append at a stale version = %v, want a ConcurrencyError at version 2", err)
				}
				relayed := relayEverything(t, s)
				if len(relayed) != 0 {
					t.Fatalf("the conflicting append wrote %d outbox messages", len(relayed))
				}

				req.ExpectedVersion = 2
				res := mustAppend(t, s, req)
				if res.Version != uint64(2+nev) || res.LastPosition-res.FirstPosition != uint64(nev-1) {
					t.Errorf("AppendResult = %+v, want version %d over %d consecutive positions", res, 2+nev, nev)
				}
				got := readStream(t, s, stream, 2)
				if len(got) != nev {
					t.Fatalf("read %d events, want %d", len(got), nev)
				}
				for i, g := range got {
					if g.ID != evs[i].ID || g.Sequence != uint64(3+i) || g.Position != res.FirstPosition+uint64(i) {
						t.Errorf("event %d = %s seq %d pos %d, want %s seq %d pos %d", i, g.ID, g.Sequence, g.Position, evs[i].ID, 3+i, res.FirstPosition+uint64(i))
					}
				}
				relayed = relayEverything(t, s)
				if len(relayed) != nmsg {
					t.Fatalf("relayed %d messages, want %d", len(relayed), nmsg)
				}
				for i, m := range relayed {
					w := msgs[i]
					if m.Topic != w.Topic || m.UUID != w.UUID || !bytes.Equal(m.Metadata, w.Metadata) || !bytes.Equal(m.Payload, w.Payload) {
						t.Errorf("message %d = %+v, want %+v", i, m, w)
					}
				}
			})
		}
	}
}

// relayEverything relays and returns the whole outbox.
func relayEverything(t *testing.T, s runtime.EventStore) []runtime.OutboxMessage {
	t.Helper()
	var out []runtime.OutboxMessage
	for {
		n, err := s.RelayOutbox(testContext(t), 100, func(msgs []runtime.OutboxMessage) error {
			out = append(out, msgs...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return out
		}
	}
}
