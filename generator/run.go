package generator

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/types/pluginpb"

	"github.com/protoc-gen-eda/eda/templates"
)

// FileSuffix ends the name of every generated file.
const FileSuffix = "_eda.pb.go"

// SkeletonSuffix ends the name of a file's saga skeleton, a starting
// implementation the user copies once; it builds only with the
// templates.SkeletonBuildTag tag.
const SkeletonSuffix = "_eda_skeleton.go"

// Params holds the plugin parameters protoc-gen-eda reads itself; protogen
// handles the standard ones (paths, module, M).
type Params struct {
	flags *pflag.FlagSet
}

// NewParams returns the parameter set. Its Set method is the ParamFunc of
// protogen.Options.
func NewParams() *Params {
	fs := pflag.NewFlagSet("protoc-gen-eda", pflag.ContinueOnError)
	fs.SetOutput(nopWriter{})
	return &Params{flags: fs}
}

// Set applies one `name=value` plugin parameter.
func (p *Params) Set(name, value string) error {
	if p.flags.Lookup(name) == nil {
		known := []string{"paths", "module", "M<file>"}
		p.flags.VisitAll(func(f *pflag.Flag) { known = append(known, f.Name) })
		return fmt.Errorf("unknown parameter %q: the parameters are %s", name, strings.Join(known, ", "))
	}
	return p.flags.Set(name, value)
}

type nopWriter struct{}

func (nopWriter) Write(b []byte) (int, error) { return len(b), nil }

// Options returns the protogen options every entry point uses.
func (p *Params) Options() protogen.Options {
	return protogen.Options{ParamFunc: p.Set}
}

// Run generates a `*_eda.pb.go` file for every file to generate that has
// events or commands. It is the single code path behind the protoc plugin,
// `eda generate` and the golden tests.
func Run(plugin *protogen.Plugin) error {
	plugin.SupportedFeatures = uint64(pluginpb.CodeGeneratorResponse_FEATURE_PROTO3_OPTIONAL | pluginpb.CodeGeneratorResponse_FEATURE_SUPPORTS_EDITIONS)
	plugin.SupportedEditionsMinimum = minimumEdition
	plugin.SupportedEditionsMaximum = maximumEdition
	files, err := Build(plugin)
	if err != nil {
		return err
	}
	for _, f := range files {
		if f.Empty() {
			continue
		}
		src, err := templates.Render(f)
		if err != nil {
			return fmt.Errorf("generator bug: %w", err)
		}
		g := plugin.NewGeneratedFile(f.Filename+FileSuffix, protogen.GoImportPath(f.GoImportPath))
		if _, err := g.Write(src); err != nil {
			return err
		}
		skeleton, err := templates.RenderSkeleton(f)
		if err != nil {
			return fmt.Errorf("generator bug: %w", err)
		}
		if skeleton != nil {
			g := plugin.NewGeneratedFile(f.Filename+SkeletonSuffix, protogen.GoImportPath(f.GoImportPath))
			if _, err := g.Write(skeleton); err != nil {
				return err
			}
		}
	}
	return nil
}
