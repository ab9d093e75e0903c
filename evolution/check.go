package evolution

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Finding is one rule violation.
type Finding struct {
	// File is the path of the file, relative to its import path.
	File string
	// Line and Col are 1-based; see Check for which element they point at.
	Line, Col int
	// Rule is the rule's ID, one of Rules.
	Rule string
	// Message describes the change.
	Message string
	// Element is the declaration of the current schema the finding points
	// at, or nil when it points into the previous schema (a deleted file).
	Element protoreflect.Descriptor
	// Previous is the deleted declaration of the previous schema when
	// Element is nil, else nil.
	Previous protoreflect.Descriptor
}

// String formats f as `file:line:col: RULE_ID: message`, the form editors
// and CI annotations parse.
func (f Finding) String() string {
	return fmt.Sprintf("%s:%d:%d: %s: %s", f.File, f.Line, f.Col, f.Rule, f.Message)
}

// Check compares cur against prev and returns every violation of Rules,
// sorted by file, position, rule and message.
//
// A finding points into the current schema: at the changed element, or, for
// a deleted one, at its nearest surviving parent (the message, enum or the
// file's package statement). When the whole file is gone, it points at the
// previous file, at the deleted element's old position.
//
// Messages and enums are paired by full name across all files, as buf does,
// so moving one between files is not a wire change; the file-level rules
// (MESSAGE_NO_DELETE, ENUM_NO_DELETE, FILE_NO_DELETE) pair by file path.
// The EVENT rules pair events and commands by type name and aliases (see
// EVENT_TYPE_STABLE) and also check a renamed event's fields against its
// old message, since stored events of the old type decode into the new one.
func Check(prev, cur *Schema) []Finding {
	return finish(check(prev, newTarget(cur)), nil)
}

// target is the current schema with what every comparison needs of it,
// computed once for a history of releases.
type target struct {
	schema *Schema
	index  *schemaIndex
	modes  map[protoreflect.FullName]Mode
}

func newTarget(cur *Schema) *target {
	return &target{schema: cur, index: index(cur), modes: Modes(cur)}
}

// newChecker returns a checker of cur against prev.
func newChecker(prev *Schema, cur *target) *checker {
	return &checker{cur: cur.index, wireBroken: map[protoreflect.FullName]bool{}, bumped: map[protoreflect.FullName]bool{},
		curModes: cur.modes, prevModes: Modes(prev)}
}

// check compares cur against prev and returns every finding that the modes
// of the messages they concern let through, unsorted.
func check(prev *Schema, cur *target) []rawFinding {
	c := newChecker(prev, cur)
	p := index(prev)
	for _, name := range sortedKeys(p.messages) {
		if m, ok := c.cur.messages[name]; ok {
			c.pairMessages(p.messages[name], m)
		}
	}
	for _, name := range sortedKeys(p.enums) {
		if e, ok := c.cur.enums[name]; ok {
			c.enum(p.enums[name], e)
		}
	}
	for _, path := range sortedKeys(p.files) {
		c.file(p.files[path], c.cur.files[path])
	}
	c.events(prev, cur.schema)
	return c.kept()
}

// kept returns the findings the modes of their subjects let through.
func (c *checker) kept() []rawFinding {
	kept := c.findings[:0]
	for _, f := range c.findings {
		mode := c.modeOf(f.subject)
		if f.fileMode != nil {
			mode = *f.fileMode
		}
		if !f.dir.applies(mode) || c.acceptedByBump(f) {
			continue
		}
		f.transitive = mode.Transitive
		kept = append(kept, f)
	}
	return kept
}

// modeOf returns the mode of the message or enum called name: as the
// current schema declares it, else as the previous one did (it was
// deleted), else DefaultPlainMode.
func (c *checker) modeOf(name protoreflect.FullName) Mode {
	if m, ok := c.curModes[name]; ok {
		return m
	}
	if m, ok := c.prevModes[name]; ok {
		return m
	}
	return DefaultPlainMode
}

