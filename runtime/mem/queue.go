package mem

import "github.com/ThreeDotsLabs/watermill/message"

// envelope is the immutable form of a published message. One envelope is
// shared by every subscription of the topic, and each delivery attempt builds
// a fresh *message.Message from it, so acks, contexts and metadata edits of
// one delivery never leak into another.
type envelope struct {
	uuid     string
	payload  message.Payload
	metadata message.Metadata // nil when empty, to save an allocation
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

func (r *ring) reset() { *r = ring{} }
