package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"google.golang.org/protobuf/proto"
)

// Handle handles one message: any of the saga's event types, or a
// timeout. Register's handlers call it; tests and custom wiring may call
// it directly. It returns nil when the message was handled or is to be
// acknowledged without a transition (sagaStale, unmatched), an error wrapped
// with Permanent for a message that can never be handled (no correlation
// value, a payload that does not decode), and other errors, from the
// store or from the saga's callbacks, for the router to retry. Nothing is
// stored when it returns an error.
func (s *Saga[S]) Handle(ctx context.Context, msg *message.Message) error {
	typ := msg.Metadata.Get(MetaType)
	if typ == SagaTimeoutType {
		return s.handleTimeout(ctx, msg)
	}
	rt, ok := s.routes[typ]
	if !ok {
		return Permanent(fmt.Errorf("saga %s: no event of type %q", s.spec.Name, typ))
	}
	return s.handleEvent(ctx, msg, rt)
}

// sagaOutcome is what a message does to an instance.
type sagaOutcome int

const (
	// sagaApply: the message moves the instance on.
	sagaApply sagaOutcome = iota
	// sagaStale: the instance has moved past the message.
	sagaStale
	// sagaUnmatched: the instance does not exist.
	sagaUnmatched
)

// sagaCommand is a command a transition sends.
type sagaCommand struct {
	typ *MessageType
	out Outgoing
}

// sagaTransition is what handling a message decided: the instance after it,
// and what it sends.
type sagaTransition[S proto.Message] struct {
	state        S
	status       SagaStatus
	step         int
	stepDeadline time.Time
	sagaDeadline time.Time
	failure      string
	commands     []sagaCommand
	timeouts     []sagaTimeout
	// count is the counter to add one to once the transition commits; nil
	// for a transition from one step to the next.
	count *atomic.Uint64
}

// sagaDecideFunc decides what a message does to cur. It returns why for a
// stale or unmatched outcome, for the log.
type sagaDecideFunc[S proto.Message] func(ctx context.Context, cur *sagaCurrent[S]) (t *sagaTransition[S], o sagaOutcome, why string, err error)

// handleEvent handles an event of route rt.
func (s *Saga[S]) handleEvent(ctx context.Context, msg *message.Message, rt *sagaRoute[S]) error {
	ctx = sagaHandling(ctx, msg)
	if rt.role == sagaRoleStart {
		id, start, err := s.spec.Start.bind(msg)
		if err != nil {
			return err
		}
		return s.run(ctx, msg, rt.typ, id, func(ctx context.Context, cur *sagaCurrent[S]) (*sagaTransition[S], sagaOutcome, string, error) {
			if cur.found {
				return nil, sagaStale, "the instance exists already", nil
			}
			state, err := start(ctx)
			if err != nil {
				return nil, sagaApply, "", fmt.Errorf("saga %s: start instance %s: %w", s.spec.Name, id, err)
			}
			if !state.ProtoReflect().IsValid() {
				return nil, sagaApply, "", fmt.Errorf("saga %s: starting instance %s: the start function returned a nil state", s.spec.Name, id)
			}
			now := s.env.Now()
			t := &sagaTransition[S]{state: state, count: &s.stats.started}
			if s.spec.Timeout > 0 {
				t.sagaDeadline = now.Add(s.spec.Timeout)
				t.timeouts = append(t.timeouts, sagaTimeout{Saga: s.spec.Name, ID: id, Scope: timeoutScopeSaga, Version: 1, Deadline: t.sagaDeadline})
			}
			return t, sagaApply, "", s.enterStep(ctx, t, id, 0, 1, now)
		})
	}
	id, applyEvent, err := rt.event.bind(msg)
	if err != nil {
		return err
	}
	return s.run(ctx, msg, rt.typ, id, func(ctx context.Context, cur *sagaCurrent[S]) (*sagaTransition[S], sagaOutcome, string, error) {
		switch {
		case !cur.found:
			return nil, sagaUnmatched, "no such instance", nil
		case cur.inst.Status.terminal():
			return nil, sagaStale, "the instance is " + cur.inst.Status.String(), nil
		case cur.inst.Step != rt.step:
			return nil, sagaStale, fmt.Sprintf("the event ends step %q, the instance is at step %q", s.spec.Steps[rt.step].Name, cur.inst.StepName), nil
		}
		state := cur.inst.State
		if err := applyEvent(ctx, state); err != nil {
			return nil, sagaApply, "", fmt.Errorf("saga %s: instance %s: record %s: %w", s.spec.Name, id, rt.typ.Name, err)
		}
		t := cur.next(state)
		if rt.role == sagaRoleFailure {
			return t, sagaApply, "", s.compensate(ctx, t, rt.step, false, rt.typ.Name)
		}
		if next := rt.step + 1; next < len(s.spec.Steps) {
			return t, sagaApply, "", s.enterStep(ctx, t, id, next, cur.inst.Version+1, s.env.Now())
		}
		t.status, t.step, t.stepDeadline, t.sagaDeadline = SagaCompleted, len(s.spec.Steps), time.Time{}, time.Time{}
		t.count = &s.stats.completed
		return t, sagaApply, "", nil
	})
}

