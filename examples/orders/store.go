package main

import (
	"context"
	"fmt"
	"net/url"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/memstore"
	"github.com/protoc-gen-eda/eda/runtime/postgres"
	"github.com/protoc-gen-eda/eda/runtime/sqlite"
)

// openStore opens the event store a URL names: sqlite://PATH or
// sqlite://:memory:, postgres://...[?schema=NAME], or mem://. A service links only the
// backends it imports; this example imports all three to show that the same
// code runs on each.
func openStore(ctx context.Context, storeURL string) (runtime.EventStore, error) {
	u, err := url.Parse(storeURL)
	if err != nil {
		return nil, fmt.Errorf("event store URL %q: %w", storeURL, err)
	}
	switch u.Scheme {
	case "sqlite":
		return sqlite.Open(ctx, storeURL, sqlite.Config{})
	case "postgres", "postgresql":
		// A schema parameter picks the PostgreSQL schema of the tables; the
		// rest of the URL goes to the driver.
		q := u.Query()
		cfg := postgres.Config{Schema: q.Get("schema")}
		q.Del("schema")
		u.RawQuery = q.Encode()
		return postgres.Open(ctx, u.String(), cfg)
	case "mem":
		return memstore.New(), nil
	}
	return nil, fmt.Errorf("event store URL %q: unknown scheme %q: use sqlite://, postgres:// or mem://", storeURL, u.Scheme)
}
