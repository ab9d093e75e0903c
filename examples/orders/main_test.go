package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/protoc-gen-eda/eda/internal/edatest"
)

// wantOutput is what every run prints, in some order: handlers run
// concurrently.
var wantOutput = []string{
	"order placed: order-1 by alice, total 2500 cents (version 1, correlation checkout-42)",
	"order shipped: order-1 by post",
	"order placed: order-2 by bob",
	"order cancelled: order-2 (changed my mind)",
	"dead letter: shop.orders.v1.CancelOrder: the order has shipped",
	"handled 8 messages, dead-lettered 1; the relay published 4 events",
	"order-1 is ORDER_STATUS_SHIPPED at version 2",
}

func runAndCheck(t *testing.T, storeURL string) { runOn(t, storeURL, "mem://") }

func runOn(t *testing.T, storeURL, brokerURL string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, storeURL, brokerURL); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range wantOutput {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

// The default: embedded SQLite in memory, as `go run ./examples/orders` runs.
func TestRunSQLiteInMemory(t *testing.T) { runAndCheck(t, "sqlite://:memory:") }

func TestRunSQLiteFile(t *testing.T) {
	runAndCheck(t, "sqlite://"+filepath.Join(t.TempDir(), "orders.db"))
}

func TestRunInMemoryStore(t *testing.T) { runAndCheck(t, "mem://") }

// The same code on PostgreSQL, changing only the URL.
func TestRunPostgres(t *testing.T) {
	runAndCheck(t, edatest.PostgresSchemaURL(t, "eda_example"))
}

func TestUnknownStore(t *testing.T) {
	err := run(context.Background(), &bytes.Buffer{}, "redis://localhost", "mem://")
	if err == nil || !strings.Contains(err.Error(), `unknown scheme "redis"`) {
		t.Errorf("err = %v, want an unknown scheme error", err)
	}
}

// The same service on NATS JetStream, changing only the broker URL. The
// server runs in the test, fresh, so no earlier run's messages wait in the
// durable consumer groups.
func TestRunOnNATS(t *testing.T) {
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	defer s.Shutdown()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("the in-process NATS server did not start")
	}
	runOn(t, "sqlite://:memory:", s.ClientURL())
}

func TestUnknownBroker(t *testing.T) {
	err := run(context.Background(), &bytes.Buffer{}, "sqlite://:memory:", "pigeon://coop")
	if err == nil || !strings.Contains(err.Error(), "unknown broker scheme") {
		t.Errorf("err = %v, want an unknown broker scheme error", err)
	}
}
