// Package failuretest runs a generated consumer on real brokers under
// faults: a handler that panics, a poison message, and a consumer killed
// (SIGKILL, in a child process) in the middle of its work. It counts what
// was sent, handled, dead-lettered, duplicated and lost; the last two must
// be zero.
package failuretest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	ordersv1 "github.com/protoc-gen-eda/eda/examples/orders/gen/shop/orders/v1"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
	_ "github.com/protoc-gen-eda/eda/runtime/amqp"
	_ "github.com/protoc-gen-eda/eda/runtime/nats"
	_ "github.com/protoc-gen-eda/eda/runtime/redisstream"
	_ "github.com/protoc-gen-eda/eda/runtime/sqlbroker"
	"github.com/protoc-gen-eda/eda/runtime/sqlite"
)

// The child process reads its settings from the environment.
const (
	childEnv    = "EDA_FAILURE_CHILD"     // the broker URL
	runEnv      = "EDA_FAILURE_RUN"       // the run's unique suffix
	dbEnv       = "EDA_FAILURE_DB"        // the SQLite file holding effects and deduplication
	readyEnv    = "EDA_FAILURE_READY"     // a file the child creates once subscribed
	inFlightEnv = "EDA_FAILURE_IN_FLIGHT" // the handler's MaxInFlight
	good        = 300                     // events whose handling has an effect
	panics      = 3                       // events whose handler panics
	killAfter   = good / 3                // effects before the first consumer is killed
)

