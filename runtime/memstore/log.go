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

// delayedQueue is a min-heap of outbox messages by DeliverAt, then
// position: the next message to come due is at the root. A relay pops the
// due ones in O(log n) each, whatever the number still waiting.
type delayedQueue struct {
	h []runtime.OutboxMessage
}

func (q *delayedQueue) len() int { return len(q.h) }

// min returns the root; the queue must not be empty.
func (q *delayedQueue) min() *runtime.OutboxMessage { return &q.h[0] }

func (q *delayedQueue) less(i, j int) bool {
	a, b := &q.h[i], &q.h[j]
	if !a.DeliverAt.Equal(b.DeliverAt) {
		return a.DeliverAt.Before(b.DeliverAt)
	}
	return a.Position < b.Position
}

func (q *delayedQueue) push(m runtime.OutboxMessage) {
	q.h = append(q.h, m)
	for i := len(q.h) - 1; i > 0; {
		parent := (i - 1) / 2
		if !q.less(i, parent) {
			break
		}
		q.h[i], q.h[parent] = q.h[parent], q.h[i]
		i = parent
	}
}

// pop removes and returns the root; the queue must not be empty.
func (q *delayedQueue) pop() runtime.OutboxMessage {
	root := q.h[0]
	last := len(q.h) - 1
	q.h[0] = q.h[last]
	q.h[last] = runtime.OutboxMessage{} // let its bytes be collected
	q.h = q.h[:last]
	for i := 0; ; {
		smallest, l, r := i, 2*i+1, 2*i+2
		if l < len(q.h) && q.less(l, smallest) {
			smallest = l
		}
		if r < len(q.h) && q.less(r, smallest) {
			smallest = r
		}
		if smallest == i {
			break
		}
		q.h[i], q.h[smallest] = q.h[smallest], q.h[i]
		i = smallest
	}
	if len(q.h) == 0 {
		q.h = nil
	}
	return root
}
