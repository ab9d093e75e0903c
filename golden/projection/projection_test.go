package projection

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/memstore"
	"github.com/protoc-gen-eda/eda/runtime/sqlite"
)

// order folds nothing: the projection reads the events, the aggregate needs
// no state here.
type order struct{}

func (order) ApplyOrderPlaced(*Order, *OrderPlaced)       {}
func (order) ApplyOrderShipped(*Order, *OrderShipped)     {}
func (order) ApplyOrderCancelled(*Order, *OrderCancelled) {}

// memTotals is the read model in memory: the projection's handler, through
// the generated interface.
type memTotals struct {
	generations []int
	ordered     map[string]int64
	shipped     map[string]int64
	customerOf  map[string]string
}

var _ CustomerTotalsProjection[memstore.NoTx] = (*memTotals)(nil)

func (m *memTotals) Setup(_ context.Context, p runtime.ProjectionTx[memstore.NoTx]) error {
	m.generations = append(m.generations, p.Generation)
	return nil
}

func (m *memTotals) Activate(context.Context, runtime.ProjectionTx[memstore.NoTx], int) error {
	return nil
}

func (m *memTotals) OnOrderPlaced(_ context.Context, _ runtime.ProjectionTx[memstore.NoTx], e *OrderPlaced, rec *runtime.EventRecord) error {
	if rec.Stream.ID != e.GetOrderId() {
		return fmt.Errorf("record of stream %s carries order %s", rec.Stream, e.GetOrderId())
	}
	m.customerOf[e.GetOrderId()] = e.GetCustomer()
	m.ordered[e.GetCustomer()] += e.GetTotalCents()
	return nil
}

func (m *memTotals) OnOrderShipped(_ context.Context, _ runtime.ProjectionTx[memstore.NoTx], e *OrderShipped, _ *runtime.EventRecord) error {
	m.shipped[m.customerOf[e.GetOrderId()]]++
	return nil
}

func saveOrders(t *testing.T, store runtime.EventStore) {
	t.Helper()
	repo, err := NewOrderRepository(store, order{}, runtime.RepositoryConfig{Source: "golden"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for id, events := range map[string][]OrderEvent{
		"o1": {&OrderPlaced{OrderId: "o1", Customer: "ann", TotalCents: 100}, &OrderShipped{OrderId: "o1"}},
		"o2": {&OrderPlaced{OrderId: "o2", Customer: "ann", TotalCents: 50}, &OrderCancelled{OrderId: "o2"}},
		"o3": {&OrderPlaced{OrderId: "o3", Customer: "ben", TotalCents: 7}},
	} {
		if _, err := repo.Save(ctx, id, nil, 0, events...); err != nil {
			t.Fatal(err)
		}
	}
}

func TestProjectionInMemory(t *testing.T) {
	store := memstore.New()
	saveOrders(t, store)
	h := &memTotals{ordered: map[string]int64{}, shipped: map[string]int64{}, customerOf: map[string]string{}}
	p, err := NewCustomerTotalsProjection(store, memstore.NewProjectionStore(), h, runtime.ProjectionConfig{BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	n, err := p.CatchUp(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("CatchUp applied %d events, want 4 (3 placed, 1 shipped)", n)
	}
	if h.ordered["ann"] != 150 || h.ordered["ben"] != 7 || h.shipped["ann"] != 1 || h.shipped["ben"] != 0 {
		t.Errorf("totals = %v, shipped = %v", h.ordered, h.shipped)
	}
	if st := p.Stats(); st.Applied != 4 || st.Ignored != 1 || st.Skipped != 0 {
		t.Errorf("stats = %+v, want 4 applied and the cancellation ignored", st)
	}
	if len(h.generations) != 1 || h.generations[0] != 1 {
		t.Errorf("Setup ran for generations %v, want [1]", h.generations)
	}
	// Caught up: a second pass applies nothing.
	if n, err := p.CatchUp(context.Background()); err != nil || n != 0 {
		t.Errorf("second CatchUp = %d, %v; want 0, nil", n, err)
	}
}

// sqlTotals keeps the read model in SQLite, written in the projection's
// transaction.
type sqlTotals struct{}

func (sqlTotals) Setup(ctx context.Context, p runtime.ProjectionTx[*sql.Tx]) error {
	_, err := p.Tx.ExecContext(ctx, `CREATE TABLE `+p.Table("totals")+` (customer TEXT PRIMARY KEY, ordered INTEGER NOT NULL DEFAULT 0)`)
	return err
}

func (sqlTotals) Activate(ctx context.Context, p runtime.ProjectionTx[*sql.Tx], _ int) error {
	return sqlite.ReplaceView(ctx, p.Tx, "totals", p.Table("totals"))
}

func (sqlTotals) OnOrderPlaced(ctx context.Context, p runtime.ProjectionTx[*sql.Tx], e *OrderPlaced, _ *runtime.EventRecord) error {
	_, err := p.Tx.ExecContext(ctx, `INSERT INTO `+p.Table("totals")+` (customer, ordered) VALUES (?, ?)
		ON CONFLICT (customer) DO UPDATE SET ordered = ordered + excluded.ordered`, e.GetCustomer(), e.GetTotalCents())
	return err
}

func (sqlTotals) OnOrderShipped(context.Context, runtime.ProjectionTx[*sql.Tx], *OrderShipped, *runtime.EventRecord) error {
	return nil
}

func TestProjectionSQLiteRebuild(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"), sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	saveOrders(t, store)
	p, err := NewCustomerTotalsProjection(store, store.Projections(), sqlTotals{}, runtime.ProjectionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	read := func() int64 {
		var ann int64
		if err := store.DB().QueryRowContext(ctx, `SELECT ordered FROM totals WHERE customer = 'ann'`).Scan(&ann); err != nil {
			t.Fatal(err)
		}
		return ann
	}
	if got := read(); got != 150 {
		t.Fatalf("ann ordered %d, want 150", got)
	}
	if err := p.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != 150 {
		t.Errorf("after the rebuild ann ordered %d, want 150 (once, in the new generation)", got)
	}
	if g := p.Stats().Generation; g != 2 {
		t.Errorf("generation after Rebuild = %d, want 2", g)
	}
}