func TestMain(m *testing.M) {
	if url := os.Getenv(childEnv); url != "" {
		inFlight, _ := strconv.Atoi(os.Getenv(inFlightEnv))
		if err := child(url, os.Getenv(runEnv), os.Getenv(dbEnv), os.Getenv(readyEnv), inFlight); err != nil {
			fmt.Fprintln(os.Stderr, "failure child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestFailures(t *testing.T) {
	brokers := []struct {
		name, env string
		// params make a dead consumer's messages come back quickly.
		params string
		// prefetch: the broker's subscriber delivers ahead, so the test
		// also runs with 8 messages in flight, killed mid-way.
		prefetch bool
	}{
		{"nats", "EDA_TEST_NATS_URL", "ack_wait=2s", true},
		{"redis", "EDA_TEST_REDIS_URL", "max_idle=1s&claim_interval=300ms&block=50ms", true},
		{"amqp", "EDA_TEST_AMQP_URL", "prefetch=1", true},
		{"postgres", "EDA_TEST_POSTGRES_URL", "ack_deadline=2s&poll_interval=20ms", false},
	}
	for _, b := range brokers {
		for _, inFlight := range []int{1, 8} {
			if inFlight > 1 && !b.prefetch {
				continue
			}
			t.Run(fmt.Sprintf("%s/in-flight-%d", b.name, inFlight), func(t *testing.T) {
				url := edatest.ServiceURL(t, b.env)
				if b.name == "postgres" {
					url = edatest.PostgresSchemaURL(t, "failure")
				}
				sep := "?"
				if strings.Contains(url, "?") {
					sep = "&"
				}
				runFailures(t, url+sep+b.params, inFlight)
			})
		}
	}
}

// runFailures publishes good events, panicking ones and a poison message,
// kills the first consumer mid-way, lets a second finish, and checks every
// effect happened exactly once and every bad message was dead-lettered.
// The consumers handle up to inFlight messages at once.
func runFailures(t *testing.T, url string, inFlight int) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := watermill.NewShortUUID()
	dir := t.TempDir()
	db := filepath.Join(dir, "effects.db")
	store, err := sqlite.Open(ctx, db, sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.Dedup().InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE effects (order_id TEXT NOT NULL)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}

	b, err := runtime.OpenBroker(ctx, url, runtime.BrokerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dlqSub, err := b.NewSubscriber("dlq-check-" + run)
	if err != nil {
		t.Fatal(err)
	}
	dead, err := dlqSub.Subscribe(ctx, deadLetterTopic(run))
	if err != nil {
		t.Fatal(err)
	}

	first := startChild(t, url, run, db, filepath.Join(dir, "ready1"), inFlight)
	var ids []string
	for i := range good {
		ids = append(ids, fmt.Sprintf("%s-%03d", run, i))
		if i == good/2 {
			for j := range panics {
				ids = append(ids, fmt.Sprintf("%s-panic-%d", run, j))
			}
		}
	}
	publishOrders(ctx, t, b, run, ids[:good/2])
	poison := message.NewMessage(watermill.NewUUID(), []byte{0xff, 0xff, 0xff})
	poison.Metadata.Set(runtime.MetaType, ordersv1.OrderPlacedEventType)
	poison.Metadata.Set(runtime.MetaContentType, runtime.ContentTypeProtobuf)
	poison.Metadata.Set(runtime.MetaSubject, run+"-poison")
	if err := b.Publisher.Publish(topicOf(run), poison); err != nil {
		t.Fatal(err)
	}
	publishOrders(ctx, t, b, run, ids[good/2:])
	sent := good + panics + 1

	waitFor(ctx, t, "the first consumer's effects", func() bool { return countEffects(t, store, run, false) >= killAfter })
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	killedAt := countEffects(t, store, run, false)

	second := startChild(t, url, run, db, filepath.Join(dir, "ready2"), inFlight)
	defer func() {
		_ = second.Process.Signal(syscall.SIGKILL)
		_ = second.Wait()
	}()
	waitFor(ctx, t, "every effect", func() bool { return countEffects(t, store, run, true) >= good })

	// Dead letters are published at least once: a consumer killed after
	// publishing one but before acknowledging the message publishes it
	// again on redelivery. Count messages, not copies.
	deadReason := map[string]string{}
	copies := 0
	for len(deadReason) < panics+1 {
		select {
		case m := <-dead:
			m.Ack()
			copies++
			deadReason[m.Metadata.Get(runtime.MetaID)+m.UUID] = m.Metadata.Get(runtime.MetaDeadLetterReason)
		case <-ctx.Done():
			t.Fatalf("dead letters so far %v, want %d panicked and 1 poison", deadReason, panics)
		}
	}
	reasons := map[string]int{}
	for id, reason := range deadReason {
		switch {
		case strings.Contains(reason, "panicked"):
			reasons["panicked"]++
		case strings.Contains(reason, "decode") || strings.Contains(reason, "unmarshal") || strings.Contains(reason, "cannot parse"):
			reasons["decode"]++
		default:
			t.Errorf("dead letter %s with reason %q", id, reason)
		}
	}
	// A moment for late duplicates to show.
	time.Sleep(500 * time.Millisecond)
	total, distinct := countEffects(t, store, run, false), countEffects(t, store, run, true)
	duplicated, lost := total-distinct, good-distinct
	t.Logf("sent %d, handled %d (first consumer killed after %d), dead-lettered %d (%d panics, %d poison; %d copies), duplicated effects %d, lost %d",
		sent, distinct, killedAt, len(deadReason), reasons["panicked"], reasons["decode"], copies, duplicated, lost)
	if duplicated != 0 || lost != 0 || reasons["panicked"] != panics || reasons["decode"] != 1 {
		t.Errorf("duplicated %d, lost %d, dead letters %v: want none duplicated or lost, %d panicked and 1 poison", duplicated, lost, reasons, panics)
	}
}

// deadLetterTopic is the run's own dead-letter topic.
func deadLetterTopic(run string) string { return "failuretest.dead." + run }

// startChild starts a consumer in a new process and waits until it is
// subscribed.
func startChild(t *testing.T, url, run, db, ready string, inFlight int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+url, runEnv+"="+run, dbEnv+"="+db, readyEnv+"="+ready, inFlightEnv+"="+strconv.Itoa(inFlight))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			return cmd
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatal("the consumer did not subscribe within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func countEffects(t *testing.T, store *sqlite.Store, run string, distinct bool) int {
	t.Helper()
	q := `SELECT count(*) FROM effects WHERE order_id LIKE ?`
	if distinct {
		q = `SELECT count(DISTINCT order_id) FROM effects WHERE order_id LIKE ?`
	}
	var n int
	if err := store.DB().QueryRow(q, run+"-%").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// consumer records an effect per event, in the transaction that marks the
// event handled, so a redelivered event finds it done.
type consumer struct {
	ordersv1.UnimplementedOrderEventHandler
	run   string
	dedup *sqlite.DedupStore
}

func (c consumer) HandleOrderPlaced(ctx context.Context, e *ordersv1.OrderPlaced) error {
	if strings.Contains(e.GetOrderId(), "-panic-") {
		panic("poisoned order " + e.GetOrderId())
	}
	err := c.dedup.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO effects (order_id) VALUES (?)`, e.GetOrderId())
		return err
	})
	// Committed but not yet acknowledged: where a kill does harm.
	time.Sleep(2 * time.Millisecond)
	return err
}

// child runs one consumer, handling up to inFlight messages at once, until
// it is killed.
func child(url, run, db, ready string, inFlight int) error {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, db, sqlite.Config{})
	if err != nil {
		return err
	}
	b, err := runtime.OpenBroker(ctx, url, runtime.BrokerOptions{})
	if err != nil {
		return err
	}
	dedup := store.Dedup()
	// A short lease: a message the killed consumer was handling comes back
	// to the next within seconds, not the default 30.
	router, err := runtime.NewRouter(runtime.RouterConfig{NewSubscriber: b.NewSubscriber, Publisher: b.Publisher, DedupStore: dedup, DedupLease: 3 * time.Second})
	if err != nil {
		return err
	}
	name := "failuretest-" + run
	err = ordersv1.RegisterOrderEventHandler(router, consumer{run: run, dedup: dedup},
		runtime.WithName(name), runtime.WithTopic(topicOf(run)),
		runtime.WithDelivery(runtime.DeliveryPolicy{
			MaxAttempts: 2, InitialBackoff: time.Millisecond, DeadLetterTopic: deadLetterTopic(run), DedupWindow: time.Hour,
			MaxInFlight: inFlight,
		}))
	if err != nil {
		return err
	}
	if got := router.MaxInFlight(name); got != inFlight {
		return fmt.Errorf("the router handles %d messages at once, want %d", got, inFlight)
	}
	go func() {
		<-router.Running()
		_ = os.WriteFile(ready, nil, 0o644)
	}()
	return router.Run(ctx)
}