// handleTimeout handles a timeout message.
func (s *Saga[S]) handleTimeout(ctx context.Context, msg *message.Message) error {
	ctx = sagaHandling(ctx, msg)
	var p sagaTimeout
	if err := json.Unmarshal(msg.Payload, &p); err != nil {
		return Permanent(&decodeError{fmt.Errorf("saga %s: decode %s: %w", s.spec.Name, SagaTimeoutType, err)})
	}
	if p.Saga != s.spec.Name {
		// Another saga's, on a timeout topic the two share.
		s.logger.Debug("Ignoring another saga's timeout", watermill.LogFields{"saga": s.spec.Name, "timeout_saga": p.Saga, "message_uuid": msg.UUID})
		return nil
	}
	if p.Scope != timeoutScopeStep && p.Scope != timeoutScopeSaga {
		return Permanent(fmt.Errorf("saga %s: timeout of unknown scope %q", s.spec.Name, p.Scope))
	}
	typ := &MessageType{Name: SagaTimeoutType, Topic: s.timeoutTopic}
	return s.run(ctx, msg, typ, p.ID, func(ctx context.Context, cur *sagaCurrent[S]) (*sagaTransition[S], sagaOutcome, string, error) {
		switch {
		case !cur.found:
			return nil, sagaUnmatched, "no such instance", nil
		case cur.inst.Status.terminal():
			return nil, sagaStale, "the instance is " + cur.inst.Status.String(), nil
		case p.Scope == timeoutScopeStep && (cur.inst.Version != p.Version || cur.inst.StepName != p.Step):
			return nil, sagaStale, fmt.Sprintf("step %q armed at version %d is over: the instance is at step %q, version %d", p.Step, p.Version, cur.inst.StepName, cur.inst.Version), nil
		}
		failure := "timeout of saga"
		if p.Scope == timeoutScopeStep {
			failure = "timeout of step " + p.Step
		}
		t := cur.next(cur.inst.State)
		return t, sagaApply, "", s.compensate(ctx, t, cur.inst.Step, true, failure)
	})
}

// enterStep makes t start step i: it builds the step's command and arms
// its timeout. version is the instance's version once t is stored.
func (s *Saga[S]) enterStep(ctx context.Context, t *sagaTransition[S], id string, i int, version uint64, now time.Time) error {
	st := &s.spec.Steps[i]
	t.status, t.step, t.stepDeadline = SagaRunning, i, time.Time{}
	typ, out, err := st.Command(ctx, t.state)
	if err != nil {
		return fmt.Errorf("saga %s: command of step %q: %w", s.spec.Name, st.Name, err)
	}
	if typ == nil {
		return fmt.Errorf("saga %s: command of step %q: no message type", s.spec.Name, st.Name)
	}
	t.commands = append(t.commands, sagaCommand{typ: typ, out: out})
	if st.Timeout > 0 {
		t.stepDeadline = now.Add(st.Timeout)
		t.timeouts = append(t.timeouts, sagaTimeout{Saga: s.spec.Name, ID: id, Scope: timeoutScopeStep, Step: st.Name, Version: version, Deadline: t.stepDeadline})
	}
	return nil
}

