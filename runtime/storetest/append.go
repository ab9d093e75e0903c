package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/protoc-gen-eda/eda/runtime"
)

var appendTests = []test{
	{"RoundTrip", testAppendRoundTrip},
	{"StoreSetsFields", testAppendStoreSetsFields},
	{"CopiesInput", testAppendCopiesInput},
	{"ContinuesStream", testAppendContinuesStream},
	{"AnyVersion", testAppendAnyVersion},
	{"ExpectedVersionConflict", testAppendConflict},
	{"Validation", testAppendValidation},
	{"Idempotent", testAppendIdempotent},
	{"IdempotentShared", testAppendIdempotentShared},
	{"Duplicate", testAppendDuplicate},
	{"StreamIdentity", testAppendStreamIdentity},
}

// testAppendRoundTrip appends to a new stream and reads every field back,
// including empty data and empty metadata.
func testAppendRoundTrip(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	stream := newStream()
	evs := newEvents(4)
	evs[1].Data = nil        // an event without payload, e.g. an empty proto message
	evs[2].Metadata = nil    // EncodeMetadata of an empty map
	evs[3].SchemaVersion = 7 // not every event is at version 1
	evs[3].ContentType = "application/json"
	evs[3].Data = []byte{0, 1, 2, 255} // binary, not text

	before := time.Now()
	res := mustAppend(t, ctx, s, runtime.AppendRequest{Stream: stream, ExpectedVersion: 0, Events: evs})
	after := time.Now()

	if res.Version != 4 {
		t.Errorf("AppendResult.Version = %d, want 4", res.Version)
	}
	if res.FirstPosition == 0 || res.LastPosition < res.FirstPosition+3 {
		t.Errorf("AppendResult positions = %d..%d, want 4 increasing positions from at least 1", res.FirstPosition, res.LastPosition)
	}

	got := readStream(t, ctx, s, stream, 0)
	if len(got) != len(evs) {
		t.Fatalf("ReadStream returned %d events, want %d", len(got), len(evs))
	}
	for i := range got {
		checkEvent(t, got[i], evs[i], stream, uint64(i+1))
		if at := got[i].RecordedAt; at.Before(before.Add(-clockSkew)) || at.After(after.Add(clockSkew)) {
			t.Errorf("event %d RecordedAt = %v, want the commit time (append ran from %v to %v)", i+1, at, before, after)
		}
	}
	checkIncreasing(t, "ReadStream", eventPositions(got))
	if got[0].Position != res.FirstPosition || got[3].Position != res.LastPosition {
		t.Errorf("stored positions %d..%d, AppendResult says %d..%d", got[0].Position, got[3].Position, res.FirstPosition, res.LastPosition)
	}

	all := readAll(t, ctx, s, 0, 0)
	if len(all) != len(evs) {
		t.Fatalf("ReadAll returned %d events, want %d", len(all), len(evs))
	}
	for i := range all {
		checkEvent(t, all[i], evs[i], stream, uint64(i+1))
		if all[i].Position != got[i].Position {
			t.Errorf("event %d: ReadAll position %d, ReadStream position %d", i+1, all[i].Position, got[i].Position)
		}
	}
}

