// Package evolution checks that a schema change keeps every stored event
// readable. Events are kept forever, so a change that breaks the decoding of
// old bytes (binary or protojson) breaks replay, projections rebuilt from
// scratch and consumers that are behind; unlike an RPC API there is no "all
// clients have upgraded" moment after which old data is gone.
//
// Compile builds a Schema from .proto files in process (no protoc, no buf);
// Check compares a previous and a current Schema and returns Findings, each
// naming a rule of the catalogue in rules.go. The rule IDs and their meaning
// follow buf's WIRE and WIRE_JSON breaking categories, so a team moving
// between `buf breaking` and `eda breaking` sees the same names. The EVENT
// rules add what the eda.v1 annotations make part of an event's contract:
// its type name, topic, aggregate id, partition key, meaning and version.
package evolution

import (
	"context"
	"errors"

	"github.com/bufbuild/protocompile"
	"github.com/bufbuild/protocompile/reporter"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	edav1 "github.com/protoc-gen-eda/eda/schemas/eda/v1"
)

// Schema is one version of a set of proto files, linked and with source
// info, so findings can point at a line and column.
type Schema struct {
	// Files are the files that were asked for, in that order. Their imports
	// are reachable through them but are not checked: a schema is only
	// responsible for its own files.
	Files []protoreflect.FileDescriptor
}

// edaOptionsPath is the import path of the eda options; see Compile.
const edaOptionsPath = "eda/v1/options.proto"

// Compile compiles files, named relative to one of importPaths, into a
// Schema. Compilation errors come back all at once, joined, each with its
// position. eda/v1/options.proto is served from the copy compiled into this
// binary when no import path has it, so checking an old git revision or a
// directory without the schemas/ folder still works.
func Compile(ctx context.Context, importPaths []string, files []string) (*Schema, error) {
	var diagnostics []error
	compiler := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(protocompile.CompositeResolver{
			&protocompile.SourceResolver{ImportPaths: importPaths},
			protocompile.ResolverFunc(builtinEdaOptions),
		}),
		SourceInfoMode: protocompile.SourceInfoStandard,
		Reporter: reporter.NewReporter(func(err reporter.ErrorWithPos) error {
			diagnostics = append(diagnostics, err)
			return nil
		}, nil),
	}
	results, err := compiler.Compile(ctx, files...)
	if len(diagnostics) > 0 {
		return nil, errors.Join(diagnostics...)
	}
	if err != nil {
		return nil, err
	}
	s := &Schema{}
	for _, f := range results {
		s.Files = append(s.Files, f)
	}
	return s, nil
}

// builtinEdaOptions resolves the eda options file from the descriptor
// compiled into this binary. It hands protocompile a descriptor proto rather
// than the linked descriptor, so the options link against the same
// descriptor.proto as the user's files.
func builtinEdaOptions(path string) (protocompile.SearchResult, error) {
	if path != edaOptionsPath {
		// The composite resolver reports the source resolver's error, which
		// names the import paths searched, not this one.
		return protocompile.SearchResult{}, protoregistry.NotFound
	}
	return protocompile.SearchResult{Proto: protodesc.ToFileDescriptorProto(edav1.File_eda_v1_options_proto)}, nil
}
