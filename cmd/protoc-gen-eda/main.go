// Command protoc-gen-eda is a protoc and buf plugin that turns Protobuf
// events and commands annotated with eda.v1 options into typed Go
// publishers, handlers and command buses on the protoc-gen-eda runtime.
//
// Install it with
//
//	go install github.com/protoc-gen-eda/eda/cmd/protoc-gen-eda@latest
//
// and run it beside protoc-gen-go, which generates the message types. With
// buf, in buf.gen.yaml:
//
//	version: v2
//	plugins:
//	  - local: protoc-gen-go
//	    out: gen
//	    opt: paths=source_relative
//	  - local: protoc-gen-eda
//	    out: gen
//	    opt: paths=source_relative
//
// With protoc:
//
//	protoc -I . --go_out=gen --go_opt=paths=source_relative \
//	  --eda_out=gen --eda_opt=paths=source_relative shop/v1/orders.proto
//
// Each x.proto with events or commands gets an x_eda.pb.go in the same Go
// package as x.pb.go. Files with no annotations generate nothing.
//
// Parameters are protogen's standard ones: paths=import|source_relative,
// module=PREFIX and M<file>=<import path>. Any other parameter is an error.
//
// Flags: --version prints the version; --help prints this summary.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/protoc-gen-eda/eda/generator"
)

// version is set at build time with -ldflags "-X main.version=...", else read
// from the module's build information.
var version = ""

func main() {
	flags := pflag.NewFlagSet("protoc-gen-eda", pflag.ContinueOnError)
	showVersion := flags.Bool("version", false, "print the version and exit")
	if err := flags.Parse(os.Args[1:]); err != nil {
		if err == pflag.ErrHelp {
			fmt.Fprintln(os.Stderr, "protoc-gen-eda is a protoc plugin: run it through protoc (--eda_out) or buf generate.")
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if *showVersion {
		fmt.Println("protoc-gen-eda", generator.Version(version))
		return
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "protoc-gen-eda: unexpected argument %q: it reads a CodeGeneratorRequest on standard input\n", flags.Arg(0))
		os.Exit(2)
	}
	generator.NewParams().Options().Run(generator.Run)
}
