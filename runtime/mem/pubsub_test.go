package mem_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/protoc-gen-eda/eda/runtime/mem"
)

func TestConfigValidate(t *testing.T) {
	if err := (mem.Config{}).Validate(); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	err := mem.Config{RedeliveryDelay: -1, MaxQueued: -1}.Validate()
	if err == nil {
		t.Fatal("negative fields accepted")
	}
	for _, field := range []string{"RedeliveryDelay", "MaxQueued"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not mention %s", err, field)
		}
	}
	if err := (mem.Config{Replay: true, MaxQueued: 1}).Validate(); err == nil {
		t.Error("Replay with MaxQueued accepted")
	}
	if _, err := mem.New(mem.Config{MaxQueued: -1}); err == nil {
		t.Error("New accepted an invalid Config")
	}
}

func TestFanOutInOrder(t *testing.T) {
	ps := newPubSub(t, mem.Config{})
	a := subscribe(t, ps, context.Background(), "t")
	b := subscribe(t, ps, context.Background(), "t")
	publish(t, ps, "t", "1", "2")
	publish(t, ps, "t", "3")
	for name, ch := range map[string]<-chan *message.Message{"a": a, "b": b} {
		for _, want := range []string{"1", "2", "3"} {
			m := recv(t, ch)
			if string(m.Payload) != want {
				t.Fatalf("subscription %s: got %q, want %q", name, m.Payload, want)
			}
			m.Ack()
		}
	}
}

func TestPublishWithoutSubscriptionDrops(t *testing.T) {
	ps := newPubSub(t, mem.Config{})
	publish(t, ps, "t", "before")
	ch := subscribe(t, ps, context.Background(), "t")
	publish(t, ps, "t", "after")
	if m := recv(t, ch); string(m.Payload) != "after" {
		t.Fatalf("got %q, want the message published after Subscribe", m.Payload)
	}
}

func TestReplayDeliversEarlierMessages(t *testing.T) {
	ps := newPubSub(t, mem.Config{Replay: true})
	publish(t, ps, "t", "1")
	ch := subscribe(t, ps, context.Background(), "t")
	publish(t, ps, "t", "2")
	for _, want := range []string{"1", "2"} {
		m := recv(t, ch)
		if string(m.Payload) != want {
			t.Fatalf("got %q, want %q", m.Payload, want)
		}
		m.Ack()
	}
}

func TestTopicsAreIndependent(t *testing.T) {
	ps := newPubSub(t, mem.Config{})
	a := subscribe(t, ps, context.Background(), "a")
	b := subscribe(t, ps, context.Background(), "b")
	publish(t, ps, "a", "for a")
	// a's message stays unacked: b must not be held up by it.
	if m := recv(t, a); string(m.Payload) != "for a" {
		t.Fatalf("topic a got %q", m.Payload)
	}
	publish(t, ps, "b", "for b")
	if m := recv(t, b); string(m.Payload) != "for b" {
		t.Fatalf("topic b got %q", m.Payload)
	}
}

// TestPublishCopies checks that the delivered message is decoupled from the
// published one: edits after Publish do not leak in, and the publisher's
// context (think: an HTTP request that ends) does not cancel the handler.
func TestPublishCopies(t *testing.T) {
	type key struct{}
	ps := newPubSub(t, mem.Config{})
	subCtx := context.WithValue(context.Background(), key{}, "subscriber")
	ch := subscribe(t, ps, subCtx, "t")

	pubCtx, cancelPub := context.WithCancel(context.WithValue(context.Background(), key{}, "publisher"))
	orig := message.NewMessage("id", []byte("payload"))
	orig.Metadata.Set("k", "v")
	orig.SetContext(pubCtx)
	if err := ps.Publish("t", orig); err != nil {
		t.Fatal(err)
	}
	orig.Metadata.Set("k", "changed")
	cancelPub()

	m := recv(t, ch)
	if m == orig {
		t.Fatal("delivered the published *Message itself")
	}
	if m.UUID != "id" || string(m.Payload) != "payload" || m.Metadata.Get("k") != "v" {
		t.Fatalf("delivered %s %q %v", m.UUID, m.Payload, m.Metadata)
	}
	if got := m.Context().Value(key{}); got != "subscriber" {
		t.Fatalf("context value %v, want the subscriber's", got)
	}
	if err := m.Context().Err(); err != nil {
		t.Fatalf("publisher's cancellation reached the handler: %v", err)
	}
	m.Ack()
	select {
	case <-m.Context().Done():
	case <-time.After(waitLong):
		t.Fatal("message context not cancelled after Ack")
	}
}

