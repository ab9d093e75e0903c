package postgres_test

import (
	"testing"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/storetest"
)

// TestConformance runs the suite every EventStore passes. Each store lives
// in a fresh schema, dropped when its test ends; Share opens a second pool
// on the same schema, as a second process would.
func TestConformance(t *testing.T) {
	f := newFixture(t)
	storetest.Run(t, storetest.Backend{
		Open: func(t *testing.T) runtime.EventStore { return f.open(t) },
		Share: func(t *testing.T, s runtime.EventStore) runtime.EventStore {
			return f.share(t, s)
		},
	})
}
