package sagatest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/protoc-gen-eda/eda/runtime"
)

// testHappyPath runs every step to completion: each command is sent once,
// in step order, with the start event's correlation id and the event that
// caused it as causation; the state records every event; one transition
// per message is stored.
func testHappyPath(t *testing.T, b Backend) {
	w := newWorld(t, open(t, b), specOptions{})
	startID := w.start("o-1")
	inst := w.waitStatus("o-1", runtime.SagaCompleted)
	cmds := w.waitCommands("o-1", reserveStock, capturePayment, shipOrder)

	wantLog := names(orderPlaced, stockReserved, paymentCaptured, orderShipped)
	if got := logOf(inst.State); !slices.Equal(got, wantLog) {
		t.Errorf("state log = %v, want %v", got, wantLog)
	}
	if inst.Step != 3 || inst.StepName != "" || inst.Version != 4 || !inst.Deadline.IsZero() || inst.Failure != "" {
		t.Errorf("completed instance: step %d %q, version %d, deadline %v, failure %q; want step 3 \"\", version 4, no deadline, no failure",
			inst.Step, inst.StepName, inst.Version, inst.Deadline, inst.Failure)
	}
	if n := streamLength(t, w.store, "o-1"); n != 4 {
		t.Errorf("stream holds %d transitions, want 4 (start and three replies)", n)
	}
	ids := map[string]bool{}
	for i, c := range cmds {
		if ids[c.env.ID] {
			t.Errorf("command %d (%s) reuses id %s", i, c.typ, c.env.ID)
		}
		ids[c.env.ID] = true
		if c.env.CorrelationID != startID {
			t.Errorf("command %s has correlation id %s, want the start event's %s", c.typ, c.env.CorrelationID, startID)
		}
		if c.env.Source != source || c.env.Subject != "o-1" {
			t.Errorf("command %s: source %q, subject %q; want %q, %q", c.typ, c.env.Source, c.env.Subject, source, "o-1")
		}
	}
	if cmds[0].env.CausationID != startID {
		t.Errorf("first command caused by %s, want the start event %s", cmds[0].env.CausationID, startID)
	}
	if cmds[1].env.CausationID == startID || cmds[1].env.CausationID == "" {
		t.Errorf("second command caused by %q, want the reply to the first", cmds[1].env.CausationID)
	}
	if st := w.saga.Stats(); st.Started != 1 || st.Completed != 1 || st.Compensated != 0 || st.Unmatched != 0 {
		t.Errorf("stats = %+v, want 1 started and completed", st)
	}
}

// testFailureCompensates fails the last step: the compensations of the two
// steps before it are sent in reverse order; the failed step, which has
// none anyway, is not compensated.
func testFailureCompensates(t *testing.T, b Backend) {
	w := newWorld(t, open(t, b), specOptions{})
	w.answer("o-1", shipOrder, replyFailure)
	w.start("o-1")
	inst := w.waitStatus("o-1", runtime.SagaCompensated)
	w.waitCommands("o-1", reserveStock, capturePayment, shipOrder, refundPayment, releaseStock)
	if inst.StepName != stepShip || inst.Failure != shipmentFailed.Name {
		t.Errorf("compensated at step %q because %q, want %q because %q", inst.StepName, inst.Failure, stepShip, shipmentFailed.Name)
	}
	if got, want := logOf(inst.State), names(orderPlaced, stockReserved, paymentCaptured, shipmentFailed); !slices.Equal(got, want) {
		t.Errorf("state log = %v, want %v: the failure event is recorded too", got, want)
	}
	if st := w.saga.Stats(); st.Compensated != 1 || st.Completed != 0 {
		t.Errorf("stats = %+v, want 1 compensated", st)
	}
}

// testFailureOfSecondStep fails the second step: only the first is
// compensated, since the step that reported failure did nothing to undo.
func testFailureOfSecondStep(t *testing.T, b Backend) {
	w := newWorld(t, open(t, b), specOptions{})
	w.answer("o-1", capturePayment, replyFailure)
	w.start("o-1")
	inst := w.waitStatus("o-1", runtime.SagaCompensated)
	w.waitCommands("o-1", reserveStock, capturePayment, releaseStock)
	if inst.Step != 1 || inst.Failure != paymentDeclined.Name {
		t.Errorf("compensated at step %d because %q, want 1 because %q", inst.Step, inst.Failure, paymentDeclined.Name)
	}
}

// stepTimeout is the suite's step timeout: short, so tests are quick.
const stepTimeout = 50 * time.Millisecond

// testStepTimeout leaves the second step unanswered: its timeout fails it,
// and the compensations of it (its command may have taken effect) and of
// the step before are sent, latest first.
func testStepTimeout(t *testing.T, b Backend) {
	w := newWorld(t, open(t, b), specOptions{stepTimeouts: map[string]time.Duration{stepCharge: stepTimeout}})
	w.answer("o-1", capturePayment, replyNone)
	w.start("o-1")
	running := waitStep(t, w.saga, "o-1", stepCharge)
	if running.Deadline.IsZero() {
		t.Error("instance waiting in a step with a timeout has no deadline")
	}
	inst := w.waitStatus("o-1", runtime.SagaCompensated)
	cmds := w.waitCommands("o-1", reserveStock, capturePayment, refundPayment, releaseStock)
	if inst.StepName != stepCharge || inst.Failure != "timeout of step charge" {
		t.Errorf("compensated at step %q because %q, want %q because %q", inst.StepName, inst.Failure, stepCharge, "timeout of step charge")
	}
	if gap := cmds[2].env.Time.Sub(cmds[1].env.Time); gap < stepTimeout {
		t.Errorf("compensation sent %v after the step's command, before its %v timeout", gap, stepTimeout)
	}
}

