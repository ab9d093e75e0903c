package samples

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/protoc-gen-eda/eda/evolution"
	"github.com/protoc-gen-eda/eda/runtime"
)

// Result is what Check did with the samples of a folder.
type Result struct {
	// Findings are the SAMPLE_* rule violations, sorted by file.
	Findings []evolution.Finding
	// Decoded counts the samples of a current version that Check decoded,
	// with or without a finding.
	Decoded int
	// Older lists the paths of the samples of older versions, which need
	// the service's upcasters before they can be decoded: Check cannot run
	// Go code, so it leaves them to Replay in the service's tests.
	Older []string
	// Missing lists the type names of the schema's events and commands
	// with no sample of their current version, sorted: a version nobody
	// recorded is a version no check protects.
	Missing []string
}

// Check decodes the samples under dir with cur, the current schema, and
// reports what no longer decodes. A sample's type name is looked up among
// the type names and aliases of cur's events and commands:
//
//   - SAMPLE_TYPE_KNOWN: no event or command has the type name.
//   - SAMPLE_DECODES: a binary sample of the current version does not
//     decode, or leaves unknown fields: a field it holds was deleted or
//     changed wire type. A sample of a version above the current one is
//     reported under the rule of its encoding, as the schema cannot have
//     written it.
//   - SAMPLE_DECODES_JSON: a protojson sample of the current version names
//     a field or enum value the schema lost, or holds a value whose JSON
//     form changed.
//
// Samples of older versions are listed in Result.Older and not decoded;
// events and commands with no sample of their current version are listed in
// Result.Missing.
//
// A finding's File is the sample's path as dir joins it; a protojson
// finding points at the line and column of the offending value. Element is
// the current message, when the type name is known.
//
// A dir that does not follow Layout is an error.
func Check(cur *evolution.Schema, dir string) (Result, error) {
	var res Result
	if cur == nil {
		return res, errors.New("samples.Check: no current schema")
	}
	all, err := list(dir)
	if err != nil {
		return res, err
	}
	types, err := schemaTypes(cur)
	if err != nil {
		return res, err
	}
	byName := typeIndex(cur.Files)
	sampled := map[*typeInfo]bool{}
	for _, s := range all {
		t := byName[s.typeName]
		if t == nil {
			res.Findings = append(res.Findings, evolution.Finding{File: s.path, Line: 1, Col: 1, Rule: evolution.SampleTypeKnown,
				Message: fmt.Sprintf("Sample of type %q version %d: no current event or command has this type name or alias; stored events of it can no longer be decoded. Restore the type, or list %q in the aliases of the message that replaced it.", s.typeName, s.version, s.typeName)})
			continue
		}
		rule := evolution.SampleDecodes
		if s.contentType == runtime.ContentTypeJSON {
			rule = evolution.SampleDecodesJSON
		}
		switch {
		case s.version < t.version:
			res.Older = append(res.Older, s.path)
			continue
		case s.version > t.version:
			res.Findings = append(res.Findings, evolution.Finding{File: s.path, Line: 1, Col: 1, Rule: rule, Element: t.msg,
				Message: fmt.Sprintf("Sample of %s is of version %d, above its current version %d: a version went down, or the sample was recorded from a schema not yet merged.", t.subject(), s.version, t.version)})
			continue
		}
		res.Decoded++
		sampled[t] = true
		data, err := os.ReadFile(s.path)
		if err != nil {
			return res, fmt.Errorf("samples.Check: %w", err)
		}
		if p := decode(dynamicpb.NewMessage(t.msg), s.contentType, data, types); p != nil {
			res.Findings = append(res.Findings, evolution.Finding{File: s.path, Line: p.line, Col: p.col, Rule: rule, Element: t.msg,
				Message: fmt.Sprintf("Sample of %s version %d %s.", t.subject(), s.version, p.msg)})
		}
	}
	for name, t := range byName {
		if name == t.typeName && !sampled[t] {
			res.Missing = append(res.Missing, name)
		}
	}
	slices.Sort(res.Missing)
	return res, nil
}

// schemaTypes returns the types of cur's files and their imports, for Any
// values and extensions in payloads.
func schemaTypes(cur *evolution.Schema) (*dynamicpb.Types, error) {
	files := new(protoregistry.Files)
	var add func(f protoreflect.FileDescriptor) error
	add = func(f protoreflect.FileDescriptor) error {
		if _, err := files.FindFileByPath(f.Path()); err == nil {
			return nil
		}
		imports := f.Imports()
		for i := range imports.Len() {
			if err := add(imports.Get(i).FileDescriptor); err != nil {
				return err
			}
		}
		return files.RegisterFile(f)
	}
	for _, f := range cur.Files {
		if err := add(f); err != nil {
			return nil, fmt.Errorf("samples.Check: %w", err)
		}
	}
	return dynamicpb.NewTypes(files), nil
}
