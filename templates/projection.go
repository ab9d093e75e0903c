package templates

import (
	"fmt"

	"github.com/dave/jennifer/jen"

	"github.com/protoc-gen-eda/eda/generator/model"
)

// genProjection emits a read model's handler interface, its runtime
// description and the constructor of its runner.
func genProjection(g *jen.File, p *model.Projection) {
	genProjectionHandler(g, p)
	genProjectionSpec(g, p)
	genNewProjection(g, p)
}

// projectionTx renders runtime.ProjectionTx[Tx].
func projectionTx() *jen.Statement {
	return jen.Qual(runtimePkg, "ProjectionTx").Types(jen.Id("Tx"))
}

// genProjectionHandler emits
//
//	type OrderSummaryProjection[Tx any] interface {
//		Setup(ctx context.Context, p runtime.ProjectionTx[Tx]) error
//		Activate(ctx context.Context, p runtime.ProjectionTx[Tx], previous int) error
//		OnOrderPlaced(ctx context.Context, p runtime.ProjectionTx[Tx], event *OrderPlaced, rec *runtime.EventRecord) error
//	}
func genProjectionHandler(g *jen.File, p *model.Projection) {
	n := p.Names
	comment(g, fmt.Sprintf("%s builds the %s read model (projection %q) from events: implement it and run it with %s. Tx is the transaction of the store the read model lives in, in which the runtime also saves the projection's checkpoint: *sql.Tx with runtime/sqlite, pgx.Tx with runtime/postgres, memstore.NoTx in memory.", n.Handler, p.GoIdent.GoName, p.Name, n.New), p.Doc)
	methods := []jen.Code{
		jen.Comment("Setup creates the tables of one generation of the read model, named"),
		jen.Comment("with p.Table. A rebuild fills a new generation beside the active one."),
		jen.Id("Setup").Params(jen.Id("ctx").Qual(contextPkg, "Context"), jen.Id("p").Add(projectionTx())).Error(),
		jen.Comment("Activate points readers at generation p.Generation, for example by"),
		jen.Comment("replacing a view; previous is the generation they read before (0 for"),
		jen.Comment("none), which Activate may drop."),
		jen.Id("Activate").Params(jen.Id("ctx").Qual(contextPkg, "Context"), jen.Id("p").Add(projectionTx()), jen.Id("previous").Int()).Error(),
	}
	for _, m := range p.Events {
		methods = append(methods,
			jen.Comment(fmt.Sprintf("%s applies %s event, in the transaction that saves the", p.OnMethod(m), withArticle(m.GoIdent.GoName))),
			jen.Comment("checkpoint past it."),
			jen.Id(p.OnMethod(m)).Params(jen.Id("ctx").Qual(contextPkg, "Context"), jen.Id("p").Add(projectionTx()), jen.Id("event").Add(ptr(m.GoIdent)), jen.Id("rec").Op("*").Qual(runtimePkg, "EventRecord")).Error(),
		)
	}
	g.Type().Id(n.Handler).Types(jen.Id("Tx").Any()).Interface(methods...)
}

// genProjectionSpec emits
//
//	func OrderSummaryProjectionSpec[Tx any](h OrderSummaryProjection[Tx]) runtime.ProjectionSpec[Tx] {
//		return runtime.ProjectionSpec[Tx]{Name: "shop.order_summary", Routes: ..., Setup: h.Setup, Activate: h.Activate}
//	}
func genProjectionSpec(g *jen.File, p *model.Projection) {
	n := p.Names
	comment(g, fmt.Sprintf("%s describes h to the runtime: the projection's stable name, which keys its checkpoint, and a route per event.", n.Spec), model.Doc{})
	routes := make([]jen.Code, len(p.Events))
	for i, m := range p.Events {
		routes[i] = jen.Qual(runtimePkg, "Project").Types(jen.Id("Tx"), jen.Qual(m.GoIdent.GoImportPath, m.GoIdent.GoName)).Call(jen.Id(m.Names.Info), jen.Id("h").Dot(p.OnMethod(m)))
	}
	g.Func().Id(n.Spec).Types(jen.Id("Tx").Any()).Params(jen.Id("h").Id(n.Handler).Types(jen.Id("Tx"))).
		Qual(runtimePkg, "ProjectionSpec").Types(jen.Id("Tx")).
		Block(jen.Return(jen.Qual(runtimePkg, "ProjectionSpec").Types(jen.Id("Tx")).Values(lines([]jen.Code{
			field("Name", jen.Lit(p.Name)),
			field("Routes", jen.Index().Qual(runtimePkg, "ProjectionRoute").Types(jen.Id("Tx")).Values(lines(routes)...)),
			field("Setup", jen.Id("h").Dot("Setup")),
			field("Activate", jen.Id("h").Dot("Activate")),
		})...)))
}

// genNewProjection emits
//
//	func NewOrderSummaryProjection[Tx any](log runtime.EventStore, store runtime.ProjectionStore[Tx], h OrderSummaryProjection[Tx], cfg runtime.ProjectionConfig) (*runtime.Projection[Tx], error) {
//		return runtime.NewProjection(log, store, OrderSummaryProjectionSpec(h), cfg)
//	}
func genNewProjection(g *jen.File, p *model.Projection) {
	n := p.Names
	comment(g, fmt.Sprintf("%s returns the runner of h: it catches up from log's global log, then follows it, saving its checkpoint in store's transaction.", n.New), model.Doc{})
	g.Func().Id(n.New).Types(jen.Id("Tx").Any()).Params(
		jen.Id("log").Qual(runtimePkg, "EventStore"),
		jen.Id("store").Qual(runtimePkg, "ProjectionStore").Types(jen.Id("Tx")),
		jen.Id("h").Id(n.Handler).Types(jen.Id("Tx")),
		jen.Id("cfg").Qual(runtimePkg, "ProjectionConfig"),
	).Params(jen.Op("*").Qual(runtimePkg, "Projection").Types(jen.Id("Tx")), jen.Error()).
		Block(jen.Return(jen.Qual(runtimePkg, "NewProjection").Call(jen.Id("log"), jen.Id("store"), jen.Id(n.Spec).Call(jen.Id("h")), jen.Id("cfg"))))
}
