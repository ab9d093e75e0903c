package amqp

import (
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/streadway/amqp"
)

// acknowledger records what settle sends to the broker.
type acknowledger struct {
	mu    sync.Mutex
	acks  int
	nacks int
}

func (a *acknowledger) Ack(uint64, bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.acks++
	return nil
}

func (a *acknowledger) Nack(uint64, bool, bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.nacks++
	return nil
}

func (a *acknowledger) Reject(uint64, bool) error { return a.Nack(0, false, false) }

// TestSettleKeepsAckOnStop: an ack the consumer gave is sent even when the
// subscription is stopping at the same time (a select between the two
// would drop it half the time).
func TestSettleKeepsAckOnStop(t *testing.T) {
	p := &prefetch{s: &subscriber{logger: watermill.NopLogger{}}, fields: watermill.LogFields{}}
	stop := make(chan struct{})
	close(stop)
	const runs = 100
	a := &acknowledger{}
	for range runs {
		msg := message.NewMessage("m", nil)
		msg.Ack()
		p.settle(amqp.Delivery{Acknowledger: a, DeliveryTag: 1}, msg, stop)
	}
	// Neither acked nor nacked: left to the channel's close to requeue.
	p.settle(amqp.Delivery{Acknowledger: a, DeliveryTag: 2}, message.NewMessage("n", nil), stop)
	if a.acks != runs || a.nacks != 0 {
		t.Errorf("%d acks and %d nacks for %d acked messages, want every ack and no nack", a.acks, a.nacks, runs)
	}
}
