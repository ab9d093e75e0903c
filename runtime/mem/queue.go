package mem

import (
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
)

// envelope is the immutable form of a published message. One envelope is
// shared by every subscription of the topic, and each delivery attempt builds
// a fresh *message.Message from it, so acks, contexts and metadata edits of
// one delivery never leak into another.
type envelope struct {
	uuid     string
	payload  message.Payload
	metadata message.Metadata // nil when empty, to save an allocation
	// conf tracks the copies of a confirmed publish; nil for Publish. It is
	// per envelope, not per subscription: every subscription's copy counts.
	conf *Confirmation
}

func newEnvelope(m *message.Message) envelope {
	e := envelope{uuid: m.UUID, payload: m.Payload}
	if len(m.Metadata) > 0 {
		e.metadata = make(message.Metadata, len(m.Metadata))
		for k, v := range m.Metadata {
			e.metadata[k] = v
		}
	}
	return e
}

// untracked returns e without its confirmation, for the replay log: a
// subscription that replays it later was not counted by the publish, so its
// ack must not count either, and the log must not keep the Confirmation alive.
func (e *envelope) untracked() *envelope {
	if e.conf == nil {
		return e
	}
	c := *e
	c.conf = nil
	return &c
}

// track counts one more copy of e in a queue; called under the queue's lock
// just before the push, so the copy cannot be acked before it is counted.
func (e *envelope) track() {
	if e.conf != nil {
		e.conf.pending.Add(1)
	}
}

// acked reports that one copy of e was acked by its consumer.
func (e *envelope) acked() {
	if e.conf != nil {
		e.conf.release()
	}
}

// discarded reports that a copy of e was dropped unacknowledged by a
// subscription of topic that ended because of cause.
func (e *envelope) discarded(topic string, cause error) {
	if e.conf != nil {
		e.conf.finish(fmt.Errorf("%w: message %s was discarded unacknowledged by a subscription of %q: %w",
			ErrUnconfirmed, e.uuid, topic, cause))
	}
}

func (e *envelope) message() *message.Message {
	m := message.NewMessage(e.uuid, e.payload)
	for k, v := range e.metadata {
		m.Metadata[k] = v
	}
	return m
}

// ring is an unbounded FIFO of envelopes. A growable ring buffer instead of
// a slice that is appended to and resliced from the front: the latter keeps
// reallocating as the consumed prefix can never be reused.
type ring struct {
	buf  []*envelope // len(buf) is zero or a power of two
	head int
	n    int
}

// minRing is the smallest buffer allocated, and the size a drained queue
// shrinks back to, so that one burst does not pin memory forever.
const minRing = 16

// shrinkAbove is the capacity above which a drained queue releases its buffer.
const shrinkAbove = 1024

func (r *ring) len() int { return r.n }

func (r *ring) push(e *envelope) {
	if r.n == len(r.buf) {
		r.grow()
	}
	r.buf[(r.head+r.n)&(len(r.buf)-1)] = e
	r.n++
}

func (r *ring) grow() {
	size := 2 * len(r.buf)
	if size < minRing {
		size = minRing
	}
	buf := make([]*envelope, size)
	// Unwrap so that head is 0 in the new buffer.
	k := copy(buf, r.buf[r.head:])
	copy(buf[k:], r.buf[:r.head])
	r.buf, r.head = buf, 0
}

// peek returns the oldest envelope; the caller checks len first.
func (r *ring) peek() *envelope { return r.buf[r.head] }

// at returns the i-th oldest envelope; the caller checks len first.
func (r *ring) at(i int) *envelope { return r.buf[(r.head+i)&(len(r.buf)-1)] }

func (r *ring) pop() {
	r.buf[r.head] = nil // let the envelope be collected
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.n--
	if r.n == 0 {
		r.head = 0
		if len(r.buf) > shrinkAbove {
			r.buf = nil
		}
	}
}

// each calls f on every queued envelope, oldest first.
func (r *ring) each(f func(*envelope)) {
	for i := range r.n {
		f(r.buf[(r.head+i)&(len(r.buf)-1)])
	}
}

func (r *ring) reset() { *r = ring{} }