// TestNackRedeliversInOrder: a Nacked message comes back, as a fresh copy,
// after RedeliveryDelay and before anything queued behind it.
func TestNackRedeliversInOrder(t *testing.T) {
	const delay = 30 * time.Millisecond
	ps := newPubSub(t, mem.Config{RedeliveryDelay: delay})
	ch := subscribe(t, ps, context.Background(), "t")
	var want []string
	for i := range 20 {
		want = append(want, strconv.Itoa(i))
	}
	publish(t, ps, "t", want...)

	var got []string
	for len(got) < len(want) {
		m := recv(t, ch)
		if n, _ := strconv.Atoi(string(m.Payload)); n%5 != 2 {
			got = append(got, string(m.Payload))
			m.Ack()
			continue
		}
		// Fail twice, scribbling on the metadata each time.
		for attempt := range 2 {
			m.Metadata.Set("scribbled", "yes")
			m.Nack()
			nacked := time.Now()
			select {
			case <-m.Context().Done():
			case <-time.After(waitLong):
				t.Fatal("message context not cancelled after Nack")
			}
			again := recv(t, ch)
			if elapsed := time.Since(nacked); elapsed < delay {
				t.Errorf("redelivered after %v, before RedeliveryDelay %v", elapsed, delay)
			}
			if again == m || again.UUID != m.UUID || string(again.Payload) != string(m.Payload) {
				t.Fatalf("attempt %d: got %s %q, want a fresh copy of %s %q",
					attempt, again.UUID, again.Payload, m.UUID, m.Payload)
			}
			if again.Metadata.Get("scribbled") != "" {
				t.Fatal("metadata edits of a failed attempt leaked into the redelivery")
			}
			m = again
		}
		got = append(got, string(m.Payload))
		m.Ack()
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("acked %v, want %v", got, want)
	}
	expectNothing(t, ch)
}

func TestNextMessageWaitsForAck(t *testing.T) {
	ps := newPubSub(t, mem.Config{})
	ch := subscribe(t, ps, context.Background(), "t")
	publish(t, ps, "t", "1", "2")
	m := recv(t, ch)
	expectNothing(t, ch)
	m.Ack()
	if m := recv(t, ch); string(m.Payload) != "2" {
		t.Fatalf("got %q, want 2", m.Payload)
	}
}

