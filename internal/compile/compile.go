// Package compile runs the code generators in process, with no protoc: it
// compiles .proto files with protocompile into the CodeGeneratorRequest
// protoc would send, and runs protoc-gen-go and protoc-gen-eda on it. `eda
// generate` and the golden tests use it, so their output is the plugin's,
// byte for byte.
package compile

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/bufbuild/protocompile"
	"github.com/bufbuild/protocompile/linker"
	"github.com/bufbuild/protocompile/reporter"
	gengo "google.golang.org/protobuf/cmd/protoc-gen-go/internal_gengo"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"

	"github.com/protoc-gen-eda/eda/generator"
)

// Request compiles files, named relative to one of importPaths, and returns
// the request protoc would send a plugin: every file and its imports in
// dependency order, source info on the files to generate.
func Request(ctx context.Context, importPaths, files []string, parameter string) (*pluginpb.CodeGeneratorRequest, error) {
	var diagnostics []error
	compiler := protocompile.Compiler{
		Resolver:       protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: importPaths}),
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

	req := &pluginpb.CodeGeneratorRequest{FileToGenerate: files}
	if parameter != "" {
		req.Parameter = proto.String(parameter)
	}
	seen := map[string]bool{}
	var add func(f protoreflect.FileDescriptor)
	add = func(f protoreflect.FileDescriptor) {
		if seen[f.Path()] {
			return
		}
		seen[f.Path()] = true
		imports := f.Imports()
		for i := 0; i < imports.Len(); i++ {
			add(imports.Get(i).FileDescriptor)
		}
		fdp := protoFile(f)
		if !slices.Contains(files, f.Path()) {
			// protoc sends source info only for the files to generate.
			fdp.SourceCodeInfo = nil
		}
		req.ProtoFile = append(req.ProtoFile, fdp)
	}
	for _, f := range results {
		add(f)
	}
	// protocompile carries custom options as dynamic messages; a round trip
	// through the wire format turns them into the registered Go types
	// (eda.v1 options) that proto.GetExtension expects.
	b, err := proto.Marshal(req)
	if err != nil {
		return nil, err
	}
	out := &pluginpb.CodeGeneratorRequest{}
	if err := proto.Unmarshal(b, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Plugin is one code generator run in process.
type Plugin struct {
	// Name labels errors.
	Name string
	// Options are the protogen options, with the plugin's ParamFunc.
	Options protogen.Options
	// Run generates.
	Run func(*protogen.Plugin) error
}

// Eda is protoc-gen-eda.
func Eda() Plugin {
	return Plugin{Name: "protoc-gen-eda", Options: generator.NewParams().Options(), Run: generator.Run}
}

// Go is protoc-gen-go of the protobuf module this binary is built with, with
// the parameters its main accepts.
func Go() Plugin {
	var flags flag.FlagSet
	strip := flags.Bool("experimental_strip_nonfunctional_codegen", false, "")
	return Plugin{
		Name:    "protoc-gen-go",
		Options: protogen.Options{ParamFunc: flags.Set, InternalStripForEditionsDiff: strip},
		Run: func(gen *protogen.Plugin) error {
			for _, f := range gen.Files {
				if f.Generate {
					gengo.GenerateFile(gen, f)
				}
			}
			gen.SupportedFeatures = gengo.SupportedFeatures
			gen.SupportedEditionsMinimum = gengo.SupportedEditionsMinimum
			gen.SupportedEditionsMaximum = gengo.SupportedEditionsMaximum
			return nil
		},
	}
}

// Generate runs p on req, with parameter replacing the request's, and
// returns the files it produced. A generator error, such as an invalid
// annotation, comes back as the error.
func Generate(req *pluginpb.CodeGeneratorRequest, parameter string, p Plugin) ([]*pluginpb.CodeGeneratorResponse_File, error) {
	req = proto.CloneOf(req)
	req.Parameter = nil
	if parameter != "" {
		req.Parameter = proto.String(parameter)
	}
	gen, err := p.Options.New(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.Name, err)
	}
	if err := p.Run(gen); err != nil {
		return nil, err
	}
	resp := gen.Response()
	if resp.Error != nil {
		return nil, fmt.Errorf("%s: %s", p.Name, resp.GetError())
	}
	return resp.File, nil
}

// Write writes files under dir, creating folders as needed, and returns the
// paths written.
func Write(dir string, files []*pluginpb.CodeGeneratorResponse_File) ([]string, error) {
	var written []string
	for _, f := range files {
		if f.GetInsertionPoint() != "" {
			return written, fmt.Errorf("%s: insertion points are not supported", f.GetName())
		}
		if !filepath.IsLocal(filepath.FromSlash(f.GetName())) {
			return written, fmt.Errorf("%s: output escapes %s", f.GetName(), dir)
		}
		path := filepath.Join(dir, filepath.FromSlash(f.GetName()))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return written, err
		}
		if err := os.WriteFile(path, []byte(f.GetContent()), 0o644); err != nil {
			return written, err
		}
		written = append(written, path)
	}
	return written, nil
}

// protoFile returns f as a descriptor proto: as compiled, for a file
// protocompile compiled from source, else converted from its descriptor.
func protoFile(f protoreflect.FileDescriptor) *descriptorpb.FileDescriptorProto {
	if r, ok := f.(linker.Result); ok {
		return proto.CloneOf(r.FileDescriptorProto())
	}
	return protodesc.ToFileDescriptorProto(f)
}
