package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

// DedupKey identifies one message for one consumer: the same message
// handled by two consumers (two handlers, or two consumer groups) is two
// keys, each deduplicated on its own.
type DedupKey struct {
	// Consumer is the handler's name (HandlerSpec.Name): wire API, like
	// the consumer group it defaults to.
	Consumer string
	// MessageID is the message's envelope id (Envelope.ID).
	MessageID string
}

func (k DedupKey) String() string { return k.Consumer + "/" + k.MessageID }

// DedupState is what DedupStore.Claim found.
type DedupState int

// The outcomes of DedupStore.Claim.
const (
	// DedupClaimed: the caller holds the claim (new, taken over from an
	// expired one, or renewed) and handles the message.
	DedupClaimed DedupState = iota + 1
	// DedupDone: the message was handled within its window; acknowledge it
	// without handling.
	DedupDone
	// DedupBusy: another owner holds a live claim: it is handling the
	// message now. Ask again later; the claim ends with Complete, Release
	// or when its lease expires.
	DedupBusy
)

func (s DedupState) String() string {
	switch s {
	case DedupClaimed:
		return "claimed"
	case DedupDone:
		return "done"
	case DedupBusy:
		return "busy"
	}
	return "DedupState(" + strconv.Itoa(int(s)) + ")"
}

// DedupStore records, per DedupKey, who is handling a message and which
// messages were handled, so that consumers deduplicate across instances
// and restarts. An entry is either a claim (an owner handling the message,
// until its lease expires) or a done mark (until its window ends); an
// expired entry counts as absent. The backends are runtime/sqlite and
// runtime/postgres (Store.Dedup), runtime/redisdedup and runtime/memstore
// (NewDedupStore); every one passes the suite in runtime/deduptest.
//
// Concurrency contract: every method is safe for concurrent use, also by
// several processes sharing the store. Of any number of concurrent Claims
// of one absent key, exactly one returns DedupClaimed. Expiry uses one
// clock per store (the database's or Redis's where the store has one), so
// instances with skewed clocks still agree.
type DedupStore interface {
	// Claim takes key for owner until lease from now, and returns
	// DedupClaimed, if the key is absent (or expired) or owner already
	// holds it (then the lease is renewed). Otherwise it changes nothing
	// and returns DedupDone or DedupBusy. owner must be unique per claim,
	// not per process: two deliveries of one message to one process are two
	// claims.
	Claim(ctx context.Context, key DedupKey, owner string, lease time.Duration) (DedupState, error)

	// Complete marks key done until window from now, whoever holds its
	// claim: the message was handled, and a late Complete of a claim that
	// expired and was taken over is still true.
	Complete(ctx context.Context, key DedupKey, window time.Duration) error

	// Release drops owner's claim on key, so that a retry or a redelivery
	// can claim it at once. It does nothing if owner does not hold the
	// claim (it expired and someone else took it, or the key is done).
	Release(ctx context.Context, key DedupKey, owner string) error

	// Purge deletes the expired entries and returns how many it deleted.
	// Expired entries already count as absent, so purging only reclaims
	// space. A store whose entries expire by themselves (Redis) returns 0.
	Purge(ctx context.Context) (int64, error)
}

// ErrDedupStore wraps the errors of the deduplication store in what
// Deduplicator.Handle returns: the message was not handled because the
// store could not be asked. The message is not at fault, so the router
// redelivers it (or retries in place) rather than dead-letters it.
var ErrDedupStore = errors.New("deduplication store unavailable")

// ErrDedupClaimLost is returned by the SQL stores' in-transaction done
// marks (MarkDone, InTx) when the claim is no longer the caller's: its
// lease expired and another consumer took the message, or the message is
// done already. The transaction must roll back, so that the message's
// effects are not made twice.
var ErrDedupClaimLost = errors.New("deduplication claim lost: another consumer took the message or handled it")

// DedupClaim is the claim a handler runs under: Deduplicator.Handle puts it
// in the handler's context, where DedupClaimFrom finds it. SQL stores read
// it to mark the message done in the handler's own transaction
// (sqlite.DedupStore.InTx, postgres.DedupStore.InTx), so that the
// handler's writes and the done mark commit together.
type DedupClaim struct {
	Key DedupKey
	// Owner identifies this claim in the store.
	Owner string
	// Window is how long the done mark lasts.
	Window time.Duration
}

type dedupClaimKey struct{}

// dedupHandling is the context value of a claim: the claim and whether the
// handler marked it done in its own transaction.
type dedupHandling struct {
	claim  DedupClaim
	marked atomic.Bool
}

