package templates

import (
	"fmt"

	"github.com/dave/jennifer/jen"

	"github.com/protoc-gen-eda/eda/generator/model"
)

// genRepository emits the typed repository over runtime.Repository:
//
//	type OrderRepository struct {
//		behaviour OrderAggregate
//		repo      *runtime.Repository[*Order, OrderEvent]
//	}
//	func NewOrderRepository(store runtime.EventStore, b OrderAggregate, cfg runtime.RepositoryConfig) (*OrderRepository, error)
//	func (r *OrderRepository) Load(ctx context.Context, id string) (*Order, uint64, error)
//	func (r *OrderRepository) Save(ctx context.Context, id string, state *Order, version uint64, events ...OrderEvent) (uint64, error)
//	func (r *OrderRepository) Execute(ctx context.Context, command OrderCommand) ([]OrderEvent, error)
//	func (r *OrderRepository) HandlePlaceOrder(ctx context.Context, command *PlaceOrder) error
func genRepository(g *jen.File, a *model.Aggregate) {
	n := a.Names
	repoType := func() *jen.Statement {
		return jen.Op("*").Qual(runtimePkg, "Repository").Types(state(a), jen.Id(n.Event))
	}
	recv := func() *jen.Statement { return jen.Params(jen.Id("r").Op("*").Id(n.Repository)) }
	ctx := func() *jen.Statement { return jen.Id("ctx").Qual(contextPkg, "Context") }

	doc := fmt.Sprintf("%s loads %s aggregates from an event store and saves their new events, with their outbox messages, in one transaction.", n.Repository, n.Base)
	if len(a.Commands) > 0 {
		doc += fmt.Sprintf(" It runs commands with Execute, and implements %s so that %s can feed it commands from the bus.", n.CommandHandler, n.RegisterCommandHandler)
	}
	if a.Snapshot.Every > 0 {
		doc += fmt.Sprintf(" It stores a snapshot every %d events.", a.Snapshot.Every)
	}
	comment(g, doc+" It is safe for concurrent use.", model.Doc{})
	g.Type().Id(n.Repository).Struct(
		jen.Id("behaviour").Id(n.Behaviour),
		jen.Id("repo").Add(repoType()),
	)

	comment(g, fmt.Sprintf("%s returns a repository of %s aggregates in store, with b's behaviour.", n.NewRepository, n.Base), model.Doc{})
	g.Func().Id(n.NewRepository).Params(
		jen.Id("store").Qual(runtimePkg, "EventStore"),
		jen.Id("b").Id(n.Behaviour),
		jen.Id("cfg").Qual(runtimePkg, "RepositoryConfig"),
	).Params(jen.Op("*").Id(n.Repository), jen.Error()).Block(
		jen.List(jen.Id("repo"), jen.Err()).Op(":=").Qual(runtimePkg, "NewRepository").Call(jen.Id("store"), jen.Id(n.Spec).Call(jen.Id("b")), jen.Id("cfg")),
		jen.If(jen.Err().Op("!=").Nil()).Block(jen.Return(jen.Nil(), jen.Err())),
		jen.Return(jen.Op("&").Id(n.Repository).Values(field("behaviour", jen.Id("b")), field("repo", jen.Id("repo"))), jen.Nil()),
	)

	comment(g, fmt.Sprintf("Load returns the state and version of the %s aggregate id: its latest snapshot, if any, with the events after it applied. Version 0 means the aggregate has no events.", n.Base), model.Doc{})
	g.Func().Add(recv()).Id("Load").Params(ctx(), jen.Id("id").String()).Params(state(a), jen.Uint64(), jen.Error()).Block(
		jen.Return(jen.Id("r").Dot("repo").Dot("Load").Call(jen.Id("ctx"), jen.Id("id"))),
	)

	comment(g, fmt.Sprintf("Save appends events, decided on state at version, to the stream of the %s aggregate id, and applies them to state. It returns the new version, or a *runtime.ConcurrencyError if another writer appended since version.", n.Base), model.Doc{})
	g.Func().Add(recv()).Id("Save").Params(
		ctx(), jen.Id("id").String(), jen.Id("state").Add(state(a)), jen.Id("version").Uint64(), jen.Id("events").Op("...").Id(n.Event),
	).Params(jen.Uint64(), jen.Error()).Block(
		jen.Return(jen.Id("r").Dot("repo").Dot("Save").Call(jen.Id("ctx"), jen.Id("id"), jen.Id("state"), jen.Id("version"), jen.Id("events"))),
	)
	if len(a.Commands) == 0 {
		return
	}

	comment(g, fmt.Sprintf("Execute runs command on the %s aggregate it names: it loads the aggregate, calls the behaviour's Handle method and saves the events it decides, which it returns. A domain error from the behaviour is returned wrapped with runtime.Permanent. A command with retry_on_conflict runs again on fresh state after a concurrency conflict.", n.Base), model.Doc{})
	g.Func().Add(recv()).Id("Execute").Params(ctx(), jen.Id("command").Id(n.Command)).Params(jen.Index().Id(n.Event), jen.Error()).Block(
		jen.If(jen.Id("command").Op("==").Nil()).Block(jen.Return(jen.Nil(), jen.Qual(runtimePkg, "ErrNilCommand"))),
		jen.List(jen.Id("t"), jen.Id("id")).Op(":=").Id("command").Dot(n.CommandMethod).Call(),
		jen.Return(jen.Id("r").Dot("repo").Dot("Execute").Call(jen.Id("ctx"), jen.Id("id"), jen.Id("t"),
			jen.Func().Params(ctx(), jen.Id("state").Add(state(a))).Params(jen.Index().Id(n.Event), jen.Error()).Block(
				jen.Return(jen.Id(n.Decide).Call(jen.Id("ctx"), jen.Id("r").Dot("behaviour"), jen.Id("state"), jen.Id("command"))),
			),
		)),
	)

	for _, m := range a.Commands {
		comment(g, fmt.Sprintf("%s runs a %s command from the bus with Execute.", m.Names.HandlerMethod, m.GoIdent.GoName), deprecatedOnly(m.Doc))
		g.Func().Add(recv()).Id(m.Names.HandlerMethod).Params(ctx(), jen.Id("command").Add(ptr(m.GoIdent))).Error().Block(
			jen.List(jen.Id("_"), jen.Err()).Op(":=").Id("r").Dot("Execute").Call(jen.Id("ctx"), jen.Id("command")),
			jen.Return(jen.Err()),
		)
	}
}

