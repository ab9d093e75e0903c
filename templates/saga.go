package templates

import (
	"fmt"
	"strings"
	"time"

	"github.com/dave/jennifer/jen"

	"github.com/protoc-gen-eda/eda/generator/model"
)

// genSaga emits a saga's behaviour interface, with its diagram, its runtime
// description and the constructor of its orchestrator.
func genSaga(g *jen.File, s *model.Saga) {
	genSagaBehaviour(g, s)
	genSagaSpec(g, s)
	genNewSaga(g, s)
}

// genSagaBehaviour emits
//
//	type CheckoutSagaBehaviour interface {
//		Start(ctx context.Context, event *OrderPlaced) (*Checkout, error)
//		Charge(ctx context.Context, state *Checkout) (*ChargePayment, error)
//		CompensateCharge(ctx context.Context, state *Checkout) (*RefundPayment, error)
//		OnPaymentCaptured(ctx context.Context, state *Checkout, event *PaymentCaptured) error
//	}
func genSagaBehaviour(g *jen.File, s *model.Saga) {
	n := s.Names
	comment(g, fmt.Sprintf("%s is what the %s saga (%q) needs from you: its initial state, the command of each step and of each compensation, and how each event it waits for changes the state. %s runs it; the runtime persists the state, sends the commands through the outbox and arms the timeouts.", n.Behaviour, s.GoIdent.GoName, s.Name, n.New), s.Doc)
	g.Comment("")
	g.Comment("The saga's steps, as a Mermaid state diagram:")
	g.Comment("")
	for _, line := range sagaDiagram(s) {
		g.Comment("\t" + line)
	}
	ctx := jen.Id("ctx").Qual(contextPkg, "Context")
	stateParam := jen.Id("state").Add(ptr(s.GoIdent))
	methods := []jen.Code{
		jen.Comment(fmt.Sprintf("Start begins an instance from the %s that starts it and returns", s.Start.Message.GoIdent.GoName)),
		jen.Comment("the instance's initial state."),
		jen.Id("Start").Params(ctx, jen.Id("event").Add(ptr(s.Start.Message.GoIdent))).Params(ptr(s.GoIdent), jen.Error()),
	}
	for _, st := range s.Steps {
		methods = append(methods,
			jen.Comment(fmt.Sprintf("%s builds the %s that step %q sends.", st.Method, st.Command.GoIdent.GoName, st.Name)),
			jen.Id(st.Method).Params(ctx, stateParam).Params(ptr(st.Command.GoIdent), jen.Error()),
		)
		if st.Compensation != nil {
			methods = append(methods,
				jen.Comment(fmt.Sprintf("%s builds the %s that undoes step %q.", st.CompensateMethod, st.Compensation.GoIdent.GoName, st.Name)),
				jen.Id(st.CompensateMethod).Params(ctx, stateParam).Params(ptr(st.Compensation.GoIdent), jen.Error()),
			)
		}
	}
	for _, st := range s.Steps {
		for _, ev := range st.Success {
			methods = append(methods,
				jen.Comment(fmt.Sprintf("%s records %s, which completes step %q, in state.", ev.Method, ev.Message.GoIdent.GoName, st.Name)),
				jen.Id(ev.Method).Params(ctx, stateParam, jen.Id("event").Add(ptr(ev.Message.GoIdent))).Error(),
			)
		}
		for _, ev := range st.Failure {
			methods = append(methods,
				jen.Comment(fmt.Sprintf("%s records %s, which fails step %q, in state.", ev.Method, ev.Message.GoIdent.GoName, st.Name)),
				jen.Id(ev.Method).Params(ctx, stateParam, jen.Id("event").Add(ptr(ev.Message.GoIdent))).Error(),
			)
		}
	}
	g.Type().Id(n.Behaviour).Interface(methods...)
}