// WithDedupClaim returns a context carrying c. Deduplicator.Handle does
// this for its fn; tests of handlers that mark in their transaction use it
// too.
func WithDedupClaim(ctx context.Context, c DedupClaim) context.Context {
	return context.WithValue(ctx, dedupClaimKey{}, &dedupHandling{claim: c})
}

// DedupClaimFrom returns the claim the message being handled runs under,
// if its handler deduplicates.
func DedupClaimFrom(ctx context.Context) (DedupClaim, bool) {
	h, ok := ctx.Value(dedupClaimKey{}).(*dedupHandling)
	if !ok {
		return DedupClaim{}, false
	}
	return h.claim, true
}

// DedupMarked records that the claim in ctx was marked done in a
// transaction that committed, so Deduplicator.Handle skips its own
// Complete (a write saved per message) and stops renewing the lease. The
// SQL stores' InTx call it after their commit; a handler using MarkDone in
// a transaction of its own may call it after committing. Without a claim
// in ctx it does nothing.
func DedupMarked(ctx context.Context) {
	if h, ok := ctx.Value(dedupClaimKey{}).(*dedupHandling); ok {
		h.marked.Store(true)
	}
}

// Defaults of DeduplicatorConfig.
const (
	// DefaultDedupLease is how long a claim lasts without renewal: how long
	// a redelivery of a message whose consumer died waits before it is
	// handled again. Handle renews the claim every third of it while the
	// handler runs, so handlers may run longer.
	DefaultDedupLease = 30 * time.Second
	// DefaultDedupPurgeInterval is how often Handle purges expired
	// entries.
	DefaultDedupPurgeInterval = time.Minute
)

// dedupCompleteAttempts bounds the tries of Complete after a handler
// succeeded; dedupCompleteBackoff is the wait before the second.
const (
	dedupCompleteAttempts = 3
	dedupCompleteBackoff  = 50 * time.Millisecond
)

// maxDedupBusyPoll bounds the wait between two Claims of a key another
// owner holds.
const maxDedupBusyPoll = time.Second

// DeduplicatorConfig configures a Deduplicator.
type DeduplicatorConfig struct {
	// Store keeps the claims and done marks. Required.
	Store DedupStore
	// Lease is how long a claim lasts unless renewed; Handle renews it
	// every Lease/3 while fn runs. It bounds how long a redelivery waits
	// for a consumer that died mid-message. Default DefaultDedupLease.
	Lease time.Duration
	// PurgeInterval is how often Handle purges the store's expired
	// entries (one Handle call every interval does it, after its message).
	// Default DefaultDedupPurgeInterval; negative never purges (call
	// Deduplicator.Purge yourself).
	PurgeInterval time.Duration
	// Logger receives the deduplicator's logs. Default: none.
	Logger watermill.LoggerAdapter
}

func (c *DeduplicatorConfig) setDefaults() {
	if c.Lease == 0 {
		c.Lease = DefaultDedupLease
	}
	if c.PurgeInterval == 0 {
		c.PurgeInterval = DefaultDedupPurgeInterval
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
}

// Validate reports what is missing or out of range.
func (c DeduplicatorConfig) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("DeduplicatorConfig.Store is required: open one with sqlite.Store.Dedup, postgres.Store.Dedup, redisdedup.Open or memstore.NewDedupStore"))
	}
	if c.Lease < 0 {
		errs = append(errs, fmt.Errorf("DeduplicatorConfig.Lease %s is negative", c.Lease))
	} else if c.Lease > 0 && c.Lease < time.Millisecond {
		errs = append(errs, fmt.Errorf("DeduplicatorConfig.Lease %s is below a millisecond, which stores cannot keep", c.Lease))
	}
	return errors.Join(errs...)
}

// DedupStats counts what a Deduplicator did.
type DedupStats struct {
	// Duplicates were acknowledged without calling the handler.
	Duplicates uint64
	// Waits counts the times Handle found a message claimed by another
	// owner and waited.
	Waits uint64
	// Unmarked counts handled messages whose done mark could not be saved:
	// a redelivery of one of them would be handled again.
	Unmarked uint64
}

// Deduplicator runs handlers at most once per message id within a window,
// across instances and restarts, with a DedupStore. The router calls Handle
// around dispatch for handlers whose DeliveryPolicy has a DedupWindow.
// It is safe for concurrent use.
type Deduplicator struct {
	cfg DeduplicatorConfig
	// instance prefixes the owner of every claim; seq makes each unique.
	instance string
	seq      atomic.Uint64
	// nextPurge is when Handle purges next, in Unix nanoseconds; purging
	// is held while a purge runs.
	nextPurge atomic.Int64
	purging   atomic.Bool

	duplicates, waits, unmarked atomic.Uint64
}