// waitStep waits until order's instance runs step, and returns it.
func waitStep(t *testing.T, s *orderSaga, order, step string) instance {
	t.Helper()
	var inst instance
	eventually(t, "instance "+order+" at step "+step, func() string {
		var err error
		if inst, err = s.Load(t.Context(), order); err != nil {
			return err.Error()
		}
		if inst.Status != runtime.SagaRunning || inst.StepName != step {
			return inst.Status.String() + " at step " + inst.StepName
		}
		return ""
	})
	return inst
}

// sagaTimeout is the suite's saga timeout: long enough that two steps
// surely complete before it.
const sagaTimeout = 400 * time.Millisecond

// testSagaTimeout leaves the last step unanswered in a saga with a
// timeout and none per step: the saga's timeout, armed at the start, fires
// in a later step and fails it.
func testSagaTimeout(t *testing.T, b Backend) {
	w := newWorld(t, open(t, b), specOptions{sagaTimeout: sagaTimeout})
	w.answer("o-1", shipOrder, replyNone)
	w.start("o-1")
	running := waitStep(t, w.saga, "o-1", stepShip)
	inst := w.waitStatus("o-1", runtime.SagaCompensated)
	cmds := w.waitCommands("o-1", reserveStock, capturePayment, shipOrder, refundPayment, releaseStock)
	if inst.StepName != stepShip || inst.Failure != "timeout of saga" {
		t.Errorf("compensated at step %q because %q, want %q because %q", inst.StepName, inst.Failure, stepShip, "timeout of saga")
	}
	if d := running.Deadline.Sub(cmds[0].env.Time); d > sagaTimeout || d < sagaTimeout/2 {
		t.Errorf("deadline %v is %v after the start, want the saga's timeout %v", running.Deadline, d, sagaTimeout)
	}
}

// staleTimeout is the step timeout testStaleTimeout lets pass: far above a
// reply's round trip, so the step surely completes first.
const staleTimeout = 300 * time.Millisecond

// testStaleTimeout gives the first step a timeout it meets: when the
// timeout arrives later, the step is over, and it is acknowledged as stale
// without changing the completed instance.
func testStaleTimeout(t *testing.T, b Backend) {
	w := newWorld(t, open(t, b), specOptions{stepTimeouts: map[string]time.Duration{stepReserve: staleTimeout}})
	w.start("o-1")
	w.waitStatus("o-1", runtime.SagaCompleted)
	eventually(t, "stale timeout", func() string {
		if st := w.saga.Stats(); st.Stale != 1 {
			return "no stale message yet"
		}
		return ""
	})
	inst, err := w.saga.Load(t.Context(), "o-1")
	if err != nil || inst.Status != runtime.SagaCompleted || inst.Version != 4 {
		t.Errorf("after the stale timeout: %v at version %d (%v), want completed at 4", inst.Status, inst.Version, err)
	}
	w.waitCommands("o-1", reserveStock, capturePayment, shipOrder)
}

// testUnknownInstance sends a reply for an instance that does not exist:
// it is acknowledged and counted, not dead-lettered.
func testUnknownInstance(t *testing.T, b Backend) {
	w := newWorld(t, open(t, b), specOptions{})
	msg, err := w.pub.NewMessage(w.ctx, stockReserved, runtime.Outgoing{Subject: "nobody", Message: newOrder("nobody")})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.bus.Publish(repliesTopic, msg); err != nil {
		t.Fatal(err)
	}
	eventually(t, "unmatched event", func() string {
		if w.saga.Stats().Unmatched != 1 || w.router.Stats().Handled < 1 {
			return "not handled yet"
		}
		return ""
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.dead) != 0 || w.router.Stats().DeadLettered != 0 {
		t.Errorf("%d dead letters, want none: an unknown instance is not an error", len(w.dead))
	}
}

// testEmptyCorrelation starts a saga with an empty instance id: the event
// is dead-lettered with the reason, and nothing starts.
func testEmptyCorrelation(t *testing.T, b Backend) {
	w := newWorld(t, open(t, b), specOptions{})
	w.start("")
	eventually(t, "dead letter", func() string {
		w.mu.Lock()
		defer w.mu.Unlock()
		if len(w.dead) == 0 {
			return "none yet"
		}
		return ""
	})
	w.mu.Lock()
	reason := w.dead[0].Metadata.Get(runtime.MetaDeadLetterReason)
	w.mu.Unlock()
	if !strings.Contains(reason, "empty correlation value") || !strings.Contains(reason, orderPlaced.Name) {
		t.Errorf("dead letter reason %q, want it to name the empty correlation value of %s", reason, orderPlaced.Name)
	}
	if st := w.saga.Stats(); st.Started != 0 {
		t.Errorf("stats = %+v, want nothing started", st)
	}
}
