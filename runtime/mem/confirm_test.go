package mem_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/protoc-gen-eda/eda/runtime/mem"
)

// confirmAsync runs PublishConfirmed in a goroutine and returns its result.
func confirmAsync(ps *mem.PubSub, ctx context.Context, topic string, payloads ...string) <-chan error {
	res := make(chan error, 1)
	go func() { res <- ps.PublishConfirmed(ctx, topic, newMessages(payloads...)...) }()
	return res
}

// waitAsync runs c.Wait in a goroutine and returns its result.
func waitAsync(c *mem.Confirmation, ctx context.Context) <-chan error {
	res := make(chan error, 1)
	go func() { res <- c.Wait(ctx) }()
	return res
}

func newMessages(payloads ...string) []*message.Message {
	msgs := make([]*message.Message, len(payloads))
	for i, p := range payloads {
		msgs[i] = message.NewMessage(watermill.NewUUID(), []byte(p))
	}
	return msgs
}

func expectWaiting(t *testing.T, res <-chan error) {
	t.Helper()
	select {
	case err := <-res:
		t.Fatalf("confirmation decided (%v) while a copy was unacknowledged", err)
	case <-time.After(quiet):
	}
}

// expectOutcome waits for res and checks that the error matches every one
// of want with errors.Is; no want means nil.
func expectOutcome(t *testing.T, res <-chan error, want ...error) {
	t.Helper()
	var err error
	select {
	case err = <-res:
	case <-time.After(waitLong):
		t.Fatal("confirmation still waiting")
	}
	if len(want) == 0 && err != nil {
		t.Fatalf("got %v, want confirmed", err)
	}
	if len(want) > 0 && err == nil {
		t.Fatalf("confirmed, want an error matching %v", want)
	}
	for _, w := range want {
		if !errors.Is(err, w) {
			t.Errorf("error %q does not match %q", err, w)
		}
	}
}

// deadlineCtx is a context whose deadline passes when the test closes done,
// so that a timeout is tested without racing the clock (a real deadline could
// pass before PublishConfirmed even enqueued, under -race on two cores).
type deadlineCtx struct {
	context.Context
	done chan struct{}
}

func (c deadlineCtx) Done() <-chan struct{} { return c.done }

func (c deadlineCtx) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// TestPublishConfirmedWaitsForHandler: through a router, as the relay's
// consumers run, the publish is confirmed only after the handler returned.
func TestPublishConfirmedWaitsForHandler(t *testing.T) {
	ps := newPubSub(t, mem.Config{})
	started, release := make(chan struct{}), make(chan struct{})
	runRouter(t, ps, "t", func(*message.Message) error {
		started <- struct{}{}
		<-release
		return nil
	})
	res := confirmAsync(ps, context.Background(), "t", "1")
	select {
	case <-started:
	case <-time.After(waitLong):
		t.Fatal("handler not called")
	}
	expectWaiting(t, res)
	close(release)
	expectOutcome(t, res)
}

// TestPublishConfirmedOutcomes drives what happens to the single copy of a
// two-message publish on one subscription, and checks the outcome.
func TestPublishConfirmedOutcomes(t *testing.T) {
	type fixture struct {
		ps     *mem.PubSub
		ch     <-chan *message.Message
		cancel context.CancelFunc // ends the subscription
		expire func()             // passes PublishConfirmed's deadline
		res    <-chan error
	}
	tests := []struct {
		name   string
		handle func(t *testing.T, f fixture)
		want   []error
	}{
		{
			name: "both acked",
			handle: func(t *testing.T, f fixture) {
				recv(t, f.ch).Ack()
				expectWaiting(t, f.res) // the second message is outstanding
				recv(t, f.ch).Ack()
			},
		},
		{
			// A delivery attempt is not an ack: were the Nack counted, the
			// first message's two attempts would confirm the publish
			// before the second message is handled.
			name: "nack then ack counts once",
			handle: func(t *testing.T, f fixture) {
				recv(t, f.ch).Nack()
				expectWaiting(t, f.res)
				m := recv(t, f.ch)
				if string(m.Payload) != "1" {
					t.Fatalf("redelivered %q, want 1", m.Payload)
				}
				m.Ack()
				expectWaiting(t, f.res)
				recv(t, f.ch).Ack()
			},
		},
		{
			name: "subscription cancelled while handling",
			handle: func(t *testing.T, f fixture) {
				recv(t, f.ch) // handed out, never acked
				expectWaiting(t, f.res)
				f.cancel()
			},
			want: []error{mem.ErrUnconfirmed},
		},
		{
			name: "subscription cancelled after the first ack",
			handle: func(t *testing.T, f fixture) {
				recv(t, f.ch).Ack()
				f.cancel() // the second message is queued, not handed out
			},
			want: []error{mem.ErrUnconfirmed},
		},
		{
			name: "pubsub closed",
			handle: func(t *testing.T, f fixture) {
				recv(t, f.ch)
				if err := f.ps.Close(); err != nil {
					t.Fatal(err)
				}
			},
			want: []error{mem.ErrUnconfirmed, mem.ErrClosed},
		},
		{
			name: "context timeout",
			handle: func(t *testing.T, f fixture) {
				recv(t, f.ch) // held past the deadline
				expectWaiting(t, f.res)
				f.expire()
			},
			want: []error{mem.ErrUnconfirmed, context.DeadlineExceeded},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := newPubSub(t, mem.Config{RedeliveryDelay: time.Millisecond})
			subCtx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ch := subscribe(t, ps, subCtx, "t")
			ctx := deadlineCtx{Context: context.Background(), done: make(chan struct{})}
			f := fixture{
				ps: ps, ch: ch, cancel: cancel,
				expire: func() { close(ctx.done) },
				res:    confirmAsync(ps, ctx, "t", "1", "2"),
			}
			tt.handle(t, f)
			expectOutcome(t, f.res, tt.want...)
		})
	}
}

