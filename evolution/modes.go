package evolution

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	edav1 "github.com/protoc-gen-eda/eda/schemas/eda/v1"
)

// Mode is a compatibility mode, in Schema Registry's vocabulary: which
// readers must read which writers' data.
type Mode struct {
	// Backward: readers of the new schema read data written with earlier
	// ones (stored events are replayed by new code).
	Backward bool
	// Forward: readers of earlier schemas read data written with the new
	// one (consumers that deploy later receive new messages).
	Forward bool
	// Transitive: against every released version, not only the last.
	Transitive bool
}

// The modes of the eda.v1 Compatibility enum.
var (
	ModeNone               = Mode{}
	ModeBackward           = Mode{Backward: true}
	ModeBackwardTransitive = Mode{Backward: true, Transitive: true}
	ModeForward            = Mode{Forward: true}
	ModeForwardTransitive  = Mode{Forward: true, Transitive: true}
	ModeFull               = Mode{Backward: true, Forward: true}
	ModeFullTransitive     = Mode{Backward: true, Forward: true, Transitive: true}
)

// Default modes, by what a message is (DESIGN.md): events are stored
// forever and replayed by every later version; commands are in flight
// between a sender and a handler that deploy independently; aggregate
// state (snapshots), projections (read models) and saga state are rebuilt
// from events, so nothing is checked for them.
var (
	DefaultEventMode   = ModeBackwardTransitive
	DefaultCommandMode = ModeFull
	// DefaultPlainMode applies to messages and enums no annotated message
	// uses and whose file sets no mode: buf's WIRE rules, which report in
	// both directions, against the previous version.
	DefaultPlainMode = ModeBackward
)

// String names m as the eda.v1 Compatibility enum does, without prefix.
func (m Mode) String() string {
	s := "NONE"
	switch {
	case m.Backward && m.Forward:
		s = "FULL"
	case m.Backward:
		s = "BACKWARD"
	case m.Forward:
		s = "FORWARD"
	}
	if m.Transitive && s != "NONE" {
		s += "_TRANSITIVE"
	}
	return s
}

// union is the stricter of a and b: a message used by a command and by an
// event must satisfy both.
func (m Mode) union(o Mode) Mode {
	return Mode{Backward: m.Backward || o.Backward, Forward: m.Forward || o.Forward, Transitive: m.Transitive || o.Transitive}
}

// modeOf converts the option's enum; ok is false when it is unset.
func modeOf(c edav1.Compatibility) (Mode, bool) {
	switch c {
	case edav1.Compatibility_COMPATIBILITY_NONE:
		return ModeNone, true
	case edav1.Compatibility_COMPATIBILITY_BACKWARD:
		return ModeBackward, true
	case edav1.Compatibility_COMPATIBILITY_BACKWARD_TRANSITIVE:
		return ModeBackwardTransitive, true
	case edav1.Compatibility_COMPATIBILITY_FORWARD:
		return ModeForward, true
	case edav1.Compatibility_COMPATIBILITY_FORWARD_TRANSITIVE:
		return ModeForwardTransitive, true
	case edav1.Compatibility_COMPATIBILITY_FULL:
		return ModeFull, true
	case edav1.Compatibility_COMPATIBILITY_FULL_TRANSITIVE:
		return ModeFullTransitive, true
	}
	return Mode{}, false
}

// direction says which readers a finding breaks.
type direction uint8

const (
	// both breaks new readers of old data and old readers of new data.
	both direction = iota
	// backward breaks only new readers of old data.
	backward
	// forward breaks only old readers of new data.
	forward
)

// applies reports whether a finding in direction d counts under m.
func (d direction) applies(m Mode) bool {
	switch d {
	case backward:
		return m.Backward
	case forward:
		return m.Forward
	}
	return m.Backward || m.Forward
}

