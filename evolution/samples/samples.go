// Package samples keeps recorded payloads of every version of a service's
// events and commands and checks that the current schema still reads them.
//
// The wire rules of package evolution compare two schemas; a sample is the
// bytes themselves, so it also catches what a rule cannot see: a field a
// payload really holds that the schema lost, an enum value name a protojson
// payload really uses, an old version whose upcaster no longer produces a
// payload the current message accepts. Events are stored forever, so samples
// of a released version never change: new versions add new samples.
//
// Samples live in a folder the service chooses, one file per encoding:
//
//	<dir>/<type name>/v<version>/<sample name>.binpb   binary protobuf
//	<dir>/<type name>/v<version>/<sample name>.json    protojson
//
// The type name is the stable type of the event or command (the type of its
// eda.v1 options, by default its proto full name), the version its schema
// version. Both come from the message's annotations when Write records it.
//
// There are two checks, for the two places a schema change is reviewed:
//
//   - Check decodes, with a compiled schema and no Go code, every sample of
//     an event's or command's current version. It is what
//     `eda breaking --samples DIR` runs; its findings use the SAMPLE_* rules
//     of package evolution.
//   - Replay, called from a Go test of the service, runs every sample of
//     every version through the service's upcasters, as the runtime does
//     when it loads stored events, and decodes the result into the generated
//     message of the current version.
package samples

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/protoc-gen-eda/eda/runtime"
	edav1 "github.com/protoc-gen-eda/eda/schemas/eda/v1"
)

// File extensions of the two encodings.
const (
	extBinary = ".binpb"
	extJSON   = ".json"
)

// Layout is the expected layout of a samples folder, quoted in errors.
const Layout = "<dir>/<type name>/v<version>/<sample name>.binpb or .json"

// firstVersion is the version of an event or command that sets none, as
// the eda.v1 options document.
const firstVersion = 1

// sample is one recorded payload found in a samples folder.
type sample struct {
	// path is the file's path as the caller's dir joins it, with slashes.
	path     string
	typeName string
	version  uint32
	// contentType is runtime.ContentTypeProtobuf or runtime.ContentTypeJSON.
	contentType string
}

// list returns the samples under dir, sorted by path. Hidden entries (a
// leading dot, as editors and operating systems leave behind) are ignored;
// anything else that does not follow Layout is an error.
func list(dir string) ([]sample, error) {
	types, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("samples: %w", err)
	}
	var out []sample
	for _, t := range visible(types) {
		typeDir := filepath.Join(dir, t.Name())
		if !t.IsDir() {
			return nil, layoutError(typeDir, "is a file where a folder named after a type name is expected")
		}
		versions, err := os.ReadDir(typeDir)
		if err != nil {
			return nil, fmt.Errorf("samples: %w", err)
		}
		for _, v := range visible(versions) {
			versionDir := filepath.Join(typeDir, v.Name())
			version, ok := parseVersion(v.Name())
			if !v.IsDir() || !ok {
				return nil, layoutError(versionDir, "is not a folder named v<version>, such as v1")
			}
			files, err := os.ReadDir(versionDir)
			if err != nil {
				return nil, fmt.Errorf("samples: %w", err)
			}
			for _, f := range visible(files) {
				path := filepath.Join(versionDir, f.Name())
				s := sample{path: filepath.ToSlash(path), typeName: t.Name(), version: version}
				switch {
				case f.IsDir():
					return nil, layoutError(path, "is a folder where sample files are expected")
				case strings.HasSuffix(f.Name(), extBinary):
					s.contentType = runtime.ContentTypeProtobuf
				case strings.HasSuffix(f.Name(), extJSON):
					s.contentType = runtime.ContentTypeJSON
				default:
					return nil, layoutError(path, "has neither the "+extBinary+" nor the "+extJSON+" extension")
				}
				out = append(out, s)
			}
		}
	}
	slices.SortFunc(out, func(a, b sample) int { return cmp.Compare(a.path, b.path) })
	return out, nil
}