func TestPublishConfirmedWithoutSubscriber(t *testing.T) {
	ps := newPubSub(t, mem.Config{})
	expectOutcome(t, confirmAsync(ps, context.Background(), "nobody", "1"))

	// Replay keeps the message for later subscribers, but nobody received a
	// copy now, so there is nothing to wait for either.
	replay := newPubSub(t, mem.Config{Replay: true})
	expectOutcome(t, confirmAsync(replay, context.Background(), "nobody", "1"))
	if m := recv(t, subscribe(t, replay, context.Background(), "nobody")); string(m.Payload) != "1" {
		t.Fatalf("replayed %q, want 1", m.Payload)
	}
}

func TestPublishConfirmedWaitsForEverySubscription(t *testing.T) {
	ps := newPubSub(t, mem.Config{})
	a := subscribe(t, ps, context.Background(), "t")
	b := subscribe(t, ps, context.Background(), "t")
	res := confirmAsync(ps, context.Background(), "t", "1")
	recv(t, a).Ack()
	expectWaiting(t, res)
	recv(t, b).Ack()
	expectOutcome(t, res)
}

// TestPublishConfirmedReplayedCopyNotCounted: a subscription that joins
// later and replays the message was not counted by the publish, so its ack
// must not stand in for the ack of the subscription that was.
func TestPublishConfirmedReplayedCopyNotCounted(t *testing.T) {
	ps := newPubSub(t, mem.Config{Replay: true})
	early := subscribe(t, ps, context.Background(), "t")
	c := ps.NewConfirmation()
	if err := c.Publish("t", newMessages("1")...); err != nil {
		t.Fatal(err)
	}
	late := subscribe(t, ps, context.Background(), "t")
	res := waitAsync(c, context.Background())
	recv(t, late).Ack()
	expectWaiting(t, res)
	recv(t, early).Ack()
	expectOutcome(t, res)
}