// testAppendStoreSetsFields checks that the store ignores the caller's
// Stream, Sequence, Position and RecordedAt.
func testAppendStoreSetsFields(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	stream := newStream()
	evs := newEvents(2)
	for i := range evs {
		evs[i].Stream = runtime.StreamID{Type: "wrong", ID: "wrong"}
		evs[i].Sequence = 99
		evs[i].Position = 12345
		evs[i].RecordedAt = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	before := time.Now()
	res := mustAppend(t, ctx, s, runtime.AppendRequest{Stream: stream, Events: evs})
	if res.Version != 2 {
		t.Errorf("AppendResult.Version = %d, want 2", res.Version)
	}
	got := readStream(t, ctx, s, stream, 0)
	if len(got) != 2 {
		t.Fatalf("ReadStream returned %d events, want 2", len(got))
	}
	for i := range got {
		checkEvent(t, got[i], evs[i], stream, uint64(i+1))
		if got[i].RecordedAt.Before(before.Add(-clockSkew)) {
			t.Errorf("event %d RecordedAt = %v: the caller's value was kept", i+1, got[i].RecordedAt)
		}
	}
	if got[0].Position != res.FirstPosition || got[1].Position != res.LastPosition {
		t.Errorf("positions %d, %d; AppendResult says %d..%d (the caller's 12345 must be ignored)", got[0].Position, got[1].Position, res.FirstPosition, res.LastPosition)
	}
	if other := readStream(t, ctx, s, runtime.StreamID{Type: "wrong", ID: "wrong"}, 0); len(other) != 0 {
		t.Errorf("the events' own Stream field received %d events; only the request's Stream counts", len(other))
	}
}

// testAppendCopiesInput checks that the store keeps its own copy: a caller
// reusing its buffers after Append must not change stored events or
// messages.
func testAppendCopiesInput(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	stream := newStream()
	evs := newEvents(1)
	msg := newMessage("m1")
	want, wantMsg := cloneEvent(&evs[0]), cloneMessages([]runtime.OutboxMessage{msg})[0]
	mustAppend(t, ctx, s, runtime.AppendRequest{Stream: stream, Events: evs, Outbox: []runtime.OutboxMessage{msg}})
	for _, buf := range [][]byte{evs[0].Data, evs[0].Metadata, msg.Metadata, msg.Payload} {
		for i := range buf {
			buf[i] = 'X'
		}
	}
	checkStream(t, ctx, s, stream, []runtime.EventRecord{want})
	msgs := relayAll(t, ctx, s, 10)
	if len(msgs) != 1 {
		t.Fatalf("relayed %d messages, want 1", len(msgs))
	}
	checkMessage(t, msgs[0], wantMsg)
}

// testAppendContinuesStream appends twice and checks sequences continue.
func testAppendContinuesStream(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	stream := newStream()
	evs := newEvents(5)
	r1 := mustAppend(t, ctx, s, runtime.AppendRequest{Stream: stream, ExpectedVersion: 0, Events: evs[:2]})
	r2 := mustAppend(t, ctx, s, runtime.AppendRequest{Stream: stream, ExpectedVersion: 2, Events: evs[2:]})
	if r1.Version != 2 || r2.Version != 5 {
		t.Errorf("versions after appends = %d, %d; want 2, 5", r1.Version, r2.Version)
	}
	if r2.FirstPosition <= r1.LastPosition {
		t.Errorf("second append starts at position %d, first ended at %d", r2.FirstPosition, r1.LastPosition)
	}
	checkStream(t, ctx, s, stream, evs)
}

// testAppendAnyVersion appends with AnyVersion to a new and to an existing
// stream: sequences continue the stream.
func testAppendAnyVersion(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	stream := newStream()
	evs := newEvents(5)
	r1 := mustAppend(t, ctx, s, runtime.AppendRequest{Stream: stream, ExpectedVersion: runtime.AnyVersion, Events: evs[:2]})
	r2 := mustAppend(t, ctx, s, runtime.AppendRequest{Stream: stream, ExpectedVersion: runtime.AnyVersion, Events: evs[2:]})
	if r1.Version != 2 || r2.Version != 5 {
		t.Errorf("versions after AnyVersion appends = %d, %d; want 2, 5", r1.Version, r2.Version)
	}
	checkStream(t, ctx, s, stream, evs)
}

// testAppendConflict appends at wrong expected versions: each gives a
// *ConcurrencyError naming the stream, the expected and the actual version,
// and stores neither events nor outbox messages.
func testAppendConflict(t *testing.T, b Backend) {
	cases := []struct {
		name     string
		existing int    // events in the stream before
		expected uint64 // the append's expected version
	}{
		{"TooLow", 3, 1},
		{"TooHigh", 3, 5},
		{"ZeroOnExistingStream", 3, 0},
		{"NonZeroOnNewStream", 0, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			s := open(t, b)
			stream := newStream()
			existing := newEvents(tc.existing)
			if tc.existing > 0 {
				mustAppend(t, ctx, s, runtime.AppendRequest{Stream: stream, Events: existing})
			}
			rejected := newEvents(2)
			_, err := s.Append(ctx, runtime.AppendRequest{
				Stream: stream, ExpectedVersion: tc.expected, Events: rejected,
				Outbox: []runtime.OutboxMessage{newMessage("rejected")},
			})
			if !errors.Is(err, runtime.ErrConcurrency) {
				t.Fatalf("Append at version %d to a stream at %d: err = %v, want ErrConcurrency", tc.expected, tc.existing, err)
			}
			var ce *runtime.ConcurrencyError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %T %v, want a *runtime.ConcurrencyError", err, err)
			}
			if ce.Stream != stream || ce.Expected != tc.expected || ce.Actual != uint64(tc.existing) {
				t.Errorf("ConcurrencyError{Stream %v, Expected %d, Actual %d}, want {%v, %d, %d}", ce.Stream, ce.Expected, ce.Actual, stream, tc.expected, tc.existing)
			}
			checkStream(t, ctx, s, stream, existing)
			if all := readAll(t, ctx, s, 0, 0); len(all) != tc.existing {
				t.Errorf("store holds %d events, want %d", len(all), tc.existing)
			}
			if msgs := relayAll(t, ctx, s, 10); len(msgs) != 0 {
				t.Errorf("a rejected append wrote %d outbox messages", len(msgs))
			}
			// The rejected ids were not burnt: the caller retries at the
			// right version with the same events.
			mustAppend(t, ctx, s, runtime.AppendRequest{Stream: stream, ExpectedVersion: uint64(tc.existing), Events: rejected})
			checkStream(t, ctx, s, stream, append(existing, rejected...))
		})
	}
}

