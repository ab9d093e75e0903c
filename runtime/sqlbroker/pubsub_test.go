package sqlbroker_test

import (
	"database/sql"
	"net/url"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime/sqlbroker"
)

// suiteMaxConns bounds the suite's connections: its tests run in parallel,
// one publishes from 50 goroutines, and the server is shared.
const suiteMaxConns = 25

// TestPubSub runs Watermill's universal Pub/Sub suite, as watermill-sql
// runs it for pgx in its own repository (consumer groups, guaranteed
// order, persistent; exactly-once off, as there), in short mode
// (ForceShort: 100 messages instead of 5000, and so on) to keep the
// package under two minutes.
func TestPubSub(t *testing.T) {
	rawURL := edatest.PostgresSchemaURL(t, "sqlbroker_suite")
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg, rest, err := sqlbroker.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.ParseConfig(rest.String())
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*conn)
	db.SetMaxOpenConns(suiteMaxConns)
	t.Cleanup(func() { _ = db.Close() })
	cfg.PollInterval = 10 * time.Millisecond
	cfg.ResendInterval = 5 * time.Millisecond

	withGroup := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		return newPubSub(t, db, cfg, group)
	}
	tests.TestPubSub(t, tests.Features{
		ConsumerGroups:      true,
		ExactlyOnceDelivery: false,
		GuaranteedOrder:     true,
		Persistent:          true,
		ForceShort:          true,
	}, func(t *testing.T) (message.Publisher, message.Subscriber) {
		return withGroup(t, "test")
	}, withGroup)
}

func newPubSub(t *testing.T, db *sql.DB, cfg sqlbroker.Config, group string) (message.Publisher, message.Subscriber) {
	b, err := sqlbroker.New(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The suite leaves some subscriptions running; they must end before
	// the schema is dropped, or the DROP deadlocks with them.
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	sub, err := b.NewSubscriber(group)
	if err != nil {
		t.Fatal(err)
	}
	return b.Publisher, sub
}