// fileMode is the union of the modes of the messages and enums a deleted
// file declared at its top level; DefaultPlainMode for a file without any.
func (c *checker) fileMode(f protoreflect.FileDescriptor) Mode {
	if f.Messages().Len()+f.Enums().Len() == 0 {
		return DefaultPlainMode
	}
	var m Mode
	for i := range f.Messages().Len() {
		m = m.union(c.modeOf(f.Messages().Get(i).FullName()))
	}
	for i := range f.Enums().Len() {
		m = m.union(c.modeOf(f.Enums().Get(i).FullName()))
	}
	return m
}

// acceptedByBump reports whether f is a change to an event's or command's
// own fields that its version bump accepts: the upcaster registered for the
// old version turns stored payloads into the new shape (samples.Replay
// checks that it exists). Type name, topic and role changes are never
// accepted this way.
func (c *checker) acceptedByBump(f rawFinding) bool {
	if !c.bumped[f.subject] {
		return false
	}
	return slices.Contains(acceptedRules, f.Rule)
}

// acceptedRules are the changes to a message's own fields that an upcaster
// can undo. Deleting a field without reserving it is not among them: the
// number stays in stored events forever, whatever the version.
var acceptedRules = []string{
	FieldWireCompatibleType, FieldWireJSONCompatibleType,
	FieldWireCompatibleCardinality, FieldWireJSONCompatibleCardinality,
	FieldSameOneof, FieldSameJSONName, FieldSameName, FieldSameDefault,
	MessageSameRequiredFields, EventMeaningChange,
}

// finish sorts findings and removes duplicates, keeping the first of each.
// release, if set, names the previous version a finding was found against.
func finish(raw []rawFinding, release func(rawFinding) string) []Finding {
	out := make([]Finding, 0, len(raw))
	for _, f := range raw {
		if release != nil {
			if name := release(f); name != "" {
				f.Message += fmt.Sprintf(" (against release %s)", name)
			}
		}
		out = append(out, f.Finding)
	}
	slices.SortStableFunc(out, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col),
			cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Message, b.Message))
	})
	return slices.CompactFunc(out, func(a, b Finding) bool { return a.String() == b.String() })
}

// rawFinding is a finding before modes are applied.
type rawFinding struct {
	Finding
	// subject is the message or enum whose mode decides whether the
	// finding counts.
	subject protoreflect.FullName
	dir     direction
	// fileMode, if set, replaces the subject's mode: for a deleted file,
	// the union of its declarations' modes.
	fileMode *Mode
	// transitive is the subject's mode's: whether the finding also counts
	// against releases before the last.
	transitive bool
}

// schemaIndex holds a schema's declarations by name.
type schemaIndex struct {
	files    map[string]protoreflect.FileDescriptor
	messages map[protoreflect.FullName]protoreflect.MessageDescriptor
	enums    map[protoreflect.FullName]protoreflect.EnumDescriptor
}

func index(s *Schema) *schemaIndex {
	x := &schemaIndex{
		files:    map[string]protoreflect.FileDescriptor{},
		messages: map[protoreflect.FullName]protoreflect.MessageDescriptor{},
		enums:    map[protoreflect.FullName]protoreflect.EnumDescriptor{},
	}
	var walk func(messages protoreflect.MessageDescriptors, enums protoreflect.EnumDescriptors)
	walk = func(messages protoreflect.MessageDescriptors, enums protoreflect.EnumDescriptors) {
		for i := range enums.Len() {
			x.enums[enums.Get(i).FullName()] = enums.Get(i)
		}
		for i := range messages.Len() {
			m := messages.Get(i)
			x.messages[m.FullName()] = m
			walk(m.Messages(), m.Enums())
		}
	}
	if s == nil {
		return x
	}
	for _, f := range s.Files {
		x.files[f.Path()] = f
		walk(f.Messages(), f.Enums())
	}
	return x
}

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// checker collects findings against the current schema.
type checker struct {
	cur      *schemaIndex
	findings []rawFinding
	// curModes and prevModes are the schemas' Modes.
	curModes, prevModes map[protoreflect.FullName]Mode
	// bumped holds the events and commands whose version increased.
	bumped map[protoreflect.FullName]bool
	// wireBroken holds the current messages with a WIRE finding, a map
	// field's counting for its message, for EVENT_VERSION_BUMP.
	wireBroken map[protoreflect.FullName]bool
}

