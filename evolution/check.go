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
	c := &checker{cur: index(cur), wireBroken: map[protoreflect.FullName]bool{}}
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
	c.events(prev, cur)
	slices.SortFunc(c.findings, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col),
			cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Message, b.Message))
	})
	return c.findings
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
	findings []Finding
	// wireBroken holds the current messages with a WIRE finding, a map
	// field's counting for its message, for EVENT_VERSION_BUMP.
	wireBroken map[protoreflect.FullName]bool
}

// pairMessages applies the message rules to prev and cur and notes whether
// cur gained a WIRE finding.
func (c *checker) pairMessages(prev, cur protoreflect.MessageDescriptor) {
	before := len(c.findings)
	c.message(prev, cur)
	for _, f := range c.findings[before:] {
		if r, _ := RuleByID(f.Rule); r.Category == CategoryWire {
			c.wireBroken[cur.FullName()] = true
			if parent, ok := cur.Parent().(protoreflect.MessageDescriptor); ok && cur.IsMapEntry() {
				c.wireBroken[parent.FullName()] = true
			}
		}
	}
}

// report adds a finding at d's position in the current schema.
func (c *checker) report(d protoreflect.Descriptor, rule, format string, args ...any) {
	file, line, col := position(d)
	c.findings = append(c.findings, Finding{File: file, Line: line, Col: col, Rule: rule, Message: fmt.Sprintf(format, args...), Element: d})
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
		line, col := filePosition(prev)
		c.findings = append(c.findings, Finding{File: prev.Path(), Line: line, Col: col, Rule: FileNoDelete,
			Message: fmt.Sprintf("Previously present file %q was deleted.", prev.Path()), Previous: prev})
		return
	}
	var walk func(messages protoreflect.MessageDescriptors, enums protoreflect.EnumDescriptors)
	walk = func(messages protoreflect.MessageDescriptors, enums protoreflect.EnumDescriptors) {
		for i := range enums.Len() {
			e := enums.Get(i)
			if _, ok := lookup(cur, e.FullName()).(protoreflect.EnumDescriptor); !ok {
				c.report(nearestParent(cur, e), EnumNoDelete, "Previously present enum %q was deleted from file.", e.FullName())
			}
		}
		for i := range messages.Len() {
			m := messages.Get(i)
			if m.IsMapEntry() {
				// Generated for a map field; the field's own rules cover it.
				continue
			}
			if _, ok := lookup(cur, m.FullName()).(protoreflect.MessageDescriptor); !ok {
				c.report(nearestParent(cur, m), MessageNoDelete, "Previously present message %q was deleted from file.", m.FullName())
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
