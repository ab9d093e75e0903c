package templates

import (
	"fmt"

	"github.com/dave/jennifer/jen"

	"github.com/protoc-gen-eda/eda/generator/model"
)

// genAggregate emits everything generated for one aggregate, in this order:
// constants, message descriptors, then the event side (publisher, handler
// interface, Unimplemented handler, registration) and the command side
// (command bus, handler interface, Unimplemented handler, registration).
func genAggregate(g *jen.File, a *model.Aggregate) {
	genAggregateConsts(g, a)
	g.Comment(fmt.Sprintf("Descriptions of the %s aggregate's messages for the runtime.", a.Names.Base))
	g.Var().DefsFunc(func(d *jen.Group) {
		for _, m := range a.Events {
			genMessageInfo(d, m, jen.Id(a.Names.EventsTopicConst), jen.Id(a.Names.TypeConst))
		}
		for _, m := range a.Commands {
			genMessageInfo(d, m, jen.Id(a.Names.CommandsTopicConst), jen.Id(a.Names.TypeConst))
		}
	})
	if len(a.Events) > 0 {
		side := side{kind: model.Event, agg: a, msgs: a.Events, topicConst: a.Names.EventsTopicConst,
			sender: a.Names.EventPublisher, newSender: a.Names.NewEventPublisher, handler: a.Names.EventHandler,
			unimplemented: a.Names.UnimplementedEventHandler, register: a.Names.RegisterEventHandler, handlerName: a.Names.EventsHandlerName}
		genSender(g, side)
		genHandlerInterface(g, side)
		genUnimplemented(g, side)
		genRegister(g, side)
	}
	if len(a.Commands) > 0 {
		side := side{kind: model.Command, agg: a, msgs: a.Commands, topicConst: a.Names.CommandsTopicConst,
			sender: a.Names.CommandBus, newSender: a.Names.NewCommandBus, handler: a.Names.CommandHandler,
			unimplemented: a.Names.UnimplementedCommandHandler, register: a.Names.RegisterCommandHandler, handlerName: a.Names.CommandsHandlerName}
		genSender(g, side)
		genHandlerInterface(g, side)
		genUnimplemented(g, side)
		genRegister(g, side)
	}
	if a.EventSourced() {
		genEventSourcing(g, a)
	}
}

// side is one direction of traffic through a topic: the events an aggregate
// publishes, the commands it accepts, or one standalone message.
type side struct {
	kind          model.Kind
	agg           *model.Aggregate // nil for a standalone message
	msgs          []*model.Message
	topicConst    string
	sender        string
	newSender     string
	handler       string
	unimplemented string // empty: no Unimplemented type
	register      string
	handlerName   string
}

// what describes the side's messages in doc comments.
func (s side) what() string {
	if s.agg == nil {
		return s.msgs[0].GoIdent.GoName + " " + s.kind.String() + "s"
	}
	return fmt.Sprintf("the %ss of the %s aggregate", s.kind, s.agg.Names.Base)
}

// genAggregateConsts emits
//
//	const (
//		OrderAggregateType = "shop.v1.Order"
//		OrderEventsTopic   = "shop.v1.Order.events"
//		OrderCommandsTopic = "shop.v1.Order.commands"
//	)
func genAggregateConsts(g *jen.File, a *model.Aggregate) {
	n := a.Names
	comment(g, fmt.Sprintf("Wire names of the %s aggregate, whose state is %s.", n.Base, a.GoIdent.GoName), a.Doc)
	g.Const().DefsFunc(func(d *jen.Group) {
		comment(d, fmt.Sprintf("%s is the stable type of the %s aggregate, written in the envelope of its events and commands.", n.TypeConst, n.Base), deprecatedOnly(a.Doc))
		d.Id(n.TypeConst).Op("=").Lit(a.TypeName)
		if len(a.Events) > 0 {
			comment(d, fmt.Sprintf("%s is the topic of the %s aggregate's events.", n.EventsTopicConst, n.Base), model.Doc{})
			d.Id(n.EventsTopicConst).Op("=").Lit(a.EventsTopic)
		}
		if len(a.Commands) > 0 {
			comment(d, fmt.Sprintf("%s is the topic of the %s aggregate's commands.", n.CommandsTopicConst, n.Base), model.Doc{})
			d.Id(n.CommandsTopicConst).Op("=").Lit(a.CommandsTopic)
		}
	})
}

// genSender emits the publisher (events) or command bus (commands):
//
//	type OrderEventPublisher struct{ pub *runtime.Publisher }
//	func NewOrderEventPublisher(pub *runtime.Publisher) *OrderEventPublisher
//	func (p *OrderEventPublisher) PublishOrderPlaced(ctx context.Context, event *OrderPlaced) error
func genSender(g *jen.File, s side) {
	verb := "publishes"
	if s.kind == model.Command {
		verb = "sends"
	}
	comment(g, fmt.Sprintf("%s %s %s on %s. It is safe for concurrent use.", s.sender, verb, s.what(), s.topicConst), model.Doc{})
	g.Type().Id(s.sender).Struct(jen.Id("pub").Op("*").Qual(runtimePkg, "Publisher"))

	comment(g, fmt.Sprintf("%s returns a new %s that %s through pub.", s.newSender, s.sender, verb), model.Doc{})
	g.Func().Id(s.newSender).Params(jen.Id("pub").Op("*").Qual(runtimePkg, "Publisher")).Op("*").Id(s.sender).Block(
		jen.Return(jen.Op("&").Id(s.sender).Values(field("pub", jen.Id("pub")))),
	)

	for _, m := range s.msgs {
		v := handlerParam(m)
		comment(g, fmt.Sprintf("%s %s one %s %s.", m.Names.Method, verb, m.GoIdent.GoName, m.Kind), m.Doc)
		g.Func().Params(jen.Id("p").Op("*").Id(s.sender)).Id(m.Names.Method).Params(
			jen.Id("ctx").Qual(contextPkg, "Context"),
			jen.Id(v).Op("*").Qual(m.GoIdent.GoImportPath, m.GoIdent.GoName),
		).Error().Block(
			jen.Return(jen.Id("p").Dot("pub").Dot("Publish").Call(jen.Id("ctx"), jen.Id(m.Names.Info), outgoing(m, v))),
		)
	}
}

