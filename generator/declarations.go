package generator

import (
	"cmp"
	"time"
)

// projection and saga check the references of declarations whose code
// generation is not implemented yet, so mistakes surface now.
func (b *builder) projection(a *annotated) {
	path := []int32{messageOptionsPath, edaExtensionNumber, optProjection, 2}
	for i, ref := range a.opts.GetProjection().GetEvents() {
		b.expect(a, ref, "event", append(path, int32(i)))
	}
}

func (b *builder) saga(a *annotated) {
	s := a.opts.GetSaga()
	path := []int32{messageOptionsPath, edaExtensionNumber, optSaga}
	if s.GetStart() == "" {
		b.errorf(a.msg.Desc, a.subject(), path, "has no start event: set start to the event that begins a saga")
	} else {
		b.expect(a, s.GetStart(), "event", append(path, 2))
	}
	if _, err := time.ParseDuration(cmp.Or(s.GetTimeout(), "0s")); err != nil {
		b.errorf(a.msg.Desc, a.subject(), append(path, 4), "timeout %q is not a Go duration such as \"30m\"", s.GetTimeout())
	}
	names := map[string]bool{}
	for i, step := range s.GetSteps() {
		sp := append(path, 3, int32(i))
		if step.GetName() == "" || names[step.GetName()] {
			b.errorf(a.msg.Desc, a.subject(), sp, "step %d needs a name unique within the saga", i+1)
		}
		names[step.GetName()] = true
		if step.GetCommand() == "" {
			b.errorf(a.msg.Desc, a.subject(), sp, "step %q has no command", step.GetName())
		} else {
			b.expect(a, step.GetCommand(), "command", append(sp, 2))
		}
		if step.GetCompensation() != "" {
			b.expect(a, step.GetCompensation(), "command", append(sp, 3))
		}
		for j, ev := range step.GetSuccess() {
			b.expect(a, ev, "event", append(sp, 4, int32(j)))
		}
		for j, ev := range step.GetFailure() {
			b.expect(a, ev, "event", append(sp, 5, int32(j)))
		}
		if _, err := time.ParseDuration(cmp.Or(step.GetTimeout(), "0s")); err != nil {
			b.errorf(a.msg.Desc, a.subject(), append(sp, 6), "step %q timeout %q is not a Go duration such as \"5m\"", step.GetName(), step.GetTimeout())
		}
	}
}

func (b *builder) expect(a *annotated, ref, kind string, path []int32) {
	target, ok := b.resolve(a.file, ref)
	switch {
	case !ok:
		b.errorf(a.msg.Desc, a.subject(), path, "%q is not a known message: name an annotated %s, relative to package %s or fully qualified", ref, kind, a.file.Desc.Package())
	case target.kind() != kind:
		b.errorf(a.msg.Desc, a.subject(), path, "%q names %s, not %s", ref, target.subject(), article(kind))
	}
}