// NewDeduplicator returns a Deduplicator.
func NewDeduplicator(cfg DeduplicatorConfig) (*Deduplicator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	var b [8]byte
	_, _ = rand.Read(b[:])
	d := &Deduplicator{cfg: cfg, instance: hex.EncodeToString(b[:])}
	d.nextPurge.Store(time.Now().Add(cfg.PurgeInterval).UnixNano())
	return d, nil
}

// Stats returns the counters since the Deduplicator was created.
func (d *Deduplicator) Stats() DedupStats {
	return DedupStats{Duplicates: d.duplicates.Load(), Waits: d.waits.Load(), Unmarked: d.unmarked.Load()}
}

// Store returns the deduplicator's store.
func (d *Deduplicator) Store() DedupStore { return d.cfg.Store }

// Handle calls fn at most once per (consumer, msgID) within window, across
// every Deduplicator sharing the store:
//
//   - it claims the key; a key done within the window returns nil without
//     calling fn (a duplicate, counted in Stats); a key another owner holds
//     makes Handle wait, asking again, until that claim completes (a
//     duplicate), is released or expires (Handle then claims it), or ctx
//     ends;
//   - it calls fn with ctx carrying the claim (DedupClaimFrom), renewing the
//     claim's lease every Lease/3 while fn runs;
//   - fn returned nil: it marks the key done until window from now (unless
//     fn did in its transaction and said so with DedupMarked) and returns
//     nil. If the mark cannot be saved, the message was handled all the
//     same: Handle logs it, counts it in Stats.Unmarked and returns nil;
//   - fn returned an error wrapping ErrDedupClaimLost (its transaction
//     found that another owner took the message, and rolled back): it
//     claims the key again, from the first step;
//   - fn returned another error: it releases the claim, so that a retry or
//     redelivery handles the message, and returns fn's error as it is.
//
// A store error before fn runs is returned wrapping ErrDedupStore, fn not
// called. A window of zero or less, or an empty msgID, calls fn without
// deduplication.
//
// The done mark and fn's effects are two writes: a crash between them
// repeats the effects on redelivery. Handlers whose effects live in the
// store's database make them exactly once by marking the message done in
// their own transaction (sqlite.DedupStore.InTx, postgres.DedupStore.InTx).
func (d *Deduplicator) Handle(ctx context.Context, consumer, msgID string, window time.Duration, fn func(context.Context) error) error {
	if window <= 0 || msgID == "" {
		return fn(ctx)
	}
	key := DedupKey{Consumer: consumer, MessageID: msgID}
	for {
		claim := DedupClaim{Key: key, Owner: d.owner(), Window: window}
		claimed, err := d.claim(ctx, claim)
		if err != nil || !claimed {
			return err
		}
		h := &dedupHandling{claim: claim}
		err = d.run(context.WithValue(ctx, dedupClaimKey{}, h), h, fn)
		if errors.Is(err, ErrDedupClaimLost) && ctx.Err() == nil {
			// The handler's transaction found another owner's claim or
			// mark, and rolled back: see who has the message now.
			d.cfg.Logger.Info("Deduplication claim lost while handling; claiming again", watermill.LogFields{"consumer": consumer, "message_id": msgID})
			continue
		}
		if err != nil {
			// A cancelled ctx must not keep the claim until its lease ends.
			if rerr := d.cfg.Store.Release(context.WithoutCancel(ctx), key, claim.Owner); rerr != nil {
				d.cfg.Logger.Error("Cannot release a deduplication claim; a redelivery waits for its lease to expire", rerr,
					watermill.LogFields{"consumer": consumer, "message_id": msgID, "lease": d.cfg.Lease})
			}
			return err
		}
		if !h.marked.Load() {
			d.complete(ctx, claim)
		}
		d.maybePurge(ctx)
		return nil
	}
}

// owner returns a new claim owner: unique per claim, not per process.
func (d *Deduplicator) owner() string {
	return d.instance + "-" + strconv.FormatUint(d.seq.Add(1), 10)
}

// run calls fn, renewing h's claim while it runs.
func (d *Deduplicator) run(ctx context.Context, h *dedupHandling, fn func(context.Context) error) error {
	stop := d.renew(ctx, h)
	defer stop()
	return fn(ctx)
}

