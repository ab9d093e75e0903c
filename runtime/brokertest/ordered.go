package brokertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
)

// OrderedConcurrency runs one handler with MaxInFlight 8 on a topic named
// after run and checks the ordered concurrency the broker's subscriber
// allows (runtime.PrefetchSubscriber): with keys × perKey messages
// published, every message is handled once, each key's in the order
// published and never two of one key at once, while messages of different
// keys are handled at once (more than one in flight, at most 8).
func OrderedConcurrency(t *testing.T, rawURL, run string) {
	t.Helper()
	const (
		keys, perKey = 16, 25
		maxInFlight  = 8
	)
	b := OpenBroker(t, rawURL)
	typ := &runtime.MessageType{
		Name:     "brokertest.v1.Ordered",
		Version:  1,
		Topic:    "brokertest.ordered." + run,
		Delivery: runtime.DeliveryPolicy{MaxInFlight: maxInFlight, ConsumerGroup: "ordered-" + run},
	}
	var (
		mu       sync.Mutex
		next     = map[string]int{} // key → the index expected next
		busy     = map[string]bool{}
		problems []string
		inFlight atomic.Int32
		peak     atomic.Int32
		handled  = make(chan struct{}, keys*perKey)
	)
	router, err := runtime.NewRouter(runtime.RouterConfig{NewSubscriber: b.NewSubscriber, Publisher: b.Publisher, CloseTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = router.AddHandler(runtime.HandlerSpec{Name: "ordered", Topic: typ.Topic, Routes: []runtime.Route{
		runtime.On(typ, func(ctx context.Context, m *wrapperspb.StringValue) error {
			key, idx, _ := strings.Cut(m.GetValue(), "/")
			i, _ := strconv.Atoi(idx)
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			mu.Lock()
			if busy[key] {
				problems = append(problems, fmt.Sprintf("key %s: message %d handled while another of the key was", key, i))
			}
			if i != next[key] {
				problems = append(problems, fmt.Sprintf("key %s: message %d handled, want %d", key, i, next[key]))
			}
			busy[key], next[key] = true, i+1
			mu.Unlock()
			// Long enough for other keys' messages to overlap, and uneven,
			// so that a later message of a key would finish first if two
			// were handled at once.
			time.Sleep(time.Duration(1+i%3) * time.Millisecond)
			mu.Lock()
			busy[key] = false
			mu.Unlock()
			handled <- struct{}{}
			return nil
		}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := router.MaxInFlight("ordered"); got != maxInFlight {
		t.Fatalf("router.MaxInFlight = %d, want %d: the broker's subscriber does not deliver ahead", got, maxInFlight)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- router.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("router: %v", err)
		}
	}()
	select {
	case <-router.Running():
	case <-time.After(30 * time.Second):
		t.Fatal("router did not start")
	}

	pub, err := runtime.NewPublisher(b.Publisher, runtime.PublisherConfig{Source: "brokertest"})
	if err != nil {
		t.Fatal(err)
	}
	// Keys in a random interleaving, so that a key's messages often follow
	// each other closely enough to be in flight together if order were not
	// kept.
	rnd := rand.New(rand.NewPCG(1, 2))
	sent := make([]int, keys)
	for range keys * perKey {
		k := rnd.IntN(keys)
		for sent[k] == perKey {
			k = (k + 1) % keys
		}
		key := fmt.Sprintf("k%02d", k)
		if err := pub.Publish(ctx, typ, runtime.Outgoing{Subject: key, Message: wrapperspb.String(fmt.Sprintf("%s/%d", key, sent[k]))}); err != nil {
			t.Fatal(err)
		}
		sent[k]++
	}
	deadline := time.After(60 * time.Second)
	for n := range keys * perKey {
		select {
		case <-handled:
		case <-deadline:
			t.Fatalf("%d of %d messages handled in 60s", n, keys*perKey)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Error(p)
	}
	for k := range keys {
		if key := fmt.Sprintf("k%02d", k); next[key] != perKey {
			t.Errorf("key %s: handled up to %d, want %d", key, next[key], perKey)
		}
	}
	if p := peak.Load(); p < 2 || p > maxInFlight {
		t.Errorf("at most %d messages were handled at once, want 2..%d", p, maxInFlight)
	}
	t.Logf("%d messages of %d keys, up to %d handled at once", keys*perKey, keys, peak.Load())
}

// PublishNumbered publishes n messages to topic: message i has the UUID
// "m<i>", the metadata index=<i> and the payload "payload <i>".
func PublishNumbered(t *testing.T, pub message.Publisher, topic string, n int) {
	t.Helper()
	for i := range n {
		m := message.NewMessage(fmt.Sprintf("m%d", i), []byte(fmt.Sprintf("payload %d", i)))
		m.Metadata.Set("index", strconv.Itoa(i))
		if err := pub.Publish(topic, m); err != nil {
			t.Fatal(err)
		}
	}
}

// ReceiveNumbered returns the next message of ch and fails unless it is
// message i of PublishNumbered, intact.
func ReceiveNumbered(t *testing.T, ch <-chan *message.Message, i int) *message.Message {
	t.Helper()
	want := fmt.Sprintf("m%d", i)
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatalf("channel closed, want message %s", want)
		}
		if m.UUID != want || m.Metadata.Get("index") != strconv.Itoa(i) || string(m.Payload) != fmt.Sprintf("payload %d", i) {
			t.Fatalf("got message %s (metadata %v, payload %q), want %s", m.UUID, m.Metadata, m.Payload, want)
		}
		return m
	case <-time.After(edatest.Timeout):
		t.Fatalf("no message within %s, want %s", edatest.Timeout, want)
		return nil
	}
}

// NoMessage fails if ch delivers a message, or closes, within d; why says
// what the message would break.
func NoMessage(t *testing.T, ch <-chan *message.Message, d time.Duration, why string) {
	t.Helper()
	select {
	case m, ok := <-ch:
		if ok {
			t.Fatalf("got message %s %s", m.UUID, why)
		}
		t.Fatalf("channel closed %s", why)
	case <-time.After(d):
	}
}