// TestPublishConfirmedBlockedOnFullQueue: with MaxQueued, a confirmed
// publish blocked on a full queue whose subscription then ends has lost its
// copy: a subscription was there, so it is not "no subscriber".
func TestPublishConfirmedBlockedOnFullQueue(t *testing.T) {
	ps := newPubSub(t, mem.Config{MaxQueued: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	full := subscribe(t, ps, ctx, "t")
	publish(t, ps, "t", "1")
	res := confirmAsync(ps, context.Background(), "t", "2")
	expectWaiting(t, res)
	cancel()
	expectOutcome(t, res, mem.ErrUnconfirmed)
	expectClosed(t, full)
}

func TestPublishConfirmedErrors(t *testing.T) {
	ps := newPubSub(t, mem.Config{})
	subscribe(t, ps, context.Background(), "t")
	var nilCtx context.Context
	if err := ps.PublishConfirmed(nilCtx, "t", newMessages("1")...); err == nil {
		t.Error("nil context accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ps.PublishConfirmed(ctx, "t", newMessages("1")...); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: got %v, want context.Canceled", err)
	}
	if err := ps.PublishConfirmed(context.Background(), "t", nil); err == nil {
		t.Error("nil message accepted")
	}

	if err := ps.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ps.PublishConfirmed(context.Background(), "t", newMessages("1")...); !errors.Is(err, mem.ErrClosed) {
		t.Errorf("after Close: got %v, want ErrClosed", err)
	}
	c := ps.NewConfirmation()
	if err := c.Publish("t", newMessages("1")...); !errors.Is(err, mem.ErrClosed) {
		t.Errorf("Confirmation.Publish after Close: got %v, want ErrClosed", err)
	}
	// The failed Publish may have enqueued part of the batch: Wait must not
	// confirm it.
	expectOutcome(t, waitAsync(c, context.Background()), mem.ErrUnconfirmed, mem.ErrClosed)
}

// TestConfirmationAcrossTopics: a relay enqueues every run of a batch and
// waits once; the handlers of the different topics must all be working on
// the batch at the same time, not one after the other.
func TestConfirmationAcrossTopics(t *testing.T) {
	ps := newPubSub(t, mem.Config{})
	topics := []string{"a", "b", "c"}
	started := make(chan string, len(topics))
	release := make(chan struct{})
	for _, topic := range topics {
		runRouter(t, ps, topic, func(*message.Message) error {
			started <- topic
			<-release
			return nil
		})
	}

	c := ps.NewConfirmation()
	for _, topic := range topics {
		if err := c.Publish(topic, newMessages(topic)...); err != nil {
			t.Fatal(err)
		}
	}
	res := waitAsync(c, context.Background())
	seen := map[string]bool{}
	for range topics {
		select {
		case topic := <-started:
			seen[topic] = true
		case <-time.After(waitLong):
			t.Fatalf("handlers started: %v; want all of %v at once", seen, topics)
		}
	}
	expectWaiting(t, res)
	close(release)
	expectOutcome(t, res)

	if err := c.Publish("a", newMessages("late")...); err == nil {
		t.Error("Publish after Wait accepted")
	}
	// Waiting again returns the same outcome.
	expectOutcome(t, waitAsync(c, context.Background()))
}

func TestConfirmationEmpty(t *testing.T) {
	ps := newPubSub(t, mem.Config{})
	expectOutcome(t, waitAsync(ps.NewConfirmation(), context.Background()))
}

// TestConfirmationWaitAgainAfterTimeout: a wait cut short by its context
// does not decide the outcome; a later Wait still sees the ack.
func TestConfirmationWaitAgainAfterTimeout(t *testing.T) {
	ps := newPubSub(t, mem.Config{})
	ch := subscribe(t, ps, context.Background(), "t")
	c := ps.NewConfirmation()
	if err := c.Publish("t", newMessages("1")...); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	expectOutcome(t, waitAsync(c, ctx), mem.ErrUnconfirmed, context.DeadlineExceeded)
	recv(t, ch).Ack()
	expectOutcome(t, waitAsync(c, context.Background()))
}

// TestPublishConfirmedConcurrent runs confirmed publishes from several
// goroutines against handlers on two topics that fail every third attempt,
// for the race detector and to check that every confirmation comes after
// the handling of its own message.
func TestPublishConfirmedConcurrent(t *testing.T) {
	ps := newPubSub(t, mem.Config{RedeliveryDelay: time.Microsecond})
	topics := []string{"x", "y"}
	var handled sync.Map // payload -> *atomic.Int32 acks per topic
	for _, topic := range topics {
		var attempts atomic.Int64
		runRouter(t, ps, topic, func(m *message.Message) error {
			if attempts.Add(1)%3 == 0 {
				return errors.New("injected failure")
			}
			n, _ := handled.LoadOrStore(string(m.Payload), new(atomic.Int32))
			n.(*atomic.Int32).Add(1)
			return nil
		})
	}

	const publishers, perPublisher = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, publishers*perPublisher)
	for p := range publishers {
		wg.Go(func() {
			for i := range perPublisher {
				payload := fmt.Sprintf("%d-%d", p, i)
				c := ps.NewConfirmation()
				for _, topic := range topics {
					if err := c.Publish(topic, newMessages(payload)...); err != nil {
						errs <- err
						return
					}
				}
				if err := c.Wait(context.Background()); err != nil {
					errs <- err
					return
				}
				n, ok := handled.Load(payload)
				if !ok || n.(*atomic.Int32).Load() < int32(len(topics)) {
					errs <- fmt.Errorf("%s confirmed before both topics handled it", payload)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
