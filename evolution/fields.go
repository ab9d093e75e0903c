package evolution

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// message applies the message and field rules to a pair of messages with
// the same full name.
func (c *checker) message(prev, cur protoreflect.MessageDescriptor) {
	prevFields := prev.Fields()
	for i := range prevFields.Len() {
		pf := prevFields.Get(i)
		cf := cur.Fields().ByNumber(pf.Number())
		if cf == nil {
			c.deletedField(pf, cur)
			continue
		}
		c.field(pf, cf)
	}
	c.requiredFields(prev, cur)
	c.reserved(cur, ReservedMessageNoDelete, "message",
		fieldRanges(prev.ReservedRanges()), fieldRanges(cur.ReservedRanges()),
		prev.ReservedNames(), cur.ReservedNames())
}

// deletedField reports a field of prev missing from cur unless its number
// (WIRE) and name (WIRE_JSON) are reserved.
func (c *checker) deletedField(prev protoreflect.FieldDescriptor, cur protoreflect.MessageDescriptor) {
	if !cur.ReservedRanges().Has(prev.Number()) {
		c.report(cur, FieldNoDeleteUnlessNumberReserved, "Previously present %s was deleted without reserving the number \"%d\".",
			describeField(prev), prev.Number())
	}
	if !cur.ReservedNames().Has(prev.Name()) {
		c.report(cur, FieldNoDeleteUnlessNameReserved, "Previously present %s was deleted without reserving the name %q.",
			describeField(prev), prev.Name())
	}
}

// describeField names a field the way buf does.
func describeField(f protoreflect.FieldDescriptor) string {
	return fmt.Sprintf("field \"%d\" with name %q on message %q", f.Number(), f.Name(), f.ContainingMessage().FullName())
}

// field applies the field rules to a pair with the same number.
func (c *checker) field(prev, cur protoreflect.FieldDescriptor) {
	desc := describeField(cur)
	desc = strings.ToUpper(desc[:1]) + desc[1:]
	// As buf does, the WIRE_JSON rules report every change the WIRE ones
	// do, so either category alone catches it.
	wireOK := wireCompatibleType(prev, cur)
	if !wireOK {
		c.report(cur, FieldWireCompatibleType, "%s changed type from %q to %q.", desc, typeName(prev), typeName(cur))
	}
	if !wireOK || kindGroup(wireJSONGroups, prev.Kind()) != kindGroup(wireJSONGroups, cur.Kind()) {
		c.report(cur, FieldWireJSONCompatibleType, "%s changed type from %q to %q, which protojson encodes differently.",
			desc, typeName(prev), typeName(cur))
	}
	// Map entries are generated; their key and value are always singular.
	if !(prev.ContainingMessage().IsMapEntry() && cur.ContainingMessage().IsMapEntry()) {
		pc, cc := cardinalityOf(prev), cardinalityOf(cur)
		wireOK := wireCardinalityGroup(pc) == wireCardinalityGroup(cc)
		if !wireOK {
			c.report(cur, FieldWireCompatibleCardinality, "%s changed cardinality from %q to %q.", desc, pc, cc)
		}
		if !wireOK || (pc != cc && (pc == cardinalityMap || cc == cardinalityMap)) {
			c.report(cur, FieldWireJSONCompatibleCardinality, "%s changed cardinality from %q to %q, which protojson encodes differently.", desc, pc, cc)
		}
	}
	po, co := realOneof(prev), realOneof(cur)
	switch {
	case po == nil && co != nil:
		c.report(cur, FieldSameOneof, "%s moved into oneof %q.", desc, co.Name())
	case po != nil && co == nil:
		c.report(cur, FieldSameOneof, "%s moved out of oneof %q.", desc, po.Name())
	case po != nil && co != nil && po.Name() != co.Name():
		c.report(cur, FieldSameOneof, "%s moved from oneof %q to oneof %q.", desc, po.Name(), co.Name())
	}
	if prev.JSONName() != cur.JSONName() {
		c.report(cur, FieldSameJSONName, "%s changed JSON name from %q to %q.", desc, prev.JSONName(), cur.JSONName())
	}
	if prev.Name() != cur.Name() && !cur.ContainingMessage().IsMapEntry() {
		c.report(cur, FieldSameName, "Field \"%d\" on message %q changed name from %q to %q.",
			cur.Number(), cur.ContainingMessage().FullName(), prev.Name(), cur.Name())
	}
	if hasExplicitDefault(prev) || hasExplicitDefault(cur) {
		if pd, cd := defaultText(prev), defaultText(cur); pd != cd {
			c.report(cur, FieldSameDefault, "%s changed default value from %s to %s.", desc, pd, cd)
		}
	}
}

// hasExplicitDefault reports whether f declares [default = ...]: only
// fields with explicit presence can, and only their default is stored
// nowhere but in the schema.
func hasExplicitDefault(f protoreflect.FieldDescriptor) bool {
	return f.HasDefault() && !f.IsList() && !f.IsMap()
}

// defaultText renders f's default for a finding: the declared one, or the
// type's zero value when there is none.
func defaultText(f protoreflect.FieldDescriptor) string {
	if !f.HasDefault() {
		return "none"
	}
	switch f.Kind() {
	case protoreflect.EnumKind:
		return string(f.DefaultEnumValue().Name())
	case protoreflect.StringKind:
		return fmt.Sprintf("%q", f.Default().String())
	case protoreflect.BytesKind:
		return fmt.Sprintf("%q", f.Default().Bytes())
	}
	return fmt.Sprint(f.Default().Interface())
}