// claim claims c.Key, waiting while another owner holds it. It returns
// false, nil for a duplicate.
func (d *Deduplicator) claim(ctx context.Context, c DedupClaim) (bool, error) {
	poll := min(d.cfg.Lease/4, maxDedupBusyPoll)
	var timer *time.Timer
	for {
		state, err := d.cfg.Store.Claim(ctx, c.Key, c.Owner, d.cfg.Lease)
		if err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			return false, fmt.Errorf("%w: claim %s: %w", ErrDedupStore, c.Key, err)
		}
		switch state {
		case DedupClaimed:
			return true, nil
		case DedupDone:
			d.duplicates.Add(1)
			d.cfg.Logger.Debug("Skipping duplicate message", watermill.LogFields{"consumer": c.Key.Consumer, "message_id": c.Key.MessageID})
			return false, nil
		case DedupBusy:
		default:
			return false, fmt.Errorf("%w: claim %s: the store returned %v", ErrDedupStore, c.Key, state)
		}
		d.waits.Add(1)
		if timer == nil {
			timer = time.NewTimer(poll)
			defer timer.Stop()
		} else {
			timer.Reset(poll)
		}
		select {
		case <-timer.C:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// renew renews c's lease every Lease/3 until stop is called. It needs no
// goroutine until the first renewal is due: most handlers return before.
// stop waits for a renewal in progress, so that none lands after the
// caller's Release (it would claim the key again until the lease ends).
func (d *Deduplicator) renew(ctx context.Context, h *dedupHandling) (stop func()) {
	c := h.claim
	var (
		mu      sync.Mutex
		stopped bool
		timer   *time.Timer
	)
	every := d.cfg.Lease / 3
	tick := func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped || h.marked.Load() {
			return
		}
		state, err := d.cfg.Store.Claim(ctx, c.Key, c.Owner, d.cfg.Lease)
		switch {
		case err != nil:
			d.cfg.Logger.Error("Cannot renew a deduplication claim", err, watermill.LogFields{"consumer": c.Key.Consumer, "message_id": c.Key.MessageID})
		case state == DedupDone:
			// The handler marked it done in its transaction: nothing to
			// renew.
			return
		case state == DedupBusy:
			d.cfg.Logger.Info("Deduplication claim lost: its lease expired and another consumer took the message; raise DeduplicatorConfig.Lease",
				watermill.LogFields{"consumer": c.Key.Consumer, "message_id": c.Key.MessageID, "lease": d.cfg.Lease})
			return
		}
		timer.Reset(every)
	}
	mu.Lock()
	timer = time.AfterFunc(every, tick)
	mu.Unlock()
	return func() {
		mu.Lock()
		stopped = true
		timer.Stop()
		mu.Unlock()
	}
}

// complete marks c done, trying a few times: the handler's effects are
// done, and a missing mark lets a redelivery repeat them.
func (d *Deduplicator) complete(ctx context.Context, c DedupClaim) {
	// The message is handled: a cancelled ctx must not lose its mark.
	ctx = context.WithoutCancel(ctx)
	var err error
	for attempt := range dedupCompleteAttempts {
		if attempt > 0 {
			time.Sleep(dedupCompleteBackoff << (attempt - 1))
		}
		if err = d.cfg.Store.Complete(ctx, c.Key, c.Window); err == nil {
			return
		}
	}
	d.unmarked.Add(1)
	d.cfg.Logger.Error("Message handled but not marked done; a redelivery would handle it again", err,
		watermill.LogFields{"consumer": c.Key.Consumer, "message_id": c.Key.MessageID})
}

// maybePurge purges the store if PurgeInterval has passed since the last
// purge, in this call: one caller at a time, the others go on.
func (d *Deduplicator) maybePurge(ctx context.Context) {
	if d.cfg.PurgeInterval < 0 {
		return
	}
	now := time.Now().UnixNano()
	next := d.nextPurge.Load()
	if now < next || !d.purging.CompareAndSwap(false, true) {
		return
	}
	defer d.purging.Store(false)
	if !d.nextPurge.CompareAndSwap(next, now+int64(d.cfg.PurgeInterval)) {
		return
	}
	if _, err := d.Purge(ctx); err != nil {
		d.cfg.Logger.Error("Cannot purge expired deduplication entries", err, nil)
	}
}

// Purge deletes the store's expired entries and returns how many it
// deleted. Handle calls it every PurgeInterval.
func (d *Deduplicator) Purge(ctx context.Context) (int64, error) {
	n, err := d.cfg.Store.Purge(ctx)
	if err != nil {
		return n, fmt.Errorf("purge expired deduplication entries: %w", err)
	}
	if n > 0 {
		d.cfg.Logger.Debug("Purged expired deduplication entries", watermill.LogFields{"deleted": n})
	}
	return n, nil
}