// genHandlerInterface emits
//
//	type OrderEventHandler interface {
//		HandleOrderPlaced(ctx context.Context, event *OrderPlaced) error
//	}
func genHandlerInterface(g *jen.File, s side) {
	doc := fmt.Sprintf("%s handles %s.", s.handler, s.what())
	if s.unimplemented != "" {
		doc += fmt.Sprintf(" Embed %s to handle only some of them and to keep compiling when the schema adds %ss.", s.unimplemented, s.kind)
	}
	comment(g, doc, model.Doc{})
	g.Type().Id(s.handler).InterfaceFunc(func(i *jen.Group) {
		for _, m := range s.msgs {
			comment(i, fmt.Sprintf("%s handles one %s %s. An error is retried per the delivery policy, then dead-lettered.", m.Names.HandlerMethod, m.GoIdent.GoName, m.Kind), m.Doc)
			i.Id(m.Names.HandlerMethod).Params(
				jen.Id("ctx").Qual(contextPkg, "Context"),
				jen.Id(handlerParam(m)).Op("*").Qual(m.GoIdent.GoImportPath, m.GoIdent.GoName),
			).Error()
		}
	})
}

// genUnimplemented emits the embeddable forward-compatible handler: events
// are acknowledged and ignored, commands fail with runtime.ErrUnimplemented.
//
//	type UnimplementedOrderEventHandler struct{}
//	func (UnimplementedOrderEventHandler) HandleOrderPlaced(context.Context, *OrderPlaced) error { return nil }
func genUnimplemented(g *jen.File, s side) {
	if s.unimplemented == "" {
		return
	}
	doc := fmt.Sprintf("%s acknowledges %s without doing anything.", s.unimplemented, s.what())
	result := jen.Nil()
	if s.kind == model.Command {
		doc = fmt.Sprintf("%s rejects %s with runtime.ErrUnimplemented; the router dead-letters them.", s.unimplemented, s.what())
		result = jen.Qual(runtimePkg, "ErrUnimplemented")
	}
	comment(g, doc, model.Doc{})
	g.Type().Id(s.unimplemented).Struct()
	for _, m := range s.msgs {
		what := "acknowledges the event without doing anything"
		if s.kind == model.Command {
			what = "returns runtime.ErrUnimplemented"
		}
		comment(g, fmt.Sprintf("%s %s.", m.Names.HandlerMethod, what), model.Doc{})
		g.Func().Params(jen.Id(s.unimplemented)).Id(m.Names.HandlerMethod).Params(
			jen.Qual(contextPkg, "Context"),
			jen.Op("*").Qual(m.GoIdent.GoImportPath, m.GoIdent.GoName),
		).Error().Block(jen.Return(result))
	}
}

// genRegister emits
//
//	func RegisterOrderEventHandler(r *runtime.Router, h OrderEventHandler, opts ...runtime.HandlerOption) error {
//		return r.AddHandler(runtime.HandlerSpec{Name: "shop.v1.Order.events", Topic: OrderEventsTopic,
//			Routes: []runtime.Route{runtime.On(_OrderPlaced_MessageType, h.HandleOrderPlaced)}}, opts...)
//	}
func genRegister(g *jen.File, s side) {
	comment(g, fmt.Sprintf("%s subscribes h to %s on r, as the handler named %q unless runtime.WithName gives another. The name is wire API: on a broker with consumer groups it names the group, and renaming it re-consumes the topic.", s.register, s.topicConst, s.handlerName), model.Doc{})
	g.Func().Id(s.register).Params(
		jen.Id("r").Op("*").Qual(runtimePkg, "Router"),
		jen.Id("h").Id(s.handler),
		jen.Id("opts").Op("...").Qual(runtimePkg, "HandlerOption"),
	).Error().Block(
		jen.Return(jen.Id("r").Dot("AddHandler").Call(
			jen.Qual(runtimePkg, "HandlerSpec").Values(
				jen.Line().Add(field("Name", jen.Lit(s.handlerName))),
				jen.Line().Add(field("Topic", jen.Id(s.topicConst))),
				jen.Line().Add(field("Routes", jen.Index().Qual(runtimePkg, "Route").ValuesFunc(func(v *jen.Group) {
					for _, m := range s.msgs {
						v.Line().Qual(runtimePkg, "On").Call(jen.Id(m.Names.Info), jen.Id("h").Dot(m.Names.HandlerMethod))
					}
					v.Line()
				}))),
				jen.Line(),
			),
			jen.Id("opts").Op("..."),
		)),
	)
}
