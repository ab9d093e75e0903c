// Package deduptest is the behaviour suite every runtime.DedupStore
// backend passes, as runtime/storetest is for event stores.
//
// A backend's test calls Run with a Backend that opens fresh stores:
//
//	func TestDedupConformance(t *testing.T) {
//		deduptest.Run(t, deduptest.Backend{
//			Open: func(t *testing.T) runtime.DedupStore { return memstore.NewDedupStore() },
//		})
//	}
//
// The suite covers claiming a key once across two instances (two store
// values on the same database, when the backend can open them), renewal
// by the owner, lease expiry letting another owner take a claim, done
// marks blocking claims within their window and not after it, release
// (and a stale owner's release changing nothing), keys of different
// consumers kept apart, concurrent claims of one key with exactly one
// winner, purging expired entries, and runtime.Deduplicator over the store:
// one call of the handler per message across two deduplicators, release on
// error, waiting for a busy claim, lease renewal during a long handler.
//
// The subtests run in parallel, each on its own store, and wait on real
// time (leases and windows of a few hundred milliseconds): the suite takes
// about two seconds per backend.
package deduptest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protoc-gen-eda/eda/runtime"
)

// Timeout bounds every subtest's context.
const Timeout = time.Minute

// Durations the suite waits on. short is a lease or window meant to expire
// within the test; long one meant to outlast it; slack is what the suite
// waits past an expiry, for the store's clock and the race detector.
const (
	short = 300 * time.Millisecond
	long  = time.Minute
	slack = 200 * time.Millisecond
)

// concurrentClaims is how many goroutines race for one key.
const concurrentClaims = 16

// Backend opens stores for the suite.
type Backend struct {
	// Open returns a new, empty store, which the backend closes when the
	// test ends (Cleanup).
	Open func(t *testing.T) runtime.DedupStore
	// Share, when set, returns another handle on the data of s, as a
	// second process would open it (same database file, same PostgreSQL
	// schema, same Redis key prefix). nil for in-memory stores: the suite
	// then uses s for both instances.
	Share func(t *testing.T, s runtime.DedupStore) runtime.DedupStore
	// ExpiresItself is true when the store drops expired entries on its
	// own (Redis keys with a TTL), so Purge has nothing to delete and
	// returns 0.
	ExpiresItself bool
}

// Run runs the suite.
func Run(t *testing.T, b Backend) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, f *fixture)
	}{
		{"ClaimOnceAcrossInstances", testClaimOnce},
		{"LeaseExpiry", testLeaseExpiry},
		{"CompleteWithinWindow", testCompleteWithinWindow},
		{"CompleteAfterWindow", testCompleteAfterWindow},
		{"Release", testRelease},
		{"KeysApart", testKeysApart},
		{"ConcurrentClaims", testConcurrentClaims},
		{"Purge", testPurge},
		{"CancelledContext", testCancelledContext},
		{"DeduplicatorOnce", testDeduplicatorOnce},
		{"DeduplicatorReleaseOnError", testDeduplicatorReleaseOnError},
		{"DeduplicatorWaitsForBusy", testDeduplicatorWaitsForBusy},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newFixture(t, b))
		})
	}
}

// fixture is one subtest's stores: a and b are two instances on the same
// data.
type fixture struct {
	b    Backend
	ctx  context.Context
	a, s runtime.DedupStore
	// consumer is unique to the subtest, so that backends sharing a
	// database across tests do not see each other's keys.
	consumer string
}

func newFixture(t *testing.T, b Backend) *fixture {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	a := b.Open(t)
	s := a
	if b.Share != nil {
		s = b.Share(t, a)
	}
	return &fixture{b: b, ctx: ctx, a: a, s: s, consumer: "deduptest.Consumer_" + randomHex()}
}

func randomHex() string {
	var r [6]byte
	_, _ = rand.Read(r[:])
	return hex.EncodeToString(r[:])
}

// key returns a key of the subtest's consumer.
func (f *fixture) key(id string) runtime.DedupKey {
	return runtime.DedupKey{Consumer: f.consumer, MessageID: id}
}

// claim claims key on store for owner, failing the test if the state is
// not want.
func (f *fixture) claim(t *testing.T, store runtime.DedupStore, key runtime.DedupKey, owner string, lease time.Duration, want runtime.DedupState) {
	t.Helper()
	got, err := store.Claim(f.ctx, key, owner, lease)
	if err != nil {
		t.Fatalf("Claim(%s, %s) = %v", key, owner, err)
	}
	if got != want {
		t.Fatalf("Claim(%s, %s) = %v, want %v", key, owner, got, want)
	}
}

func (f *fixture) complete(t *testing.T, store runtime.DedupStore, key runtime.DedupKey, window time.Duration) {
	t.Helper()
	if err := store.Complete(f.ctx, key, window); err != nil {
		t.Fatalf("Complete(%s) = %v", key, err)
	}
}

