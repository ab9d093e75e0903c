package memstore

import (
	"context"
	"sync"
	"time"

	"github.com/protoc-gen-eda/eda/runtime"
)

// dedupStore is the in-memory runtime.DedupStore.
type dedupStore struct {
	mu      sync.Mutex
	entries map[runtime.DedupKey]dedupEntry
}

// dedupEntry is a claim (owner set) or a done mark (owner empty) until
// expires.
type dedupEntry struct {
	owner   string
	expires time.Time
}

// NewDedupStore returns an empty in-memory runtime.DedupStore, for tests
// and for a single process with the embedded defaults. It deduplicates
// within the process only, and forgets everything when the process ends:
// deduplication across instances and restarts needs a shared store
// (runtime/sqlite, runtime/postgres, runtime/redisdedup). It is safe for
// concurrent use. Expired entries count as absent at once; Purge frees
// their memory.
func NewDedupStore() runtime.DedupStore {
	return &dedupStore{entries: make(map[runtime.DedupKey]dedupEntry)}
}

// Claim implements runtime.DedupStore.
func (s *dedupStore) Claim(ctx context.Context, key runtime.DedupKey, owner string, lease time.Duration) (runtime.DedupState, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if e, ok := s.entries[key]; ok && now.Before(e.expires) {
		if e.owner == "" {
			return runtime.DedupDone, nil
		}
		if e.owner != owner {
			return runtime.DedupBusy, nil
		}
	}
	s.entries[key] = dedupEntry{owner: owner, expires: now.Add(lease)}
	return runtime.DedupClaimed, nil
}

// Complete implements runtime.DedupStore.
func (s *dedupStore) Complete(ctx context.Context, key runtime.DedupKey, window time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries[key] = dedupEntry{expires: time.Now().Add(window)}
	return nil
}

// Release implements runtime.DedupStore.
func (s *dedupStore) Release(ctx context.Context, key runtime.DedupKey, owner string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[key]; ok && e.owner == owner && owner != "" {
		delete(s.entries, key)
	}
	return nil
}

// Purge implements runtime.DedupStore.
func (s *dedupStore) Purge(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	var n int64
	for k, e := range s.entries {
		if !now.Before(e.expires) {
			delete(s.entries, k)
			n++
		}
	}
	return n, nil
}