// requiredFields applies MESSAGE_SAME_REQUIRED_FIELDS.
func (c *checker) requiredFields(prev, cur protoreflect.MessageDescriptor) {
	required := func(m protoreflect.MessageDescriptor, n protoreflect.FieldNumber) bool {
		f := m.Fields().ByNumber(n)
		return f != nil && f.Cardinality() == protoreflect.Required
	}
	for i := range prev.Fields().Len() {
		if f := prev.Fields().Get(i); f.Cardinality() == protoreflect.Required && !required(cur, f.Number()) {
			c.report(cur, MessageSameRequiredFields, "Message %q had required field \"%d\" deleted: readers of the previous version reject payloads without it.",
				cur.FullName(), f.Number())
		}
	}
	for i := range cur.Fields().Len() {
		if f := cur.Fields().Get(i); f.Cardinality() == protoreflect.Required && !required(prev, f.Number()) {
			c.report(f, MessageSameRequiredFields, "Message %q had required field \"%d\" added: stored events written without it are rejected.",
				cur.FullName(), f.Number())
		}
	}
}

// realOneof returns f's oneof, ignoring proto3 optional's synthetic one: it
// has no decoding effect.
func realOneof(f protoreflect.FieldDescriptor) protoreflect.OneofDescriptor {
	if o := f.ContainingOneof(); o != nil && !o.IsSynthetic() {
		return o
	}
	return nil
}

// wireGroups and wireJSONGroups map each kind to its compatibility group:
// kinds in one group decode each other's values. The numbers only need to
// differ between groups. Kinds are taken from the descriptor, which resolves
// editions' delimited encoding to GroupKind.
var (
	wireGroups = [][]protoreflect.Kind{
		{protoreflect.Int32Kind, protoreflect.Uint32Kind, protoreflect.Int64Kind, protoreflect.Uint64Kind, protoreflect.BoolKind},
		{protoreflect.Sint32Kind, protoreflect.Sint64Kind},
		{protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind},
		{protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind},
		// string and bytes share a group; wireCompatibleType rejects bytes
		// to string, as buf does.
		{protoreflect.StringKind, protoreflect.BytesKind},
		{protoreflect.FloatKind},
		{protoreflect.DoubleKind},
		{protoreflect.GroupKind},
		{protoreflect.MessageKind},
		{protoreflect.EnumKind},
	}
	// wireJSONGroups is the intersection of wire and JSON compatibility:
	// protojson writes 64-bit integers as strings, bools as true/false and
	// bytes as base64.
	wireJSONGroups = [][]protoreflect.Kind{
		{protoreflect.Int32Kind, protoreflect.Uint32Kind},
		{protoreflect.Int64Kind, protoreflect.Uint64Kind},
		{protoreflect.BoolKind},
		{protoreflect.Sint32Kind},
		{protoreflect.Sint64Kind},
		{protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind},
		{protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind},
		{protoreflect.StringKind},
		{protoreflect.BytesKind},
		{protoreflect.FloatKind},
		{protoreflect.DoubleKind},
		{protoreflect.GroupKind},
		{protoreflect.MessageKind},
		{protoreflect.EnumKind},
	}
)

// kindGroup returns the index of k's group in groups.
func kindGroup(groups [][]protoreflect.Kind, k protoreflect.Kind) int {
	return slices.IndexFunc(groups, func(g []protoreflect.Kind) bool { return slices.Contains(g, k) })
}

// wireCompatibleType reports whether cur decodes the bytes prev wrote.
func wireCompatibleType(prev, cur protoreflect.FieldDescriptor) bool {
	pk, ck := prev.Kind(), cur.Kind()
	if kindGroup(wireGroups, pk) != kindGroup(wireGroups, ck) {
		return false
	}
	switch {
	case pk == protoreflect.BytesKind && ck == protoreflect.StringKind:
		// Old bytes need not be UTF-8; a string field rejects them.
		return false
	case pk == protoreflect.MessageKind || pk == protoreflect.GroupKind:
		return prev.Message().FullName() == cur.Message().FullName()
	case pk == protoreflect.EnumKind:
		return enumCompatible(prev.Enum(), cur.Enum())
	}
	return true
}

// enumCompatible reports whether an enum field may switch from prev to cur:
// the same enum, or one with the same short name holding every old value,
// as buf allows.
func enumCompatible(prev, cur protoreflect.EnumDescriptor) bool {
	if prev.FullName() == cur.FullName() {
		return true
	}
	if prev.Name() != cur.Name() {
		return false
	}
	for i := range prev.Values().Len() {
		v := prev.Values().Get(i)
		if w := cur.Values().ByNumber(v.Number()); w == nil || w.Name() != v.Name() {
			return false
		}
	}
	return true
}

// typeName returns the type as written in a proto file.
func typeName(f protoreflect.FieldDescriptor) string {
	switch f.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return string(f.Message().FullName())
	case protoreflect.EnumKind:
		return string(f.Enum().FullName())
	}
	return f.Kind().String()
}

// cardinality is buf's notion of a field's cardinality.
type cardinality string

const (
	cardinalitySingular cardinality = "singular"
	cardinalityRequired cardinality = "required"
	cardinalityRepeated cardinality = "repeated"
	cardinalityMap      cardinality = "map"
)

func cardinalityOf(f protoreflect.FieldDescriptor) cardinality {
	switch {
	case f.IsMap():
		return cardinalityMap
	case f.IsList():
		return cardinalityRepeated
	case f.Cardinality() == protoreflect.Required:
		return cardinalityRequired
	}
	return cardinalitySingular
}

// wireCardinalityGroup folds map into repeated: a map is a repeated entry
// message on the wire.
func wireCardinalityGroup(c cardinality) cardinality {
	if c == cardinalityMap {
		return cardinalityRepeated
	}
	return c
}