func TestSubscribeCtxCancelClosesChannel(t *testing.T) {
	ps := newPubSub(t, mem.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancelled := subscribe(t, ps, ctx, "t")
	other := subscribe(t, ps, context.Background(), "t")
	publish(t, ps, "t", "1", "2")
	inFlight := recv(t, cancelled)

	cancel()
	expectClosed(t, cancelled) // "2" is queued and must not come out
	select {
	case <-inFlight.Context().Done():
	case <-time.After(waitLong):
		t.Fatal("in-flight message context not cancelled with its subscription")
	}

	// The other subscription of the topic carries on.
	for _, want := range []string{"1", "2"} {
		m := recv(t, other)
		if string(m.Payload) != want {
			t.Fatalf("got %q, want %q", m.Payload, want)
		}
		m.Ack()
	}
	publish(t, ps, "t", "3")
	if m := recv(t, other); string(m.Payload) != "3" {
		t.Fatalf("got %q, want 3", m.Payload)
	}
}

func TestSubscribeWithDoneCtx(t *testing.T) {
	ps := newPubSub(t, mem.Config{Replay: true})
	publish(t, ps, "t", "1")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	expectClosed(t, subscribe(t, ps, ctx, "t"))
}

func TestCloseWithQueuedMessages(t *testing.T) {
	ps, err := mem.New(mem.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var chans []<-chan *message.Message
	for range 3 {
		chans = append(chans, subscribe(t, ps, context.Background(), "t"))
	}
	for i := range 1000 {
		publish(t, ps, "t", strconv.Itoa(i))
	}
	inFlight := recv(t, chans[0]) // handed out, never acked

	closed := make(chan struct{})
	go func() {
		// Twice and concurrently with the one below: must be idempotent.
		_ = ps.Close()
		close(closed)
	}()
	if err := ps.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(waitLong):
		t.Fatal("concurrent Close did not return")
	}
	for _, ch := range chans {
		// Close waits for the delivery goroutines, so the channels are
		// closed by now: no blocking read needed.
		select {
		case _, ok := <-ch:
			if ok {
				t.Fatal("message delivered after Close returned")
			}
		default:
			t.Fatal("subscription channel still open after Close returned")
		}
	}
	if inFlight.Context().Err() == nil {
		t.Fatal("in-flight message context not cancelled by Close")
	}
	inFlight.Ack() // late ack after Close must be harmless
	if err := ps.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestPublishAndSubscribeAfterClose(t *testing.T) {
	ps, err := mem.New(mem.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ps.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ps.Publish("t", message.NewMessage("1", nil)); !errors.Is(err, mem.ErrClosed) {
		t.Fatalf("Publish after Close: %v, want ErrClosed", err)
	}
	if _, err := ps.Subscribe(context.Background(), "t"); !errors.Is(err, mem.ErrClosed) {
		t.Fatalf("Subscribe after Close: %v, want ErrClosed", err)
	}
}

func TestPublishNilMessage(t *testing.T) {
	ps := newPubSub(t, mem.Config{})
	ch := subscribe(t, ps, context.Background(), "t")
	if err := ps.Publish("t", message.NewMessage("1", nil), nil); err == nil {
		t.Fatal("nil message accepted")
	}
	expectNothing(t, ch) // rejected as a whole, not half published
}

// publishAsync runs Publish in a goroutine and returns its result channel.
func publishAsync(ps *mem.PubSub, topic, payload string) <-chan error {
	res := make(chan error, 1)
	go func() { res <- ps.Publish(topic, message.NewMessage(payload, []byte(payload))) }()
	return res
}

func expectBlocked(t *testing.T, res <-chan error) {
	t.Helper()
	select {
	case err := <-res:
		t.Fatalf("Publish returned (%v) while the queue was full", err)
	case <-time.After(quiet):
	}
}

func expectReturned(t *testing.T, res <-chan error, want error) {
	t.Helper()
	select {
	case err := <-res:
		if !errors.Is(err, want) {
			t.Fatalf("Publish returned %v, want %v", err, want)
		}
	case <-time.After(waitLong):
		t.Fatal("Publish still blocked")
	}
}

func TestMaxQueuedBackpressure(t *testing.T) {
	ps := newPubSub(t, mem.Config{MaxQueued: 2})
	ch := subscribe(t, ps, context.Background(), "t")
	publish(t, ps, "t", "1", "2") // "1" is in flight and still counts
	blocked := publishAsync(ps, "t", "3")
	expectBlocked(t, blocked)

	m := recv(t, ch)
	expectBlocked(t, blocked) // handing out is not acking
	m.Ack()
	expectReturned(t, blocked, nil)

	for _, want := range []string{"2", "3"} {
		m := recv(t, ch)
		if string(m.Payload) != want {
			t.Fatalf("got %q, want %q", m.Payload, want)
		}
		m.Ack()
	}
}

func TestMaxQueuedPublishUnblockedByClose(t *testing.T) {
	ps := newPubSub(t, mem.Config{MaxQueued: 1})
	subscribe(t, ps, context.Background(), "t")
	publish(t, ps, "t", "1")
	blocked := publishAsync(ps, "t", "2")
	expectBlocked(t, blocked)
	if err := ps.Close(); err != nil {
		t.Fatal(err)
	}
	expectReturned(t, blocked, mem.ErrClosed)
}

func TestMaxQueuedPublishUnblockedBySubscriptionEnd(t *testing.T) {
	ps := newPubSub(t, mem.Config{MaxQueued: 1})
	ctx, cancel := context.WithCancel(context.Background())
	full := subscribe(t, ps, ctx, "t")
	publish(t, ps, "t", "1")
	blocked := publishAsync(ps, "t", "2")
	expectBlocked(t, blocked)
	cancel()
	expectReturned(t, blocked, nil)
	expectClosed(t, full)
}

// TestHandlersPublishingInCycles is the saga shape that deadlocks GoChannel
// with BlockPublishUntilSubscriberAck: handlers publish, while handling, to
// their own topic and to a topic whose handler is busy doing the same.
func TestHandlersPublishingInCycles(t *testing.T) {
	ps := newPubSub(t, mem.Config{})
	const rounds = 500
	var handled atomic.Int64
	done := make(chan struct{})
	var once sync.Once

	// ping -> pong -> ping ... and every ping also publishes a "self" echo
	// to ping's own topic.
	relay := func(to string, echo bool) message.NoPublishHandlerFunc {
		return func(m *message.Message) error {
			n, err := strconv.Atoi(string(m.Payload))
			if err != nil {
				return err
			}
			if handled.Add(1); n >= rounds {
				once.Do(func() { close(done) })
				return nil
			}
			if n < 0 { // an echo: handled, not relayed
				return nil
			}
			if echo {
				if err := ps.Publish("ping", message.NewMessage("", []byte("-1"))); err != nil {
					return err
				}
			}
			return ps.Publish(to, message.NewMessage("", []byte(strconv.Itoa(n+1))))
		}
	}
	runRouter(t, ps, "ping", relay("pong", true))
	runRouter(t, ps, "pong", relay("ping", false))

	publish(t, ps, "ping", "0")
	select {
	case <-done:
	case <-time.After(waitLong):
		t.Fatalf("cycle stuck after %d messages", handled.Load())
	}
}

// TestConcurrentUse exercises Publish, Subscribe, cancellation and Close at
// once, for the race detector and for hangs; every Publish error must be
// ErrClosed.
func TestConcurrentUse(t *testing.T) {
	ps, err := mem.New(mem.Config{MaxQueued: 8})
	if err != nil {
		t.Fatal(err)
	}
	topics := []string{"a", "b", "c"}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var published atomic.Int64
	for i := range 4 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				err := ps.Publish(topics[(i+n)%len(topics)], message.NewMessage("", nil))
				if errors.Is(err, mem.ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				published.Add(1)
			}
		})
	}
	var received atomic.Int64
	for i := range 6 {
		wg.Go(func() {
			for n := 0; ; n++ {
				ctx, cancel := context.WithCancel(context.Background())
				ch, err := ps.Subscribe(ctx, topics[(i+n)%len(topics)])
				if err != nil {
					cancel()
					if !errors.Is(err, mem.ErrClosed) {
						t.Error(err)
					}
					return
				}
				for k := 0; k < 20; k++ {
					m, ok := <-ch
					if !ok {
						break
					}
					received.Add(1)
					if k%3 == 0 {
						m.Nack()
					} else {
						m.Ack()
					}
				}
				cancel()
				for range ch { // drain until the subscription notices
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	if err := ps.Close(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(waitLong):
		t.Fatal("goroutines stuck after Close")
	}
	if published.Load() == 0 || received.Load() == 0 {
		t.Fatalf("no traffic: published %d, received %d", published.Load(), received.Load())
	}
	t.Logf("published %d, received %d", published.Load(), received.Load())
}
