package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	neturl "net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/postgres"
)

// testTimeout bounds every test's database work.
const testTimeout = 2 * time.Minute

func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// freshSchema returns a schema name no other test uses and drops the
// schema, with everything in it, when the test ends.
func freshSchema(t testing.TB, url string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "edatest_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return schema
}

// fixture opens stores on fresh schemas and remembers each store's config,
// so that share can open a second handle on the same tables.
type fixture struct {
	url  string
	mu   sync.Mutex
	cfgs map[runtime.EventStore]postgres.Config
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	return &fixture{url: edatest.ServiceURL(t, edatest.PostgresURLEnv), cfgs: map[runtime.EventStore]postgres.Config{}}
}

// open opens a store on a fresh schema, closed when the test ends.
func (f *fixture) open(t testing.TB) *postgres.Store {
	t.Helper()
	return f.openConfig(t, postgres.Config{Schema: freshSchema(t, f.url)})
}

func (f *fixture) openConfig(t testing.TB, cfg postgres.Config) *postgres.Store {
	t.Helper()
	return f.openURL(t, f.url, cfg)
}

func (f *fixture) openURL(t testing.TB, url string, cfg postgres.Config) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(testContext(t), url, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	f.mu.Lock()
	f.cfgs[s] = cfg
	f.mu.Unlock()
	return s
}

// share opens a second store, with its own pool, on s's tables: what a
// second process would see.
func (f *fixture) share(t testing.TB, s runtime.EventStore) *postgres.Store {
	t.Helper()
	f.mu.Lock()
	cfg, ok := f.cfgs[s]
	f.mu.Unlock()
	if !ok {
		t.Fatalf("share: store %p was not opened by this fixture", s)
	}
	return f.openConfig(t, cfg)
}

// pool opens a pool the test owns, closed when the test ends.
func (f *fixture) pool(t testing.TB, configure func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(f.url)
	if err != nil {
		t.Fatal(err)
	}
	if configure != nil {
		configure(cfg)
	}
	p, err := pgxpool.NewWithConfig(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// withAppName returns url with application_name set, so that a test can
// find (and terminate) exactly its own connections in pg_stat_activity.
func withAppName(t testing.TB, raw, app string) string {
	t.Helper()
	u, err := neturl.Parse(raw)
	if err != nil {
		t.Fatalf("parse %s: %v", edatest.PostgresURLEnv, err)
	}
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	return u.String()
}

var idCounter struct {
	sync.Mutex
	n int
}

// newID returns an id unique within the test binary, prefixed so that
// concurrent test runs do not collide either.
func newID(t testing.TB) string {
	idCounter.Lock()
	defer idCounter.Unlock()
	idCounter.n++
	return fmt.Sprintf("%s-%d-%d", t.Name(), time.Now().UnixNano(), idCounter.n)
}

func event(t testing.TB, n int) runtime.EventRecord {
	return runtime.EventRecord{
		ID:            newID(t),
		Type:          "test.v1.Happened",
		SchemaVersion: 1,
		ContentType:   "application/x-protobuf",
		Data:          []byte("data-" + strconv.Itoa(n)),
		Metadata:      []byte(`{"n":"` + strconv.Itoa(n) + `"}`),
	}
}

func events(t testing.TB, n int) []runtime.EventRecord {
	evs := make([]runtime.EventRecord, n)
	for i := range evs {
		evs[i] = event(t, i+1)
	}
	return evs
}

func mustAppend(t testing.TB, s runtime.EventStore, req runtime.AppendRequest) runtime.AppendResult {
	t.Helper()
	res, err := s.Append(testContext(t), req)
	if err != nil {
		t.Fatalf("Append to %s at %d: %v", req.Stream, req.ExpectedVersion, err)
	}
	return res
}

// record is a deep copy of an EventRecord, which ReadStream reuses.
func record(r *runtime.EventRecord) runtime.EventRecord {
	c := *r
	if r.Data != nil {
		c.Data = append([]byte{}, r.Data...)
	}
	if r.Metadata != nil {
		c.Metadata = append([]byte{}, r.Metadata...)
	}
	return c
}

func readStream(t testing.TB, s runtime.EventStore, stream runtime.StreamID, after uint64) []runtime.EventRecord {
	t.Helper()
	var out []runtime.EventRecord
	if err := s.ReadStream(testContext(t), stream, after, func(r *runtime.EventRecord) error {
		out = append(out, record(r))
		return nil
	}); err != nil {
		t.Fatalf("ReadStream %s: %v", stream, err)
	}
	return out
}

func readAll(t testing.TB, s runtime.EventStore, after uint64, limit int) []runtime.EventRecord {
	t.Helper()
	var out []runtime.EventRecord
	if err := s.ReadAll(testContext(t), after, limit, func(r *runtime.EventRecord) error {
		out = append(out, record(r))
		return nil
	}); err != nil {
		t.Fatalf("ReadAll after %d: %v", after, err)
	}
	return out
}

// eventually polls cond until it holds, failing the test after timeout.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