func (f *fixture) release(t *testing.T, store runtime.DedupStore, key runtime.DedupKey, owner string) {
	t.Helper()
	if err := store.Release(f.ctx, key, owner); err != nil {
		t.Fatalf("Release(%s, %s) = %v", key, owner, err)
	}
}

// testClaimOnce: a claim holds across instances; its owner renews it; a
// done mark is seen by both.
func testClaimOnce(t *testing.T, f *fixture) {
	k := f.key("m-1")
	f.claim(t, f.a, k, "owner-a", long, runtime.DedupClaimed)
	f.claim(t, f.s, k, "owner-b", long, runtime.DedupBusy)
	f.claim(t, f.a, k, "owner-b", long, runtime.DedupBusy)
	// The owner renews its own claim, from either instance.
	f.claim(t, f.s, k, "owner-a", long, runtime.DedupClaimed)
	f.complete(t, f.s, k, long)
	f.claim(t, f.a, k, "owner-b", long, runtime.DedupDone)
	f.claim(t, f.s, k, "owner-c", long, runtime.DedupDone)
	// A done mark is not the former owner's claim any more.
	f.claim(t, f.a, k, "owner-a", long, runtime.DedupDone)
}

// testLeaseExpiry: an expired claim is taken over, and the former owner
// can neither release nor renew the new owner's claim.
func testLeaseExpiry(t *testing.T, f *fixture) {
	k := f.key("m-1")
	f.claim(t, f.a, k, "crashed", short, runtime.DedupClaimed)
	f.claim(t, f.s, k, "redelivery", long, runtime.DedupBusy)
	time.Sleep(short + slack)
	f.claim(t, f.s, k, "redelivery", long, runtime.DedupClaimed)
	f.release(t, f.a, k, "crashed")
	f.claim(t, f.a, k, "crashed", long, runtime.DedupBusy)
	f.claim(t, f.a, k, "third", long, runtime.DedupBusy)
}

// testCompleteWithinWindow: a done mark blocks every claim, including of
// a key never claimed (a mark written by a handler's transaction).
func testCompleteWithinWindow(t *testing.T, f *fixture) {
	k := f.key("m-1")
	f.claim(t, f.a, k, "owner-a", long, runtime.DedupClaimed)
	f.complete(t, f.a, k, long)
	for i, s := range []runtime.DedupStore{f.a, f.s} {
		f.claim(t, s, k, "owner-"+string(rune('x'+i)), long, runtime.DedupDone)
	}
	unclaimed := f.key("m-2")
	f.complete(t, f.s, unclaimed, long)
	f.claim(t, f.a, unclaimed, "owner-a", long, runtime.DedupDone)
	// Completing again (a late Complete of a claim that was taken over)
	// keeps it done.
	f.complete(t, f.a, k, long)
	f.claim(t, f.s, k, "owner-b", long, runtime.DedupDone)
}

// testCompleteAfterWindow: once the window has passed, the message is
// claimable again.
func testCompleteAfterWindow(t *testing.T, f *fixture) {
	k := f.key("m-1")
	f.claim(t, f.a, k, "owner-a", long, runtime.DedupClaimed)
	f.complete(t, f.a, k, short)
	f.claim(t, f.s, k, "owner-b", long, runtime.DedupDone)
	time.Sleep(short + slack)
	f.claim(t, f.s, k, "owner-b", long, runtime.DedupClaimed)
	f.claim(t, f.a, k, "owner-c", long, runtime.DedupBusy)
}

// testRelease: a released claim is claimable at once; a release by
// another owner, or of a done key, changes nothing.
func testRelease(t *testing.T, f *fixture) {
	k := f.key("m-1")
	f.claim(t, f.a, k, "owner-a", long, runtime.DedupClaimed)
	f.release(t, f.s, k, "owner-b")
	f.claim(t, f.s, k, "owner-b", long, runtime.DedupBusy)
	f.release(t, f.s, k, "owner-a")
	f.claim(t, f.s, k, "owner-b", long, runtime.DedupClaimed)
	f.complete(t, f.s, k, long)
	f.release(t, f.a, k, "owner-b")
	f.claim(t, f.a, k, "owner-c", long, runtime.DedupDone)
	// Releasing a key never seen is no error.
	f.release(t, f.a, f.key("never"), "owner-a")
}

