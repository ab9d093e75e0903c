package generator

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Error is a problem in the input, at a position in a proto file.
type Error struct {
	File      string
	Line, Col int // 1-based; 0 when unknown
	// Subject names the element, like "event OrderPlaced".
	Subject string
	Msg     string
}

func (e *Error) Error() string {
	pos := e.File
	if e.Line > 0 {
		pos = fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Col)
	}
	if e.Subject == "" {
		return pos + ": " + e.Msg
	}
	return pos + ": " + e.Subject + ": " + e.Msg
}

// Errors is every problem found in one run, sorted by position. The
// generator reports all of them at once so a user fixes a schema in one pass.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (es Errors) sorted() Errors {
	slices.SortStableFunc(es, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	return slices.CompactFunc(es, func(a, b *Error) bool { return *a == *b })
}

// Source option paths: the field numbers of `options` in the descriptor
// protos, used to point errors at the option rather than at the message.
const (
	messageOptionsPath = 7 // DescriptorProto.options
	fieldOptionsPath   = 8 // FieldDescriptorProto.options
	fileOptionsPath    = 8 // FileDescriptorProto.options
	edaExtensionNumber = 51000
)

// position returns the 1-based line and column of the most specific source
// location found for d followed by suffix, trying shorter suffixes down to d
// itself.
func position(d protoreflect.Descriptor, suffix ...int32) (file string, line, col int) {
	fd := d.ParentFile()
	file = fd.Path()
	locs := fd.SourceLocations()
	base := locs.ByDescriptor(d).Path
	if _, isFile := d.(protoreflect.FileDescriptor); isFile {
		base = protoreflect.SourcePath{}
	}
	for n := len(suffix); n >= 0; n-- {
		path := append(slices.Clone(base), suffix[:n]...)
		if len(path) == 0 {
			continue
		}
		if loc := locs.ByPath(path); loc.StartLine != 0 || loc.StartColumn != 0 || loc.EndLine != 0 {
			return file, loc.StartLine + 1, loc.StartColumn + 1
		}
	}
	return file, 0, 0
}
