package evolution

import (
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Release is a released version of the schema: what stored events and
// deployed readers were written against.
type Release struct {
	// Name identifies the release, as given to eda lock: a tag such as
	// v1.4.0.
	Name string
	// Schema is the release's files.
	Schema *Schema
}

// CheckHistory checks cur against every release, oldest first, as the
// compatibility modes say: a finding against the last release always
// counts; one against an earlier release counts when the mode of the
// message or enum it concerns is transitive (events by default). Each
// finding's message ends with the release it was found against, the latest
// one when several agree.
//
// It also applies the rules only a history can check: FIELD_NUMBER_NO_REUSE
// and ENUM_VALUE_NUMBER_NO_REUSE, a number given back to a field or value
// after releases without it.
//
// With no releases there is nothing to check against, and no findings.
func CheckHistory(releases []Release, cur *Schema) []Finding {
	if len(releases) == 0 {
		return nil
	}
	t := newTarget(cur)
	against := map[string]string{}
	var raw []rawFinding
	for i, r := range releases {
		last := i == len(releases)-1
		for _, f := range check(r.Schema, t) {
			if !last && !f.transitive {
				continue
			}
			key := f.String()
			if _, seen := against[key]; !seen {
				raw = append(raw, f)
			}
			against[key] = r.Name
		}
	}
	c := newChecker(releases[len(releases)-1].Schema, t)
	c.numberReuse(releases, t)
	for _, f := range c.kept() {
		key := f.String()
		if _, seen := against[key]; !seen {
			raw = append(raw, f)
			against[key] = ""
		}
	}
	return finish(raw, func(f rawFinding) string { return against[f.String()] })
}

// holder is what held a number in one version: a field's name and type, or
// an enum number's names.
type holder struct {
	release string
	names   []protoreflect.Name
	typ     string
}

// sameAs reports whether h and o describe the same field or value: a name
// in common and, for fields, the same type.
func (h holder) sameAs(o holder) bool {
	return h.typ == o.typ && slices.ContainsFunc(h.names, func(n protoreflect.Name) bool { return slices.Contains(o.names, n) })
}

// numberReuse reports each field and enum number of cur that, after at
// least one version without it, is held by something else than before.
func (c *checker) numberReuse(releases []Release, cur *target) {
	type key struct {
		parent protoreflect.FullName
		number int64
	}
	// history[k] is what held k in each release, nil where nothing did.
	history := map[key][]*holder{}
	for i, r := range releases {
		x := index(r.Schema)
		record := func(k key, h *holder) {
			if history[k] == nil {
				history[k] = make([]*holder, len(releases))
			}
			h.release = r.Name
			history[k][i] = h
		}
		for name, m := range x.messages {
			for j := range m.Fields().Len() {
				f := m.Fields().Get(j)
				record(key{name, int64(f.Number())}, &holder{names: []protoreflect.Name{f.Name()}, typ: typeName(f)})
			}
		}
		for name, e := range x.enums {
			for j := range e.Values().Len() {
				v := e.Values().Get(j)
				k := key{name, int64(v.Number())}
				if h := history[k]; h != nil && h[i] != nil {
					h[i].names = append(h[i].names, v.Name())
					continue
				}
				record(k, &holder{names: []protoreflect.Name{v.Name()}})
			}
		}
	}
	// reused returns the earliest holder of k that now differs from h and
	// was followed by a version without k.
	reused := func(k key, now holder) *holder {
		past := history[k]
		for i, h := range past {
			if h == nil || h.sameAs(now) {
				continue
			}
			if slices.Contains(past[i+1:], nil) {
				return h
			}
		}
		return nil
	}
	for _, name := range sortedKeys(cur.index.messages) {
		m := cur.index.messages[name]
		for j := range m.Fields().Len() {
			f := m.Fields().Get(j)
			now := holder{names: []protoreflect.Name{f.Name()}, typ: typeName(f)}
			if h := reused(key{name, int64(f.Number())}, now); h != nil {
				c.report(f, FieldNumberNoReuse, "%s reuses the number of field %q (%s) of release %s, which later releases dropped: stored events of that time decode their %q into it.",
					capitalize(describeField(f)), h.names[0], h.typ, h.release, h.names[0])
			}
		}
	}
	for _, name := range sortedKeys(cur.index.enums) {
		e := cur.index.enums[name]
		done := map[protoreflect.EnumNumber]bool{}
		for j := range e.Values().Len() {
			v := e.Values().Get(j)
			if done[v.Number()] {
				continue
			}
			done[v.Number()] = true
			now := holder{}
			for k := range e.Values().Len() {
				if w := e.Values().Get(k); w.Number() == v.Number() {
					now.names = append(now.names, w.Name())
				}
			}
			if h := reused(key{name, int64(v.Number())}, now); h != nil {
				c.report(v, EnumValueNumberNoReuse, "Enum value %q reuses the number \"%d\" of enum value %q of release %s, which later releases dropped: stored events of that time now read as %q.",
					v.Name(), v.Number(), h.names[0], h.release, v.Name())
			}
		}
	}
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