// compensate makes t end the instance as compensated after step failed:
// it sends the compensations of the steps before it, latest first,
// starting with step itself if includeFailed (a timeout: its command may
// have taken effect).
func (s *Saga[S]) compensate(ctx context.Context, t *sagaTransition[S], step int, includeFailed bool, failure string) error {
	t.status, t.step, t.failure = SagaCompensated, step, failure
	t.stepDeadline, t.sagaDeadline = time.Time{}, time.Time{}
	t.count = &s.stats.compensated
	from := step - 1
	if includeFailed {
		from = step
	}
	for i := from; i >= 0; i-- {
		st := &s.spec.Steps[i]
		if st.Compensation == nil {
			continue
		}
		typ, out, err := st.Compensation(ctx, t.state)
		if err != nil {
			return fmt.Errorf("saga %s: compensation of step %q: %w", s.spec.Name, st.Name, err)
		}
		if typ == nil {
			return fmt.Errorf("saga %s: compensation of step %q: no message type", s.spec.Name, st.Name)
		}
		t.commands = append(t.commands, sagaCommand{typ: typ, out: out})
	}
	return nil
}

// run loads instance id, decides what msg does to it and stores the
// transition, deciding again on a fresh load after a concurrency conflict.
func (s *Saga[S]) run(ctx context.Context, msg *message.Message, typ *MessageType, id string, decide sagaDecideFunc[S]) error {
	if id == "" {
		return Permanent(fmt.Errorf("saga %s: %s has an empty correlation value: it names no instance", s.spec.Name, typ.Name))
	}
	msgID := msg.UUID
	if msgID == "" {
		msgID = msg.Metadata.Get(MetaID)
	}
	if msgID == "" {
		// The transition's id derives from it: without one a redelivery
		// could send the commands twice.
		return Permanent(fmt.Errorf("saga %s: %s for instance %s has no message id", s.spec.Name, typ.Name, id))
	}
	recordID := deriveID(transitionIDSpace, s.spec.Name, id, msgID)
	for attempt := 0; ; attempt++ {
		cur, err := s.load(ctx, id)
		if err != nil {
			return err
		}
		if cur.lastID == recordID {
			// The common redelivery: the last transition is this message's.
			// (Deciding would find it stale too, after calling back.)
			s.acknowledge(sagaStale, "the message was handled already", id, typ, msg)
			return nil
		}
		t, o, why, err := decide(ctx, cur)
		if err != nil {
			return err
		}
		if o != sagaApply {
			s.acknowledge(o, why, id, typ, msg)
			return nil
		}
		req, err := s.appendRequest(ctx, cur, t, recordID)
		if err != nil {
			return err
		}
		_, err = s.store.Append(ctx, req)
		switch {
		case err == nil:
			if t.count != nil {
				t.count.Add(1)
			}
			return nil
		case !errors.Is(err, ErrConcurrency) || attempt == sagaConflictRetries:
			return fmt.Errorf("saga %s: instance %s: %w", s.spec.Name, id, err)
		}
	}
}

// acknowledge counts and logs a message that causes no transition.
func (s *Saga[S]) acknowledge(o sagaOutcome, why, id string, typ *MessageType, msg *message.Message) {
	fields := watermill.LogFields{"saga": s.spec.Name, "instance": id, "type": typ.Name, "message_uuid": msg.UUID, "reason": why}
	if o == sagaUnmatched {
		s.stats.unmatched.Add(1)
		s.logger.Info("Saga event for an instance that does not exist; acknowledged", fields)
		return
	}
	s.stats.stale.Add(1)
	s.logger.Debug("Stale saga message; acknowledged", fields)
}

// sagaHandling returns ctx carrying msg as the message being handled, so that
// the commands a transition sends take its correlation id and its id as
// their causation id. The router's handler context carries it already.
func sagaHandling(ctx context.Context, msg *message.Message) context.Context {
	if hc, ok := ctx.Value(handledKey{}).(*handlerContext); ok && hc.msg == msg {
		return ctx
	}
	return &handlerContext{Context: ctx, msg: msg}
}
