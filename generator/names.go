package generator

import (
	"strings"
	"unicode"

	"github.com/protoc-gen-eda/eda/generator/model"
)

// This file decides every generated identifier and every default wire name.
// Go identifiers derive from protoc-gen-go's Go names; wire names (type names,
// topics, handler names) derive from proto full names only, so that moving a
// Go package never changes what a broker or a store sees.

// aggregateBase is the aggregate's name in generated identifiers: the state
// message's Go name without a trailing "State" (OrderState -> Order).
func aggregateBase(goName string) string {
	if base, ok := strings.CutSuffix(goName, "State"); ok && base != "" {
		return base
	}
	return goName
}

func aggregateNames(goName, typeName string) model.AggregateNames {
	b := aggregateBase(goName)
	return model.AggregateNames{
		Base:                        b,
		TypeConst:                   b + "AggregateType",
		EventsTopicConst:            b + "EventsTopic",
		CommandsTopicConst:          b + "CommandsTopic",
		EventPublisher:              b + "EventPublisher",
		NewEventPublisher:           "New" + b + "EventPublisher",
		EventHandler:                b + "EventHandler",
		UnimplementedEventHandler:   "Unimplemented" + b + "EventHandler",
		RegisterEventHandler:        "Register" + b + "EventHandler",
		CommandBus:                  b + "CommandBus",
		NewCommandBus:               "New" + b + "CommandBus",
		CommandHandler:              b + "CommandHandler",
		UnimplementedCommandHandler: "Unimplemented" + b + "CommandHandler",
		RegisterCommandHandler:      "Register" + b + "CommandHandler",
		EventsHandlerName:           typeName + ".events",
		CommandsHandlerName:         typeName + ".commands",
		Event:                       b + "Event",
		Command:                     b + "Command",
		EventMethod:                 lowerFirst(b) + "Event",
		CommandMethod:               lowerFirst(b) + "Command",
		Behaviour:                   b + "Aggregate",
		EventSpecs:                  "_" + b + "_EventSpecs",
		Spec:                        "_" + b + "_Spec",
		Decide:                      "_" + b + "_Decide",
		Repository:                  b + "Repository",
		NewRepository:               "New" + b + "Repository",
		Scenario:                    b + "Scenario",
		NewScenario:                 "New" + b + "Scenario",
	}
}

// lowerFirst lowers a Go name's leading capital, or its leading initialism
// (HTTPOrder -> httpOrder), for an unexported method name.
func lowerFirst(s string) string {
	r := []rune(s)
	n := 0
	for n < len(r) && unicode.IsUpper(r[n]) {
		n++
	}
	if n > 1 && n < len(r) {
		// Keep the capital that starts the next word: HTTPOrder -> httpOrder.
		n--
	}
	for i := range n {
		r[i] = unicode.ToLower(r[i])
	}
	return string(r)
}

// defaultAggregateTopics are the topics of an aggregate that sets none.
func defaultAggregateTopics(typeName string) (events, commands string) {
	return typeName + ".events", typeName + ".commands"
}

func messageNames(kind model.Kind, goName, typeName string, standalone bool) model.MessageNames {
	n := model.MessageNames{
		Info:          "_" + goName + "_MessageType",
		HandlerMethod: "Handle" + goName,
		ApplyMethod:   "Apply" + goName,
	}
	switch kind {
	case model.Event:
		n.TypeConst = goName + "EventType"
		n.Method = "Publish" + goName
		if standalone {
			n.Sender, n.NewSender = goName+"Publisher", "New"+goName+"Publisher"
		}
	case model.Command:
		n.TypeConst = goName + "CommandType"
		n.Method = "Send" + goName
		if standalone {
			n.Sender, n.NewSender = goName+"Sender", "New"+goName+"Sender"
		}
	}
	if standalone {
		n.TopicConst = goName + "Topic"
		n.Handler = goName + "Handler"
		n.Register = "Register" + goName + "Handler"
		n.HandlerName = typeName
	}
	return n
}

// messageIdents lists the exported identifiers generated for a message.
func messageIdents(m *model.Message) []string {
	ids := []string{m.Names.TypeConst}
	if m.Standalone() {
		ids = append(ids, m.Names.TopicConst, m.Names.Sender, m.Names.NewSender, m.Names.Handler, m.Names.Register)
	}
	return ids
}

// aggregateIdents lists the exported identifiers generated for an aggregate.
func aggregateIdents(a *model.Aggregate) []string {
	x := a.Names
	ids := []string{x.TypeConst}
	if len(a.Events) > 0 {
		ids = append(ids, x.EventsTopicConst, x.EventPublisher, x.NewEventPublisher, x.EventHandler, x.UnimplementedEventHandler, x.RegisterEventHandler)
	}
	if len(a.Commands) > 0 {
		ids = append(ids, x.CommandsTopicConst, x.CommandBus, x.NewCommandBus, x.CommandHandler, x.UnimplementedCommandHandler, x.RegisterCommandHandler)
	}
	if a.EventSourced() {
		ids = append(ids, x.Event, x.Behaviour, x.Repository, x.NewRepository, x.EventSpecs, x.Spec)
		if len(a.Commands) > 0 {
			ids = append(ids, x.Command, x.Decide, x.Scenario, x.NewScenario)
		}
	}
	return ids
}

func projectionNames(goName string) model.ProjectionNames {
	return model.ProjectionNames{
		Handler: goName + "Projection",
		Spec:    goName + "ProjectionSpec",
		New:     "New" + goName + "Projection",
	}
}

// sagaBase is the saga's name in generated identifiers: the state message's
// Go name without a trailing "State" or "Saga" (CheckoutSaga -> Checkout),
// so that the generated CheckoutSagaBehaviour does not read CheckoutSagaSaga.
func sagaBase(goName string) string {
	base := aggregateBase(goName)
	if b, ok := strings.CutSuffix(base, "Saga"); ok && b != "" {
		return b
	}
	return base
}

func sagaNames(goName string) model.SagaNames {
	b := sagaBase(goName)
	return model.SagaNames{
		Behaviour: b + "SagaBehaviour",
		Spec:      b + "SagaSpec",
		New:       "New" + b + "Saga",
		Skeleton:  lowerFirst(b) + "Saga",
	}
}

// stepMethod is the Go method name of a saga step: its name in camel case
// (charge_card -> ChargeCard).
func stepMethod(step string) string {
	var out strings.Builder
	up := true
	for _, r := range step {
		if r == '_' || r == '-' {
			up = true
			continue
		}
		if up {
			r = unicode.ToUpper(r)
			up = false
		}
		out.WriteRune(r)
	}
	return out.String()
}

// sagaEventMethod is the behaviour's method recording an event in the state.
func sagaEventMethod(goName string) string { return "On" + goName }

// projectionIdents and sagaIdents list the exported identifiers generated
// for a projection and a saga.
func projectionIdents(p *model.Projection) []string {
	return []string{p.Names.Handler, p.Names.Spec, p.Names.New}
}

func sagaIdents(s *model.Saga) []string {
	return []string{s.Names.Behaviour, s.Names.Spec, s.Names.New}
}