// testAppendValidation appends malformed requests: each returns an error
// (never a panic) and stores nothing.
func testAppendValidation(t *testing.T, b Backend) {
	stream := newStream()
	withEvent := func(i int, change func(*runtime.EventRecord)) []runtime.EventRecord {
		evs := newEvents(3)
		change(&evs[i])
		return evs
	}
	dup := newEvents(2)
	dup[1].ID = dup[0].ID
	cases := []struct {
		name string
		req  runtime.AppendRequest
	}{
		{"EmptyStreamType", runtime.AppendRequest{Stream: runtime.StreamID{ID: "order-1"}, Events: newEvents(1)}},
		{"EmptyStreamID", runtime.AppendRequest{Stream: runtime.StreamID{Type: streamType}, Events: newEvents(1)}},
		{"NilEvents", runtime.AppendRequest{Stream: stream}},
		{"NoEvents", runtime.AppendRequest{Stream: stream, Events: []runtime.EventRecord{}}},
		{"NoEventsWithOutbox", runtime.AppendRequest{Stream: stream, Outbox: []runtime.OutboxMessage{newMessage("m")}}},
		{"EmptyEventID", runtime.AppendRequest{Stream: stream, Events: withEvent(1, func(e *runtime.EventRecord) { e.ID = "" })}},
		{"EmptyEventType", runtime.AppendRequest{Stream: stream, Events: withEvent(2, func(e *runtime.EventRecord) { e.Type = "" })}},
		{"ZeroSchemaVersion", runtime.AppendRequest{Stream: stream, Events: withEvent(0, func(e *runtime.EventRecord) { e.SchemaVersion = 0 })}},
		// Ids are unique in the store, so a request cannot hold one twice.
		{"DuplicateIDInRequest", runtime.AppendRequest{Stream: stream, Events: dup}},
	}
	ctx := testContext(t)
	s := open(t, b)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Outbox = append(tc.req.Outbox, newMessage("invalid"))
			var err error
			noPanic(t, "Append", func() { _, err = s.Append(ctx, tc.req) })
			if err == nil {
				t.Fatal("Append succeeded, want a validation error")
			}
			if errors.Is(err, runtime.ErrConcurrency) {
				t.Errorf("err = %v: a malformed request is not a concurrency conflict", err)
			}
		})
	}
	checkNothingStored(t, ctx, s)
}

// testAppendIdempotent re-appends the same events: the original result comes
// back, nothing is stored and the outbox is not written again, even after
// the stream moved on (a retry after a lost reply).
func testAppendIdempotent(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	stream := newStream()
	evs := newEvents(3)
	req := runtime.AppendRequest{Stream: stream, Events: evs, Outbox: []runtime.OutboxMessage{newMessage("a"), newMessage("b")}}
	first := mustAppend(t, ctx, s, req)

	again := mustAppend(t, ctx, s, req)
	if again != first {
		t.Errorf("re-append returned %+v, want the first result %+v", again, first)
	}
	if msgs := relayAll(t, ctx, s, 10); len(msgs) != 2 {
		t.Errorf("outbox held %d messages after a re-append, want the 2 of the first append", len(msgs))
	}

	more := newEvents(2)
	mustAppend(t, ctx, s, runtime.AppendRequest{Stream: stream, ExpectedVersion: 3, Events: more})
	// The contract makes idempotency depend on the event ids alone: a retry
	// whose expected version is stale by now, or AnyVersion, still gets the
	// first result rather than a conflict or a second copy.
	for _, ev := range []uint64{0, runtime.AnyVersion} {
		req.ExpectedVersion = ev
		got, err := s.Append(ctx, req)
		if err != nil {
			t.Fatalf("re-append at expected version %d after the stream moved on: %v", ev, err)
		}
		if got != first {
			t.Errorf("re-append at expected version %d returned %+v, want the first result %+v", ev, got, first)
		}
	}
	checkStream(t, ctx, s, stream, append(evs, more...))
	if all := readAll(t, ctx, s, 0, 0); len(all) != 5 {
		t.Errorf("store holds %d events, want 5", len(all))
	}
	if msgs := relayAll(t, ctx, s, 10); len(msgs) != 0 {
		t.Errorf("re-appends wrote %d outbox messages again", len(msgs))
	}
}

