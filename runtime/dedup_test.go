package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/memstore"
)

// countingStore is an in-memory DedupStore that counts calls and fails
// on demand.
type countingStore struct {
	runtime.DedupStore
	claims, completes, releases, purges atomic.Int32
	failClaim, failComplete             error
}

func newCountingStore() *countingStore {
	return &countingStore{DedupStore: memstore.NewDedupStore()}
}

func (s *countingStore) Claim(ctx context.Context, k runtime.DedupKey, owner string, lease time.Duration) (runtime.DedupState, error) {
	s.claims.Add(1)
	if s.failClaim != nil {
		return 0, s.failClaim
	}
	return s.DedupStore.Claim(ctx, k, owner, lease)
}

func (s *countingStore) Complete(ctx context.Context, k runtime.DedupKey, window time.Duration) error {
	s.completes.Add(1)
	if s.failComplete != nil {
		return s.failComplete
	}
	return s.DedupStore.Complete(ctx, k, window)
}

func (s *countingStore) Release(ctx context.Context, k runtime.DedupKey, owner string) error {
	s.releases.Add(1)
	return s.DedupStore.Release(ctx, k, owner)
}

func (s *countingStore) Purge(ctx context.Context) (int64, error) {
	s.purges.Add(1)
	return s.DedupStore.Purge(ctx)
}

