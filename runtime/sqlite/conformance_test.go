package sqlite_test

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/sqlite"
	"github.com/protoc-gen-eda/eda/runtime/storetest"
)

// paths maps the stores the file backend opened to their files, for Share.
var paths sync.Map // *sqlite.Store -> string

// TestConformanceFile runs the conformance suite on a database file, with a
// second Store on the same file standing for a second process.
func TestConformanceFile(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		Open: func(t *testing.T) runtime.EventStore {
			path := filepath.Join(t.TempDir(), "events.db")
			s := openStore(t, path, sqlite.Config{})
			paths.Store(s, path)
			return s
		},
		Share: func(t *testing.T, s runtime.EventStore) runtime.EventStore {
			path, ok := paths.Load(s)
			if !ok {
				t.Fatal("Share: the store was not opened by Open")
			}
			return openStore(t, path.(string), sqlite.Config{})
		},
	})
}

// TestConformanceMemory runs the conformance suite on ":memory:".
func TestConformanceMemory(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		Open: func(t *testing.T) runtime.EventStore {
			return openStore(t, ":memory:", sqlite.Config{})
		},
	})
}
