package memstore_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/memstore"
	"github.com/protoc-gen-eda/eda/runtime/projectiontest"
)

// TestProjections runs the projection suite on the in-memory stores, with
// a read model in a map: two instances share one store, as in one process.
func TestProjections(t *testing.T) {
	projectiontest.Run(t, projectiontest.Backend[memstore.NoTx]{
		Open: func(t *testing.T) projectiontest.Stores[memstore.NoTx] {
			log := memstore.New()
			t.Cleanup(func() { _ = log.Close() })
			return projectiontest.Stores[memstore.NoTx]{Log: log, Projections: memstore.NewProjectionStore(), Model: newMemModel()}
		},
	})
}

// memModel is the suite's read model in memory: one slice of rows per
// generation, and the generation readers see.
type memModel struct {
	mu     sync.Mutex
	tables map[int][]projectiontest.Row
	active int
}

func newMemModel() *memModel { return &memModel{tables: map[int][]projectiontest.Row{}} }

func (m *memModel) Setup(_ context.Context, p runtime.ProjectionTx[memstore.NoTx]) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.tables[p.Generation]; ok {
		return errors.New("generation set up twice")
	}
	m.tables[p.Generation] = nil
	return nil
}

func (m *memModel) Activate(_ context.Context, p runtime.ProjectionTx[memstore.NoTx], previous int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.active = p.Generation
	delete(m.tables, previous)
	return nil
}

func (m *memModel) Insert(_ context.Context, p runtime.ProjectionTx[memstore.NoTx], row projectiontest.Row) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	rows, ok := m.tables[p.Generation]
	if !ok {
		// Not set up, or dropped: what a missing table is in SQL.
		return errors.New("no table for this generation")
	}
	m.tables[p.Generation] = append(rows, row)
	return nil
}

func (m *memModel) Rows(context.Context) ([]projectiontest.Row, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.active == 0 {
		return nil, errors.New("no active generation")
	}
	return slices.Clone(m.tables[m.active]), nil
}
