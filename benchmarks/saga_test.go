package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/protoc-gen-eda/eda/golden/saga"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/mem"
	"github.com/protoc-gen-eda/eda/runtime/memstore"
	"github.com/protoc-gen-eda/eda/runtime/sqlite"
)

// The saga benchmarks run golden/saga's two-step booking saga (book a room,
// then a seat) end to end: a TripRequested published on the mem bus, the
// saga's transitions appended to the store with their commands in its
// outbox, a Relay publishing them, command handlers answering at once with
// RoomBooked and SeatBooked. One op is a batch of sagaBatch sagas started
// together and waited for until all completed; the metric is sagas/s.
//
// The baseline ("choreography") is what a careful engineer writes without
// the saga runtime, on the same generated handlers, bus, store and relay:
// one handler per event that reads the trip's stream, checks its version,
// and appends the next state record with the next command in the outbox.
// Same appends, same publishes; no deterministic ids, no persisted control
// fields, no timeouts (the benchmark's saga has its timeouts removed, so
// both do the same work).

// sagaBatch is how many sagas one op runs at once: enough to keep the
// store, the relay and both cores busy.
const sagaBatch = 100

// sagaWait is how often a batch checks whether its sagas completed.
const sagaWait = 100 * time.Microsecond

// Message types the baseline sends, as the generated code declares them.
var (
	bookRoomType = &runtime.MessageType{Name: saga.BookRoomCommandType, Version: 1, Topic: saga.HotelCommandsTopic, AggregateType: saga.HotelAggregateType, Command: true}
	bookSeatType = &runtime.MessageType{Name: saga.BookSeatCommandType, Version: 1, Topic: saga.FlightCommandsTopic, AggregateType: saga.FlightAggregateType, Command: true}
)

// booking is the saga's behaviour: the state keeps the trip and what the
// replies said.
type booking struct{}

func (booking) Start(_ context.Context, e *saga.TripRequested) (*saga.BookingSaga, error) {
	return &saga.BookingSaga{TripId: e.GetTripId(), Traveller: e.GetTraveller(), BudgetCents: e.GetBudgetCents()}, nil
}

func (booking) Room(_ context.Context, s *saga.BookingSaga) (*saga.BookRoom, error) {
	return &saga.BookRoom{TripId: s.GetTripId(), Traveller: s.GetTraveller()}, nil
}

func (booking) CompensateRoom(_ context.Context, s *saga.BookingSaga) (*saga.CancelRoom, error) {
	return &saga.CancelRoom{TripId: s.GetTripId(), BookingRef: s.GetBookingRef()}, nil
}

func (booking) Seat(_ context.Context, s *saga.BookingSaga) (*saga.BookSeat, error) {
	return &saga.BookSeat{TripId: s.GetTripId(), Traveller: s.GetTraveller(), BudgetCents: s.GetBudgetCents()}, nil
}

func (booking) OnRoomBooked(_ context.Context, s *saga.BookingSaga, e *saga.RoomBooked) error {
	s.BookingRef = e.GetBookingRef()
	return nil
}

func (booking) OnRoomUnavailable(context.Context, *saga.BookingSaga, *saga.RoomUnavailable) error {
	return nil
}

func (booking) OnSeatBooked(_ context.Context, s *saga.BookingSaga, e *saga.SeatBooked) error {
	s.Seat = e.GetSeat()
	return nil
}

func (booking) OnSeatUnavailable(context.Context, *saga.BookingSaga, *saga.SeatUnavailable) error {
	return nil
}

// services are the instant command handlers: each command is answered
// with its success event.
type services struct {
	hotel  *saga.HotelEventPublisher
	flight *saga.FlightEventPublisher
}

func (s services) HandleBookRoom(ctx context.Context, c *saga.BookRoom) error {
	return s.hotel.PublishRoomBooked(ctx, &saga.RoomBooked{TripId: c.GetTripId(), BookingRef: "ref-" + c.GetTripId()})
}

func (services) HandleCancelRoom(context.Context, *saga.CancelRoom) error { return nil }

func (s services) HandleBookSeat(ctx context.Context, c *saga.BookSeat) error {
	return s.flight.PublishSeatBooked(ctx, &saga.SeatBooked{TripId: c.GetTripId(), Seat: "12A"})
}

// choreography is the baseline: the saga's logic written by hand as three
// event handlers over the store.
type choreography struct {
	saga.UnimplementedTripEventHandler
	saga.UnimplementedHotelEventHandler
	saga.UnimplementedFlightEventHandler
	store     runtime.EventStore
	pub       *runtime.Publisher
	completed atomic.Uint64
}

