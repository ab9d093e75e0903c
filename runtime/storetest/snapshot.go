package storetest

import (
	"bytes"
	"errors"
	"testing"

	"github.com/protoc-gen-eda/eda/runtime"
)

var snapshotTests = []test{
	{"Missing", testSnapshotMissing},
	{"SaveLoadReplace", testSnapshotSaveLoadReplace},
	{"PerStream", testSnapshotPerStream},
	{"CopiesData", testSnapshotCopies},
	{"Shared", testSnapshotShared},
}

// newSnapshot returns a snapshot of stream at version with distinct data.
func newSnapshot(stream runtime.StreamID, version uint64, data string) runtime.Snapshot {
	return runtime.Snapshot{Stream: stream, Version: version, SchemaVersion: 2, ContentType: contentType, Data: []byte(data)}
}

func checkSnapshot(t *testing.T, got, want runtime.Snapshot) {
	t.Helper()
	if got.Stream != want.Stream || got.Version != want.Version || got.SchemaVersion != want.SchemaVersion ||
		got.ContentType != want.ContentType || !bytes.Equal(got.Data, want.Data) {
		t.Errorf("LoadSnapshot = {%v v%d schema %d %q %q}, want {%v v%d schema %d %q %q}",
			got.Stream, got.Version, got.SchemaVersion, got.ContentType, got.Data,
			want.Stream, want.Version, want.SchemaVersion, want.ContentType, want.Data)
	}
}

func mustLoadSnapshot(t *testing.T, s runtime.EventStore, stream runtime.StreamID) runtime.Snapshot {
	t.Helper()
	snap, err := s.LoadSnapshot(testContext(t), stream)
	if err != nil {
		t.Fatalf("LoadSnapshot %s: %v", stream, err)
	}
	return snap
}

func mustSaveSnapshot(t *testing.T, s runtime.EventStore, snap runtime.Snapshot) {
	t.Helper()
	if err := s.SaveSnapshot(testContext(t), snap); err != nil {
		t.Fatalf("SaveSnapshot %s v%d: %v", snap.Stream, snap.Version, err)
	}
}

// streamAt appends version events to a new stream, so that snapshots
// describe versions that exist.
func streamAt(t *testing.T, s runtime.EventStore, version int) runtime.StreamID {
	t.Helper()
	stream := newStream()
	mustAppend(t, testContext(t), s, runtime.AppendRequest{Stream: stream, Events: newEvents(version)})
	return stream
}

// testSnapshotMissing loads snapshots that were never saved.
func testSnapshotMissing(t *testing.T, b Backend) {
	ctx := testContext(t)
	s := open(t, b)
	for name, stream := range map[string]runtime.StreamID{
		"StreamWithEvents": streamAt(t, s, 3),
		"MissingStream":    newStream(),
	} {
		if _, err := s.LoadSnapshot(ctx, stream); !errors.Is(err, runtime.ErrNoSnapshot) {
			t.Errorf("%s: LoadSnapshot err = %v, want ErrNoSnapshot", name, err)
		}
	}
}

// testSnapshotSaveLoadReplace saves, replaces with a higher version and
// ignores a lower one.
func testSnapshotSaveLoadReplace(t *testing.T, b Backend) {
	s := open(t, b)
	stream := streamAt(t, s, 10)

	v5 := newSnapshot(stream, 5, "state at 5")
	mustSaveSnapshot(t, s, v5)
	checkSnapshot(t, mustLoadSnapshot(t, s, stream), v5)

	v8 := newSnapshot(stream, 8, "state at 8")
	v8.SchemaVersion = 3
	v8.ContentType = "application/json"
	mustSaveSnapshot(t, s, v8)
	checkSnapshot(t, mustLoadSnapshot(t, s, stream), v8)

	// A lower version is ignored without error: a slow writer that
	// snapshotted an older state must not roll the snapshot back.
	mustSaveSnapshot(t, s, newSnapshot(stream, 6, "state at 6"))
	checkSnapshot(t, mustLoadSnapshot(t, s, stream), v8)

	empty := newSnapshot(stream, 10, "")
	empty.Data = nil
	mustSaveSnapshot(t, s, empty)
	checkSnapshot(t, mustLoadSnapshot(t, s, stream), empty)
}

// testSnapshotPerStream checks that snapshots of different streams do not
// replace each other.
func testSnapshotPerStream(t *testing.T, b Backend) {
	s := open(t, b)
	a, c := streamAt(t, s, 4), streamAt(t, s, 4)
	sa, sc := newSnapshot(a, 4, "a"), newSnapshot(c, 2, "c")
	mustSaveSnapshot(t, s, sa)
	mustSaveSnapshot(t, s, sc)
	checkSnapshot(t, mustLoadSnapshot(t, s, a), sa)
	checkSnapshot(t, mustLoadSnapshot(t, s, c), sc)
	if _, err := s.LoadSnapshot(testContext(t), streamAt(t, s, 1)); !errors.Is(err, runtime.ErrNoSnapshot) {
		t.Errorf("LoadSnapshot of a third stream: err = %v, want ErrNoSnapshot", err)
	}
}

// testSnapshotCopies checks that neither the saver's nor the loader's later
// writes to Data reach the stored snapshot.
func testSnapshotCopies(t *testing.T, b Backend) {
	s := open(t, b)
	stream := streamAt(t, s, 2)
	snap := newSnapshot(stream, 2, "original")
	want := snap
	want.Data = bytes.Clone(snap.Data)
	mustSaveSnapshot(t, s, snap)
	copy(snap.Data, "XXXXXXXX")
	loaded := mustLoadSnapshot(t, s, stream)
	checkSnapshot(t, loaded, want)
	for i := range loaded.Data {
		loaded.Data[i] = 'Y'
	}
	checkSnapshot(t, mustLoadSnapshot(t, s, stream), want)
}

// testSnapshotShared checks snapshots across handles.
func testSnapshotShared(t *testing.T, b Backend) {
	if b.Share == nil {
		t.Skip("backend has no Share")
	}
	s := open(t, b)
	s2 := share(t, b, s)
	stream := streamAt(t, s, 6)
	v6 := newSnapshot(stream, 6, "six")
	mustSaveSnapshot(t, s, v6)
	checkSnapshot(t, mustLoadSnapshot(t, s2, stream), v6)
	mustSaveSnapshot(t, s2, newSnapshot(stream, 3, "three"))
	checkSnapshot(t, mustLoadSnapshot(t, s, stream), v6)
}
