package edatest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// RequireAllEnv, when set, turns every skip for want of a service or tool
// into a failure. CI sets it, so that on CI every integration test runs.
const RequireAllEnv = "EDA_TEST_REQUIRE_ALL"

// Environment variables that hold the URLs of real services for
// integration tests.
const (
	PostgresURLEnv = "EDA_TEST_POSTGRES_URL"
	NATSURLEnv     = "EDA_TEST_NATS_URL"
	RedisURLEnv    = "EDA_TEST_REDIS_URL"
	AMQPURLEnv     = "EDA_TEST_AMQP_URL"
)

// ServiceURL returns the URL in the environment variable env. When it is
// unset the test is skipped, or fails if RequireAllEnv is set.
func ServiceURL(t testing.TB, env string) string {
	t.Helper()
	url := os.Getenv(env)
	if url == "" {
		Unavailable(t, env+" is not set")
	}
	return url
}

// Unavailable skips the test because of why, or fails it if RequireAllEnv is
// set.
func Unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(RequireAllEnv) != "" {
		t.Fatalf("%s, and %s forbids skipping", why, RequireAllEnv)
	}
	t.Skipf("skipped: %s (set it to run this test against a real service)", why)
}

// PostgresSchemaURL returns the test PostgreSQL URL (see ServiceURL) with a
// schema parameter naming a fresh schema, as the examples' store URLs take
// it, and drops the schema when the test ends.
func PostgresSchemaURL(t testing.TB, prefix string) string {
	t.Helper()
	url := ServiceURL(t, PostgresURLEnv)
	schema := fmt.Sprintf("%s_%d", prefix, time.Now().UnixNano())
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Error(err)
		}
	})
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "schema=" + schema
}