// Modes returns the mode of every message and enum declared in s's files,
// by full name, as Check applies them:
//
//   - an event or command: its own compatibility option, else its file's,
//     else DefaultEventMode or DefaultCommandMode;
//   - aggregate state, projections and sagas: their file's option, else
//     ModeNone;
//   - any other message or enum: its file's option, else the union of the
//     modes of the annotated messages that use it, directly or through
//     other messages' fields (so a value type used by an event is checked
//     like the event, one used only by a snapshot is not checked), else
//     DefaultPlainMode when nothing annotated uses it.
func Modes(s *Schema) map[protoreflect.FullName]Mode {
	modes := map[protoreflect.FullName]Mode{}
	if s == nil {
		return modes
	}
	fixed := map[protoreflect.FullName]bool{}
	used := map[protoreflect.FullName]bool{}
	var all []protoreflect.MessageDescriptor
	var enums []protoreflect.EnumDescriptor
	for _, f := range s.Files {
		fileMode, fileSet := modeOf(fileCompatOptions(f).GetCompatibility())
		var walk func(ms protoreflect.MessageDescriptors, es protoreflect.EnumDescriptors)
		walk = func(ms protoreflect.MessageDescriptors, es protoreflect.EnumDescriptors) {
			for i := range es.Len() {
				e := es.Get(i)
				enums = append(enums, e)
				if fileSet {
					modes[e.FullName()], fixed[e.FullName()] = fileMode, true
				}
			}
			for i := range ms.Len() {
				m := ms.Get(i)
				all = append(all, m)
				if mode, ok := annotatedMode(m, fileMode, fileSet); ok {
					modes[m.FullName()], fixed[m.FullName()] = mode, true
				} else if fileSet {
					modes[m.FullName()], fixed[m.FullName()] = fileMode, true
				}
				walk(m.Messages(), m.Enums())
			}
		}
		walk(f.Messages(), f.Enums())
	}
	// Which plain declarations some message uses: the others are roots.
	for _, m := range all {
		fields := m.Fields()
		for i := range fields.Len() {
			if t := fieldType(fields.Get(i)); t != "" && t != m.FullName() {
				used[t] = true
			}
		}
	}
	for _, m := range all {
		if !fixed[m.FullName()] && !used[m.FullName()] {
			modes[m.FullName()], fixed[m.FullName()] = DefaultPlainMode, true
		}
	}
	for _, e := range enums {
		if !fixed[e.FullName()] && !used[e.FullName()] {
			modes[e.FullName()], fixed[e.FullName()] = DefaultPlainMode, true
		}
	}
	// Propagate along fields until nothing changes: unions only grow, so
	// cycles end.
	for changed := true; changed; {
		changed = false
		for _, m := range all {
			from, ok := modes[m.FullName()]
			if !ok {
				continue
			}
			fields := m.Fields()
			for i := range fields.Len() {
				t := fieldType(fields.Get(i))
				if t == "" || fixed[t] {
					continue
				}
				if old, seen := modes[t]; !seen || old.union(from) != old {
					modes[t] = old.union(from)
					changed = true
				}
			}
		}
	}
	return modes
}

// annotatedMode returns the mode of an annotated message, and false for a
// plain one.
func annotatedMode(m protoreflect.MessageDescriptor, fileMode Mode, fileSet bool) (Mode, bool) {
	opts := messageOptions(m)
	var own edav1.Compatibility
	var def Mode
	switch {
	case opts.GetEvent() != nil:
		own, def = opts.GetEvent().GetCompatibility(), DefaultEventMode
	case opts.GetCommand() != nil:
		own, def = opts.GetCommand().GetCompatibility(), DefaultCommandMode
	case opts.GetAggregate() != nil, opts.GetProjection() != nil, opts.GetSaga() != nil:
		def = ModeNone
	default:
		return Mode{}, false
	}
	if mode, ok := modeOf(own); ok {
		return mode, true
	}
	if fileSet {
		return fileMode, true
	}
	return def, true
}

// fieldType is the full name of the message or enum a field holds, or "".
func fieldType(f protoreflect.FieldDescriptor) protoreflect.FullName {
	switch {
	case f.Message() != nil:
		return f.Message().FullName()
	case f.Enum() != nil:
		return f.Enum().FullName()
	}
	return ""
}

// fileCompatOptions returns f's eda.v1 file options, or nil; see messageOptions.
func fileCompatOptions(f protoreflect.FileDescriptor) *edav1.FileOptions {
	opts, ok := reparse(f.Options())
	if !ok || !proto.HasExtension(opts, edav1.E_File) {
		return nil
	}
	v, _ := proto.GetExtension(opts, edav1.E_File).(*edav1.FileOptions)
	return v
}

// subjectOf is the message or enum whose mode governs a finding at d: d
// itself, or its nearest enclosing message or enum; a map entry counts as
// the message holding the map.
func subjectOf(d protoreflect.Descriptor) protoreflect.FullName {
	for ; d != nil; d = d.Parent() {
		switch x := d.(type) {
		case protoreflect.MessageDescriptor:
			if x.IsMapEntry() {
				continue
			}
			return x.FullName()
		case protoreflect.EnumDescriptor:
			return x.FullName()
		case protoreflect.FileDescriptor:
			return ""
		}
	}
	return ""
}
