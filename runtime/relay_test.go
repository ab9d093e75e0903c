package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/memstore"
)

// recordingPublisher keeps what it publishes, per call, and fails the call
// whose number is in failOn.
type recordingPublisher struct {
	mu     sync.Mutex
	calls  int
	failOn map[int]bool
	topics []string
	uuids  []string
	md     []message.Metadata
}

func (p *recordingPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.failOn[p.calls] {
		return fmt.Errorf("broker down (call %d)", p.calls)
	}
	for _, m := range msgs {
		p.topics = append(p.topics, topic)
		p.uuids = append(p.uuids, m.UUID)
		p.md = append(p.md, m.Metadata)
	}
	return nil
}

func (p *recordingPublisher) Close() error { return nil }

func (p *recordingPublisher) published() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.uuids...)
}

// appendOutbox appends one event per id to stream s, each with an outbox
// message on topic.
func appendOutbox(t *testing.T, store runtime.EventStore, s string, topic string, ids ...string) {
	t.Helper()
	ctx := context.Background()
	var version uint64
	_ = store.ReadStream(ctx, runtime.StreamID{Type: "T", ID: s}, 0, func(r *runtime.EventRecord) error { version = r.Sequence; return nil })
	req := runtime.AppendRequest{Stream: runtime.StreamID{Type: "T", ID: s}, ExpectedVersion: version}
	for _, id := range ids {
		md, _ := runtime.EncodeMetadata(map[string]string{runtime.MetaID: id, runtime.MetaType: "E"})
		req.Events = append(req.Events, runtime.EventRecord{ID: id, Type: "E", SchemaVersion: 1, Data: []byte(id)})
		req.Outbox = append(req.Outbox, runtime.OutboxMessage{Topic: topic, UUID: id, Metadata: md, Payload: []byte(id)})
	}
	if _, err := store.Append(ctx, req); err != nil {
		t.Fatal(err)
	}
}

func TestRelayPublishesInOrderAndGroupsByTopic(t *testing.T) {
	store := memstore.New()
	appendOutbox(t, store, "s1", "a", "1", "2")
	appendOutbox(t, store, "s2", "b", "3")
	appendOutbox(t, store, "s1", "a", "4")
	pub := &recordingPublisher{}
	relay, err := runtime.NewRelay(store, runtime.RelayConfig{Publisher: pub, BatchSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	n, err := relay.Flush(context.Background())
	if err != nil || n != 4 {
		t.Fatalf("Flush = %d, %v; want 4", n, err)
	}
	if got := strings.Join(pub.published(), ","); got != "1,2,3,4" {
		t.Errorf("published %s, want 1,2,3,4", got)
	}
	// Batches of 3: [1 2 3] in two calls (a, b), then [4].
	if pub.calls != 3 || strings.Join(pub.topics, ",") != "a,a,b,a" {
		t.Errorf("%d publish calls to %v, want 3 calls: a a | b | a", pub.calls, pub.topics)
	}
	if pub.md[0].Get(runtime.MetaType) != "E" {
		t.Errorf("metadata not restored: %v", pub.md[0])
	}
	if relay.Published() != 4 {
		t.Errorf("Published() = %d, want 4", relay.Published())
	}
	if n, err := relay.Flush(context.Background()); n != 0 || err != nil {
		t.Errorf("second Flush = %d, %v; want 0: the outbox is empty", n, err)
	}
}

func TestRelayRepublishesAfterAFailure(t *testing.T) {
	store := memstore.New()
	appendOutbox(t, store, "s1", "a", "1", "2", "3")
	appendOutbox(t, store, "s2", "b", "4")
	// The second publish call of the first batch fails: message 4 is not
	// published, 1-3 were, and the whole batch stays in the outbox.
	pub := &recordingPublisher{failOn: map[int]bool{2: true}}
	relay, err := runtime.NewRelay(store, runtime.RelayConfig{Publisher: pub})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := relay.Flush(context.Background()); err == nil || !strings.Contains(err.Error(), "broker down") {
		t.Fatalf("Flush: err = %v, want the broker's error", err)
	}
	if n, err := relay.Flush(context.Background()); err != nil || n != 4 {
		t.Fatalf("Flush after the broker recovered = %d, %v; want 4", n, err)
	}
	// At least once: 1-3 twice, 4 once, in order each time.
	if got := strings.Join(pub.published(), ","); got != "1,2,3,1,2,3,4" {
		t.Errorf("published %s, want 1,2,3 then 1,2,3,4", got)
	}
}

func TestRelayRun(t *testing.T) {
	store := memstore.New()
	pub := &recordingPublisher{failOn: map[int]bool{1: true}}
	relay, err := runtime.NewRelay(store, runtime.RelayConfig{Publisher: pub, PollInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx) }()

	// A failed publish is retried; later appends wake the relay.
	appendOutbox(t, store, "s1", "a", "1")
	edatest.Eventually(t, "message 1 published after a failure", func() bool { return len(pub.published()) == 1 })
	appendOutbox(t, store, "s1", "a", "2")
	edatest.Eventually(t, "message 2 published", func() bool { return len(pub.published()) == 2 })

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}

	// A closed store ends Run with its error.
	go func() { done <- relay.Run(context.Background()) }()
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, runtime.ErrStoreClosed) {
			t.Errorf("Run on a closed store = %v, want ErrStoreClosed", err)
		}
	case <-time.After(edatest.Timeout):
		t.Fatal("Run did not stop when the store closed")
	}
}

func TestRelayConfigValidate(t *testing.T) {
	_, err := runtime.NewRelay(memstore.New(), runtime.RelayConfig{BatchSize: -1})
	if err == nil || !strings.Contains(err.Error(), "Publisher is required") || !strings.Contains(err.Error(), "BatchSize is -1") {
		t.Errorf("err = %v, want both problems", err)
	}
	if _, err := runtime.NewRelay(nil, runtime.RelayConfig{Publisher: &recordingPublisher{}}); err == nil {
		t.Error("NewRelay(nil) succeeded")
	}
}