// genScenario emits the given/when/then test fixture:
//
//	type OrderScenario struct {
//		t         runtime.TB
//		behaviour OrderAggregate
//		s         *runtime.Scenario[*Order, OrderEvent]
//	}
//	func NewOrderScenario(t runtime.TB, b OrderAggregate) *OrderScenario
//	func (s *OrderScenario) Given(events ...OrderEvent) *OrderScenario
//	func (s *OrderScenario) When(command OrderCommand) *OrderScenario
//	func (s *OrderScenario) Then(want ...OrderEvent)
//	func (s *OrderScenario) ThenError(target error)
//	func (s *OrderScenario) State() *Order
func genScenario(g *jen.File, a *model.Aggregate) {
	n := a.Names
	recv := func() *jen.Statement { return jen.Params(jen.Id("s").Op("*").Id(n.Scenario)) }
	scenarioType := func() *jen.Statement {
		return jen.Op("*").Qual(runtimePkg, "Scenario").Types(state(a), jen.Id(n.Event))
	}

	comment(g, fmt.Sprintf("%s tests an %s with no event store: given past events, when a command, then the events it decides, or an error. In a test:", n.Scenario, n.Behaviour), model.Doc{})
	g.Comment("")
	g.Comment(fmt.Sprintf("\t%s(t, behaviour).", n.NewScenario))
	g.Comment(fmt.Sprintf("\t\tGiven(&%s{...}).", a.Events[0].GoIdent.GoName))
	g.Comment(fmt.Sprintf("\t\tWhen(&%s{...}).", a.Commands[0].GoIdent.GoName))
	g.Comment(fmt.Sprintf("\t\tThen(&%s{...})", a.Events[0].GoIdent.GoName))
	g.Type().Id(n.Scenario).Struct(
		jen.Id("t").Qual(runtimePkg, "TB"),
		jen.Id("behaviour").Id(n.Behaviour),
		jen.Id("s").Add(scenarioType()),
	)

	comment(g, fmt.Sprintf("%s returns a scenario of b that reports failures to t, a *testing.T.", n.NewScenario), model.Doc{})
	g.Func().Id(n.NewScenario).Params(jen.Id("t").Qual(runtimePkg, "TB"), jen.Id("b").Id(n.Behaviour)).Op("*").Id(n.Scenario).Block(
		jen.Return(jen.Op("&").Id(n.Scenario).Values(
			field("t", jen.Id("t")),
			field("behaviour", jen.Id("b")),
			field("s", jen.Qual(runtimePkg, "NewScenario").Call(jen.Id("t"), jen.Id(n.Spec).Call(jen.Id("b")))),
		)),
	)

	comment(g, "Given applies past events to the aggregate's state.", model.Doc{})
	g.Func().Add(recv()).Id("Given").Params(jen.Id("events").Op("...").Id(n.Event)).Op("*").Id(n.Scenario).Block(
		jen.Id("s").Dot("s").Dot("Given").Call(jen.Id("events").Op("...")),
		jen.Return(jen.Id("s")),
	)

	comment(g, "When runs command's Handle method on the state the given events built.", model.Doc{})
	g.Func().Add(recv()).Id("When").Params(jen.Id("command").Id(n.Command)).Op("*").Id(n.Scenario).Block(
		jen.Id("s").Dot("t").Dot("Helper").Call(),
		// A nil command reaches the dispatch, which reports runtime.ErrNilCommand.
		jen.Var().Id("id").String(),
		jen.If(jen.Id("command").Op("!=").Nil()).Block(
			jen.List(jen.Id("_"), jen.Id("id")).Op("=").Id("command").Dot(n.CommandMethod).Call(),
		),
		jen.Id("s").Dot("s").Dot("When").Call(jen.Qual(contextPkg, "Background").Call(), jen.Id("id"),
			jen.Func().Params(jen.Id("ctx").Qual(contextPkg, "Context"), jen.Id("state").Add(state(a))).Params(jen.Index().Id(n.Event), jen.Error()).Block(
				jen.Return(jen.Id(n.Decide).Call(jen.Id("ctx"), jen.Id("s").Dot("behaviour"), jen.Id("state"), jen.Id("command"))),
			),
		),
		jen.Return(jen.Id("s")),
	)

	comment(g, "Then checks that the command succeeded and decided exactly want, in order.", model.Doc{})
	g.Func().Add(recv()).Id("Then").Params(jen.Id("want").Op("...").Id(n.Event)).Block(
		jen.Id("s").Dot("t").Dot("Helper").Call(),
		jen.Id("s").Dot("s").Dot("Then").Call(jen.Id("want").Op("...")),
	)

	comment(g, "ThenError checks that the command failed with an error matching target (errors.Is), or with any error if target is nil.", model.Doc{})
	g.Func().Add(recv()).Id("ThenError").Params(jen.Id("target").Error()).Block(
		jen.Id("s").Dot("t").Dot("Helper").Call(),
		jen.Id("s").Dot("s").Dot("ThenError").Call(jen.Id("target")),
	)

	comment(g, "State returns the state the given events built.", model.Doc{})
	g.Func().Add(recv()).Id("State").Params().Add(state(a)).Block(
		jen.Return(jen.Id("s").Dot("s").Dot("State").Call()),
	)
}
