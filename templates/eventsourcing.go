package templates

import (
	"fmt"
	"strings"

	"github.com/dave/jennifer/jen"

	"github.com/protoc-gen-eda/eda/generator/model"
)

// genEventSourcing emits what makes an aggregate event-sourced, in this
// order: the event and command interfaces with the methods that implement
// them, the behaviour interface the user implements, the runtime
// description, the command dispatch, the repository and the test scenario.
func genEventSourcing(g *jen.File, a *model.Aggregate) {
	genEventInterface(g, a)
	hasCommands := len(a.Commands) > 0
	if hasCommands {
		genCommandInterface(g, a)
	}
	genBehaviour(g, a)
	genEventSpecs(g, a)
	genSpec(g, a)
	if hasCommands {
		genDecide(g, a)
	}
	genRepository(g, a)
	if hasCommands {
		genScenario(g, a)
	}
}

// ptr renders *T for a message.
func ptr(id model.GoIdent) *jen.Statement {
	return jen.Op("*").Qual(id.GoImportPath, id.GoName)
}

// state renders the aggregate's state type, *Order.
func state(a *model.Aggregate) *jen.Statement { return ptr(a.GoIdent) }

// oneOf lists message types for a doc comment: "*A, *B or *C".
func oneOf(msgs []*model.Message) string {
	names := make([]string, len(msgs))
	for i, m := range msgs {
		names[i] = "*" + m.GoIdent.GoName
	}
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// genEventInterface emits
//
//	type OrderEvent interface {
//		proto.Message
//		orderEvent() (*runtime.MessageType, runtime.Outgoing)
//	}
//	func (event *OrderPlaced) orderEvent() (*runtime.MessageType, runtime.Outgoing) {
//		return _OrderPlaced_MessageType, runtime.Outgoing{Subject: event.GetOrderId(), Message: event}
//	}
func genEventInterface(g *jen.File, a *model.Aggregate) {
	n := a.Names
	comment(g, fmt.Sprintf("%s is an event of the %s aggregate: %s. Only they implement it.", n.Event, n.Base, oneOf(a.Events)), model.Doc{})
	g.Type().Id(n.Event).Interface(
		jen.Qual(protoPkg, "Message"),
		jen.Comment(fmt.Sprintf("%s describes the event to the runtime.", n.EventMethod)),
		jen.Id(n.EventMethod).Params().Params(jen.Op("*").Qual(runtimePkg, "MessageType"), jen.Qual(runtimePkg, "Outgoing")),
	)
	for _, m := range a.Events {
		comment(g, fmt.Sprintf("%s makes %s an %s.", n.EventMethod, m.GoIdent.GoName, n.Event), model.Doc{})
		g.Func().Params(jen.Id("event").Add(ptr(m.GoIdent))).Id(n.EventMethod).Params().
			Params(jen.Op("*").Qual(runtimePkg, "MessageType"), jen.Qual(runtimePkg, "Outgoing")).
			Block(jen.Return(jen.Id(m.Names.Info), outgoing(m, "event")))
	}
}

// genCommandInterface emits
//
//	type OrderCommand interface {
//		proto.Message
//		orderCommand() (*runtime.MessageType, string)
//	}
//	func (command *PlaceOrder) orderCommand() (*runtime.MessageType, string) {
//		return _PlaceOrder_MessageType, command.GetOrderId()
//	}
func genCommandInterface(g *jen.File, a *model.Aggregate) {
	n := a.Names
	comment(g, fmt.Sprintf("%s is a command of the %s aggregate: %s. Only they implement it.", n.Command, n.Base, oneOf(a.Commands)), model.Doc{})
	g.Type().Id(n.Command).Interface(
		jen.Qual(protoPkg, "Message"),
		jen.Comment(fmt.Sprintf("%s returns the command's type and the id of the aggregate it is for.", n.CommandMethod)),
		jen.Id(n.CommandMethod).Params().Params(jen.Op("*").Qual(runtimePkg, "MessageType"), jen.String()),
	)
	for _, m := range a.Commands {
		comment(g, fmt.Sprintf("%s makes %s an %s.", n.CommandMethod, m.GoIdent.GoName, n.Command), model.Doc{})
		g.Func().Params(jen.Id("command").Add(ptr(m.GoIdent))).Id(n.CommandMethod).Params().
			Params(jen.Op("*").Qual(runtimePkg, "MessageType"), jen.String()).
			Block(jen.Return(jen.Id(m.Names.Info), fieldString(m.Subject, "command")))
	}
}

// genBehaviour emits the interface the user implements:
//
//	type OrderAggregate interface {
//		ApplyOrderPlaced(state *Order, event *OrderPlaced)
//		HandlePlaceOrder(ctx context.Context, state *Order, command *PlaceOrder) ([]OrderEvent, error)
//	}
func genBehaviour(g *jen.File, a *model.Aggregate) {
	n := a.Names
	doc := fmt.Sprintf("%s is the behaviour of the %s aggregate, which you implement: an Apply method per event folds the event into the state", n.Behaviour, n.Base)
	if len(a.Commands) > 0 {
		doc += ", and a Handle method per command decides the events the command causes"
	}
	doc += fmt.Sprintf(". A new %s in the schema adds a method here, so an implementation stops compiling until it handles it. %s runs it against an event store.", strings.Join(kinds(a), " or "), n.Repository)
	comment(g, doc, model.Doc{})
	g.Type().Id(n.Behaviour).InterfaceFunc(func(i *jen.Group) {
		for _, m := range a.Events {
			comment(i, fmt.Sprintf("%s folds %s event into state. It cannot fail: the event has happened.", m.Names.ApplyMethod, withArticle(m.GoIdent.GoName)), deprecatedOnly(m.Doc))
			i.Id(m.Names.ApplyMethod).Params(jen.Id("state").Add(state(a)), jen.Id("event").Add(ptr(m.GoIdent)))
		}
		for _, m := range a.Commands {
			comment(i, fmt.Sprintf("%s decides the events of a %s command on state, or returns a domain error, which is not retried. It must not modify state.", m.Names.HandlerMethod, m.GoIdent.GoName), deprecatedOnly(m.Doc))
			i.Id(m.Names.HandlerMethod).Params(
				jen.Id("ctx").Qual(contextPkg, "Context"),
				jen.Id("state").Add(state(a)),
				jen.Id("command").Add(ptr(m.GoIdent)),
			).Params(jen.Index().Id(n.Event), jen.Error())
		}
	})
}

func kinds(a *model.Aggregate) []string {
	if len(a.Commands) > 0 {
		return []string{"event", "command"}
	}
	return []string{"event"}
}

// genEventSpecs emits
//
//	var _Order_EventSpecs = []runtime.EventSpec[OrderEvent]{
//		{Type: _OrderPlaced_MessageType, New: func() OrderEvent { return new(OrderPlaced) }},
//	}
func genEventSpecs(g *jen.File, a *model.Aggregate) {
	n := a.Names
	g.Comment(fmt.Sprintf("%s tells the runtime how to decode the %s aggregate's stored events.", n.EventSpecs, n.Base))
	g.Var().Id(n.EventSpecs).Op("=").Index().Qual(runtimePkg, "EventSpec").Types(jen.Id(n.Event)).ValuesFunc(func(v *jen.Group) {
		for _, m := range a.Events {
			v.Line().Values(
				field("Type", jen.Id(m.Names.Info)),
				field("New", jen.Func().Params().Id(n.Event).Block(jen.Return(jen.New(jen.Qual(m.GoIdent.GoImportPath, m.GoIdent.GoName))))),
			)
		}
		v.Line()
	})
}

// genSpec emits
//
//	func _Order_Spec(b OrderAggregate) runtime.AggregateSpec[*Order, OrderEvent] {
//		return runtime.AggregateSpec[*Order, OrderEvent]{Type: OrderAggregateType, ..., Apply: func(state *Order, event OrderEvent) {
//			switch event := event.(type) {
//			case *OrderPlaced:
//				b.ApplyOrderPlaced(state, event)
//			}
//		}}
//	}
func genSpec(g *jen.File, a *model.Aggregate) {
	n := a.Names
	specType := func() *jen.Statement { return jen.Qual(runtimePkg, "AggregateSpec").Types(state(a), jen.Id(n.Event)) }
	g.Comment(fmt.Sprintf("%s describes the %s aggregate, with b's behaviour, to the runtime.", n.Spec, n.Base))
	fields := []jen.Code{
		field("Type", jen.Id(n.TypeConst)),
		field("New", jen.Func().Params().Add(state(a)).Block(jen.Return(jen.New(jen.Qual(a.GoIdent.GoImportPath, a.GoIdent.GoName))))),
		field("Events", jen.Id(n.EventSpecs)),
		field("Apply", jen.Func().Params(jen.Id("state").Add(state(a)), jen.Id("event").Id(n.Event)).Block(
			jen.Switch(jen.Id("event").Op(":=").Id("event").Assert(jen.Type())).BlockFunc(func(sw *jen.Group) {
				for _, m := range a.Events {
					sw.Case(ptr(m.GoIdent)).Block(jen.Id("b").Dot(m.Names.ApplyMethod).Call(jen.Id("state"), jen.Id("event")))
				}
			}),
		)),
		field("Describe", jen.Id(n.Event).Dot(n.EventMethod)),
	}
	if a.Snapshot.Every > 0 {
		fields = append(fields, field("Snapshot", jen.Qual(runtimePkg, "SnapshotPolicy").Values(
			field("Every", jen.Lit(int(a.Snapshot.Every))),
			field("Version", jen.Lit(int(a.Snapshot.Version))),
		)))
	}
	g.Func().Id(n.Spec).Params(jen.Id("b").Id(n.Behaviour)).Add(specType()).Block(
		jen.Return(specType().Values(lines(fields)...)),
	)
}

// genDecide emits the command dispatch:
//
//	func _Order_Decide(ctx context.Context, b OrderAggregate, state *Order, command OrderCommand) ([]OrderEvent, error) {
//		switch command := command.(type) {
//		case *PlaceOrder:
//			return b.HandlePlaceOrder(ctx, state, command)
//		}
//		return nil, runtime.ErrNilCommand
//	}
func genDecide(g *jen.File, a *model.Aggregate) {
	n := a.Names
	g.Comment(fmt.Sprintf("%s runs b's Handle method for command. Only a nil command matches no case.", n.Decide))
	g.Func().Id(n.Decide).Params(
		jen.Id("ctx").Qual(contextPkg, "Context"),
		jen.Id("b").Id(n.Behaviour),
		jen.Id("state").Add(state(a)),
		jen.Id("command").Id(n.Command),
	).Params(jen.Index().Id(n.Event), jen.Error()).Block(
		jen.Switch(jen.Id("command").Op(":=").Id("command").Assert(jen.Type())).BlockFunc(func(sw *jen.Group) {
			for _, m := range a.Commands {
				sw.Case(ptr(m.GoIdent)).Block(jen.Return(jen.Id("b").Dot(m.Names.HandlerMethod).Call(jen.Id("ctx"), jen.Id("state"), jen.Id("command"))))
			}
		}),
		jen.Return(jen.Nil(), jen.Qual(runtimePkg, "ErrNilCommand")),
	)
}
