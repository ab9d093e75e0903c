package edatest

import (
	"os"
	"testing"
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