// sagaDiagram draws the saga as a Mermaid state diagram: the happy path
// from start to end, and per step the events and timeouts that fail it with
// the compensations they send, in the order they are sent.
func sagaDiagram(s *model.Saga) []string {
	out := []string{"stateDiagram-v2", fmt.Sprintf("    [*] --> %s: %s", s.Steps[0].Name, s.Start.Message.GoIdent.GoName)}
	for i, st := range s.Steps {
		next := "[*]"
		if i+1 < len(s.Steps) {
			next = s.Steps[i+1].Name
		}
		out = append(out, fmt.Sprintf("    %s --> %s: %s", st.Name, next, eventNames(st.Success)))
	}
	compensated := false
	for i, st := range s.Steps {
		if len(st.Failure) > 0 {
			out = append(out, fmt.Sprintf("    %s --> compensated: %s%s", st.Name, eventNames(st.Failure), sends(s.Steps[:i])))
			compensated = true
		}
		var timeouts []string
		if st.Timeout > 0 {
			timeouts = append(timeouts, "timeout "+shortDuration(st.Timeout))
		}
		if s.Timeout > 0 {
			timeouts = append(timeouts, "saga timeout "+shortDuration(s.Timeout))
		}
		if len(timeouts) > 0 {
			out = append(out, fmt.Sprintf("    %s --> compensated: %s%s", st.Name, strings.Join(timeouts, ", "), sends(s.Steps[:i+1])))
			compensated = true
		}
	}
	if compensated {
		out = append(out, "    compensated --> [*]")
	}
	return out
}

// shortDuration writes d without zero trailing units: 1h, not 1h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if t, ok := strings.CutSuffix(s, "m0s"); ok {
		s = t + "m"
	}
	if t, ok := strings.CutSuffix(s, "h0m"); ok {
		s = t + "h"
	}
	return s
}

func eventNames(evs []*model.SagaEvent) string {
	names := make([]string, len(evs))
	for i, ev := range evs {
		names[i] = ev.Message.GoIdent.GoName
	}
	return strings.Join(names, ", ")
}

// sends lists the compensations of done steps, last step first.
func sends(done []*model.SagaStep) string {
	var cmds []string
	for i := len(done) - 1; i >= 0; i-- {
		if c := done[i].Compensation; c != nil {
			cmds = append(cmds, c.GoIdent.GoName)
		}
	}
	if len(cmds) == 0 {
		return ""
	}
	return " / " + strings.Join(cmds, ", ")
}

// genSagaSpec emits
//
//	func CheckoutSagaSpec(b CheckoutSagaBehaviour) runtime.SagaSpec[*Checkout] {
//		paymentCaptured := runtime.SagaOn[*Checkout, PaymentCaptured](_PaymentCaptured_MessageType, func(e *PaymentCaptured) string { return e.GetOrderId() }, b.OnPaymentCaptured)
//		return runtime.SagaSpec[*Checkout]{Name: ..., Start: runtime.StartOn[*Checkout, OrderPlaced](...), Steps: ...}
//	}
func genSagaSpec(g *jen.File, s *model.Saga) {
	n := s.Names
	comment(g, fmt.Sprintf("%s describes the saga to the runtime, with b's methods: its stable name, which keys its persisted instances, its steps and timeouts.", n.Spec), model.Doc{})
	sagaType := jen.Qual(runtimePkg, "SagaSpec").Types(ptr(s.GoIdent))
	body := []jen.Code{}
	vars := map[*model.SagaEvent]string{}
	for _, ev := range s.Events {
		v := "on" + ev.Message.GoIdent.GoName
		vars[ev] = v
		body = append(body, jen.Id(v).Op(":=").Qual(runtimePkg, "SagaOn").Types(ptr(s.GoIdent), jen.Qual(ev.Message.GoIdent.GoImportPath, ev.Message.GoIdent.GoName)).
			Call(jen.Id(ev.Message.Names.Info), correlate(ev), jen.Id("b").Dot(ev.Method)))
	}
	steps := make([]jen.Code, len(s.Steps))
	for i, st := range s.Steps {
		f := []jen.Code{field("Name", jen.Lit(st.Name)), field("Command", sagaCommand(s, st.Command, st.Method))}
		if st.Compensation != nil {
			f = append(f, field("Compensation", sagaCommand(s, st.Compensation, st.CompensateMethod)))
		}
		f = append(f, field("Success", sagaEvents(s, st.Success, vars)))
		if len(st.Failure) > 0 {
			f = append(f, field("Failure", sagaEvents(s, st.Failure, vars)))
		}
		if st.Timeout > 0 {
			f = append(f, field("Timeout", duration(st.Timeout)))
		}
		steps[i] = jen.Values(lines(f)...)
	}
	spec := []jen.Code{
		field("Name", jen.Lit(s.Name)),
		field("StateType", jen.Lit(s.FullName)),
		field("New", jen.Func().Params().Add(ptr(s.GoIdent)).Block(jen.Return(jen.New(jen.Qual(s.GoIdent.GoImportPath, s.GoIdent.GoName))))),
		field("Start", jen.Qual(runtimePkg, "StartOn").Types(ptr(s.GoIdent), jen.Qual(s.Start.Message.GoIdent.GoImportPath, s.Start.Message.GoIdent.GoName)).
			Call(jen.Id(s.Start.Message.Names.Info), correlate(s.Start), jen.Id("b").Dot("Start"))),
		field("Steps", jen.Index().Qual(runtimePkg, "SagaStep").Types(ptr(s.GoIdent)).Values(lines(steps)...)),
	}
	if s.Timeout > 0 {
		spec = append(spec, field("Timeout", duration(s.Timeout)))
	}
	if !s.Delivery.IsZero() {
		spec = append(spec, field("Delivery", delivery(s.Delivery)))
	}
	body = append(body, jen.Return(sagaType.Clone().Values(lines(spec)...)))
	g.Func().Id(n.Spec).Params(jen.Id("b").Id(n.Behaviour)).Add(sagaType).Block(body...)
}

