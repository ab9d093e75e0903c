package mem_test

import (
	"context"
	"encoding/binary"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/protoc-gen-eda/eda/runtime/mem"
)

// waitLong bounds every wait for something that should happen promptly. It
// is generous because -race on two cores is slow; tests fail by timing out
// only when something is actually stuck.
const waitLong = 20 * time.Second

// quiet is how long a test watches for something that must not happen.
const quiet = 50 * time.Millisecond

func newPubSub(tb testing.TB, cfg mem.Config) *mem.PubSub {
	tb.Helper()
	ps, err := mem.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = ps.Close() })
	return ps
}

func subscribe(tb testing.TB, sub message.Subscriber, ctx context.Context, topic string) <-chan *message.Message {
	tb.Helper()
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		tb.Fatal(err)
	}
	return ch
}

func publish(tb testing.TB, pub message.Publisher, topic string, payloads ...string) []*message.Message {
	tb.Helper()
	msgs := make([]*message.Message, len(payloads))
	for i, p := range payloads {
		msgs[i] = message.NewMessage(watermill.NewUUID(), []byte(p))
	}
	if err := pub.Publish(topic, msgs...); err != nil {
		tb.Fatal(err)
	}
	return msgs
}

func recv(tb testing.TB, ch <-chan *message.Message) *message.Message {
	tb.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			tb.Fatal("channel closed, expected a message")
		}
		return m
	case <-time.After(waitLong):
		tb.Fatal("timed out waiting for a message")
	}
	return nil
}

func expectClosed(tb testing.TB, ch <-chan *message.Message) {
	tb.Helper()
	timeout := time.After(waitLong)
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				return
			}
			tb.Errorf("got message %s, expected the channel to be closed", m.UUID)
		case <-timeout:
			tb.Fatal("channel not closed")
		}
	}
}

func expectNothing(tb testing.TB, ch <-chan *message.Message) {
	tb.Helper()
	select {
	case m, ok := <-ch:
		if ok {
			tb.Fatalf("unexpected message %q", m.Payload)
		}
		tb.Fatal("channel unexpectedly closed")
	case <-time.After(quiet):
	}
}

// runRouter starts a Watermill router with one consumer handler and returns
// once it runs. The router is what generated code uses, and it handles each
// message in its own goroutine, so ordering observed through it is ordering
// the bus enforces, not an artefact of a sequential test loop. Closing the
// router also closes sub (Watermill does that for compatibility).
func runRouter(tb testing.TB, sub message.Subscriber, topic string, h message.NoPublishHandlerFunc) *message.Router {
	tb.Helper()
	r, err := message.NewRouter(message.RouterConfig{CloseTimeout: waitLong}, watermill.NopLogger{})
	if err != nil {
		tb.Fatal(err)
	}
	r.AddConsumerHandler("h-"+topic, topic, sub, h)
	go func() {
		if err := r.Run(context.Background()); err != nil {
			tb.Error(err)
		}
	}()
	select {
	case <-r.Running():
	case <-time.After(waitLong):
		tb.Fatal("router did not start")
	}
	tb.Cleanup(func() { _ = r.Close() })
	return r
}

// orderLoad describes the ordering workload: every publisher goroutine owns
// keys distinct keys and publishes events sequence numbers for each, looping
// over sequence numbers on the outside so that keys interleave.
type orderLoad struct {
	publishers, keys, events int
}

func (l orderLoad) total() int { return l.publishers * l.keys * l.events }

type orderResult struct {
	received   int // distinct (key, seq) pairs handled
	reordered  int // events handled after a later event of the same key
	duplicates int // repeated (key, seq) pairs
	nacked     int // injected handler failures
	lost       int
}

func encodeEvent(key, seq int) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b, uint32(key))
	binary.BigEndian.PutUint32(b[4:], uint32(seq))
	return b
}

func decodeEvent(b []byte) (key, seq int) {
	return int(binary.BigEndian.Uint32(b)), int(binary.BigEndian.Uint32(b[4:]))
}

// runOrdering publishes the load through pub, consumes it through a router
// on sub and measures per-key reordering and loss. If failFirst is not nil,
// the handler returns an error (so the router Nacks) on the first attempt of
// every event it selects.
func runOrdering(tb testing.TB, pub message.Publisher, sub message.Subscriber, l orderLoad, failFirst func(key, seq int) bool) orderResult {
	tb.Helper()
	const topic = "events"
	nkeys := l.publishers * l.keys

	var (
		mu    sync.Mutex
		res   orderResult
		next  = make([]int, nkeys)            // highest sequence handled per key, plus one
		count = make([]uint8, nkeys*l.events) // successful deliveries per event
		nack  = make([]bool, nkeys*l.events)  // first attempt already failed
		done  = make(chan struct{})
	)
	runRouter(tb, sub, topic, func(m *message.Message) error {
		key, seq := decodeEvent(m.Payload)
		mu.Lock()
		defer mu.Unlock()
		if failFirst != nil && failFirst(key, seq) && !nack[key*l.events+seq] {
			nack[key*l.events+seq] = true
			res.nacked++
			return errors.New("injected failure")
		}
		if count[key*l.events+seq]++; count[key*l.events+seq] > 1 {
			res.duplicates++
			return nil
		}
		if seq < next[key] {
			res.reordered++
		} else {
			next[key] = seq + 1
		}
		if res.received++; res.received == l.total() {
			close(done)
		}
		return nil
	})

	var wg sync.WaitGroup
	for p := range l.publishers {
		wg.Go(func() {
			for seq := range l.events {
				for k := range l.keys {
					key := p*l.keys + k
					m := message.NewMessage(strconv.Itoa(key*l.events+seq), encodeEvent(key, seq))
					if err := pub.Publish(topic, m); err != nil {
						tb.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()

	select {
	case <-done:
	case <-time.After(waitLong):
	}
	mu.Lock()
	defer mu.Unlock()
	res.lost = l.total() - res.received
	return res
}