// pairMessages applies the message rules to prev and cur and notes whether
// cur gained a WIRE finding that a version bump with an upcaster handles.
func (c *checker) pairMessages(prev, cur protoreflect.MessageDescriptor) {
	before := len(c.findings)
	c.message(prev, cur)
	for _, f := range c.findings[before:] {
		if r, _ := RuleByID(f.Rule); r.Category == CategoryWire && slices.Contains(acceptedRules, f.Rule) {
			c.wireBroken[cur.FullName()] = true
			if parent, ok := cur.Parent().(protoreflect.MessageDescriptor); ok && cur.IsMapEntry() {
				c.wireBroken[parent.FullName()] = true
			}
		}
	}
}

// report adds a finding at d's position in the current schema, in both
// directions, governed by the mode of d's message or enum.
func (c *checker) report(d protoreflect.Descriptor, rule, format string, args ...any) {
	c.reportFor(subjectOf(d), both, d, rule, format, args...)
}

// reportFor adds a finding at d's position in the current schema, in
// direction dir, governed by the mode of subject.
func (c *checker) reportFor(subject protoreflect.FullName, dir direction, d protoreflect.Descriptor, rule, format string, args ...any) {
	file, line, col := position(d)
	c.findings = append(c.findings, rawFinding{
		Finding: Finding{File: file, Line: line, Col: col, Rule: rule, Message: fmt.Sprintf(format, args...), Element: d},
		subject: subject, dir: dir,
	})
}

// reportPrevious adds a finding at d's position in the previous schema:
// d is gone from the current one.
func (c *checker) reportPrevious(subject protoreflect.FullName, dir direction, d protoreflect.Descriptor, rule, format string, args ...any) {
	file, line, col := position(d)
	if fd, ok := d.(protoreflect.FileDescriptor); ok {
		line, col = filePosition(fd)
	}
	c.findings = append(c.findings, rawFinding{
		Finding: Finding{File: file, Line: line, Col: col, Rule: rule, Message: fmt.Sprintf(format, args...), Previous: d},
		subject: subject, dir: dir,
	})
}

// position returns where d is declared, or, for a declaration with no
// source of its own (a map entry's key and value), where its nearest
// declared parent is: the map field.
func position(d protoreflect.Descriptor) (string, int, int) {
	file := d.ParentFile()
	for ; d != nil; d = d.Parent() {
		if fd, ok := d.(protoreflect.FileDescriptor); ok {
			line, col := filePosition(fd)
			return file.Path(), line, col
		}
		if loc := file.SourceLocations().ByDescriptor(mapField(d)); len(loc.Path) > 0 {
			return file.Path(), loc.StartLine + 1, loc.StartColumn + 1
		}
	}
	return file.Path(), 1, 1
}

// mapField returns the map field a generated map entry message stands for,
// since only the field is written in the source; else d.
func mapField(d protoreflect.Descriptor) protoreflect.Descriptor {
	entry, ok := d.(protoreflect.MessageDescriptor)
	if !ok || !entry.IsMapEntry() {
		return d
	}
	if parent, ok := entry.Parent().(protoreflect.MessageDescriptor); ok {
		fields := parent.Fields()
		for i := range fields.Len() {
			if f := fields.Get(i); f.IsMap() && f.Message().FullName() == entry.FullName() {
				return f
			}
		}
	}
	return d
}

// Field numbers of FileDescriptorProto, to find a file's own position.
const (
	filePackageField = 2
	fileSyntaxField  = 12
)

