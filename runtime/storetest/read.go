package storetest

import (
	"errors"
	"testing"

	"github.com/protoc-gen-eda/eda/runtime"
)

var readTests = []test{
	{"StreamAfter", testReadStreamAfter},
	{"StreamMissing", testReadStreamMissing},
	{"StreamOnlyItsEvents", testReadStreamOnlyItsEvents},
	{"AllOrder", testReadAllOrder},
	{"AllLimitAndAfter", testReadAllLimitAndAfter},
	{"FnErrorStopsRead", testReadFnError},
	{"SharedHandleSeesWrites", testReadShared},
}

// testReadStreamAfter reads a stream from several sequences.
func testReadStreamAfter(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	stream := newStream()
	evs := newEvents(5)
	mustAppend(t, ctx, s, runtime.AppendRequest{Stream: stream, Events: evs})
	for _, after := range []uint64{0, 1, 2, 4, 5, 6, 1000, runtime.AnyVersion} {
		got := readStream(t, ctx, s, stream, after)
		want := uint64(0)
		if after < 5 {
			want = 5 - after
		}
		if uint64(len(got)) != want {
			t.Errorf("ReadStream after %d returned %d events, want %d", after, len(got), want)
			continue
		}
		for i := range got {
			checkEvent(t, got[i], evs[after+uint64(i)], stream, after+uint64(i)+1)
		}
	}
}

// testReadStreamMissing reads a stream that does not exist: fn is not
// called and the error is nil.
func testReadStreamMissing(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	mustAppend(t, ctx, s, runtime.AppendRequest{Stream: newStream(), Events: newEvents(2)})
	for _, after := range []uint64{0, 3} {
		calls := 0
		err := s.ReadStream(ctx, newStream(), after, func(*runtime.EventRecord) error { calls++; return nil })
		if err != nil || calls != 0 {
			t.Errorf("ReadStream of a missing stream after %d: %d calls, err %v; want no calls and nil", after, calls, err)
		}
	}
}

// testReadStreamOnlyItsEvents interleaves appends to three streams: each
// stream reads back only its own events, in sequence order.
func testReadStreamOnlyItsEvents(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	streams := []runtime.StreamID{newStream(), newStream(), newStream()}
	want := make([][]runtime.EventRecord, len(streams))
	const rounds = 4
	for r := 0; r < rounds; r++ {
		for i, st := range streams {
			evs := newEvents(i + 1)
			mustAppend(t, ctx, s, runtime.AppendRequest{Stream: st, ExpectedVersion: uint64(len(want[i])), Events: evs})
			want[i] = append(want[i], evs...)
		}
	}
	for i, st := range streams {
		checkStream(t, ctx, s, st, want[i])
		checkIncreasing(t, "ReadStream "+st.String(), eventPositions(readStream(t, ctx, s, st, 0)))
	}
}

// testReadAllOrder checks that ReadAll returns every event once, in
// increasing positions that match the append results.
func testReadAllOrder(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	type appended struct {
		stream runtime.StreamID
		evs    []runtime.EventRecord
		res    runtime.AppendResult
	}
	var log []appended
	a, c := newStream(), newStream()
	for i, st := range []runtime.StreamID{a, c, a, c, a} {
		evs := newEvents(i%3 + 1)
		res := mustAppend(t, ctx, s, runtime.AppendRequest{Stream: st, ExpectedVersion: runtime.AnyVersion, Events: evs})
		log = append(log, appended{st, evs, res})
	}
	all := readAll(t, ctx, s, 0, 0)
	checkIncreasing(t, "ReadAll", eventPositions(all))
	i := 0
	versions := map[runtime.StreamID]uint64{}
	for _, ap := range log {
		for j, ev := range ap.evs {
			if i >= len(all) {
				t.Fatalf("ReadAll returned %d events, want more", len(all))
			}
			versions[ap.stream]++
			checkEvent(t, all[i], ev, ap.stream, versions[ap.stream])
			if j == 0 && all[i].Position != ap.res.FirstPosition {
				t.Errorf("event %s at position %d, AppendResult.FirstPosition %d", ev.ID, all[i].Position, ap.res.FirstPosition)
			}
			if j == len(ap.evs)-1 && all[i].Position != ap.res.LastPosition {
				t.Errorf("event %s at position %d, AppendResult.LastPosition %d", ev.ID, all[i].Position, ap.res.LastPosition)
			}
			i++
		}
	}
	if i != len(all) {
		t.Errorf("ReadAll returned %d events, %d were appended", len(all), i)
	}
}