// testKeysApart: one message id of two consumers is two keys, and
// separators in names do not make two keys one.
func testKeysApart(t *testing.T, f *fixture) {
	keys := []runtime.DedupKey{
		{Consumer: f.consumer + "a:b", MessageID: "c"},
		{Consumer: f.consumer + "a", MessageID: "b:c"},
		{Consumer: f.consumer + "a/b", MessageID: "c"},
		{Consumer: f.consumer + "a", MessageID: "b/c"},
		{Consumer: f.consumer + "ä", MessageID: "1"},
		{Consumer: f.consumer + "a", MessageID: "1"},
		{Consumer: f.consumer + "b", MessageID: "1"},
	}
	for _, k := range keys {
		f.claim(t, f.a, k, "owner-a", long, runtime.DedupClaimed)
	}
	f.complete(t, f.a, keys[0], long)
	f.claim(t, f.s, keys[0], "owner-b", long, runtime.DedupDone)
	for _, k := range keys[1:] {
		f.claim(t, f.s, k, "owner-b", long, runtime.DedupBusy)
		f.release(t, f.s, k, "owner-a")
		f.claim(t, f.s, k, "owner-b", long, runtime.DedupClaimed)
	}
}

// testConcurrentClaims: of goroutines on both instances claiming one key
// at once, exactly one wins; after Complete, every one sees it done.
func testConcurrentClaims(t *testing.T, f *fixture) {
	const rounds = 5
	for r := range rounds {
		k := f.key("m-" + string(rune('a'+r)))
		var wg sync.WaitGroup
		var claimed, busy atomic.Int32
		errs := make(chan error, concurrentClaims)
		start := make(chan struct{})
		for i := range concurrentClaims {
			s := f.a
			if i%2 == 1 {
				s = f.s
			}
			wg.Go(func() {
				<-start
				state, err := s.Claim(f.ctx, k, "owner-"+string(rune('A'+i)), long)
				switch {
				case err != nil:
					errs <- err
				case state == runtime.DedupClaimed:
					claimed.Add(1)
				case state == runtime.DedupBusy:
					busy.Add(1)
				default:
					errs <- errors.New("unexpected state " + state.String())
				}
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: concurrent Claim: %v", r, err)
		}
		if claimed.Load() != 1 || busy.Load() != concurrentClaims-1 {
			t.Fatalf("round %d: %d claims won and %d found the key busy; want 1 and %d", r, claimed.Load(), busy.Load(), concurrentClaims-1)
		}
	}
	k := f.key("m-done")
	f.complete(t, f.a, k, long)
	var wg sync.WaitGroup
	var done atomic.Int32
	for i := range concurrentClaims {
		wg.Go(func() {
			if state, err := f.s.Claim(f.ctx, k, "owner-"+string(rune('A'+i)), long); err == nil && state == runtime.DedupDone {
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if done.Load() != concurrentClaims {
		t.Fatalf("%d of %d concurrent claims of a done key found it done", done.Load(), concurrentClaims)
	}
}

// testPurge: Purge deletes expired claims and marks, and only those.
func testPurge(t *testing.T, f *fixture) {
	for _, id := range []string{"claim-1", "claim-2", "claim-3"} {
		f.claim(t, f.a, f.key(id), "owner-a", short, runtime.DedupClaimed)
	}
	for _, id := range []string{"done-1", "done-2"} {
		f.complete(t, f.a, f.key(id), short)
	}
	f.claim(t, f.a, f.key("live-claim"), "owner-a", long, runtime.DedupClaimed)
	f.complete(t, f.a, f.key("live-done"), long)
	time.Sleep(short + slack)
	n, err := f.s.Purge(f.ctx)
	if err != nil {
		t.Fatalf("Purge = %v", err)
	}
	want := int64(5)
	if f.b.ExpiresItself {
		want = 0
	}
	if n != want {
		t.Errorf("Purge deleted %d entries, want %d", n, want)
	}
	if n, err := f.a.Purge(f.ctx); n != 0 || err != nil {
		t.Errorf("second Purge = %d, %v; want 0, nil", n, err)
	}
	f.claim(t, f.s, f.key("live-claim"), "owner-b", long, runtime.DedupBusy)
	f.claim(t, f.s, f.key("live-done"), "owner-b", long, runtime.DedupDone)
	f.claim(t, f.s, f.key("claim-1"), "owner-b", long, runtime.DedupClaimed)
	f.claim(t, f.s, f.key("done-1"), "owner-b", long, runtime.DedupClaimed)
}

// testCancelledContext: every method fails on a cancelled context.
func testCancelledContext(t *testing.T, f *fixture) {
	ctx, cancel := context.WithCancel(f.ctx)
	cancel()
	k := f.key("m-1")
	if _, err := f.a.Claim(ctx, k, "owner-a", long); err == nil {
		t.Error("Claim with a cancelled context succeeded")
	}
	if err := f.a.Complete(ctx, k, long); err == nil {
		t.Error("Complete with a cancelled context succeeded")
	}
	// Nothing was written.
	f.claim(t, f.s, k, "owner-b", long, runtime.DedupClaimed)
}

// deduplicator returns a Deduplicator on store with the given lease.
func deduplicator(t *testing.T, store runtime.DedupStore, lease time.Duration) *runtime.Deduplicator {
	t.Helper()
	d, err := runtime.NewDeduplicator(runtime.DeduplicatorConfig{Store: store, Lease: lease})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// testDeduplicatorOnce: two deduplicators on the two instances call the
// handler once per message; the handler sees its claim in the context.
func testDeduplicatorOnce(t *testing.T, f *fixture) {
	da, db := deduplicator(t, f.a, long), deduplicator(t, f.s, long)
	var calls atomic.Int32
	fn := func(ctx context.Context) error {
		calls.Add(1)
		c, ok := runtime.DedupClaimFrom(ctx)
		if !ok || c.Key.MessageID != "m-1" || !strings.HasPrefix(c.Key.Consumer, f.consumer) || c.Owner == "" || c.Window != long {
			t.Errorf("handler context claim = %+v, %v; want message m-1 of consumer %s, an owner, window %s", c, ok, f.consumer, long)
		}
		return nil
	}
	for i, d := range []*runtime.Deduplicator{da, db, da} {
		if err := d.Handle(f.ctx, f.consumer, "m-1", long, fn); err != nil {
			t.Fatalf("Handle #%d = %v", i+1, err)
		}
	}
	if calls.Load() != 1 {
		t.Errorf("handler called %d times for one message, want 1", calls.Load())
	}
	if st := da.Stats(); st.Duplicates != 1 {
		t.Errorf("first deduplicator's Stats = %+v, want 1 duplicate", st)
	}
	if st := db.Stats(); st.Duplicates != 1 {
		t.Errorf("second deduplicator's Stats = %+v, want 1 duplicate", st)
	}
	// Another consumer handles the same message.
	if err := db.Handle(f.ctx, f.consumer+"-other", "m-1", long, fn); err != nil || calls.Load() != 2 {
		t.Errorf("Handle by another consumer = %v with %d calls, want nil and 2", err, calls.Load())
	}
}

// testDeduplicatorReleaseOnError: a failed handler's message is handled
// again by the next delivery, on either instance.
func testDeduplicatorReleaseOnError(t *testing.T, f *fixture) {
	da, db := deduplicator(t, f.a, long), deduplicator(t, f.s, long)
	boom := errors.New("boom")
	var calls atomic.Int32
	failing := func(context.Context) error { calls.Add(1); return boom }
	ok := func(context.Context) error { calls.Add(1); return nil }
	if err := da.Handle(f.ctx, f.consumer, "m-1", long, failing); !errors.Is(err, boom) {
		t.Fatalf("Handle with a failing handler = %v, want its error", err)
	}
	// Within well under the lease: the claim was released, not left to
	// expire.
	ctx, cancel := context.WithTimeout(f.ctx, long/4)
	defer cancel()
	if err := db.Handle(ctx, f.consumer, "m-1", long, ok); err != nil {
		t.Fatalf("Handle of the redelivery = %v", err)
	}
	if err := da.Handle(f.ctx, f.consumer, "m-1", long, ok); err != nil {
		t.Fatalf("Handle of a duplicate = %v", err)
	}
	if calls.Load() != 2 {
		t.Errorf("handler called %d times, want 2 (the failure and the redelivery)", calls.Load())
	}
}

// testDeduplicatorWaitsForBusy: while one instance handles a message for
// longer than the lease (renewing it), a redelivery on the other waits,
// then finds it done and skips it.
func testDeduplicatorWaitsForBusy(t *testing.T, f *fixture) {
	da, db := deduplicator(t, f.a, short), deduplicator(t, f.s, short)
	started, finish := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	first := make(chan error, 1)
	go func() {
		first <- da.Handle(f.ctx, f.consumer, "m-1", long, func(context.Context) error {
			calls.Add(1)
			close(started)
			<-finish
			return nil
		})
	}()
	<-started
	second := make(chan error, 1)
	go func() {
		second <- db.Handle(f.ctx, f.consumer, "m-1", long, func(context.Context) error {
			calls.Add(1)
			return nil
		})
	}()
	// Three leases: without renewal the second would take over.
	time.Sleep(3 * short)
	select {
	case err := <-second:
		t.Fatalf("the redelivery returned %v while the first delivery was being handled", err)
	default:
	}
	close(finish)
	if err := <-first; err != nil {
		t.Fatalf("first Handle = %v", err)
	}
	if err := <-second; err != nil {
		t.Fatalf("second Handle = %v", err)
	}
	if calls.Load() != 1 {
		t.Errorf("handler called %d times, want 1", calls.Load())
	}
	if st := db.Stats(); st.Duplicates != 1 || st.Waits == 0 {
		t.Errorf("waiting deduplicator's Stats = %+v, want 1 duplicate after some waits", st)
	}
}
