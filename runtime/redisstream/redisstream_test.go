package redisstream_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/redis/go-redis/v9"

	ordersv1 "github.com/protoc-gen-eda/eda/examples/orders/gen/shop/orders/v1"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/brokertest"
	"github.com/protoc-gen-eda/eda/runtime/redisstream"
)

// rawClient is a plain client, to look at and clean up what tests create.
func rawClient(t *testing.T, rawURL string) *redis.Client {
	t.Helper()
	o, err := redis.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestPubSub runs Watermill's universal Pub/Sub suite, with the settings
// and features watermill-redisstream runs it with: every subscriber of the
// plain constructor has a consumer group of its own, which starts at the
// stream's first entry, so new subscribers receive old messages; claiming
// after 5s of idleness hands a closed subscriber's unacknowledged messages
// to the next one.
func TestPubSub(t *testing.T) {
	base := edatest.ServiceURL(t, edatest.RedisURLEnv)
	rawURL := brokertest.WithParams(t, base, "block=10ms&claim_interval=3s&max_idle=5s")
	prefix := "eda-redisstream-suite-" + watermill.NewShortUUID() + "-"
	client := rawClient(t, base)
	t.Cleanup(func() { deleteKeys(t, client, prefix+"*") })

	newPubSub := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		b, err := runtime.OpenBroker(context.Background(), rawURL, runtime.BrokerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sub, err := b.NewSubscriber(group)
		if err != nil {
			t.Fatal(err)
		}
		// The suite closes the publisher and subscriber itself; Close is
		// idempotent.
		t.Cleanup(func() { _ = b.Close() })
		return b.Publisher, sub
	}
	tests.TestPubSub(t,
		tests.Features{
			ConsumerGroups: true,
			// Redelivery after a nack, a claim or a lost ack repeats
			// messages.
			ExactlyOnceDelivery: false,
			// One stream is ordered, but competing consumers of a group
			// interleave.
			GuaranteedOrder:                     false,
			GuaranteedOrderWithSingleSubscriber: true,
			Persistent:                          true,
			// A new group starts at the stream's first entry.
			NewSubscriberReceivesOldMessages: true,
			GenerateTopicFunc: func(tctx tests.TestContext) string {
				return prefix + string(tctx.TestID)
			},
			// Each XREADGROUP reads one entry: under the race detector
			// 5000 messages take longer than the suite waits.
			ForceShort: raceEnabled,
			// RestartServiceCommand is unset: the tests cannot restart the
			// shared Redis, so TestReconnect is skipped.
		},
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			return newPubSub(t, watermill.NewShortUUID())
		},
		newPubSub,
	)
}

func deleteKeys(t *testing.T, c *redis.Client, pattern string) {
	ctx := context.Background()
	iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Errorf("scan %s: %v", pattern, err)
		return
	}
	for len(keys) > 0 {
		n := min(len(keys), 500)
		if err := c.Del(ctx, keys[:n]...).Err(); err != nil {
			t.Errorf("delete test streams: %v", err)
			return
		}
		keys = keys[n:]
	}
}

// TestGeneratedRoundTrip publishes with a generated publisher to routers
// running generated handlers: two instances of one consumer group share the
// messages, each handled once, another group gets every one, and the
// envelope arrives intact.
func TestGeneratedRoundTrip(t *testing.T) {
	base := edatest.ServiceURL(t, edatest.RedisURLEnv)
	// maxlen bounds what the shared stream keeps from earlier runs.
	rawURL := brokertest.WithParams(t, base, "maxlen=1000&block=20ms")
	run := "rt-" + watermill.NewShortUUID() + "-"
	groupA, groupB := "eda-test-"+run+"a", "eda-test-"+run+"b"
	client := rawClient(t, base)
	t.Cleanup(func() {
		for _, g := range []string{groupA, groupB} {
			if err := client.XGroupDestroy(context.Background(), ordersv1.OrderEventsTopic, g).Err(); err != nil {
				t.Errorf("destroy group %s: %v", g, err)
			}
		}
	})

	brokertest.GroupRoundTrip(t, rawURL, run, groupA, groupB, "redisstream-test")
}

// TestNewSubscriberNeedsGroup: without a group there is no Redis consumer
// group to compete in.
func TestNewSubscriberNeedsGroup(t *testing.T) {
	b := brokertest.OpenBroker(t, edatest.ServiceURL(t, edatest.RedisURLEnv))
	if _, err := b.NewSubscriber(""); err == nil || !strings.Contains(err.Error(), "needs a consumer group") {
		t.Errorf("NewSubscriber(\"\") = %v, want an error asking for a group", err)
	}
}

// TestStartLatest: a group created with start=latest skips what the
// stream held before.
func TestStartLatest(t *testing.T) {
	base := edatest.ServiceURL(t, edatest.RedisURLEnv)
	topic := "eda-redisstream-latest-" + watermill.NewShortUUID()
	client := rawClient(t, base)
	t.Cleanup(func() { deleteKeys(t, client, topic) })
	b := brokertest.OpenBroker(t, brokertest.WithParams(t, base, "start=latest&block=10ms"))
	if err := b.Publisher.Publish(topic, message.NewMessage("old", nil)); err != nil {
		t.Fatal(err)
	}
	sub, err := b.NewSubscriber("g")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publisher.Publish(topic, message.NewMessage("new", nil)); err != nil {
		t.Fatal(err)
	}
	m := edatest.Receive(t, msgs)
	m.Ack()
	if m.UUID != "new" {
		t.Errorf("first message %q, want new: start=latest read the past", m.UUID)
	}
}

