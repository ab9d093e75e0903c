package memstore_test

import (
	"testing"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/memstore"
	"github.com/protoc-gen-eda/eda/runtime/sagatest"
)

// TestSagas runs the saga behaviour suite on the in-memory store. It has
// no Share: the restart tests reuse the store, as a process restart keeps
// nothing of a memstore.
func TestSagas(t *testing.T) {
	sagatest.Run(t, sagatest.Backend{
		Open: func(*testing.T) runtime.EventStore { return memstore.New() },
	})
}
