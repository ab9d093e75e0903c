package memstore_test

import (
	"testing"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/deduptest"
	"github.com/protoc-gen-eda/eda/runtime/memstore"
)

func TestDedupConformance(t *testing.T) {
	deduptest.Run(t, deduptest.Backend{
		Open: func(*testing.T) runtime.DedupStore { return memstore.NewDedupStore() },
	})
}
