package evolution

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	edav1 "github.com/protoc-gen-eda/eda/schemas/eda/v1"
)

// This file holds the EVENT rules: what the eda.v1 annotations make part of
// the contract of a stored event or an in-flight command, beyond its bytes.

// firstVersion is the version of an event or command that sets none: the
// options document versions as starting at 1.
const firstVersion = 1

// typed is an event or a command of one schema, with its settings resolved
// the way the generator resolves them (generator/build.go).
type typed struct {
	msg      protoreflect.MessageDescriptor
	kind     string // "event" or "command"
	typeName string
	aliases  []string
	version  uint32
	topic    string
	// aggregateID is the field that becomes the envelope subject, or nil.
	aggregateID protoreflect.FieldDescriptor
	// partitionKey is the field marked partition_key, or nil: the key then
	// defaults to the aggregate id.
	partitionKey protoreflect.FieldDescriptor
}

// subject names t in findings: "Event \"shop.v1.OrderPlaced\"".
func (t *typed) subject() string {
	return fmt.Sprintf("%s%s %q", strings.ToUpper(t.kind[:1]), t.kind[1:], t.msg.FullName())
}

// resolvedPartitionKey is the field whose value orders delivery.
func (t *typed) resolvedPartitionKey() protoreflect.FieldDescriptor {
	return cmp.Or(t.partitionKey, t.aggregateID)
}

// messageOptions returns m's eda.v1 message options, or nil. Options of a
// compiled schema may hold the extension as unknown fields (protocompile
// links against its own copy of options.proto), so they are re-read with a
// resolver that knows edav1's types.
func messageOptions(m protoreflect.MessageDescriptor) *edav1.MessageOptions {
	opts, ok := reparse(m.Options())
	if !ok || !proto.HasExtension(opts, edav1.E_Message) {
		return nil
	}
	v, _ := proto.GetExtension(opts, edav1.E_Message).(*edav1.MessageOptions)
	return v
}

// fieldOptions returns f's eda.v1 field options, or nil; see messageOptions.
func fieldOptions(f protoreflect.FieldDescriptor) *edav1.FieldOptions {
	opts, ok := reparse(f.Options())
	if !ok || !proto.HasExtension(opts, edav1.E_Field) {
		return nil
	}
	v, _ := proto.GetExtension(opts, edav1.E_Field).(*edav1.FieldOptions)
	return v
}

// reparse round-trips an options message through the wire format so its
// extensions resolve against the global registry, where edav1 registered
// them.
func reparse(opts proto.Message) (proto.Message, bool) {
	if opts == nil || !opts.ProtoReflect().IsValid() {
		return nil, false
	}
	if m := opts.ProtoReflect(); len(m.GetUnknown()) == 0 && !hasExtension(m) {
		// No extension at all, resolved or not: most options, and fields
		// with none, need no round trip.
		return opts, true
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(opts)
	if err != nil {
		return nil, false
	}
	out := opts.ProtoReflect().Type().New().Interface()
	if err := (proto.UnmarshalOptions{Resolver: protoregistry.GlobalTypes}).Unmarshal(b, out); err != nil {
		return nil, false
	}
	return out, true
}

// hasExtension reports whether m has an extension field set: a compiler
// may have resolved it with its own (dynamic) type, which needs the round
// trip as much as an unknown field does.
func hasExtension(m protoreflect.Message) bool {
	found := false
	m.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		found = fd.IsExtension()
		return !found
	})
	return found
}

// roleField returns the first field of m whose options have role set.
func roleField(m protoreflect.MessageDescriptor, role func(*edav1.FieldOptions) bool) protoreflect.FieldDescriptor {
	fields := m.Fields()
	for i := range fields.Len() {
		if opts := fieldOptions(fields.Get(i)); opts != nil && role(opts) {
			return fields.Get(i)
		}
	}
	return nil
}

