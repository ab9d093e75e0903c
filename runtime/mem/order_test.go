package mem_test

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/protoc-gen-eda/eda/runtime/mem"
)

func defaultOrderLoad() orderLoad {
	if testing.Short() {
		return orderLoad{publishers: 4, keys: 16, events: 50}
	}
	return orderLoad{publishers: 8, keys: 64, events: 200}
}

func TestOrderPerKeyThroughRouter(t *testing.T) {
	ps := newPubSub(t, mem.Config{})
	l := defaultOrderLoad()
	res := runOrdering(t, ps, ps, l, nil)
	t.Logf("%d events: %+v", l.total(), res)
	if res.reordered != 0 || res.lost != 0 || res.duplicates != 0 {
		t.Fatalf("want every event exactly once and in order per key, got %+v", res)
	}
}

// TestOrderPerKeyThroughRouterWithNacks makes the handler fail the first
// attempt of some events: each redelivery must come before anything queued
// behind it, or the next event of the key would overtake it.
func TestOrderPerKeyThroughRouterWithNacks(t *testing.T) {
	ps := newPubSub(t, mem.Config{RedeliveryDelay: time.Microsecond})
	l := orderLoad{publishers: 4, keys: 8, events: 50}
	res := runOrdering(t, ps, ps, l, func(key, seq int) bool { return seq%7 == 3 })
	t.Logf("%d events: %+v", l.total(), res)
	if want := l.publishers * l.keys * 7; res.nacked != want { // seq 3, 10, ..., 45
		t.Fatalf("injected %d failures, want %d", res.nacked, want)
	}
	if res.reordered != 0 || res.lost != 0 || res.duplicates != 0 {
		t.Fatalf("want every event exactly once and in order per key, got %+v", res)
	}
}

// TestGoChannelDefaultReorders measures why GoChannel's default mode is not
// used: it starts a goroutine per message, so events race. How many reorder
// depends on scheduling, so this only reports it.
func TestGoChannelDefaultReorders(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement only")
	}
	gc := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	defer gc.Close()
	l := orderLoad{publishers: 8, keys: 64, events: 20}
	res := runOrdering(t, gc, gc, l, nil)
	t.Logf("GoChannel default config, %d events: %+v (%.1f%% reordered)",
		l.total(), res, 100*float64(res.reordered)/float64(l.total()))
}
