package redisdedup_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/deduptest"
	"github.com/protoc-gen-eda/eda/runtime/redisdedup"
)

// prefixes maps the stores Open made to their key prefixes, for Share.
var prefixes sync.Map // *redisdedup.Store -> string

// uniquePrefix returns a key prefix no other test uses and deletes its
// keys when the test ends.
func uniquePrefix(t *testing.T, url string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "edatest:dedup:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		opts, err := redis.ParseURL(url)
		if err != nil {
			t.Error(err)
			return
		}
		c := redis.NewClient(opts)
		defer c.Close()
		iter := c.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("delete the test's keys: %v", err)
		}
	})
	return prefix
}

func open(t *testing.T, url, prefix string) *redisdedup.Store {
	t.Helper()
	s, err := redisdedup.Open(context.Background(), url, redisdedup.Config{KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	prefixes.Store(s, prefix)
	return s
}

// TestDedupConformance runs the deduplication suite on Redis, each test
// under a key prefix of its own; a second connection stands for a second
// process.
func TestDedupConformance(t *testing.T) {
	url := edatest.ServiceURL(t, edatest.RedisURLEnv)
	deduptest.Run(t, deduptest.Backend{
		Open: func(t *testing.T) runtime.DedupStore {
			return open(t, url, uniquePrefix(t, url))
		},
		Share: func(t *testing.T, s runtime.DedupStore) runtime.DedupStore {
			prefix, ok := prefixes.Load(s)
			if !ok {
				t.Fatal("Share: the store was not opened by Open")
			}
			return open(t, url, prefix.(string))
		},
		ExpiresItself: true,
	})
}

// TestKeyLayout: entries are single keys under the prefix, with the TTL
// of their lease or window, and the key_prefix URL parameter sets the
// prefix.
func TestKeyLayout(t *testing.T) {
	url := edatest.ServiceURL(t, edatest.RedisURLEnv)
	ctx := context.Background()
	prefix := uniquePrefix(t, url)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	s, err := redisdedup.Open(ctx, url+sep+"key_prefix="+prefix, redisdedup.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	key := runtime.DedupKey{Consumer: "shop.v1.Billing", MessageID: "m-1"}
	if st, err := s.Claim(ctx, key, "owner", time.Minute); err != nil || st != runtime.DedupClaimed {
		t.Fatalf("Claim = %v, %v", st, err)
	}
	opts, _ := redis.ParseURL(url)
	c := redis.NewClient(opts)
	defer c.Close()
	want := prefix + "15:shop.v1.Billing:m-1"
	if ttl := c.PTTL(ctx, want).Val(); ttl <= 50*time.Second || ttl > time.Minute {
		t.Errorf("TTL of the claim's key %s = %s, want about a minute", want, ttl)
	}
	if err := s.Complete(ctx, key, time.Hour); err != nil {
		t.Fatal(err)
	}
	if ttl := c.PTTL(ctx, want).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("TTL of the done key = %s, want about an hour", ttl)
	}
}

// TestOpenErrors: a bad URL fails with an error that does not show the
// password.
func TestOpenErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, url := range []string{
		"redis://:hunter2@127.0.0.1:1/0",            // nothing listens
		"redis://:hunter2@127.0.0.1:6379/0?bogus=1", // unknown parameter
		"http://:hunter2@127.0.0.1:6379/0",          // wrong scheme
	} {
		s, err := redisdedup.Open(ctx, url, redisdedup.Config{})
		if err == nil {
			s.Close()
			t.Errorf("Open(%s) succeeded", url)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open's error shows the password: %v", err)
		}
	}
}