// typedIndex lists a schema's events and commands, sorted by full name.
// Aggregates are looked up in the files' imports too, as the generator
// resolves them across files.
func typedIndex(s *Schema) []*typed {
	if s == nil {
		return nil
	}
	all := map[protoreflect.FullName]protoreflect.MessageDescriptor{}
	seen := map[string]bool{}
	var addFile func(f protoreflect.FileDescriptor)
	addFile = func(f protoreflect.FileDescriptor) {
		if seen[f.Path()] {
			return
		}
		seen[f.Path()] = true
		for i := range f.Imports().Len() {
			addFile(f.Imports().Get(i).FileDescriptor)
		}
		walkMessages(f.Messages(), func(m protoreflect.MessageDescriptor) { all[m.FullName()] = m })
	}
	var own []protoreflect.MessageDescriptor
	for _, f := range s.Files {
		addFile(f)
		walkMessages(f.Messages(), func(m protoreflect.MessageDescriptor) { own = append(own, m) })
	}
	var out []*typed
	for _, m := range own {
		if t := resolveTyped(m, all); t != nil {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b *typed) int { return cmp.Compare(a.msg.FullName(), b.msg.FullName()) })
	return out
}

func walkMessages(ms protoreflect.MessageDescriptors, fn func(protoreflect.MessageDescriptor)) {
	for i := range ms.Len() {
		fn(ms.Get(i))
		walkMessages(ms.Get(i).Messages(), fn)
	}
}

// resolveTyped returns m's settings if it is an event or a command: the
// other kinds (aggregate state, projections, sagas) are rebuilt rather than
// stored forever, so the event rules leave them to the wire rules.
func resolveTyped(m protoreflect.MessageDescriptor, all map[protoreflect.FullName]protoreflect.MessageDescriptor) *typed {
	opts := messageOptions(m)
	t := &typed{msg: m}
	var typeName, topic, aggregate string
	switch {
	case opts.GetEvent() != nil:
		e := opts.GetEvent()
		t.kind, typeName, topic, aggregate, t.aliases, t.version = "event", e.GetType(), e.GetTopic(), e.GetAggregate(), e.GetAliases(), e.GetVersion()
	case opts.GetCommand() != nil:
		c := opts.GetCommand()
		t.kind, typeName, topic, aggregate, t.aliases, t.version = "command", c.GetType(), c.GetTopic(), c.GetAggregate(), c.GetAliases(), c.GetVersion()
	default:
		return nil
	}
	t.typeName = cmp.Or(typeName, string(m.FullName()))
	t.version = max(t.version, firstVersion)
	t.topic = cmp.Or(topic, t.typeName)

	var aggIDName protoreflect.Name
	if agg := resolveAggregate(m.ParentFile().Package(), aggregate, all); agg != nil {
		aggOpts := messageOptions(agg).GetAggregate()
		aggType := cmp.Or(aggOpts.GetType(), string(agg.FullName()))
		t.topic = cmp.Or(aggOpts.GetEventsTopic(), aggType+".events")
		if t.kind == "command" {
			t.topic = cmp.Or(aggOpts.GetCommandsTopic(), aggType+".commands")
		}
		if f := roleField(agg, (*edav1.FieldOptions).GetAggregateId); f != nil {
			aggIDName = f.Name()
		}
	}
	t.aggregateID = roleField(m, (*edav1.FieldOptions).GetAggregateId)
	if f := m.Fields().ByName(aggIDName); t.aggregateID == nil && f != nil && !f.IsList() && !f.IsMap() {
		t.aggregateID = f
	}
	t.partitionKey = roleField(m, (*edav1.FieldOptions).GetPartitionKey)
	return t
}

// resolveAggregate finds the aggregate ref names, as the generator does:
// relative to pkg first, then as a full name (a leading dot forces that).
// An unresolved reference is the generator's error to report; here the
// event is then treated as having no aggregate.
func resolveAggregate(pkg protoreflect.FullName, ref string, all map[protoreflect.FullName]protoreflect.MessageDescriptor) protoreflect.MessageDescriptor {
	if ref == "" {
		return nil
	}
	var candidates []protoreflect.FullName
	if full, ok := strings.CutPrefix(ref, "."); ok {
		candidates = append(candidates, protoreflect.FullName(full))
	} else {
		if pkg != "" {
			candidates = append(candidates, pkg+"."+protoreflect.FullName(ref))
		}
		candidates = append(candidates, protoreflect.FullName(ref))
	}
	for _, name := range candidates {
		if m, ok := all[name]; ok && messageOptions(m).GetAggregate() != nil {
			return m
		}
	}
	return nil
}