func visible(entries []os.DirEntry) []os.DirEntry {
	return slices.DeleteFunc(entries, func(e os.DirEntry) bool { return strings.HasPrefix(e.Name(), ".") })
}

// parseVersion parses "v3" as 3; versions start at 1.
func parseVersion(name string) (uint32, bool) {
	digits, ok := strings.CutPrefix(name, "v")
	if !ok || digits == "" || digits[0] == '0' || digits[0] == '+' {
		return 0, false
	}
	v, err := strconv.ParseUint(digits, 10, 32)
	return uint32(v), err == nil
}

func layoutError(path, problem string) error {
	return fmt.Errorf("samples: %s %s: a samples folder holds %s", filepath.ToSlash(path), problem, Layout)
}

// typeInfo is an event or command of the current schema, with its settings
// resolved as the generator resolves them.
type typeInfo struct {
	msg      protoreflect.MessageDescriptor
	kind     string // "event" or "command"
	typeName string
	aliases  []string
	version  uint32
}

// subject names t in messages: `event "shop.v1.OrderPlaced"`.
func (t *typeInfo) subject() string {
	return fmt.Sprintf("%s %q", t.kind, t.msg.FullName())
}

// typeOf returns m's settings if it is annotated as an event or a command.
func typeOf(m protoreflect.MessageDescriptor) (*typeInfo, bool) {
	opts := messageOptions(m)
	t := &typeInfo{msg: m}
	var typeName string
	switch {
	case opts.GetEvent() != nil:
		e := opts.GetEvent()
		t.kind, typeName, t.aliases, t.version = "event", e.GetType(), e.GetAliases(), e.GetVersion()
	case opts.GetCommand() != nil:
		c := opts.GetCommand()
		t.kind, typeName, t.aliases, t.version = "command", c.GetType(), c.GetAliases(), c.GetVersion()
	default:
		return nil, false
	}
	t.typeName = cmp.Or(typeName, string(m.FullName()))
	t.version = max(t.version, firstVersion)
	return t, true
}

// typeIndex maps the type names and aliases of the events and commands
// declared in files (not their imports) to them. Where two declare the same
// name, which the generator refuses, the first by full name wins.
func typeIndex(files []protoreflect.FileDescriptor) map[string]*typeInfo {
	var all []*typeInfo
	for _, f := range files {
		walkMessages(f.Messages(), func(m protoreflect.MessageDescriptor) {
			if t, ok := typeOf(m); ok {
				all = append(all, t)
			}
		})
	}
	slices.SortFunc(all, func(a, b *typeInfo) int { return cmp.Compare(a.msg.FullName(), b.msg.FullName()) })
	byName := map[string]*typeInfo{}
	for _, t := range all {
		for _, name := range append([]string{t.typeName}, t.aliases...) {
			if _, dup := byName[name]; !dup {
				byName[name] = t
			}
		}
	}
	return byName
}

func walkMessages(ms protoreflect.MessageDescriptors, fn func(protoreflect.MessageDescriptor)) {
	for i := range ms.Len() {
		fn(ms.Get(i))
		walkMessages(ms.Get(i).Messages(), fn)
	}
}

// messageOptions returns m's eda.v1 message options, or nil. The options of
// a schema compiled by evolution.Compile may hold the extension as unknown
// fields (the compiler links against its own copy of options.proto), so
// they are re-read with a resolver that knows edav1's types.
func messageOptions(m protoreflect.MessageDescriptor) *edav1.MessageOptions {
	opts := m.Options()
	if opts == nil || !opts.ProtoReflect().IsValid() {
		return nil
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(opts)
	if err != nil {
		return nil
	}
	out := opts.ProtoReflect().Type().New().Interface()
	if err := (proto.UnmarshalOptions{Resolver: protoregistry.GlobalTypes}).Unmarshal(b, out); err != nil {
		return nil
	}
	if !proto.HasExtension(out, edav1.E_Message) {
		return nil
	}
	v, _ := proto.GetExtension(out, edav1.E_Message).(*edav1.MessageOptions)
	return v
}
