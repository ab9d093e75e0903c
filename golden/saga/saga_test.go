package saga

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/mem"
	"github.com/protoc-gen-eda/eda/runtime/memstore"
)

// booking is the saga's behaviour.
type booking struct{}

var _ BookingSagaBehaviour = booking{}

func (booking) Start(_ context.Context, e *TripRequested) (*BookingSaga, error) {
	return &BookingSaga{TripId: e.GetTripId(), Traveller: e.GetTraveller(), BudgetCents: e.GetBudgetCents()}, nil
}

func (booking) Room(_ context.Context, s *BookingSaga) (*BookRoom, error) {
	return &BookRoom{TripId: s.GetTripId(), Traveller: s.GetTraveller()}, nil
}

func (booking) CompensateRoom(_ context.Context, s *BookingSaga) (*CancelRoom, error) {
	return &CancelRoom{TripId: s.GetTripId(), BookingRef: s.GetBookingRef()}, nil
}

func (booking) Seat(_ context.Context, s *BookingSaga) (*BookSeat, error) {
	return &BookSeat{TripId: s.GetTripId(), Traveller: s.GetTraveller(), BudgetCents: s.GetBudgetCents()}, nil
}

func (booking) OnRoomBooked(_ context.Context, s *BookingSaga, e *RoomBooked) error {
	s.BookingRef = e.GetBookingRef()
	return nil
}

func (booking) OnRoomUnavailable(context.Context, *BookingSaga, *RoomUnavailable) error { return nil }

func (booking) OnSeatBooked(_ context.Context, s *BookingSaga, e *SeatBooked) error {
	s.Seat = e.GetSeat()
	return nil
}

func (booking) OnSeatUnavailable(context.Context, *BookingSaga, *SeatUnavailable) error { return nil }

// services are the hotel and the airline: they record the commands they get
// and answer by publishing events. The airline has no seat under a budget
// of 100 and never answers for a budget of 0.
type services struct {
	hotel  *HotelEventPublisher
	flight *FlightEventPublisher

	mu       sync.Mutex
	commands []string
}

func (s *services) record(c string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commands = append(s.commands, c)
}

func (s *services) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.commands)
}

func (s *services) HandleBookRoom(ctx context.Context, c *BookRoom) error {
	s.record("BookRoom " + c.GetTripId())
	return s.hotel.PublishRoomBooked(ctx, &RoomBooked{TripId: c.GetTripId(), BookingRef: "ref-" + c.GetTripId()})
}

func (s *services) HandleCancelRoom(_ context.Context, c *CancelRoom) error {
	s.record("CancelRoom " + c.GetBookingRef())
	return nil
}

type airline struct{ *services }

func (a airline) HandleBookSeat(ctx context.Context, c *BookSeat) error {
	a.record("BookSeat " + c.GetTripId())
	switch {
	case c.GetBudgetCents() == 0:
		return nil
	case c.GetBudgetCents() < 100:
		return a.flight.PublishSeatUnavailable(ctx, &SeatUnavailable{TripId: c.GetTripId()})
	}
	return a.flight.PublishSeatBooked(ctx, &SeatBooked{TripId: c.GetTripId(), Seat: "12A"})
}

func TestBookingSaga(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	store := memstore.New()
	bus, err := mem.New(mem.Config{})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := runtime.NewPublisher(bus, runtime.PublisherConfig{Source: "golden"})
	if err != nil {
		t.Fatal(err)
	}
	router, err := runtime.NewRouter(runtime.RouterConfig{Subscriber: bus, Publisher: bus})
	if err != nil {
		t.Fatal(err)
	}
	svc := &services{hotel: NewHotelEventPublisher(pub), flight: NewFlightEventPublisher(pub)}
	if err := RegisterHotelCommandHandler(router, svc); err != nil {
		t.Fatal(err)
	}
	if err := RegisterFlightCommandHandler(router, airline{svc}); err != nil {
		t.Fatal(err)
	}
	saga, err := NewBookingSaga(booking{}, runtime.SagaConfig{Store: store, Source: "golden"})
	if err != nil {
		t.Fatal(err)
	}
	if err := saga.Register(router); err != nil {
		t.Fatal(err)
	}
	relay, err := runtime.NewRelay(store, runtime.RelayConfig{Publisher: bus, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go router.Run(ctx)
	<-router.Running()
	go relay.Run(ctx)

	trips := NewTripEventPublisher(pub)
	for _, trip := range []*TripRequested{
		{TripId: "ok", Traveller: "ann", BudgetCents: 500},
		{TripId: "full", Traveller: "ben", BudgetCents: 50},
		{TripId: "silent", Traveller: "cy", BudgetCents: 0},
	} {
		if err := trips.PublishTripRequested(ctx, trip); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]struct {
		status  runtime.SagaStatus
		failure string
	}{
		"ok":     {runtime.SagaCompleted, ""},
		"full":   {runtime.SagaCompensated, "golden.saga.SeatUnavailable"},
		"silent": {runtime.SagaCompensated, "timeout of step seat"},
	}
	for id, w := range want {
		var inst runtime.SagaInstance[*BookingSaga]
		for {
			inst, err = saga.Load(ctx, id)
			if err == nil && inst.Status != runtime.SagaRunning {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("instance %s did not finish: %+v, %v", id, inst, err)
			case <-time.After(10 * time.Millisecond):
			}
		}
		if inst.Status != w.status || inst.Failure != w.failure {
			t.Errorf("instance %s ended %s after %q, want %s after %q", id, inst.Status, inst.Failure, w.status, w.failure)
		}
	}
	inst, _ := saga.Load(ctx, "ok")
	if inst.State.GetSeat() != "12A" || inst.State.GetBookingRef() != "ref-ok" {
		t.Errorf("completed state = %v, want the seat and booking ref recorded", inst.State)
	}
	// Each command once, and the compensations of the failed trips.
	deadline := time.After(5 * time.Second)
	for {
		got := svc.seen()
		slices.Sort(got)
		wantCmds := []string{"BookRoom full", "BookRoom ok", "BookRoom silent", "BookSeat full", "BookSeat ok", "BookSeat silent", "CancelRoom ref-full", "CancelRoom ref-silent"}
		if slices.Equal(got, wantCmds) {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("commands handled:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantCmds, "\n"))
		case <-time.After(10 * time.Millisecond):
		}
	}
	if st := saga.Stats(); st.Started != 3 || st.Completed != 1 || st.Compensated != 2 {
		t.Errorf("stats = %+v", st)
	}
}
