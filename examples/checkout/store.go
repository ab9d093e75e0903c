package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"

	"github.com/jackc/pgx/v5"

	checkoutv1 "github.com/protoc-gen-eda/eda/examples/checkout/gen/shop/checkout/v1"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/postgres"
	"github.com/protoc-gen-eda/eda/runtime/sqlite"
)

// backend is an event store with the read model beside it in the same
// database, so that the projection's writes and checkpoint commit together.
type backend struct {
	store         runtime.EventStore
	newProjection func(cfg runtime.ProjectionConfig) (projection, error)
	readSummary   func(ctx context.Context) ([]summaryRow, error)
}

// projection is what run uses of a *runtime.Projection, whatever its Tx.
type projection interface {
	Run(ctx context.Context) error
	CatchUp(ctx context.Context) (int, error)
	Rebuild(ctx context.Context) error
	Stats() runtime.ProjectionStats
}

// summaryHooks are the test hooks of the read model.
type summaryHooks struct{ observe func(*runtime.EventRecord) }

// openBackend opens the store a URL names: sqlite://PATH, sqlite://:memory:
// or postgres://...[?schema=NAME].
func openBackend(ctx context.Context, storeURL string, hooks summaryHooks) (*backend, error) {
	u, err := url.Parse(storeURL)
	if err != nil {
		return nil, fmt.Errorf("event store URL %q: %w", storeURL, err)
	}
	switch u.Scheme {
	case "sqlite":
		s, err := sqlite.Open(ctx, storeURL, sqlite.Config{})
		if err != nil {
			return nil, err
		}
		h := summary[*sql.Tx]{db: sqliteTx, observe: hooks.observe}
		return &backend{
			store: s,
			newProjection: func(cfg runtime.ProjectionConfig) (projection, error) {
				return checkoutv1.NewOrderSummaryProjection(s, s.Projections(), h, cfg)
			},
			readSummary: func(ctx context.Context) ([]summaryRow, error) {
				rows, err := s.DB().QueryContext(ctx, selectSummary)
				if err != nil {
					return nil, err
				}
				return scanSummary(rows.Next, rows.Scan, rows.Close, rows.Err)
			},
		}, nil
	case "postgres", "postgresql":
		q := u.Query()
		cfg := postgres.Config{Schema: q.Get("schema")}
		q.Del("schema")
		u.RawQuery = q.Encode()
		s, err := postgres.Open(ctx, u.String(), cfg)
		if err != nil {
			return nil, err
		}
		h := summary[pgx.Tx]{db: postgresTx, observe: hooks.observe}
		view := summaryView
		if cfg.Schema != "" {
			view = pgx.Identifier{cfg.Schema, summaryView}.Sanitize()
		}
		return &backend{
			store: s,
			newProjection: func(pc runtime.ProjectionConfig) (projection, error) {
				return checkoutv1.NewOrderSummaryProjection(s, s.Projections(), h, pc)
			},
			readSummary: func(ctx context.Context) ([]summaryRow, error) {
				rows, err := s.Pool().Query(ctx, "SELECT order_id, customer_id, status, tracking, total_cents, paid_cents, refunded_cents, events FROM "+view+" ORDER BY order_id")
				if err != nil {
					return nil, err
				}
				return scanSummary(rows.Next, rows.Scan, func() error { rows.Close(); return nil }, rows.Err)
			},
		}, nil
	}
	return nil, fmt.Errorf("event store URL %q: unknown scheme %q: use sqlite:// or postgres://", storeURL, u.Scheme)
}

// scanSummary reads summary rows from either driver's result set.
func scanSummary(next func() bool, scan func(...any) error, closeRows func() error, rowsErr func() error) ([]summaryRow, error) {
	defer closeRows()
	var out []summaryRow
	for next() {
		var r summaryRow
		if err := scan(&r.OrderID, &r.CustomerID, &r.Status, &r.Tracking, &r.TotalCents, &r.PaidCents, &r.RefundedCents, &r.Events); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rowsErr()
}