func newDeduplicator(t *testing.T, cfg runtime.DeduplicatorConfig) *runtime.Deduplicator {
	t.Helper()
	d, err := runtime.NewDeduplicator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDeduplicatorConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  runtime.DeduplicatorConfig
		want string
	}{
		{runtime.DeduplicatorConfig{}, "Store is required"},
		{runtime.DeduplicatorConfig{Store: memstore.NewDedupStore(), Lease: -time.Second}, "Lease -1s is negative"},
		{runtime.DeduplicatorConfig{Store: memstore.NewDedupStore(), Lease: time.Microsecond}, "below a millisecond"},
	} {
		_, err := runtime.NewDeduplicator(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewDeduplicator(%+v) = %v, want an error saying %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := runtime.NewDeduplicator(runtime.DeduplicatorConfig{Store: memstore.NewDedupStore()}); err != nil {
		t.Errorf("NewDeduplicator with a store = %v", err)
	}
}

// TestDeduplicatorNoWindow: without a window (or an id) the handler runs
// every time and the store is not asked.
func TestDeduplicatorNoWindow(t *testing.T) {
	s := newCountingStore()
	d := newDeduplicator(t, runtime.DeduplicatorConfig{Store: s})
	calls := 0
	fn := func(ctx context.Context) error {
		if _, ok := runtime.DedupClaimFrom(ctx); ok {
			t.Error("a handler without deduplication has a claim in its context")
		}
		calls++
		return nil
	}
	ctx := context.Background()
	for _, c := range []struct {
		id     string
		window time.Duration
	}{{"m", 0}, {"m", 0}, {"", time.Hour}, {"", time.Hour}} {
		if err := d.Handle(ctx, "h", c.id, c.window, fn); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 4 || s.claims.Load() != 0 {
		t.Errorf("handler called %d times with %d claims, want 4 and 0", calls, s.claims.Load())
	}
}

// TestDeduplicatorStoreDown: a store error before the handler fails Handle
// with ErrDedupStore, the handler not called.
func TestDeduplicatorStoreDown(t *testing.T) {
	s := newCountingStore()
	s.failClaim = errors.New("connection refused")
	d := newDeduplicator(t, runtime.DeduplicatorConfig{Store: s})
	called := false
	err := d.Handle(context.Background(), "h", "m", time.Hour, func(context.Context) error { called = true; return nil })
	if !errors.Is(err, runtime.ErrDedupStore) || !strings.Contains(err.Error(), "connection refused") || called {
		t.Errorf("Handle = %v, handler called %v; want ErrDedupStore with the cause, not called", err, called)
	}
}

// TestDeduplicatorCompleteFails: the message was handled, so Handle
// returns nil (acknowledge) after trying to mark it a few times, and
// counts it.
func TestDeduplicatorCompleteFails(t *testing.T) {
	s := newCountingStore()
	s.failComplete = errors.New("timeout")
	d := newDeduplicator(t, runtime.DeduplicatorConfig{Store: s})
	if err := d.Handle(context.Background(), "h", "m", time.Hour, func(context.Context) error { return nil }); err != nil {
		t.Fatalf("Handle = %v, want nil: the handler succeeded", err)
	}
	if n := s.completes.Load(); n < 2 {
		t.Errorf("Complete tried %d times, want retries", n)
	}
	if st := d.Stats(); st.Unmarked != 1 {
		t.Errorf("Stats = %+v, want 1 unmarked", st)
	}
}

// TestDeduplicatorReleaseCancelled: a handler failing because its context
// ended still releases its claim.
func TestDeduplicatorReleaseCancelled(t *testing.T) {
	s := newCountingStore()
	d := newDeduplicator(t, runtime.DeduplicatorConfig{Store: s, Lease: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	err := d.Handle(ctx, "h", "m", time.Hour, func(ctx context.Context) error {
		cancel()
		return ctx.Err()
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Handle = %v, want the handler's error", err)
	}
	// Released: claimable at once by another owner, not in an hour.
	if st, err := s.Claim(context.Background(), runtime.DedupKey{Consumer: "h", MessageID: "m"}, "other", time.Minute); err != nil || st != runtime.DedupClaimed {
		t.Errorf("Claim after the failure = %v, %v; want claimed", st, err)
	}
}

// TestDeduplicatorWaitCancelled: waiting for another owner's claim ends
// with the context.
func TestDeduplicatorWaitCancelled(t *testing.T) {
	s := newCountingStore()
	key := runtime.DedupKey{Consumer: "h", MessageID: "m"}
	if _, err := s.Claim(context.Background(), key, "other", time.Hour); err != nil {
		t.Fatal(err)
	}
	d := newDeduplicator(t, runtime.DeduplicatorConfig{Store: s, Lease: 40 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	called := false
	err := d.Handle(ctx, "h", "m", time.Hour, func(context.Context) error { called = true; return nil })
	if !errors.Is(err, context.DeadlineExceeded) || called {
		t.Errorf("Handle = %v, handler called %v; want the context's error, not called", err, called)
	}
	if st := d.Stats(); st.Waits < 2 {
		t.Errorf("Stats = %+v, want at least 2 waits (polls every lease/4)", st)
	}
}

// TestDeduplicatorRenewalStops: the lease is renewed while the handler
// runs and no more once Handle returns.
func TestDeduplicatorRenewalStops(t *testing.T) {
	s := newCountingStore()
	const lease = 30 * time.Millisecond
	d := newDeduplicator(t, runtime.DeduplicatorConfig{Store: s, Lease: lease})
	err := d.Handle(context.Background(), "h", "m", time.Hour, func(context.Context) error {
		time.Sleep(5 * lease)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	renewed := s.claims.Load() - 1
	if renewed < 3 {
		t.Errorf("claim renewed %d times during 5 leases, want about 15", renewed)
	}
	time.Sleep(3 * lease)
	if n := s.claims.Load() - 1; n != renewed {
		t.Errorf("claim renewed %d times after Handle returned", n-renewed)
	}
}

// TestDeduplicatorPurges: Handle purges every PurgeInterval, and never
// with a negative one.
func TestDeduplicatorPurges(t *testing.T) {
	ok := func(context.Context) error { return nil }
	ctx := context.Background()
	s := newCountingStore()
	d := newDeduplicator(t, runtime.DeduplicatorConfig{Store: s, PurgeInterval: 20 * time.Millisecond})
	_ = d.Handle(ctx, "h", "m-1", time.Hour, ok)
	if n := s.purges.Load(); n != 0 {
		t.Errorf("purged %d times before the interval, want 0", n)
	}
	time.Sleep(30 * time.Millisecond)
	_ = d.Handle(ctx, "h", "m-2", time.Hour, ok)
	_ = d.Handle(ctx, "h", "m-3", time.Hour, ok)
	if n := s.purges.Load(); n != 1 {
		t.Errorf("purged %d times after one interval, want 1", n)
	}

	never := newCountingStore()
	d = newDeduplicator(t, runtime.DeduplicatorConfig{Store: never, PurgeInterval: -1})
	time.Sleep(30 * time.Millisecond)
	_ = d.Handle(ctx, "h", "m-1", time.Hour, ok)
	if n := never.purges.Load(); n != 0 {
		t.Errorf("purged %d times with a negative interval, want 0", n)
	}
}

// TestDeduplicatorMarkedInTx: a handler that marked the message done in
// its transaction (DedupMarked) saves Handle its Complete.
func TestDeduplicatorMarkedInTx(t *testing.T) {
	s := newCountingStore()
	d := newDeduplicator(t, runtime.DeduplicatorConfig{Store: s})
	ctx := context.Background()
	err := d.Handle(ctx, "h", "m", time.Hour, func(ctx context.Context) error {
		c, _ := runtime.DedupClaimFrom(ctx)
		// What a SQL store's InTx does: mark in the transaction, commit,
		// then say so.
		if err := s.DedupStore.Complete(ctx, c.Key, c.Window); err != nil {
			return err
		}
		runtime.DedupMarked(ctx)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := s.completes.Load(); n != 0 {
		t.Errorf("Complete called %d times after the handler marked the message, want 0", n)
	}
	if err := d.Handle(ctx, "h", "m", time.Hour, func(context.Context) error { return errors.New("called again") }); err != nil {
		t.Errorf("Handle of the duplicate = %v", err)
	}
	// Without a claim, DedupMarked does nothing (and does not panic).
	runtime.DedupMarked(ctx)
}

// TestDeduplicatorClaimLost: a handler whose transaction found its claim
// lost makes Handle claim again: the other owner finished, so it is a
// duplicate, not an error to retry or dead-letter.
func TestDeduplicatorClaimLost(t *testing.T) {
	s := newCountingStore()
	d := newDeduplicator(t, runtime.DeduplicatorConfig{Store: s})
	calls := 0
	err := d.Handle(context.Background(), "h", "m", time.Hour, func(ctx context.Context) error {
		calls++
		c, _ := runtime.DedupClaimFrom(ctx)
		// Another instance took over and finished meanwhile.
		if err := s.DedupStore.Complete(ctx, c.Key, time.Hour); err != nil {
			return err
		}
		return fmt.Errorf("commit: %w", runtime.ErrDedupClaimLost)
	})
	if err != nil || calls != 1 {
		t.Errorf("Handle = %v with %d calls, want nil and 1", err, calls)
	}
	if st := d.Stats(); st.Duplicates != 1 {
		t.Errorf("Stats = %+v, want 1 duplicate", st)
	}
	if n := s.releases.Load(); n != 0 {
		t.Errorf("Release called %d times, want 0", n)
	}
}