const choreographyStream = "bench.booking"

func (c *choreography) HandleTripRequested(ctx context.Context, e *saga.TripRequested) error {
	state := &saga.BookingSaga{TripId: e.GetTripId(), Traveller: e.GetTraveller(), BudgetCents: e.GetBudgetCents()}
	return c.save(ctx, state, 0, "room", bookRoomType, &saga.BookRoom{TripId: state.GetTripId(), Traveller: state.GetTraveller()})
}

func (c *choreography) HandleRoomBooked(ctx context.Context, e *saga.RoomBooked) error {
	state, version, err := c.load(ctx, e.GetTripId())
	if err != nil || version != 1 {
		return err // a redelivery: the trip has moved on
	}
	state.BookingRef = e.GetBookingRef()
	return c.save(ctx, state, version, "seat", bookSeatType, &saga.BookSeat{TripId: state.GetTripId(), Traveller: state.GetTraveller(), BudgetCents: state.GetBudgetCents()})
}

func (c *choreography) HandleSeatBooked(ctx context.Context, e *saga.SeatBooked) error {
	state, version, err := c.load(ctx, e.GetTripId())
	if err != nil || version != 2 {
		return err
	}
	state.Seat = e.GetSeat()
	if err := c.save(ctx, state, version, "completed", nil, nil); err != nil {
		return err
	}
	c.completed.Add(1)
	return nil
}

// load reads the trip's last state record and the stream's version.
func (c *choreography) load(ctx context.Context, id string) (*saga.BookingSaga, uint64, error) {
	state := new(saga.BookingSaga)
	var version uint64
	err := c.store.ReadStream(ctx, runtime.StreamID{Type: choreographyStream, ID: id}, 0, func(rec *runtime.EventRecord) error {
		version = rec.Sequence
		return proto.Unmarshal(rec.Data, state)
	})
	return state, version, err
}

// save appends the trip's next state record with a command, if any, in the
// outbox.
func (c *choreography) save(ctx context.Context, state *saga.BookingSaga, version uint64, status string, t *runtime.MessageType, cmd proto.Message) error {
	data, err := proto.Marshal(state)
	if err != nil {
		return err
	}
	id, err := newEventID()
	if err != nil {
		return err
	}
	md, err := runtime.EncodeMetadata(map[string]string{runtime.MetaSource: "bench", "status": status})
	if err != nil {
		return err
	}
	req := runtime.AppendRequest{
		Stream:          runtime.StreamID{Type: choreographyStream, ID: state.GetTripId()},
		ExpectedVersion: version,
		Events:          []runtime.EventRecord{{ID: id, Type: "golden.saga.BookingSaga", SchemaVersion: 1, ContentType: runtime.ContentTypeProtobuf, Data: data, Metadata: md}},
	}
	if t != nil {
		msg, err := c.pub.NewMessage(ctx, t, runtime.Outgoing{Subject: state.GetTripId(), Message: cmd})
		if err != nil {
			return err
		}
		msgMD, err := runtime.EncodeMetadata(msg.Metadata)
		if err != nil {
			return err
		}
		req.Outbox = []runtime.OutboxMessage{{Topic: t.Topic, UUID: msg.UUID, Metadata: msgMD, Payload: msg.Payload}}
	}
	_, err = c.store.Append(ctx, req)
	return err
}

var eventIDs atomic.Uint64

// newEventID returns a unique event id: the baseline needs no more.
func newEventID() (string, error) {
	return "ev-" + strconv.FormatUint(eventIDs.Add(1), 10), nil
}

// sagaEnv is one service running one variant on its own store and bus.
type sagaEnv struct {
	trips     *saga.TripEventPublisher
	completed func() uint64
	started   int
	stop      func()
}

