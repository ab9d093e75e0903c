package mem_test

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/protoc-gen-eda/eda/runtime/mem"
)

// TestUniversal runs Watermill's conformance suite. The suite publishes
// before subscribing and expects those messages to arrive, so it runs with
// Replay; everything else is the default configuration.
func TestUniversal(t *testing.T) {
	features := tests.Features{
		ConsumerGroups: false,
		// Within one PubSub a message is delivered again only after a Nack;
		// an acked message never comes back (the suite checks this).
		ExactlyOnceDelivery:                 true,
		GuaranteedOrder:                     true,
		GuaranteedOrderWithSingleSubscriber: true,
		// Nothing survives the PubSub, and two PubSub values share nothing.
		Persistent:                       false,
		RequireSingleInstance:            true,
		NewSubscriberReceivesOldMessages: false,
		// The publisher's context is deliberately dropped.
		ContextPreserved: false,
	}
	tests.TestPubSub(t, features, func(t *testing.T) (message.Publisher, message.Subscriber) {
		ps, err := mem.New(mem.Config{Replay: true})
		if err != nil {
			t.Fatal(err)
		}
		return ps, ps
	}, nil)
}