// testAppendIdempotentShared re-appends through a second handle, as a
// retrying process would.
func testAppendIdempotentShared(t *testing.T, b Backend) {
	if b.Share == nil {
		t.Skip("backend has no Share")
	}
	ctx := testContext(t)
	s := open(t, b)
	s2 := share(t, b, s)
	stream := newStream()
	evs := newEvents(2)
	req := runtime.AppendRequest{Stream: stream, Events: evs, Outbox: []runtime.OutboxMessage{newMessage("a")}}
	first := mustAppend(t, ctx, s, req)
	if again := mustAppend(t, ctx, s2, req); again != first {
		t.Errorf("re-append through a second handle returned %+v, want %+v", again, first)
	}
	checkStream(t, ctx, s2, stream, evs)
	if msgs := relayAll(t, ctx, s, 10); len(msgs) != 1 {
		t.Errorf("outbox held %d messages, want 1", len(msgs))
	}
}

// testAppendDuplicate appends requests whose ids are partly stored, stored
// in another order or stored in another stream: each is ErrDuplicateEvent
// and stores nothing.
func testAppendDuplicate(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	a, other := newStream(), newStream()
	stored := newEvents(2)
	e1, e2 := stored[0], stored[1]
	mustAppend(t, ctx, s, runtime.AppendRequest{Stream: a, Events: stored})
	fresh := newEvent(3)
	cases := []struct {
		name string
		req  runtime.AppendRequest
	}{
		{"StoredThenNew", runtime.AppendRequest{Stream: a, ExpectedVersion: 2, Events: []runtime.EventRecord{e2, fresh}}},
		{"NewThenStored", runtime.AppendRequest{Stream: a, ExpectedVersion: 2, Events: []runtime.EventRecord{fresh, e1}}},
		// Every id is stored, but not in this order: not the same append.
		{"Reordered", runtime.AppendRequest{Stream: a, ExpectedVersion: runtime.AnyVersion, Events: []runtime.EventRecord{e2, e1}}},
		{"OtherStream", runtime.AppendRequest{Stream: other, ExpectedVersion: 0, Events: []runtime.EventRecord{e1}}},
		{"OtherStreamAll", runtime.AppendRequest{Stream: other, ExpectedVersion: 0, Events: []runtime.EventRecord{e1, e2}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Outbox = []runtime.OutboxMessage{newMessage("dup")}
			_, err := s.Append(ctx, tc.req)
			if !errors.Is(err, runtime.ErrDuplicateEvent) {
				t.Fatalf("err = %v, want ErrDuplicateEvent", err)
			}
		})
	}
	checkStream(t, ctx, s, a, stored)
	checkStream(t, ctx, s, other, nil)
	if msgs := relayAll(t, ctx, s, 10); len(msgs) != 0 {
		t.Errorf("rejected appends wrote %d outbox messages", len(msgs))
	}
	// The fresh event of the rejected requests was not stored, so it still
	// appends.
	mustAppend(t, ctx, s, runtime.AppendRequest{Stream: a, ExpectedVersion: 2, Events: []runtime.EventRecord{fresh}})
	checkStream(t, ctx, s, a, []runtime.EventRecord{e1, e2, fresh})
}

// testAppendStreamIdentity checks that a stream is identified by both its
// Type and its ID, not by a joined string: "x/y"+"z" and "x"+"y/z" print the
// same but are different streams.
func testAppendStreamIdentity(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	streams := []runtime.StreamID{
		{Type: "storetest.x/y", ID: "z"},
		{Type: "storetest.x", ID: "y/z"},
		{Type: "storetest.other", ID: "y/z"},
		{Type: "storetest.x", ID: "Y/Z"},
	}
	want := make([][]runtime.EventRecord, len(streams))
	for i, st := range streams {
		want[i] = newEvents(i + 1)
		// ExpectedVersion 0 fails if the store took the stream for one it
		// already has.
		mustAppend(t, ctx, s, runtime.AppendRequest{Stream: st, ExpectedVersion: 0, Events: want[i]})
	}
	for i, st := range streams {
		checkStream(t, ctx, s, st, want[i])
	}
}