// testReadAllLimitAndAfter pages through the global log.
func testReadAllLimitAndAfter(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	const total = 10
	streams := []runtime.StreamID{newStream(), newStream(), newStream()}
	for i := 0; i < total; i++ {
		mustAppend(t, ctx, s, runtime.AppendRequest{Stream: streams[i%3], ExpectedVersion: runtime.AnyVersion, Events: newEvents(1)})
	}
	all := readAll(t, ctx, s, 0, 0)
	if len(all) != total {
		t.Fatalf("ReadAll returned %d events, want %d", len(all), total)
	}
	if got := readAll(t, ctx, s, 0, -1); len(got) != total {
		t.Errorf("ReadAll with limit -1 returned %d events, want all %d", len(got), total)
	}
	if got := readAll(t, ctx, s, 0, 3); len(got) != 3 || got[0].ID != all[0].ID || got[2].ID != all[2].ID {
		t.Errorf("ReadAll limit 3 returned %d events, want the first 3", len(got))
	}
	// after is exclusive: reading after the third event's position starts
	// at the fourth.
	if got := readAll(t, ctx, s, all[2].Position, 4); len(got) != 4 || got[0].ID != all[3].ID || got[3].ID != all[6].ID {
		t.Errorf("ReadAll after position %d limit 4 returned %d events, want events 4..7", all[2].Position, len(got))
	}
	if got := readAll(t, ctx, s, all[total-1].Position, 0); len(got) != 0 {
		t.Errorf("ReadAll after the last position returned %d events", len(got))
	}
	if got := readAll(t, ctx, s, all[total-1].Position+1000, 5); len(got) != 0 {
		t.Errorf("ReadAll beyond the last position returned %d events", len(got))
	}
	// Paging by the last seen position visits every event once.
	var paged []string
	for after := uint64(0); ; {
		page := readAll(t, ctx, s, after, 3)
		if len(page) == 0 {
			break
		}
		if len(page) > 3 {
			t.Fatalf("page of %d events with limit 3", len(page))
		}
		for _, e := range page {
			paged = append(paged, e.ID)
		}
		after = page[len(page)-1].Position
	}
	if len(paged) != total {
		t.Fatalf("paging returned %d events, want %d", len(paged), total)
	}
	for i := range paged {
		if paged[i] != all[i].ID {
			t.Errorf("page event %d is %s, want %s", i, paged[i], all[i].ID)
		}
	}
}

// testReadFnError checks that fn's error stops a read and is returned.
func testReadFnError(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	stream := newStream()
	mustAppend(t, ctx, s, runtime.AppendRequest{Stream: stream, Events: newEvents(5)})
	stop := errors.New("storetest: stop")
	reads := map[string]func(fn func(*runtime.EventRecord) error) error{
		"ReadStream": func(fn func(*runtime.EventRecord) error) error { return s.ReadStream(ctx, stream, 0, fn) },
		"ReadAll":    func(fn func(*runtime.EventRecord) error) error { return s.ReadAll(ctx, 0, 0, fn) },
	}
	for name, read := range reads {
		t.Run(name, func(t *testing.T) {
			calls := 0
			err := read(func(*runtime.EventRecord) error {
				calls++
				if calls == 2 {
					return stop
				}
				return nil
			})
			if !errors.Is(err, stop) {
				t.Errorf("%s returned %v, want fn's error", name, err)
			}
			if calls != 2 {
				t.Errorf("fn called %d times, want 2: the read must stop at fn's error", calls)
			}
		})
	}
}

// testReadShared checks that what one handle appends, another reads.
func testReadShared(t *testing.T, b Backend) {
	if b.Share == nil {
		t.Skip("backend has no Share")
	}
	ctx := testContext(t)
	s := open(t, b)
	s2 := share(t, b, s)
	stream := newStream()
	evs := newEvents(4)
	mustAppend(t, ctx, s, runtime.AppendRequest{Stream: stream, Events: evs[:2]})
	mustAppend(t, ctx, s2, runtime.AppendRequest{Stream: stream, ExpectedVersion: 2, Events: evs[2:]})
	checkStream(t, ctx, s, stream, evs)
	checkStream(t, ctx, s2, stream, evs)
	// The version check spans handles.
	_, err := s.Append(ctx, runtime.AppendRequest{Stream: stream, ExpectedVersion: 2, Events: newEvents(1)})
	var ce *runtime.ConcurrencyError
	if !errors.As(err, &ce) || ce.Actual != 4 {
		t.Errorf("stale append through the first handle: err = %v, want a ConcurrencyError with Actual 4", err)
	}
	if all := readAll(t, ctx, s2, 0, 0); len(all) != 4 {
		t.Errorf("ReadAll through the second handle returned %d events, want 4", len(all))
	}
}
