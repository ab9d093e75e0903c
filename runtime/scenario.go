package runtime

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// TB is the part of testing.TB a Scenario reports to, so that generated
// code does not import package testing.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
}

// Scenario is a given/when/then test of an aggregate's behaviour, with no
// event store: given past events, when a command is handled, then it decides
// these events, or fails with this error. Generated code wraps it in a typed
// scenario per aggregate (OrderScenario, for aggregate Order).
type Scenario[S, E proto.Message] struct {
	t      TB
	spec   AggregateSpec[S, E]
	state  S
	given  int
	ran    bool
	events []E
	err    error
}

// NewScenario returns a scenario of spec's aggregate that reports to t.
// Only spec's New, Apply and Describe are used.
func NewScenario[S, E proto.Message](t TB, spec AggregateSpec[S, E]) *Scenario[S, E] {
	return &Scenario[S, E]{t: t, spec: spec, state: spec.New()}
}

// Given applies past events to the state.
func (s *Scenario[S, E]) Given(events ...E) {
	for _, e := range events {
		s.spec.Apply(s.state, e)
	}
	s.given += len(events)
}

// When handles a command on aggregate id: decide gets the state built from
// the given events. Each decided event must carry id, as Repository.Save
// requires.
func (s *Scenario[S, E]) When(ctx context.Context, id string, decide func(context.Context, S) ([]E, error)) {
	s.t.Helper()
	if s.ran {
		s.t.Errorf("scenario: When called twice; start a new scenario for each command")
		return
	}
	s.ran = true
	before := proto.Clone(s.state)
	s.events, s.err = decide(ctx, s.state)
	if !proto.Equal(before, s.state) {
		s.t.Errorf("scenario: the command handler modified the state; it must only return events:\nbefore: %s\nafter:  %s", format(before), format(s.state))
	}
	for _, e := range s.events {
		if !e.ProtoReflect().IsValid() {
			s.t.Errorf("scenario: the command handler returned a nil event")
			continue
		}
		if t, out := s.spec.Describe(e); out.Subject != id {
			s.t.Errorf("scenario: %s has aggregate id %q, but the command is for %q: a repository would refuse to save it", t.Name, out.Subject, id)
		}
	}
}

// Then checks that the command succeeded and decided exactly want, in order.
func (s *Scenario[S, E]) Then(want ...E) {
	s.t.Helper()
	if !s.checkRan() {
		return
	}
	if s.err != nil {
		s.t.Errorf("scenario: want %d event(s), got error: %v", len(want), s.err)
		return
	}
	if len(s.events) == len(want) {
		same := true
		for i := range want {
			same = same && proto.Equal(s.events[i], want[i])
		}
		if same {
			return
		}
	}
	s.t.Errorf("scenario: decided events differ\ngot:\n%s\nwant:\n%s", formatAll(s.events), formatAll(want))
}

// ThenError checks that the command failed with an error matching target
// (errors.Is), or with any error when target is nil.
func (s *Scenario[S, E]) ThenError(target error) {
	s.t.Helper()
	if !s.checkRan() {
		return
	}
	switch {
	case s.err == nil:
		s.t.Errorf("scenario: want an error, got %d event(s):\n%s", len(s.events), formatAll(s.events))
	case target != nil && !errors.Is(s.err, target):
		s.t.Errorf("scenario: got error %q, want one matching %q", s.err, target)
	}
}

// State returns the state built from the given events. When does not change
// it: the decided events are not applied.
func (s *Scenario[S, E]) State() S { return s.state }

// Events returns the events the command decided.
func (s *Scenario[S, E]) Events() []E { return s.events }

// Err returns the command's error.
func (s *Scenario[S, E]) Err() error { return s.err }

func (s *Scenario[S, E]) checkRan() bool {
	s.t.Helper()
	if !s.ran {
		s.t.Errorf("scenario: Then called before When")
	}
	return s.ran
}

func formatAll[E proto.Message](events []E) string {
	if len(events) == 0 {
		return "  (none)"
	}
	var b strings.Builder
	for i, e := range events {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "  %d. %s", i+1, format(e))
	}
	return b.String()
}

func format(m proto.Message) string {
	if !m.ProtoReflect().IsValid() {
		return "<nil>"
	}
	return fmt.Sprintf("%s{%s}", m.ProtoReflect().Descriptor().FullName(), prototext.MarshalOptions{}.Format(m))
}