// newSagaEnv starts the runtime saga (or the choreography baseline) on
// store.
func newSagaEnv(b *testing.B, store runtime.EventStore, baseline bool) *sagaEnv {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	bus, err := mem.New(mem.Config{})
	if err != nil {
		b.Fatal(err)
	}
	router, err := runtime.NewRouter(runtime.RouterConfig{Subscriber: bus, Publisher: bus})
	if err != nil {
		b.Fatal(err)
	}
	pub, err := runtime.NewPublisher(bus, runtime.PublisherConfig{Source: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	svc := services{hotel: saga.NewHotelEventPublisher(pub), flight: saga.NewFlightEventPublisher(pub)}
	if err := errors.Join(saga.RegisterHotelCommandHandler(router, svc), saga.RegisterFlightCommandHandler(router, svc)); err != nil {
		b.Fatal(err)
	}
	env := &sagaEnv{trips: saga.NewTripEventPublisher(pub)}
	if baseline {
		c := &choreography{store: store, pub: pub}
		if err := errors.Join(saga.RegisterTripEventHandler(router, c), saga.RegisterHotelEventHandler(router, c), saga.RegisterFlightEventHandler(router, c)); err != nil {
			b.Fatal(err)
		}
		env.completed = c.completed.Load
	} else {
		spec := saga.BookingSagaSpec(booking{})
		// No timeouts, so that both variants do the same work.
		spec.Timeout = 0
		for i := range spec.Steps {
			spec.Steps[i].Timeout = 0
		}
		s, err := runtime.NewSaga(spec, runtime.SagaConfig{Store: store, Source: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Register(router); err != nil {
			b.Fatal(err)
		}
		env.completed = func() uint64 { return s.Stats().Completed }
	}
	relay, err := runtime.NewRelay(store, runtime.RelayConfig{Publisher: bus})
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = router.Run(ctx) })
	<-router.Running()
	wg.Go(func() { _ = relay.Run(ctx) })
	env.stop = func() {
		cancel()
		_ = router.Close()
		wg.Wait()
		_ = bus.Close()
	}
	b.Cleanup(env.stop)
	return env
}

// runBatch starts n sagas and waits until they completed.
func (e *sagaEnv) runBatch(b *testing.B, n int) {
	ctx := context.Background()
	for range n {
		e.started++
		id := "trip-" + strconv.Itoa(e.started)
		if err := e.trips.PublishTripRequested(ctx, &saga.TripRequested{TripId: id, Traveller: "ada", BudgetCents: 50_000}); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for e.completed() < uint64(e.started) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d sagas completed after a minute", e.completed(), e.started)
		}
		time.Sleep(sagaWait)
	}
}

// benchSagas runs the saga runtime and the baseline, each on a store
// open returns, and reports sagas/s and the ratio.
func benchSagas(b *testing.B, open func(b *testing.B) runtime.EventStore) {
	b.Run("saga", func(b *testing.B) {
		env := newSagaEnv(b, open(b), false)
		for b.Loop() {
			env.runBatch(b, sagaBatch)
		}
		b.ReportMetric(float64(sagaBatch*b.N)/b.Elapsed().Seconds(), "sagas/s")
	})
	b.Run("choreography", func(b *testing.B) {
		env := newSagaEnv(b, open(b), true)
		for b.Loop() {
			env.runBatch(b, sagaBatch)
		}
		b.ReportMetric(float64(sagaBatch*b.N)/b.Elapsed().Seconds(), "sagas/s")
	})
	b.Run("interleaved", func(b *testing.B) {
		gen, base := newSagaEnv(b, open(b), false), newSagaEnv(b, open(b), true)
		interleave(b, func() { gen.runBatch(b, sagaBatch) }, func() { base.runBatch(b, sagaBatch) })
	})
}

// BenchmarkSagaMemory: the saga runtime against hand-written choreography
// on the in-memory store and bus.
func BenchmarkSagaMemory(b *testing.B) {
	benchSagas(b, func(*testing.B) runtime.EventStore { return memstore.New() })
}

// BenchmarkSagaSQLiteMemory is the same on SQLite ":memory:".
func BenchmarkSagaSQLiteMemory(b *testing.B) {
	benchSagas(b, func(b *testing.B) runtime.EventStore { return openSQLite(b, ":memory:") })
}

// BenchmarkSagaSQLiteFile is the same on a SQLite file, the embedded
// default.
func BenchmarkSagaSQLiteFile(b *testing.B) {
	benchSagas(b, func(b *testing.B) runtime.EventStore {
		return openSQLite(b, filepath.Join(b.TempDir(), fmt.Sprintf("sagas-%d.db", time.Now().UnixNano())))
	})
}

// BenchmarkSagaPostgres is the same on PostgreSQL, each store in a fresh
// schema; skipped unless EDA_TEST_POSTGRES_URL is set.
func BenchmarkSagaPostgres(b *testing.B) {
	benchSagas(b, func(b *testing.B) runtime.EventStore {
		store, _, _ := openPostgres(b)
		return store
	})
}

func openSQLite(b *testing.B, path string) runtime.EventStore {
	b.Helper()
	store, err := sqlite.Open(context.Background(), path, sqlite.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	return store
}