// filePosition returns the position of f's package statement, else of its
// syntax statement, else the first column: the place a reader looks for
// "this file".
func filePosition(f protoreflect.FileDescriptor) (int, int) {
	for _, field := range []int32{filePackageField, fileSyntaxField} {
		if loc := f.SourceLocations().ByPath(protoreflect.SourcePath{field}); len(loc.Path) > 0 {
			return loc.StartLine + 1, loc.StartColumn + 1
		}
	}
	return 1, 1
}

// file applies the file-level rules; cur is nil when the file is gone.
func (c *checker) file(prev, cur protoreflect.FileDescriptor) {
	if cur == nil {
		c.reportPrevious("", both, prev, FileNoDelete, "Previously present file %q was deleted.", prev.Path())
		mode := c.fileMode(prev)
		c.findings[len(c.findings)-1].fileMode = &mode
		return
	}
	if prev.Package() != cur.Package() {
		c.reportFor("", both, cur, FileSamePackage, "File package changed from %q to %q.", prev.Package(), cur.Package())
		mode := c.fileMode(prev)
		c.findings[len(c.findings)-1].fileMode = &mode
	}
	// As buf's FILE rules do, a file's declarations are paired by their
	// name within the package: FILE_SAME_PACKAGE reports the move once.
	inPackage := func(name protoreflect.FullName) protoreflect.FullName {
		if prev.Package() == cur.Package() {
			return name
		}
		rel := strings.TrimPrefix(string(name), string(prev.Package())+".")
		if cur.Package() == "" {
			return protoreflect.FullName(rel)
		}
		return cur.Package() + "." + protoreflect.FullName(rel)
	}
	var walk func(messages protoreflect.MessageDescriptors, enums protoreflect.EnumDescriptors)
	walk = func(messages protoreflect.MessageDescriptors, enums protoreflect.EnumDescriptors) {
		for i := range enums.Len() {
			e := enums.Get(i)
			if _, ok := lookup(cur, inPackage(e.FullName())).(protoreflect.EnumDescriptor); !ok {
				c.reportFor(e.FullName(), both, nearestParent(cur, e), EnumNoDelete, "Previously present enum %q was deleted from file.", e.FullName())
			}
		}
		for i := range messages.Len() {
			m := messages.Get(i)
			if m.IsMapEntry() {
				// Generated for a map field; the field's own rules cover it.
				continue
			}
			if _, ok := lookup(cur, inPackage(m.FullName())).(protoreflect.MessageDescriptor); !ok {
				c.reportFor(m.FullName(), both, nearestParent(cur, m), MessageNoDelete, "Previously present message %q was deleted from file.", m.FullName())
				continue
			}
			walk(m.Messages(), m.Enums())
		}
	}
	walk(prev.Messages(), prev.Enums())
}

// lookup finds the message or enum called name declared in f, or nil.
func lookup(f protoreflect.FileDescriptor, name protoreflect.FullName) protoreflect.Descriptor {
	rel := strings.TrimPrefix(string(name), string(f.Package())+".")
	if f.Package() == "" {
		rel = string(name)
	}
	parts := strings.Split(rel, ".")
	messages, enums := f.Messages(), f.Enums()
	var found protoreflect.Descriptor
	for i, part := range parts {
		last := i == len(parts)-1
		if last {
			if e := enums.ByName(protoreflect.Name(part)); e != nil {
				return e
			}
		}
		m := messages.ByName(protoreflect.Name(part))
		if m == nil {
			return nil
		}
		found = m
		messages, enums = m.Messages(), m.Enums()
	}
	return found
}

// nearestParent returns the closest enclosing message of the deleted d that
// still exists in cur, else cur itself.
func nearestParent(cur protoreflect.FileDescriptor, d protoreflect.Descriptor) protoreflect.Descriptor {
	for p := d.Parent(); p != nil; p = p.Parent() {
		if _, ok := p.(protoreflect.FileDescriptor); ok {
			break
		}
		if found := lookup(cur, p.FullName()); found != nil {
			return found
		}
	}
	return cur
}