// events applies the EVENT rules. wireBroken holds the current messages
// with a WIRE finding, for EVENT_VERSION_BUMP.
func (c *checker) events(prev, cur *Schema) {
	curTyped := typedIndex(cur)
	for _, p := range typedIndex(prev) {
		t := pairTyped(p, curTyped)
		if t == nil {
			c.deletedTyped(p, cur)
			continue
		}
		switch {
		case t.typeName != p.typeName && !slices.Contains(t.aliases, p.typeName):
			c.report(t.msg, EventTypeStable, "%s changed type name from %q to %q: stored events and in-flight messages carry the old name; list it in aliases.",
				t.subject(), p.typeName, t.typeName)
		case t.typeName != p.typeName:
			c.reportFor(t.msg.FullName(), forward, t.msg, EventTypeStable, "%s changed type name from %q to %q: the alias lets new readers decode the old name, but readers of the previous version do not know the new one.",
				t.subject(), p.typeName, t.typeName)
		}
		if t.msg.FullName() != p.msg.FullName() {
			// A rename: the wire rules pair by full name and miss it, but
			// stored events of the old type are decoded by the new message.
			c.pairMessages(p.msg, t.msg)
		}
		c.typedPair(p, t)
	}
}

// pairTyped finds the current version of p: the event or command of the
// same kind whose type name or aliases hold p's type name; else, to report
// a changed type name, the one with p's full name or, after a package
// change, with p's name in the same file.
func pairTyped(p *typed, cur []*typed) *typed {
	sameKind := func(match func(t *typed) bool) *typed {
		i := slices.IndexFunc(cur, func(t *typed) bool { return t.kind == p.kind && match(t) })
		if i < 0 {
			return nil
		}
		return cur[i]
	}
	return cmp.Or(
		sameKind(func(t *typed) bool { return t.typeName == p.typeName || slices.Contains(t.aliases, p.typeName) }),
		sameKind(func(t *typed) bool { return t.msg.FullName() == p.msg.FullName() }),
		sameKind(func(t *typed) bool {
			return t.msg.ParentFile().Path() == p.msg.ParentFile().Path() && relativeName(t.msg) == relativeName(p.msg)
		}),
	)
}

// relativeName is m's name within its package: "Order.Placed".
func relativeName(m protoreflect.MessageDescriptor) string {
	pkg := m.ParentFile().Package()
	if pkg == "" {
		return string(m.FullName())
	}
	return strings.TrimPrefix(string(m.FullName()), string(pkg)+".")
}

// deletedTyped reports p, which has no current version. The finding points
// at the message if it is still there unannotated, else where
// MESSAGE_NO_DELETE's would: at the nearest surviving parent in the same
// file, or at the previous file when it is gone.
func (c *checker) deletedTyped(p *typed, cur *Schema) {
	msg := fmt.Sprintf("Previously present %s %q with type name %q was deleted: streams still hold it, so keep the message and retire it with an upcaster; if it was renamed, list %q in the new message's aliases.",
		p.kind, p.msg.FullName(), p.typeName, p.typeName)
	if f := c.cur.files[p.msg.ParentFile().Path()]; f != nil {
		at := nearestParent(f, p.msg)
		if m, ok := lookup(f, p.msg.FullName()).(protoreflect.MessageDescriptor); ok {
			// The message is still there, no longer annotated.
			at = m
		}
		c.reportFor(p.msg.FullName(), backward, at, EventNoDelete, "%s", msg)
		return
	}
	c.reportPrevious(p.msg.FullName(), backward, p.msg, EventNoDelete, "%s", msg)
}

// typedPair applies the rules comparing two versions of one event or
// command.
func (c *checker) typedPair(p, t *typed) {
	if !sameField(p.aggregateID, t.aggregateID) {
		c.report(at(t.aggregateID, t.msg), EventAggregateIDStable, "%s changed its aggregate id from %s to %s: stored events are filed under the old id's value.",
			t.subject(), describeRole(p.aggregateID), describeRole(t.aggregateID))
	}
	// A partition key left to default follows the aggregate id, whose
	// change is reported above.
	if (p.partitionKey != nil || t.partitionKey != nil) && !sameField(p.resolvedPartitionKey(), t.resolvedPartitionKey()) {
		c.report(at(t.resolvedPartitionKey(), t.msg), EventPartitionKeyStable, "%s changed its partition key from %s to %s: messages of one key are no longer delivered in order with those already published.",
			t.subject(), describeRole(p.resolvedPartitionKey()), describeRole(t.resolvedPartitionKey()))
	}
	if p.topic != t.topic {
		c.report(t.msg, EventTopicStable, "%s moved from topic %q to topic %q: consumers of the old topic stop receiving it and its history stays behind.",
			t.subject(), p.topic, t.topic)
	}
	if t.version > p.version {
		c.bumped[t.msg.FullName()] = true
	}
	meaning := c.meaningChanges(p, t)
	if (meaning || c.wireBroken[t.msg.FullName()]) && t.version <= p.version {
		c.report(t.msg, EventVersionBump, "%s changed incompatibly but its version went from %d to %d: bump it and register an upcaster for version %d.",
			t.subject(), p.version, t.version, p.version)
	}
}

