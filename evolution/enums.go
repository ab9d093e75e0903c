package evolution

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// enum applies the enum rules to a pair of enums with the same full name.
func (c *checker) enum(prev, cur protoreflect.EnumDescriptor) {
	// Aliases share a number; deletion is about the number, so report
	// once per number with every old name.
	names := map[protoreflect.EnumNumber][]string{}
	var numbers []protoreflect.EnumNumber
	for i := range prev.Values().Len() {
		v := prev.Values().Get(i)
		if cur.Values().ByNumber(v.Number()) != nil {
			continue
		}
		if _, ok := names[v.Number()]; !ok {
			numbers = append(numbers, v.Number())
		}
		names[v.Number()] = append(names[v.Number()], string(v.Name()))
	}
	for _, n := range numbers {
		if !cur.ReservedRanges().Has(n) {
			c.report(cur, EnumValueNoDeleteUnlessNumberReserved, "Previously present enum value \"%d\" on enum %q was deleted without reserving the number \"%d\".",
				n, cur.FullName(), n)
		}
		var unreserved []string
		for _, name := range names[n] {
			if !cur.ReservedNames().Has(protoreflect.Name(name)) {
				unreserved = append(unreserved, fmt.Sprintf("%q", name))
			}
		}
		if len(unreserved) > 0 {
			slices.Sort(unreserved)
			c.report(cur, EnumValueNoDeleteUnlessNameReserved, "Previously present enum value \"%d\" on enum %q was deleted without reserving the name %s.",
				n, cur.FullName(), strings.Join(unreserved, ", "))
		}
	}
	c.enumValueNames(prev, cur)
	c.reserved(cur, ReservedEnumNoDelete, "enum",
		enumRanges(prev.ReservedRanges()), enumRanges(cur.ReservedRanges()),
		prev.ReservedNames(), cur.ReservedNames())
}

// numberRange is an inclusive range of field or enum numbers. int64 holds
// both kinds without overflow at the top of the range.
type numberRange struct{ start, end int64 }

func fieldRanges(rs protoreflect.FieldRanges) []numberRange {
	out := make([]numberRange, rs.Len())
	for i := range out {
		r := rs.Get(i) // [start, end)
		out[i] = numberRange{int64(r[0]), int64(r[1]) - 1}
	}
	return out
}

func enumRanges(rs protoreflect.EnumRanges) []numberRange {
	out := make([]numberRange, rs.Len())
	for i := range out {
		r := rs.Get(i) // [start, end]
		out[i] = numberRange{int64(r[0]), int64(r[1])}
	}
	return out
}

// covered reports whether every number of r is in one of rs.
func covered(r numberRange, rs []numberRange) bool {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b numberRange) int { return cmp.Compare(a.start, b.start) })
	next := r.start
	for _, x := range rs {
		if x.start > next {
			break
		}
		if x.end >= next {
			next = x.end + 1
		}
		if next > r.end {
			return true
		}
	}
	return next > r.end
}

// reserved reports reserved ranges and names of the previous declaration
// that cur no longer reserves. A range merely split or widened is kept.
func (c *checker) reserved(cur protoreflect.Descriptor, rule, kind string, prevRanges, curRanges []numberRange, prevNames, curNames protoreflect.Names) {
	for _, r := range prevRanges {
		if covered(r, curRanges) {
			continue
		}
		text := fmt.Sprintf("%d", r.start)
		if r.end != r.start {
			text = fmt.Sprintf("%d to %d", r.start, r.end)
		}
		c.report(cur, rule, "Previously present reserved range \"%s\" on %s %q is missing.", text, kind, cur.FullName())
	}
	for i := range prevNames.Len() {
		if name := prevNames.Get(i); !curNames.Has(name) {
			c.report(cur, rule, "Previously present reserved name %q on %s %q is missing.", name, kind, cur.FullName())
		}
	}
}

// enumValueNames applies ENUM_VALUE_SAME_NAME: a number still present must
// keep every old name (aliases may add names): protojson parses any of
// them, so stored events may hold each.
func (c *checker) enumValueNames(prev, cur protoreflect.EnumDescriptor) {
	namesOf := func(e protoreflect.EnumDescriptor, n protoreflect.EnumNumber) []protoreflect.Name {
		var out []protoreflect.Name
		for i := range e.Values().Len() {
			if v := e.Values().Get(i); v.Number() == n {
				out = append(out, v.Name())
			}
		}
		return out
	}
	done := map[protoreflect.EnumNumber]bool{}
	for i := range prev.Values().Len() {
		n := prev.Values().Get(i).Number()
		cv := cur.Values().ByNumber(n)
		if cv == nil || done[n] {
			continue
		}
		done[n] = true
		old, now := namesOf(prev, n), namesOf(cur, n)
		if !slices.ContainsFunc(old, func(name protoreflect.Name) bool { return !slices.Contains(now, name) }) {
			continue
		}
		c.report(cv, EnumValueSameName, "Enum value \"%d\" on enum %q changed name from %s to %s.", n, cur.FullName(), quoteNames(old), quoteNames(now))
	}
}

func quoteNames(names []protoreflect.Name) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
