package generator

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"time"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/protoc-gen-eda/eda/generator/model"
	edav1 "github.com/protoc-gen-eda/eda/schemas/eda/v1"
)

// Field numbers inside ProjectionOptions, SagaOptions and SagaStep, for
// error positions.
const (
	optProjName   = 1
	optProjEvents = 2

	optSagaName        = 1
	optSagaStart       = 2
	optSagaSteps       = 3
	optSagaTimeout     = 4
	optSagaDelivery    = 5
	optSagaCorrelation = 6

	optStepName         = 1
	optStepCommand      = 2
	optStepCompensation = 3
	optStepSuccess      = 4
	optStepFailure      = 5
	optStepTimeout      = 6
)

// startRole is how error messages call the start event's part in a saga.
const startRole = "the start event"

// stepNamePattern keeps step names usable as Go method names.
var stepNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_\-]*$`)

// projection builds a read model's model: the events it consumes, which must
// be aggregates' events (a projection reads the event store, which holds
// nothing else).
func (b *builder) projection(a *annotated) *model.Projection {
	opts := a.opts.GetProjection()
	path := []int32{messageOptionsPath, edaExtensionNumber, optProjection}
	p := &model.Projection{
		GoIdent:  goIdent(a.file, a.msg.GoIdent),
		FullName: string(a.msg.Desc.FullName()),
		Doc:      doc(a.msg.Comments.Leading, a.msg.Desc.Options()),
		Name:     cmp.Or(opts.GetName(), string(a.msg.Desc.FullName())),
		Names:    projectionNames(a.msg.GoIdent.GoName),
	}
	if !typeNamePattern.MatchString(p.Name) {
		b.errorf(a.msg.Desc, a.subject(), append(path, optProjName), "name %q is not a valid projection name: use letters, digits, '.', '_', '-' and '/'", p.Name)
	}
	if len(opts.GetEvents()) == 0 {
		b.errorf(a.msg.Desc, a.subject(), path, "consumes no events: list them in events, e.g. {events: [\"OrderPlaced\"]}")
	}
	seen := map[*model.Message]bool{}
	for i, ref := range opts.GetEvents() {
		ep := append(path, optProjEvents, int32(i))
		m := b.member(a, ref, "event", ep)
		switch {
		case m == nil:
		case seen[m]:
			b.errorf(a.msg.Desc, a.subject(), ep, "lists event %s twice", m.FullName)
		case m.Aggregate == nil:
			b.errorf(a.msg.Desc, a.subject(), ep, "event %s belongs to no aggregate: a projection reads the event store, which holds only aggregates' events; set the event's aggregate or subscribe to it with a handler", m.FullName)
		default:
			seen[m] = true
			p.Events = append(p.Events, m)
		}
	}
	if len(p.Events) == 0 {
		return nil
	}
	return p
}

// saga builds a saga's model. Every event it consumes must carry the
// correlation field, and appear once: as the start event or in one step.
func (b *builder) saga(a *annotated, defaults *edav1.FileOptions) *model.Saga {
	s := a.opts.GetSaga()
	path := []int32{messageOptionsPath, edaExtensionNumber, optSaga}
	subject := a.subject()
	sg := &model.Saga{
		GoIdent:  goIdent(a.file, a.msg.GoIdent),
		FullName: string(a.msg.Desc.FullName()),
		Doc:      doc(a.msg.Comments.Leading, a.msg.Desc.Options()),
		Name:     cmp.Or(s.GetName(), string(a.msg.Desc.FullName())),
		Names:    sagaNames(a.msg.GoIdent.GoName),
	}
	ok := true
	fail := func(p []int32, format string, args ...any) {
		b.errorf(a.msg.Desc, subject, p, format, args...)
		ok = false
	}
	if !topicPattern.MatchString(sg.Name) {
		fail(append(path, optSagaName), "name %q is not a valid saga name: use letters, digits, '.', '_' and '-' (it names the saga's timeout topic)", sg.Name)
	}
	sg.Timeout = b.duration(a, append(path, optSagaTimeout), "timeout", s.GetTimeout(), &ok)
	sg.Delivery = b.delivery(a, subject, append(path, optSagaDelivery), defaults.GetDelivery(), s.GetDelivery())

	// The start event, and through it the default correlation field.
	var start *annotated
	if s.GetStart() == "" {
		fail(path, "has no start event: set start to the event that begins a saga")
	} else if m := b.member(a, s.GetStart(), "event", append(path, optSagaStart)); m != nil {
		start = b.byName[protoreflect.FullName(m.FullName)]
	} else {
		ok = false
	}
	corr := s.GetCorrelation()
	if corr == "" && start != nil {
		corr = subjectFieldName(start)
		if corr == "" {
			fail(append(path, optSagaStart), "cannot tell which field correlates events to an instance: start event %s has no aggregate id field; set correlation to the field holding the instance id", start.msg.Desc.FullName())
		}
	}
	events := map[string]string{} // full name -> where it is used
	// event resolves an event of the saga, checks its correlation field and
	// that no other place of the saga uses it.
	event := func(ref string, p []int32, role string) *model.SagaEvent {
		m := b.member(a, ref, "event", p)
		if m == nil {
			ok = false
			return nil
		}
		if prev, dup := events[m.FullName]; dup {
			fail(p, "event %s is %s and %s: an event may play one part in a saga, or the saga could not tell what it means", m.FullName, prev, role)
			return nil
		}
		events[m.FullName] = role
		ev := &model.SagaEvent{Message: m, Method: sagaEventMethod(m.GoIdent.GoName)}
		if corr != "" {
			target := b.byName[protoreflect.FullName(m.FullName)]
			if f := fieldNamed(target.msg, corr); f != nil && envelopeField(f) != nil {
				ev.Correlation = envelopeField(f)
			} else {
				fail(p, "event %s has no string or integer field %q to correlate it to a saga instance: add the field, or set correlation to a field every event of the saga has", m.FullName, corr)
			}
		}
		ev.StateFields = commonFields(a.msg, b.byName[protoreflect.FullName(m.FullName)].msg)
		if role != startRole {
			// The instance id is the state's already.
			ev.StateFields = slices.DeleteFunc(ev.StateFields, func(goName string) bool {
				f := fieldNamed(a.msg, corr)
				return f != nil && f.GoName == goName
			})
		}
		return ev
	}
	if start != nil {
		sg.Start = event(s.GetStart(), append(path, optSagaStart), startRole)
		if sg.Start != nil {
			sg.Start.Method = "Start"
		}
	}

	if len(s.GetSteps()) == 0 {
		fail(append(path, optSagaSteps), "has no steps: a saga sends at least one command, e.g. steps: [{name: \"charge\" command: \"ChargePayment\" success: [\"PaymentCaptured\"]}]")
	}
	methods := map[string]string{"Start": "the start method"}
	method := func(name, what string, p []int32) {
		if prev, dup := methods[name]; dup {
			fail(p, "%s would be method %s, which is already %s: rename the step", what, name, prev)
		}
		methods[name] = what
	}
	names := map[string]bool{}
	for i, st := range s.GetSteps() {
		sp := append(path, optSagaSteps, int32(i))
		step := &model.SagaStep{Name: st.GetName(), Method: stepMethod(st.GetName()), CompensateMethod: "Compensate" + stepMethod(st.GetName())}
		switch {
		case !stepNamePattern.MatchString(step.Name):
			fail(append(sp, optStepName), "step %d needs a name of letters, digits, '_' and '-', starting with a letter (got %q)", i+1, step.Name)
		case names[step.Name]:
			fail(append(sp, optStepName), "step %d is named %q like an earlier step: step names are unique within a saga", i+1, step.Name)
		default:
			method(step.Method, fmt.Sprintf("step %q", step.Name), append(sp, optStepName))
		}
		names[step.Name] = true
		if st.GetCommand() == "" {
			fail(sp, "step %q has no command: set command to the command the step sends", step.Name)
		} else if step.Command = b.member(a, st.GetCommand(), "command", append(sp, optStepCommand)); step.Command == nil {
			ok = false
		} else {
			step.CommandFields = commonFields(b.byName[protoreflect.FullName(step.Command.FullName)].msg, a.msg)
		}
		if st.GetCompensation() != "" {
			if step.Compensation = b.member(a, st.GetCompensation(), "command", append(sp, optStepCompensation)); step.Compensation == nil {
				ok = false
			} else {
				method(step.CompensateMethod, fmt.Sprintf("the compensation of step %q", step.Name), append(sp, optStepCompensation))
				step.CompensationFields = commonFields(b.byName[protoreflect.FullName(step.Compensation.FullName)].msg, a.msg)
			}
		}
		if len(st.GetSuccess()) == 0 {
			fail(sp, "step %q has no success events: list the events that complete it, e.g. success: [\"PaymentCaptured\"]", step.Name)
		}
		for j, ref := range st.GetSuccess() {
			if ev := event(ref, append(sp, optStepSuccess, int32(j)), fmt.Sprintf("a success event of step %q", step.Name)); ev != nil {
				step.Success = append(step.Success, ev)
				sg.Events = append(sg.Events, ev)
			}
		}
		for j, ref := range st.GetFailure() {
			if ev := event(ref, append(sp, optStepFailure, int32(j)), fmt.Sprintf("a failure event of step %q", step.Name)); ev != nil {
				step.Failure = append(step.Failure, ev)
				sg.Events = append(sg.Events, ev)
			}
		}
		step.Timeout = b.duration(a, append(sp, optStepTimeout), fmt.Sprintf("step %q timeout", step.Name), st.GetTimeout(), &ok)
		sg.Steps = append(sg.Steps, step)
	}
	for _, ev := range sg.Events {
		method(ev.Method, "the method recording "+ev.Message.GoIdent.GoName, append(path, optSagaSteps))
	}
	if !ok {
		return nil
	}
	return sg
}

// duration parses a Go duration option; empty is 0.
func (b *builder) duration(a *annotated, path []int32, what, text string, ok *bool) time.Duration {
	d, err := time.ParseDuration(cmp.Or(text, "0s"))
	if err != nil || d < 0 {
		b.errorf(a.msg.Desc, a.subject(), path, "%s %q is not a Go duration such as \"5m\" or \"24h\"", what, text)
		*ok = false
		return 0
	}
	return d
}

// member resolves a projection's or saga's reference to an event or command
// generated into the same Go package: generated code uses its unexported
// runtime descriptor. It reports what is wrong and returns nil.
func (b *builder) member(a *annotated, ref, kind string, path []int32) *model.Message {
	target, ok := b.resolve(a.file, ref)
	switch {
	case !ok:
		b.errorf(a.msg.Desc, a.subject(), path, "%q is not a known message: name an annotated %s, relative to package %s or fully qualified", ref, kind, a.file.Desc.Package())
	case target.kind() != kind:
		b.errorf(a.msg.Desc, a.subject(), path, "%q names %s, not %s", ref, target.subject(), article(kind))
	case !target.file.Generate:
		b.errorf(a.msg.Desc, a.subject(), path, "%s %s is declared in %s, which is not being generated: generate it together with this %s (with buf, keep them in one directory or set strategy: all)", kind, target.msg.Desc.FullName(), target.file.Desc.Path(), a.kind())
	case target.file.GoImportPath != a.file.GoImportPath:
		b.errorf(a.msg.Desc, a.subject(), path, "%s %s is in Go package %s, this %s in %s: a %s uses the generated descriptors of its messages, so give them the same go_package", kind, target.msg.Desc.FullName(), target.file.GoImportPath, a.kind(), a.file.GoImportPath, a.kind())
	default:
		return target.m // nil if the message itself is invalid, which is reported already
	}
	return nil
}

// subjectFieldName is the proto name of the field that fills an event's
// subject: its marked aggregate id field, or its aggregate's id field.
func subjectFieldName(ev *annotated) string {
	if ev.m == nil || ev.m.Subject == nil {
		return ""
	}
	for _, f := range ev.msg.Fields {
		if envelopeField(f) != nil && "Get"+f.GoName == ev.m.Subject.Getter {
			return string(f.Desc.Name())
		}
	}
	return ""
}

func fieldNamed(m *protogen.Message, name string) *protogen.Field {
	for _, f := range m.Fields {
		if string(f.Desc.Name()) == name {
			return f
		}
	}
	return nil
}

// commonFields lists the Go names of dst's plain fields (singular, not in a
// oneof, not a message) that src has too, with the same name and type: the
// fields a generated skeleton can copy from src to dst.
func commonFields(dst, src *protogen.Message) []string {
	var out []string
	for _, f := range dst.Fields {
		s := fieldNamed(src, string(f.Desc.Name()))
		if s == nil || !plainField(f) || !plainField(s) || f.Desc.Kind() != s.Desc.Kind() {
			continue
		}
		if f.Enum != nil && f.Enum.Desc.FullName() != s.Enum.Desc.FullName() {
			continue
		}
		out = append(out, f.GoName)
	}
	return out
}

func plainField(f *protogen.Field) bool {
	return f.Desc.Cardinality() != protoreflect.Repeated && f.Oneof == nil && !f.Desc.IsMap() &&
		f.Desc.Kind() != protoreflect.MessageKind && f.Desc.Kind() != protoreflect.GroupKind
}
