package runtime

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// fakePrefetch hands out the messages pushed to in and records which were
// acknowledged or nacked, and any acknowledgement that got ahead of an
// earlier message still unacknowledged.
type fakePrefetch struct {
	in        chan *message.Message
	mu        sync.Mutex
	delivered []*message.Message
	acked     []string
	nacked    []string
	ahead     []string
	closed    bool
}

func newFakePrefetch() *fakePrefetch { return &fakePrefetch{in: make(chan *message.Message, 16)} }

func (f *fakePrefetch) SubscribePrefetch(context.Context, string, int) (<-chan *message.Message, error) {
	return f.in, nil
}
func (f *fakePrefetch) Subscribe(context.Context, string) (<-chan *message.Message, error) {
	panic("Subscribe called on a prefetching subscriber")
}
func (f *fakePrefetch) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.in)
	}
	return nil
}

// deliver sends a message with key, watching its ack.
func (f *fakePrefetch) deliver(id, key string) {
	m := message.NewMessage(id, nil)
	m.Metadata.Set(MetaSubject, key)
	f.mu.Lock()
	earlier := slices.Clone(f.delivered)
	f.delivered = append(f.delivered, m)
	f.mu.Unlock()
	go func() {
		select {
		case <-m.Acked():
			f.mu.Lock()
			defer f.mu.Unlock()
			f.acked = append(f.acked, id)
			for _, e := range earlier {
				select {
				case <-e.Acked():
				default:
					f.ahead = append(f.ahead, id+" before "+e.UUID)
				}
			}
		case <-m.Nacked():
			f.mu.Lock()
			f.nacked = append(f.nacked, id)
			f.mu.Unlock()
		}
	}()
	f.in <- m
}

func (f *fakePrefetch) ackedIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(slices.Values(f.acked))
}

// waitAcked waits until the acknowledged ids are want (sorted) and checks
// that none was acknowledged ahead of an earlier one.
func (f *fakePrefetch) waitAcked(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Equal(f.ackedIDs(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("broker acks %v, want %v", f.ackedIDs(), want)
		}
		time.Sleep(time.Millisecond)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.ahead) > 0 {
		t.Errorf("acknowledged ahead of an unacknowledged message: %v", f.ahead)
	}
}

func handout(t *testing.T, ch <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message handed out")
		return nil
	}
}

func nothingHandedOut(t *testing.T, ch <-chan *message.Message) {
	t.Helper()
	select {
	case m := <-ch:
		t.Fatalf("message %s handed out, want none yet", m.UUID)
	case <-time.After(20 * time.Millisecond):
	}
}

func TestOrderedSubscriberKeysAndAcks(t *testing.T) {
	f := newFakePrefetch()
	o := newOrderedSubscriber(f, 8, OrderingPartitionKey, time.Second, watermill.NopLogger{})
	ch, err := o.Subscribe(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	f.deliver("1", "a")
	f.deliver("2", "b")
	f.deliver("3", "a")
	f.deliver("4", "c")

	// a's second message waits for its first; b and c do not.
	m1, m2, m4 := handout(t, ch), handout(t, ch), handout(t, ch)
	if got := []string{m1.UUID, m2.UUID, m4.UUID}; !slices.Equal(got, []string{"1", "2", "4"}) {
		t.Fatalf("handed out %v, want [1 2 4]", got)
	}
	nothingHandedOut(t, ch)

	// Done out of order: nothing is acknowledged to the broker ahead of 1.
	m4.Ack()
	m2.Ack()
	time.Sleep(20 * time.Millisecond)
	if got := f.ackedIDs(); len(got) != 0 {
		t.Fatalf("broker acks %v before message 1 was handled", got)
	}
	m1.Ack()
	f.waitAcked(t, "1", "2")
	m3 := handout(t, ch)
	if m3.UUID != "3" {
		t.Fatalf("handed out %s, want 3", m3.UUID)
	}
	m3.Ack()
	f.waitAcked(t, "1", "2", "3", "4")
}

func TestOrderedSubscriberNackHandsOutAgainFirst(t *testing.T) {
	f := newFakePrefetch()
	o := newOrderedSubscriber(f, 4, OrderingPartitionKey, time.Second, watermill.NopLogger{})
	ch, err := o.Subscribe(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	f.deliver("1", "a")
	f.deliver("2", "a")
	m1 := handout(t, ch)
	m1.Nack()
	// The retry comes after a backoff, before 2 of the same key.
	again := handout(t, ch)
	if again.UUID != "1" {
		t.Fatalf("after a nack handed out %s, want 1 again", again.UUID)
	}
	if again == m1 {
		t.Fatal("the nacked copy was handed out again; want a fresh one")
	}
	again.Ack()
	if m2 := handout(t, ch); m2.UUID != "2" {
		t.Fatalf("handed out %s, want 2", m2.UUID)
	} else {
		m2.Ack()
	}
	f.waitAcked(t, "1", "2")
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.nacked) != 0 {
		t.Errorf("broker nacks %v: a nacked copy must not reach the broker", f.nacked)
	}
}

func TestOrderedSubscriberNoOrdering(t *testing.T) {
	f := newFakePrefetch()
	o := newOrderedSubscriber(f, 4, OrderingNone, time.Second, watermill.NopLogger{})
	ch, err := o.Subscribe(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	f.deliver("1", "a")
	f.deliver("2", "a")
	m1, m2 := handout(t, ch), handout(t, ch)
	m2.Ack()
	time.Sleep(20 * time.Millisecond)
	if got := f.ackedIDs(); len(got) != 0 {
		t.Fatalf("broker acks %v before message 1 was handled", got)
	}
	m1.Ack()
	f.waitAcked(t, "1", "2")
}

// Close waits for what the router holds and acknowledges it before closing
// the broker's subscriber; what it never handed out stays unacknowledged.
func TestOrderedSubscriberCloseDrains(t *testing.T) {
	f := newFakePrefetch()
	o := newOrderedSubscriber(f, 4, OrderingPartitionKey, 5*time.Second, watermill.NopLogger{})
	ch, err := o.Subscribe(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	f.deliver("1", "a")
	f.deliver("2", "a")
	m1 := handout(t, ch)
	closed := make(chan struct{})
	go func() {
		_ = o.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while a handed-out message was being handled")
	case <-time.After(50 * time.Millisecond):
	}
	m1.Ack()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return once the message was handled")
	}
	f.waitAcked(t, "1")
	if _, ok := <-ch; ok {
		t.Error("message 2 handed out after Close")
	}
}