// TestMaxLen: maxlen trims streams on publish.
func TestMaxLen(t *testing.T) {
	base := edatest.ServiceURL(t, edatest.RedisURLEnv)
	topic := "eda-redisstream-maxlen-" + watermill.NewShortUUID()
	client := rawClient(t, base)
	t.Cleanup(func() { deleteKeys(t, client, topic) })
	b := brokertest.OpenBroker(t, brokertest.WithParams(t, base, "maxlen=10"))
	// Approximate trimming drops whole nodes of 100 entries by default.
	for i := range 1000 {
		if err := b.Publisher.Publish(topic, message.NewMessage(fmt.Sprint(i), nil)); err != nil {
			t.Fatal(err)
		}
	}
	n, err := client.XLen(context.Background(), topic).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n >= 1000 || n < 10 {
		t.Errorf("stream holds %d entries after 1000 with maxlen=10, want trimmed to about 10", n)
	}
}

// TestClaimDeadConsumer: a message a consumer took and never acknowledged
// goes to another consumer of the group after max_idle.
func TestClaimDeadConsumer(t *testing.T) {
	base := edatest.ServiceURL(t, edatest.RedisURLEnv)
	topic := "eda-redisstream-claim-" + watermill.NewShortUUID()
	client := rawClient(t, base)
	t.Cleanup(func() { deleteKeys(t, client, topic) })
	rawURL := brokertest.WithParams(t, base, "block=10ms&claim_interval=100ms&max_idle=500ms")

	dead := brokertest.OpenBroker(t, rawURL)
	sub, err := dead.NewSubscriber("g")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := dead.Publisher.Publish(topic, message.NewMessage("m1", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	if m := edatest.Receive(t, msgs); m.UUID != "m1" {
		t.Fatalf("got %q", m.UUID)
	}
	// The consumer dies holding m1.
	if err := dead.Close(); err != nil {
		t.Fatal(err)
	}

	live := brokertest.OpenBroker(t, rawURL)
	sub2, err := live.NewSubscriber("g")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	msgs2, err := sub2.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	m := edatest.Receive(t, msgs2)
	m.Ack()
	if m.UUID != "m1" {
		t.Errorf("live consumer got %q, want the dead one's m1", m.UUID)
	}
	t.Logf("claimed after %s", time.Since(start))
}

func TestOpenErrors(t *testing.T) {
	base := edatest.ServiceURL(t, edatest.RedisURLEnv)
	tests := []struct{ url, want string }{
		{brokertest.WithParams(t, base, "maxlen=lots"), `maxlen="lots": want a number`},
		{brokertest.WithParams(t, base, "maxlen=-1"), `maxlen="-1"`},
		{brokertest.WithParams(t, base, "block=soon"), `block="soon": want a positive Go duration`},
		{brokertest.WithParams(t, base, "claim_interval=0s"), `claim_interval="0s"`},
		{brokertest.WithParams(t, base, "start=middle"), `start="middle": want earliest or latest`},
		{brokertest.WithParams(t, base, "fast=1"), `unexpected option: fast (this package knows maxlen`},
		{"redis://127.0.0.1:6379/zero", `invalid database number`},
		// Nothing listens on port 1: refused at once.
		{"redis://:s3cret@127.0.0.1:1/0", "redis at 127.0.0.1:1 does not answer"},
	}
	for _, tt := range tests {
		start := time.Now()
		_, err := runtime.OpenBroker(context.Background(), tt.url, runtime.BrokerOptions{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("OpenBroker(%q) = %v, want an error containing %q", tt.url, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("OpenBroker(%q): the error shows the password: %v", tt.url, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("OpenBroker(%q) took %s", tt.url, d)
		}
	}
}

// TestOpenUnreachableIsBounded: a server that accepts connections and
// never answers fails Open within connect_timeout, the password redacted.
func TestOpenUnreachableIsBounded(t *testing.T) {
	addr := brokertest.SilentServer(t)
	u := "redis://user:s3cret@" + addr + "/0?connect_timeout=500ms"
	start := time.Now()
	_, err := runtime.OpenBroker(context.Background(), u, runtime.BrokerOptions{})
	took := time.Since(start)
	if err == nil {
		t.Fatal("opened a broker on a server that never answers")
	}
	if !strings.Contains(err.Error(), "does not answer") || !strings.Contains(err.Error(), "user:xxxxx@"+addr) {
		t.Errorf("error %q: want it to say Redis does not answer, with the URL redacted", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error shows the password: %v", err)
	}
	if took < 400*time.Millisecond || took > 3*time.Second {
		t.Errorf("took %s with connect_timeout=500ms", took)
	}
}

func TestParseURL(t *testing.T) {
	u, err := url.Parse("rediss://u:p@host:6380/3?maxlen=50&block=1s&claim_interval=2s&max_idle=3s&start=latest&connect_timeout=4s&pool_size=7")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := redisstream.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.Options
	if o.Addr != "host:6380" || o.DB != 3 || o.Username != "u" || o.Password != "p" || o.TLSConfig == nil || o.PoolSize != 7 ||
		cfg.MaxLen != 50 || cfg.BlockTime != time.Second || cfg.ClaimInterval != 2*time.Second ||
		cfg.MaxIdleTime != 3*time.Second || !cfg.StartLatest || cfg.ConnectTimeout != 4*time.Second {
		t.Errorf("ParseURL = %+v, options %+v", cfg, o)
	}
}

// TestConfigValidate: New reports every bad field.
func TestConfigValidate(t *testing.T) {
	_, err := redisstream.New(context.Background(), redisstream.Config{MaxLen: -1, BlockTime: -time.Second})
	for _, want := range []string{"Options is required", "MaxLen is -1", "BlockTime is -1s"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New = %v, want an error containing %q", err, want)
		}
	}
}
