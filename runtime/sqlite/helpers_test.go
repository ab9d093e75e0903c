package sqlite_test

import (
	"context"
	"testing"
	"time"

	"github.com/protoc-gen-eda/eda/runtime/sqlite"
)

// testTimeout bounds every test's context.
const testTimeout = time.Minute

// openStore opens a store at path and closes it when the test ends.
func openStore(t testing.TB, path string, cfg sqlite.Config) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, cfg)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// testContext returns a context ending after testTimeout or with the test.
func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}