// correlate renders the function reading an event's instance id:
//
//	func(event *PaymentCaptured) string { return event.GetOrderId() }
func correlate(ev *model.SagaEvent) jen.Code {
	return jen.Func().Params(jen.Id("event").Add(ptr(ev.Message.GoIdent))).String().
		Block(jen.Return(fieldString(ev.Correlation, "event")))
}

// sagaEvents renders []runtime.SagaEvent[*Checkout]{paymentCaptured}.
func sagaEvents(s *model.Saga, evs []*model.SagaEvent, vars map[*model.SagaEvent]string) jen.Code {
	return jen.Index().Qual(runtimePkg, "SagaEvent").Types(ptr(s.GoIdent)).ValuesFunc(func(v *jen.Group) {
		for _, ev := range evs {
			v.Id(vars[ev])
		}
	})
}

// sagaCommand renders the function building a step's command with the
// behaviour's method:
//
//	func(ctx context.Context, state *Checkout) (*runtime.MessageType, runtime.Outgoing, error) {
//		command, err := b.Charge(ctx, state)
//		if err == nil && command == nil {
//			err = runtime.ErrNilCommand
//		}
//		if err != nil {
//			return nil, runtime.Outgoing{}, err
//		}
//		return _ChargePayment_MessageType, runtime.Outgoing{Subject: command.GetPaymentId(), Message: command}, nil
//	}
func sagaCommand(s *model.Saga, cmd *model.Message, method string) jen.Code {
	return jen.Func().Params(jen.Id("ctx").Qual(contextPkg, "Context"), jen.Id("state").Add(ptr(s.GoIdent))).
		Params(jen.Op("*").Qual(runtimePkg, "MessageType"), jen.Qual(runtimePkg, "Outgoing"), jen.Error()).
		Block(
			jen.List(jen.Id("command"), jen.Err()).Op(":=").Id("b").Dot(method).Call(jen.Id("ctx"), jen.Id("state")),
			jen.If(jen.Err().Op("==").Nil().Op("&&").Id("command").Op("==").Nil()).Block(jen.Err().Op("=").Qual(runtimePkg, "ErrNilCommand")),
			jen.If(jen.Err().Op("!=").Nil()).Block(jen.Return(jen.Nil(), jen.Qual(runtimePkg, "Outgoing").Values(), jen.Err())),
			jen.Return(jen.Id(cmd.Names.Info), outgoing(cmd, "command"), jen.Nil()),
		)
}

// genNewSaga emits
//
//	func NewCheckoutSaga(b CheckoutSagaBehaviour, cfg runtime.SagaConfig) (*runtime.Saga[*Checkout], error) {
//		return runtime.NewSaga(CheckoutSagaSpec(b), cfg)
//	}
func genNewSaga(g *jen.File, s *model.Saga) {
	n := s.Names
	comment(g, fmt.Sprintf("%s returns the orchestrator of the saga: register it on a router (Register) to run it. cfg.Store persists its instances and carries its commands and timeouts in its outbox.", n.New), model.Doc{})
	g.Func().Id(n.New).Params(jen.Id("b").Id(n.Behaviour), jen.Id("cfg").Qual(runtimePkg, "SagaConfig")).
		Params(jen.Op("*").Qual(runtimePkg, "Saga").Types(ptr(s.GoIdent)), jen.Error()).
		Block(jen.Return(jen.Qual(runtimePkg, "NewSaga").Call(jen.Id(n.Spec).Call(jen.Id("b")), jen.Id("cfg"))))
}