// at returns f if set, else m: where a role finding points.
func at(f protoreflect.FieldDescriptor, m protoreflect.MessageDescriptor) protoreflect.Descriptor {
	if f != nil {
		return f
	}
	return m
}

func sameField(a, b protoreflect.FieldDescriptor) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Number() == b.Number()
}

func describeRole(f protoreflect.FieldDescriptor) string {
	if f == nil {
		return "no field"
	}
	return fmt.Sprintf("field \"%d\" with name %q", f.Number(), f.Name())
}

// meaningChanges reports the fields of t whose change the wire rules accept
// (or report for protojson only) but which make stored values read
// differently, and says whether there was one.
func (c *checker) meaningChanges(p, t *typed) bool {
	changed := false
	fields := p.msg.Fields()
	for i := range fields.Len() {
		pf := fields.Get(i)
		cf := t.msg.Fields().ByNumber(pf.Number())
		if cf == nil || pf.Kind() == cf.Kind() || !wireCompatibleType(pf, cf) ||
			wireCardinalityGroup(cardinalityOf(pf)) != wireCardinalityGroup(cardinalityOf(cf)) {
			// Unchanged, or reported by a WIRE rule.
			continue
		}
		// New readers of old values lose nothing on a widening; old readers
		// of new values do.
		newReadsOld, oldReadsNew := valuePreserving(pf.Kind(), cf.Kind()), valuePreserving(cf.Kind(), pf.Kind())
		desc := describeField(cf)
		desc = strings.ToUpper(desc[:1]) + desc[1:]
		switch {
		case newReadsOld && oldReadsNew:
			continue
		case newReadsOld:
			c.reportFor(t.msg.FullName(), forward, cf, EventMeaningChange, "%s changed type from %q to %q: readers of the previous version decode new values out of range differently.",
				desc, typeName(pf), typeName(cf))
		case oldReadsNew:
			c.reportFor(t.msg.FullName(), backward, cf, EventMeaningChange, "%s changed type from %q to %q: stored events decode, but values out of the new range to different ones; add a new field instead.",
				desc, typeName(pf), typeName(cf))
		default:
			c.report(cf, EventMeaningChange, "%s changed type from %q to %q: stored events decode, but to different values; add a new field instead.",
				desc, typeName(pf), typeName(cf))
		}
		changed = changed || !newReadsOld
	}
	return changed
}

// intRange describes the values an integer kind holds.
type intRange struct {
	signed bool
	bits   int
}

// Bit widths of the integer kinds.
const (
	bits32 = 32
	bits64 = 64
)

var intRanges = map[protoreflect.Kind]intRange{
	protoreflect.Int32Kind: {true, bits32}, protoreflect.Sint32Kind: {true, bits32}, protoreflect.Sfixed32Kind: {true, bits32},
	protoreflect.Int64Kind: {true, bits64}, protoreflect.Sint64Kind: {true, bits64}, protoreflect.Sfixed64Kind: {true, bits64},
	protoreflect.Uint32Kind: {false, bits32}, protoreflect.Fixed32Kind: {false, bits32},
	protoreflect.Uint64Kind: {false, bits64}, protoreflect.Fixed64Kind: {false, bits64},
}

// valuePreserving reports whether every value of kind from reads as the
// same value in kind to, given the two are wire-compatible: a widening
// (int32 to int64, uint32 to int64) or bool to an integer. Sign changes,
// narrowings, integer to bool and string to bytes are not.
func valuePreserving(from, to protoreflect.Kind) bool {
	if from == protoreflect.BoolKind {
		_, isInt := intRanges[to]
		return isInt
	}
	f, ok1 := intRanges[from]
	t, ok2 := intRanges[to]
	if !ok1 || !ok2 {
		return false
	}
	if f.signed {
		return t.signed && t.bits >= f.bits
	}
	return (!t.signed && t.bits >= f.bits) || (t.signed && t.bits > f.bits)
}
