package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/protoc-gen-eda/eda/runtime"
)

// callRecorder records each Publish call as topic and message ids, and
// fails the calls for the topics in fail.
type callRecorder struct {
	mu    sync.Mutex
	calls []string
	msgs  []*message.Message
	fail  map[string]bool
}

func (r *callRecorder) Publish(topic string, msgs ...*message.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail[topic] {
		return fmt.Errorf("broker refuses %s", topic)
	}
	call := topic + ":"
	for _, m := range msgs {
		call += " " + m.UUID
	}
	r.calls = append(r.calls, call)
	r.msgs = append(r.msgs, msgs...)
	return nil
}

func (r *callRecorder) Close() error { return nil }

func (r *callRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

func queue(t *testing.T, b *runtime.Batch, topic string, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := b.Publish(topic, message.NewMessage(id, nil)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBatchFlushPublishesEachTopicInOneCall(t *testing.T) {
	rec := &callRecorder{}
	b := runtime.NewBatch(rec)
	queue(t, b, "a", "1")
	queue(t, b, "b", "2")
	queue(t, b, "a", "3", "4")
	if got := rec.take(); len(got) != 0 {
		t.Fatalf("published before Flush: %q", got)
	}
	if b.Len() != 4 {
		t.Fatalf("Len = %d, want 4", b.Len())
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	want := []string{"a: 1 3 4", "b: 2"}
	if got := rec.take(); !slices.Equal(got, want) {
		t.Fatalf("calls = %q, want %q", got, want)
	}
	if b.Len() != 0 {
		t.Fatalf("Len after Flush = %d", b.Len())
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := rec.take(); len(got) != 0 {
		t.Fatalf("an empty Flush published %q", got)
	}
}

func TestBatchKeepsWhatTheBrokerRefused(t *testing.T) {
	rec := &callRecorder{fail: map[string]bool{"b": true}}
	b := runtime.NewBatch(rec)
	queue(t, b, "a", "1")
	queue(t, b, "b", "2", "3")
	queue(t, b, "c", "4")
	err := b.Flush()
	if err == nil {
		t.Fatal("Flush succeeded with topic b refused")
	}
	if want := "flush 2 messages to b: broker refuses b"; err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	if got, want := rec.take(), []string{"a: 1"}; !slices.Equal(got, want) {
		t.Fatalf("calls = %q, want %q", got, want)
	}
	// b and c are kept, ahead of what comes next; a is not published again.
	if b.Len() != 3 {
		t.Fatalf("Len after the failure = %d, want 3 (b's two and c's)", b.Len())
	}
	queue(t, b, "b", "5")
	queue(t, b, "a", "6")
	rec.mu.Lock()
	rec.fail = nil
	rec.mu.Unlock()
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.take(), []string{"b: 2 3 5", "c: 4", "a: 6"}; !slices.Equal(got, want) {
		t.Fatalf("calls after recovery = %q, want %q", got, want)
	}
}

func TestBatchCloseFlushesAndRefusesMore(t *testing.T) {
	rec := &callRecorder{}
	b := runtime.NewBatch(rec)
	queue(t, b, "a", "1")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.take(), []string{"a: 1"}; !slices.Equal(got, want) {
		t.Fatalf("Close published %q, want %q", got, want)
	}
	if err := b.Publish("a", message.NewMessage("2", nil)); !errors.Is(err, runtime.ErrBatchClosed) {
		t.Fatalf("Publish after Close: %v, want ErrBatchClosed", err)
	}
}

// A Publisher over a Batch is how generated publishers publish
// asynchronously: concurrent publishes are queued, each with its envelope,
// and one Flush sends them all.
func TestPublisherOverBatch(t *testing.T) {
	rec := &callRecorder{}
	b := runtime.NewBatch(rec)
	pub, err := runtime.NewPublisher(b, runtime.PublisherConfig{Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	typ := &runtime.MessageType{Name: "test.Ping", Topic: "pings", Version: 1}
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := pub.Publish(context.Background(), typ, runtime.Outgoing{Subject: fmt.Sprint(i), Message: wrapperspb.Int64(int64(i))}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if b.Len() != n {
		t.Fatalf("Len = %d, want %d", b.Len(), n)
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	calls := rec.take()
	if len(calls) != 1 {
		t.Fatalf("%d Publish calls for one topic, want 1", len(calls))
	}
	if ids := strings.Fields(strings.TrimPrefix(calls[0], "pings:")); len(ids) != n || len(slices.Compact(slices.Sorted(slices.Values(ids)))) != n {
		t.Fatalf("the Flush published %d messages (%d distinct ids), want %d", len(ids), len(slices.Compact(slices.Sorted(slices.Values(ids)))), n)
	}
	for _, m := range rec.msgs {
		if m.Metadata[runtime.MetaType] != "test.Ping" || m.Metadata[runtime.MetaSource] != "test" || m.Metadata[runtime.MetaID] != m.UUID {
			t.Fatalf("flushed message %s has no envelope: %v", m.UUID, m.Metadata)
		}
	}
}
