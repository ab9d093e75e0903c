package templates

import (
	"fmt"

	"github.com/dave/jennifer/jen"

	"github.com/protoc-gen-eda/eda/generator/model"
)

// genStandalone emits what a message with no aggregate gets on its own: its
// topic constant, its descriptor, a publisher (or sender), a handler interface
// and its registration.
func genStandalone(g *jen.File, m *model.Message) {
	comment(g, fmt.Sprintf("%s is the topic of %s %ss.", m.Names.TopicConst, m.GoIdent.GoName, m.Kind), deprecatedOnly(m.Doc))
	g.Const().Id(m.Names.TopicConst).Op("=").Lit(m.Topic)
	g.Comment(fmt.Sprintf("Description of %s %ss for the runtime.", m.GoIdent.GoName, m.Kind))
	g.Var().DefsFunc(func(d *jen.Group) { genMessageInfo(d, m, jen.Id(m.Names.TopicConst), nil) })
	s := side{kind: m.Kind, msgs: []*model.Message{m}, topicConst: m.Names.TopicConst,
		sender: m.Names.Sender, newSender: m.Names.NewSender, handler: m.Names.Handler,
		register: m.Names.Register, handlerName: m.Names.HandlerName}
	genSender(g, s)
	genHandlerInterface(g, s)
	genRegister(g, s)
}
