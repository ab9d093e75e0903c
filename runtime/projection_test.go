package runtime_test

import (
	"context"
	"errors"
	"hash/fnv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/memstore"
)

func TestProjectionConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  runtime.ProjectionConfig
		want []string // substrings of the error; none for valid
	}{
		{"zero", runtime.ProjectionConfig{}, nil},
		{"set", runtime.ProjectionConfig{BatchSize: 10, PollInterval: time.Second, Partitions: runtime.MaxProjectionPartitions, Lease: time.Minute}, nil},
		{"negative batch", runtime.ProjectionConfig{BatchSize: -1}, []string{"BatchSize is -1"}},
		{"negative poll", runtime.ProjectionConfig{PollInterval: -time.Second}, []string{"PollInterval is -1s"}},
		{"too many partitions", runtime.ProjectionConfig{Partitions: runtime.MaxProjectionPartitions + 1}, []string{"Partitions is 1025"}},
		{"negative lease", runtime.ProjectionConfig{Lease: -1}, []string{"Lease is -1ns"}},
		{"all at once", runtime.ProjectionConfig{BatchSize: -1, Partitions: -2, Lease: -1}, []string{"BatchSize", "Partitions", "Lease"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want an error mentioning %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestProjectionTxTable(t *testing.T) {
	p := runtime.ProjectionTx[memstore.NoTx]{Generation: 12}
	if got := p.Table("order_summary"); got != "order_summary_g12" {
		t.Errorf("Table = %q, want order_summary_g12", got)
	}
}

// TestProjectionPartition pins the partition function: checkpoints depend
// on it, so it must never change.
func TestProjectionPartition(t *testing.T) {
	tests := []struct {
		stream runtime.StreamID
		parts  int
		want   int
	}{
		{runtime.StreamID{Type: "shop.orders.v1.Order", ID: "order-1"}, 16, 12},
		{runtime.StreamID{Type: "shop.orders.v1.Order", ID: "order-2"}, 16, 5},
		{runtime.StreamID{Type: "shop.orders.v1.Order", ID: "order-1"}, 7, 1},
		{runtime.StreamID{Type: "a", ID: "b"}, 16, 1},
		{runtime.StreamID{Type: "a", ID: "b"}, 1, 0},
		{runtime.StreamID{Type: "a", ID: "b"}, 0, 0},
	}
	for _, tc := range tests {
		if got := runtime.ProjectionPartition(tc.stream, tc.parts); got != tc.want {
			t.Errorf("ProjectionPartition(%s, %d) = %d, want %d", tc.stream, tc.parts, got, tc.want)
		}
	}
	// It is FNV-1a of Type+"/"+ID, as documented.
	for _, id := range []string{"x", "order-9", "ünïcode", strings.Repeat("z", 300)} {
		s := runtime.StreamID{Type: "t.T", ID: id}
		h := fnv.New32a()
		h.Write([]byte(s.Type + "/" + s.ID))
		if got, want := runtime.ProjectionPartition(s, 13), int(h.Sum32()%13); got != want {
			t.Errorf("ProjectionPartition(%s, 13) = %d, want FNV-1a's %d", s, got, want)
		}
	}
}

var (
	openedT = &runtime.MessageType{Name: "test.Opened", Version: 1}
	amountT = &runtime.MessageType{Name: "test.Amount", Aliases: []string{"test.OldAmount"}}
)

// sums is a read model in memory: the sum of amounts per stream.
type sums struct {
	mu     sync.Mutex
	byID   map[string]int64
	events int
}

func (s *sums) spec(name string) runtime.ProjectionSpec[memstore.NoTx] {
	return runtime.ProjectionSpec[memstore.NoTx]{
		Name: name,
		Routes: []runtime.ProjectionRoute[memstore.NoTx]{
			runtime.Project[memstore.NoTx, wrapperspb.Int64Value](amountT, func(_ context.Context, _ runtime.ProjectionTx[memstore.NoTx], e *wrapperspb.Int64Value, rec *runtime.EventRecord) error {
				s.mu.Lock()
				defer s.mu.Unlock()
				s.byID[rec.Stream.ID] += e.GetValue()
				s.events++
				return nil
			}),
		},
	}
}

func newSums() *sums { return &sums{byID: map[string]int64{}} }

func appendAmounts(t *testing.T, log runtime.EventStore, stream string, amounts ...int64) {
	t.Helper()
	req := runtime.AppendRequest{Stream: runtime.StreamID{Type: "test.Account", ID: stream}, ExpectedVersion: runtime.AnyVersion}
	for _, a := range amounts {
		data, err := proto.Marshal(wrapperspb.Int64(a))
		if err != nil {
			t.Fatal(err)
		}
		req.Events = append(req.Events, runtime.EventRecord{ID: uuid.NewString(), Type: amountT.Name, SchemaVersion: 1, Data: data})
	}
	if _, err := log.Append(context.Background(), req); err != nil {
		t.Fatal(err)
	}
}

func TestNewProjectionErrors(t *testing.T) {
	store := memstore.NewProjectionStore()
	route := runtime.Project[memstore.NoTx, wrapperspb.Int64Value](amountT, nil)
	alias := runtime.Project[memstore.NoTx, wrapperspb.Int64Value](&runtime.MessageType{Name: "test.OldAmount"}, nil)
	tests := []struct {
		name  string
		log   runtime.EventStore
		store runtime.ProjectionStore[memstore.NoTx]
		spec  runtime.ProjectionSpec[memstore.NoTx]
		cfg   runtime.ProjectionConfig
		want  []string
	}{
		{"nil stores", nil, nil, runtime.ProjectionSpec[memstore.NoTx]{Name: "p"}, runtime.ProjectionConfig{}, []string{"nil EventStore", "nil ProjectionStore"}},
		{"no name", memstore.New(), store, runtime.ProjectionSpec[memstore.NoTx]{}, runtime.ProjectionConfig{}, []string{"needs a Name"}},
		{"duplicate by alias", memstore.New(), store, runtime.ProjectionSpec[memstore.NoTx]{Name: "p", Routes: []runtime.ProjectionRoute[memstore.NoTx]{route, alias}}, runtime.ProjectionConfig{}, []string{`routes event type "test.OldAmount" twice`}},
		{"route not built with Project", memstore.New(), store, runtime.ProjectionSpec[memstore.NoTx]{Name: "p", Routes: []runtime.ProjectionRoute[memstore.NoTx]{{Type: amountT}}}, runtime.ProjectionConfig{}, []string{"build routes with Project"}},
		{"bad config", memstore.New(), store, runtime.ProjectionSpec[memstore.NoTx]{Name: "p"}, runtime.ProjectionConfig{BatchSize: -1}, []string{"BatchSize"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := runtime.NewProjection(tc.log, tc.store, tc.spec, tc.cfg)
			if err == nil || p != nil {
				t.Fatalf("NewProjection = %v, %v; want an error", p, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("NewProjection error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestProjectionPartitionsPerGeneration checks that the partition count is
// the generation's: an instance configured with another count runs the
// active generation with its own, and the configured one applies from the
// next Rebuild.
func TestProjectionPartitionsPerGeneration(t *testing.T) {
	ctx := context.Background()
	log, store := memstore.New(), memstore.NewProjectionStore()
	for i := range 10 {
		appendAmounts(t, log, "acct-"+string(rune('a'+i)), int64(i), 1)
	}
	first := newSums()
	p1, err := runtime.NewProjection(log, store, first.spec("sums"), runtime.ProjectionConfig{Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := p1.CatchUp(ctx); n != 20 || err != nil {
		t.Fatalf("CatchUp = %d, %v; want 20, nil", n, err)
	}
	second := newSums()
	p2, err := runtime.NewProjection(log, store, second.spec("sums"), runtime.ProjectionConfig{Partitions: 5})
	if err != nil {
		t.Fatal(err)
	}
	appendAmounts(t, log, "acct-a", 100)
	if n, err := p2.CatchUp(ctx); n != 1 || err != nil {
		t.Fatalf("CatchUp with another partition count = %d, %v; want 1 (the generation's 2 partitions), nil", n, err)
	}
	g, err := store.Generations(ctx, "sums")
	if err != nil || g.ActivePartitions != 2 {
		t.Fatalf("Generations = %+v, %v; want 2 partitions", g, err)
	}
	if err := p2.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	g, err = store.Generations(ctx, "sums")
	if err != nil || g.Active != 2 || g.ActivePartitions != 5 {
		t.Fatalf("Generations after Rebuild = %+v, %v; want generation 2 with 5 partitions", g, err)
	}
	for part := range 5 {
		cp, err := store.Checkpoint(ctx, "sums", 2, part)
		if err != nil || cp != 21 {
			t.Errorf("checkpoint of partition %d = %d, %v; want 21", part, cp, err)
		}
	}
	// The model is not split by generation: generation 1 added 100, the
	// rebuild 0+1+100.
	if second.events != 22 || second.byID["acct-a"] != 201 {
		t.Errorf("second instance applied %d events, acct-a sums to %d; want 1+21 and 100+101", second.events, second.byID["acct-a"])
	}
}

// TestRebuildWithoutGeneration checks that Rebuild of a projection that
// never ran builds its first generation, active at once.
func TestRebuildWithoutGeneration(t *testing.T) {
	ctx := context.Background()
	log, store := memstore.New(), memstore.NewProjectionStore()
	appendAmounts(t, log, "a", 1, 2, 3)
	s := newSums()
	p, err := runtime.NewProjection(log, store, s.spec("sums"), runtime.ProjectionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	if g, _ := store.Generations(ctx, "sums"); g.Active != 1 || g.Latest != 1 || s.byID["a"] != 6 {
		t.Errorf("after Rebuild: %+v, sum %d; want generation 1 active and the sum 6", g, s.byID["a"])
	}
}

// TestRunStopsWhenStoreCloses checks that Run ends with ErrStoreClosed
// instead of retrying a closed store forever.
func TestRunStopsWhenStoreCloses(t *testing.T) {
	log := memstore.New()
	appendAmounts(t, log, "a", 1)
	p, err := runtime.NewProjection(log, memstore.NewProjectionStore(), newSums().spec("sums"), runtime.ProjectionConfig{PollInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	deadline := time.Now().Add(10 * time.Second)
	for p.Stats().Applied != 1 {
		if time.Now().After(deadline) {
			t.Fatal("Run applied nothing")
		}
		time.Sleep(time.Millisecond)
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, runtime.ErrStoreClosed) {
			t.Errorf("Run = %v after the event store closed, want ErrStoreClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the event store closed")
	}
}
