package memstore

import "github.com/protoc-gen-eda/eda/runtime"

// Sizes of the log's chunks. A flat slice of events would be copied about
// four times its final size over its growth, under the write lock, and
// touch fresh memory each time; fixed chunks are written once and never
// moved. The first chunk starts small and doubles, so that the many tiny
// stores tests create stay tiny.
const (
	chunkSize      = 1024 // events per chunk (about 170 KiB)
	firstChunkSize = 16
)

// eventLog is the append-only global log. Index i holds Position i+1.
//
// A copy of an eventLog is a view: it keeps seeing the events it had while
// appends to the original add events beyond its length. add never writes
// an element a view can see: events go to indexes at or beyond every
// view's length, a chunk that grows is copied into a new directory, and the
// directory only gains elements beyond its length. That is what lets
// readers use a view without the store's lock.
type eventLog struct {
	// chunks has len == cap for every chunk; all but the first are
	// chunkSize long, and the first is too once a second exists.
	chunks [][]runtime.EventRecord
	n      int
}

// at returns the event at index i < l.n. It must not be modified.
func (l *eventLog) at(i int) *runtime.EventRecord {
	return &l.chunks[i/chunkSize][i%chunkSize]
}

// add appends e.
func (l *eventLog) add(e *runtime.EventRecord) {
	c, off := l.n/chunkSize, l.n%chunkSize
	switch {
	case c == len(l.chunks):
		size := chunkSize
		if c == 0 {
			size = firstChunkSize
		}
		l.chunks = append(l.chunks, make([]runtime.EventRecord, size))
	case off == len(l.chunks[c]):
		// Only the first chunk is ever smaller than chunkSize.
		bigger := make([]runtime.EventRecord, min(2*off, chunkSize))
		copy(bigger, l.chunks[c])
		l.chunks = [][]runtime.EventRecord{bigger}
	}
	l.chunks[c][off] = *e
	l.n++
}
