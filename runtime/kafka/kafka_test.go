package kafka_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	ordersv1 "github.com/protoc-gen-eda/eda/examples/orders/gen/shop/orders/v1"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/kafka"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		url  string
		want kafka.Config
	}{
		{"kafka://k1", kafka.Config{Brokers: []string{"k1:9092"}}},
		{"kafka://k1:9093,k2:9094/", kafka.Config{Brokers: []string{"k1:9093", "k2:9094"}}},
		{"kafka://k1,k2:9095", kafka.Config{Brokers: []string{"k1:9092", "k2:9095"}}},
		{"kafka://[::1]:9095", kafka.Config{Brokers: []string{"[::1]:9095"}}},
		{"kafka://[::2]", kafka.Config{Brokers: []string{"[::2]:9092"}}},
		{"kafka://app:pw@k1:9092?client_id=orders&version=3.6.0&initial_offset=newest&dial_timeout=3s&resend_interval=1s&idempotent=false",
			kafka.Config{Brokers: []string{"k1:9092"}, Username: "app", Password: "pw", ClientID: "orders", Version: sarama.V3_6_0_0,
				StartAtNewest: true, DialTimeout: 3 * time.Second, ResendInterval: time.Second, DisableIdempotence: true}},
		{"kafka://k1?initial_offset=oldest&tls=false", kafka.Config{Brokers: []string{"k1:9092"}}},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		got, err := kafka.ParseURL(u)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tt.url, err)
			continue
		}
		if !slices.Equal(got.Brokers, tt.want.Brokers) || got.Username != tt.want.Username || got.Password != tt.want.Password ||
			got.ClientID != tt.want.ClientID || got.Version != tt.want.Version || got.StartAtNewest != tt.want.StartAtNewest ||
			got.DialTimeout != tt.want.DialTimeout || got.ResendInterval != tt.want.ResendInterval ||
			got.DisableIdempotence != tt.want.DisableIdempotence || got.TLS != nil {
			t.Errorf("ParseURL(%q) = %+v, want %+v", tt.url, got, tt.want)
		}
	}

	u, _ := url.Parse("kafka://k1?tls=true")
	if got, err := kafka.ParseURL(u); err != nil || got.TLS == nil {
		t.Errorf("tls=true: TLS %v, err %v", got.TLS, err)
	}
}

func TestOpenBrokerErrors(t *testing.T) {
	tests := []struct{ url, want string }{
		{"kafka://", "names no broker"},
		{"kafka://k1/topic", `has a path "/topic"`},
		{"kafka://app:s3cret@k1?acks=all", `unknown URL parameter "acks"`},
		{"kafka://app:s3cret@k1?version=banana", "version=\"banana\": want a Kafka version"},
		{"kafka://k1?initial_offset=latest", "oldest or newest"},
		{"kafka://k1?dial_timeout=0s", "positive duration"},
		{"kafka://k1?resend_interval=soon", "resend_interval"},
		{"kafka://k1?tls=yes", "tls=\"yes\": want true or false"},
		{"kafka://k1?idempotent=maybe", "idempotent"},
		{"kafka://k1?client_id=", "client_id"},
		{"kafka://k1:,:9092", "has no host"},
	}
	for _, tt := range tests {
		_, err := runtime.OpenBroker(context.Background(), tt.url, runtime.BrokerOptions{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("OpenBroker(%q) = %v, want an error containing %q", tt.url, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("OpenBroker(%q): the error shows the password: %v", tt.url, err)
		}
	}
	if err := (kafka.Config{Password: "pw"}).Validate(); err == nil || !strings.Contains(err.Error(), "Brokers is empty") || !strings.Contains(err.Error(), "without Username") {
		t.Errorf("Validate = %v, want both errors", err)
	}
}

// closedPort returns an address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestOpenUnreachableFailsFast(t *testing.T) {
	addr := closedPort(t)
	start := time.Now()
	_, err := runtime.OpenBroker(context.Background(), "kafka://app:s3cret@"+addr, runtime.BrokerOptions{})
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("OpenBroker of a closed port succeeded")
	}
	for _, want := range []string{"kafka: connect to " + addr, "reachable"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the error shows the password: %v", err)
	}
	// Four metadata attempts 250ms apart, refused at once.
	if elapsed > 5*time.Second {
		t.Errorf("failing took %s, want a few seconds at most", elapsed)
	}
}

// TestOpenSilentBrokerHonoursContext connects to a server that accepts and
// never answers: Sarama would wait for its 30s read timeout, several times;
// Open returns when its context ends.
func TestOpenSilentBrokerHonoursContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	conns.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		l.Close()
		conns.Wait()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
	})

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = runtime.OpenBroker(ctx, "kafka://"+l.Addr().String(), runtime.BrokerOptions{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("OpenBroker of a silent server = %v, want context.DeadlineExceeded", err)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("OpenBroker returned %s after its context ended", elapsed)
	}
}

