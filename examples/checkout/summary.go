package main

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	checkoutv1 "github.com/protoc-gen-eda/eda/examples/checkout/gen/shop/checkout/v1"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/postgres"
	"github.com/protoc-gen-eda/eda/runtime/sqlite"
)

// summaryView is what readers query; it points at the active generation's
// table, so a rebuild swaps tables under it without readers noticing.
const summaryView = "order_summary"

// sqlTx is the little the summary needs from a transaction, so that one
// implementation serves SQLite (*sql.Tx) and PostgreSQL (pgx.Tx). Queries
// use ? placeholders.
type sqlTx[Tx any] struct {
	exec        func(ctx context.Context, tx Tx, query string, args ...any) error
	replaceView func(ctx context.Context, tx Tx, view, table string) error
}

var sqliteTx = sqlTx[*sql.Tx]{
	exec: func(ctx context.Context, tx *sql.Tx, query string, args ...any) error {
		_, err := tx.ExecContext(ctx, query, args...)
		return err
	},
	replaceView: sqlite.ReplaceView,
}

var postgresTx = sqlTx[pgx.Tx]{
	exec: func(ctx context.Context, tx pgx.Tx, query string, args ...any) error {
		_, err := tx.Exec(ctx, dollars(query), args...)
		return err
	},
	replaceView: postgres.ReplaceView,
}

// dollars rewrites ? placeholders as PostgreSQL's $1, $2, ...
func dollars(query string) string {
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// summary is the OrderSummary read model: one row per order. Its updates
// add to the row (paid_cents + amount, events + 1), so an event applied
// twice would show.
type summary[Tx any] struct {
	db sqlTx[Tx]
	// observe, when set, is called before each event is applied: the crash
	// tests stop the process there.
	observe func(rec *runtime.EventRecord)
}

var (
	_ checkoutv1.OrderSummaryProjection[*sql.Tx] = summary[*sql.Tx]{}
	_ checkoutv1.OrderSummaryProjection[pgx.Tx]  = summary[pgx.Tx]{}
)

func (s summary[Tx]) Setup(ctx context.Context, p runtime.ProjectionTx[Tx]) error {
	return s.db.exec(ctx, p.Tx, `CREATE TABLE IF NOT EXISTS `+p.Table(summaryView)+` (
		order_id       TEXT PRIMARY KEY,
		customer_id    TEXT   NOT NULL DEFAULT '',
		status         TEXT   NOT NULL DEFAULT '',
		total_cents    BIGINT NOT NULL DEFAULT 0,
		paid_cents     BIGINT NOT NULL DEFAULT 0,
		refunded_cents BIGINT NOT NULL DEFAULT 0,
		tracking       TEXT   NOT NULL DEFAULT '',
		events         BIGINT NOT NULL DEFAULT 0
	)`)
}

func (s summary[Tx]) Activate(ctx context.Context, p runtime.ProjectionTx[Tx], previous int) error {
	if err := s.db.replaceView(ctx, p.Tx, summaryView, p.Table(summaryView)); err != nil {
		return err
	}
	if previous == 0 {
		return nil
	}
	old := runtime.ProjectionTx[Tx]{Tx: p.Tx, Generation: previous}
	return s.db.exec(ctx, p.Tx, `DROP TABLE IF EXISTS `+old.Table(summaryView))
}

// update adds to an order's row, creating it if needed.
func (s summary[Tx]) update(ctx context.Context, p runtime.ProjectionTx[Tx], rec *runtime.EventRecord, orderID, set string, args ...any) error {
	if s.observe != nil {
		s.observe(rec)
	}
	t := p.Table(summaryView)
	if err := s.db.exec(ctx, p.Tx, `INSERT INTO `+t+` (order_id) VALUES (?) ON CONFLICT (order_id) DO NOTHING`, orderID); err != nil {
		return err
	}
	return s.db.exec(ctx, p.Tx, `UPDATE `+t+` SET `+set+`, events = events + 1 WHERE order_id = ?`, append(args, orderID)...)
}

func (s summary[Tx]) OnOrderPlaced(ctx context.Context, p runtime.ProjectionTx[Tx], e *checkoutv1.OrderPlaced, rec *runtime.EventRecord) error {
	return s.update(ctx, p, rec, e.GetOrderId(), `customer_id = ?, total_cents = ?, status = 'placed'`, e.GetCustomerId(), e.GetTotalCents())
}

func (s summary[Tx]) OnOrderCompleted(ctx context.Context, p runtime.ProjectionTx[Tx], e *checkoutv1.OrderCompleted, rec *runtime.EventRecord) error {
	return s.update(ctx, p, rec, e.GetOrderId(), `status = 'completed'`)
}

func (s summary[Tx]) OnOrderCancelled(ctx context.Context, p runtime.ProjectionTx[Tx], e *checkoutv1.OrderCancelled, rec *runtime.EventRecord) error {
	return s.update(ctx, p, rec, e.GetOrderId(), `status = ?`, "cancelled: "+e.GetReason())
}

func (s summary[Tx]) OnPaymentCaptured(ctx context.Context, p runtime.ProjectionTx[Tx], e *checkoutv1.PaymentCaptured, rec *runtime.EventRecord) error {
	return s.update(ctx, p, rec, e.GetOrderId(), `paid_cents = paid_cents + ?`, e.GetAmountCents())
}

func (s summary[Tx]) OnPaymentRefunded(ctx context.Context, p runtime.ProjectionTx[Tx], e *checkoutv1.PaymentRefunded, rec *runtime.EventRecord) error {
	// The refund gives back what was paid.
	return s.update(ctx, p, rec, e.GetOrderId(), `refunded_cents = refunded_cents + paid_cents`)
}

func (s summary[Tx]) OnShipmentScheduled(ctx context.Context, p runtime.ProjectionTx[Tx], e *checkoutv1.ShipmentScheduled, rec *runtime.EventRecord) error {
	return s.update(ctx, p, rec, e.GetOrderId(), `tracking = ?`, e.GetTracking())
}

// summaryRow is one row of the read model.
type summaryRow struct {
	OrderID, CustomerID, Status, Tracking        string
	TotalCents, PaidCents, RefundedCents, Events int64
}

func (r summaryRow) String() string {
	s := fmt.Sprintf("%-8s %-6s total %6d paid %6d refunded %6d  %s", r.OrderID, r.CustomerID, r.TotalCents, r.PaidCents, r.RefundedCents, r.Status)
	if r.Tracking != "" {
		s += " (" + r.Tracking + ")"
	}
	return s
}

const selectSummary = `SELECT order_id, customer_id, status, tracking, total_cents, paid_cents, refunded_cents, events FROM ` + summaryView + ` ORDER BY order_id`
