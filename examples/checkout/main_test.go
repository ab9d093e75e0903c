package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	checkoutv1 "github.com/protoc-gen-eda/eda/examples/checkout/gen/shop/checkout/v1"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
)

// wantOutput is what every run prints.
var wantOutput = []string{
	"order-1: completed",
	"order-2: compensated after shop.checkout.v1.PaymentDeclined",
	"order-3: compensated after timeout of step ship",
	"order-1  alice  total   2500 paid   2500 refunded      0  completed (TRK-order-1)",
	"order-2  bob    total 250000 paid      0 refunded      0  cancelled: payment declined: card limit exceeded",
	"order-3  carol  total   4200 paid   4200 refunded   4200  cancelled: checkout timed out",
}

func runAndCheck(t *testing.T, o options) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, o); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range wantOutput {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	return got
}

// The default: embedded SQLite in memory, as `go run ./examples/checkout` runs.
func TestRunSQLiteInMemory(t *testing.T) {
	runAndCheck(t, options{store: "sqlite://:memory:"})
}

func TestRunSQLiteFile(t *testing.T) {
	runAndCheck(t, options{store: "sqlite://" + filepath.Join(t.TempDir(), "checkout.db")})
}

// The same code on PostgreSQL, changing only the URL.
func TestRunPostgres(t *testing.T) {
	runAndCheck(t, options{store: postgresURL(t)})
}

func TestUnknownStore(t *testing.T) {
	err := run(context.Background(), &bytes.Buffer{}, options{store: "redis://localhost"})
	if err == nil || !strings.Contains(err.Error(), `unknown scheme "redis"`) {
		t.Errorf("err = %v, want an unknown scheme error", err)
	}
}

// postgresURL returns the test database's URL with a fresh schema, dropped
// after the test.
func postgresURL(t *testing.T) string {
	t.Helper()
	return edatest.PostgresSchemaURL(t, "eda_checkout")
}

// The crash tests run the service in a child process (this test binary,
// re-executed) that kills itself with SIGKILL at a chosen point, then finish
// the run in this process on the same PostgreSQL schema and check that every
// effect happened exactly once.
const (
	crashEnv      = "EDA_CHECKOUT_CRASH"       // where the child dies
	crashStoreEnv = "EDA_CHECKOUT_CRASH_STORE" // the child's store URL
)

// projectionBatch is the projection's batch size in the crash tests, small
// so that the run has several batches.
const projectionBatch = 4

func TestMain(m *testing.M) {
	if at := os.Getenv(crashEnv); at != "" {
		crashChild(at, os.Getenv(crashStoreEnv))
		return
	}
	os.Exit(m.Run())
}

// crashChild runs the service and dies at point at: "charge" as the payment
// service receives order-1's charge, after the saga committed the step that
// sends it; "projection" as the projection starts its second batch, after
// the first committed.
func crashChild(at, store string) {
	die := func() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) }
	o := options{store: store, batch: projectionBatch}
	switch at {
	case "charge":
		o.onCharge = func(c *checkoutv1.ChargePayment) {
			if c.GetOrderId() == "order-1" {
				die()
			}
		}
	case "projection":
		var n atomic.Int64
		o.onProject = func(*runtime.EventRecord) {
			if n.Add(1) == projectionBatch+1 {
				die()
			}
		}
	default:
		fmt.Fprintf(os.Stderr, "unknown crash point %q\n", at)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := run(ctx, os.Stdout, o)
	fmt.Fprintf(os.Stderr, "the child was to die at %s but ended: %v\n", at, err)
	os.Exit(3)
}

func TestCrashBetweenSagaSteps(t *testing.T) { crashAndResume(t, "charge") }

func TestCrashBetweenProjectionBatches(t *testing.T) { crashAndResume(t, "projection") }

func crashAndResume(t *testing.T, at string) {
	store := postgresURL(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+at, crashStoreEnv+"="+store)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the child did not die by SIGKILL at %s: %v\n%s", at, err, out)
	}
	runAndCheck(t, options{store: store, batch: projectionBatch})
	checkExactlyOnce(t, store)
}

// checkExactlyOnce reads the store back: each stream holds exactly the
// events one checkout causes, and the summary counts each event once.
func checkExactlyOnce(t *testing.T, store string) {
	t.Helper()
	ctx := context.Background()
	b, err := openBackend(ctx, store, summaryHooks{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.store.Close()
	want := map[runtime.StreamID][]string{
		{Type: "shop.order", ID: "order-1"}:    {"OrderPlaced", "OrderAccepted", "OrderCompleted"},
		{Type: "shop.order", ID: "order-2"}:    {"OrderPlaced", "OrderAccepted", "OrderCancelled"},
		{Type: "shop.order", ID: "order-3"}:    {"OrderPlaced", "OrderAccepted", "OrderCancelled"},
		{Type: "shop.payment", ID: "order-1"}:  {"PaymentCaptured"},
		{Type: "shop.payment", ID: "order-2"}:  {"PaymentDeclined"},
		{Type: "shop.payment", ID: "order-3"}:  {"PaymentCaptured", "PaymentRefunded"},
		{Type: "shop.shipment", ID: "order-1"}: {"ShipmentScheduled"},
	}
	projected := map[string]int64{} // order id -> events the summary consumes
	consumed := []string{"OrderPlaced", "OrderCompleted", "OrderCancelled", "PaymentCaptured", "PaymentRefunded", "ShipmentScheduled"}
	got := map[runtime.StreamID][]string{}
	err = b.store.ReadAll(ctx, 0, 0, func(rec *runtime.EventRecord) error {
		if _, ok := want[rec.Stream]; !ok {
			return nil // saga instances
		}
		name := rec.Type[strings.LastIndex(rec.Type, ".")+1:]
		got[rec.Stream] = append(got[rec.Stream], name)
		if slices.Contains(consumed, name) {
			projected[rec.Stream.ID]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for stream, events := range want {
		if !slices.Equal(got[stream], events) {
			t.Errorf("stream %s holds %v, want %v", stream, got[stream], events)
		}
	}
	rows, err := b.readSummary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Events != projected[r.OrderID] {
			t.Errorf("the summary applied %d events of %s, the store holds %d", r.Events, r.OrderID, projected[r.OrderID])
		}
	}
	if len(rows) != len(demos) {
		t.Errorf("the summary has %d rows, want %d", len(rows), len(demos))
	}
}