func TestMarshalerKey(t *testing.T) {
	tests := []struct {
		name string
		md   message.Metadata
		want string // "" for no key
	}{
		{"partition key", message.Metadata{runtime.MetaPartitionKey: "alice", runtime.MetaSubject: "order-1"}, "alice"},
		{"subject when no partition key", message.Metadata{runtime.MetaSubject: "order-1"}, "order-1"},
		{"no key", message.Metadata{runtime.MetaType: "x"}, ""},
	}
	for _, tt := range tests {
		msg := message.NewMessage("id-1", []byte("p"))
		msg.Metadata = tt.md
		rec, err := kafka.Marshaler{}.Marshal("t", msg)
		if err != nil {
			t.Fatal(err)
		}
		if tt.want == "" {
			if rec.Key != nil {
				t.Errorf("%s: key %v, want none (so that the record is spread over partitions)", tt.name, rec.Key)
			}
			continue
		}
		if rec.Key == nil {
			t.Errorf("%s: no key, want %q", tt.name, tt.want)
			continue
		}
		if key, _ := rec.Key.Encode(); string(key) != tt.want {
			t.Errorf("%s: key %q, want %q", tt.name, key, tt.want)
		}
	}
}

// recorder is a message.Publisher that keeps what it is given.
type recorder struct{ msgs []*message.Message }

func (r *recorder) Publish(_ string, msgs ...*message.Message) error {
	r.msgs = append(r.msgs, msgs...)
	return nil
}
func (r *recorder) Close() error { return nil }

// TestGeneratedEventRoundTrip publishes a generated event (OrderPlaced,
// whose partition key is the customer id), maps it to a Kafka record and
// back as a consumer would receive it, and checks the key, the envelope
// and the payload.
func TestGeneratedEventRoundTrip(t *testing.T) {
	rec := &recorder{}
	pub, err := runtime.NewPublisher(rec, runtime.PublisherConfig{Source: "kafka-test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := runtime.WithCorrelationID(context.Background(), "checkout-9")
	sent := &ordersv1.OrderPlaced{OrderId: "order-1", CustomerId: "alice"}
	if err := ordersv1.NewOrderEventPublisher(pub).PublishOrderPlaced(ctx, sent); err != nil {
		t.Fatal(err)
	}
	if len(rec.msgs) != 1 {
		t.Fatalf("published %d messages, want 1", len(rec.msgs))
	}
	orig := rec.msgs[0]

	out, err := kafka.Marshaler{}.Marshal(ordersv1.OrderEventsTopic, orig)
	if err != nil {
		t.Fatal(err)
	}
	if key, _ := out.Key.Encode(); string(key) != "alice" {
		t.Errorf("record key %q, want the partition key alice", key)
	}
	if out.Topic != ordersv1.OrderEventsTopic {
		t.Errorf("record topic %q", out.Topic)
	}
	value, _ := out.Value.Encode()
	key, _ := out.Key.Encode()
	in := &sarama.ConsumerMessage{Topic: out.Topic, Key: key, Value: value}
	for i := range out.Headers {
		in.Headers = append(in.Headers, &out.Headers[i])
	}
	got, err := kafka.Marshaler{}.Unmarshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if got.UUID != orig.UUID || string(got.Payload) != string(orig.Payload) {
		t.Errorf("round trip: uuid %q payload %x, want %q %x", got.UUID, got.Payload, orig.UUID, orig.Payload)
	}
	if len(got.Metadata) != len(orig.Metadata) {
		t.Errorf("round trip metadata %v, want %v", got.Metadata, orig.Metadata)
	}
	for k, v := range orig.Metadata {
		if got.Metadata.Get(k) != v {
			t.Errorf("round trip metadata %s = %q, want %q", k, got.Metadata.Get(k), v)
		}
	}
	env := runtime.EnvelopeOf(got)
	if env.Type != ordersv1.OrderPlacedEventType || env.PartitionKey != "alice" || env.Subject != "order-1" || env.CorrelationID != "checkout-9" || env.Source != "kafka-test" {
		t.Errorf("envelope after the round trip: %+v", env)
	}
}

func TestMarshalerRejectsReservedHeader(t *testing.T) {
	msg := message.NewMessage("id", nil)
	msg.Metadata.Set(wkafka.UUIDHeaderKey, "x")
	if _, err := (kafka.Marshaler{}).Marshal("t", msg); err == nil {
		t.Error("metadata under Watermill's id header was accepted")
	}
}
