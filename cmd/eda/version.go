package main

import (
	"fmt"
	"io"

	"github.com/protoc-gen-eda/eda/generator"
)

// version is set at build time with -ldflags "-X main.version=...", else read
// from the module's build information by generator.Version.
var version = ""

var versionCommand = &command{
	name:    "version",
	summary: "print eda's version",
	run: func(args []string, stdout, stderr io.Writer) int {
		if len(args) > 0 {
			fmt.Fprintln(stderr, "usage: eda version")
			return 2
		}
		fmt.Fprintln(stdout, "eda", generator.Version(version))
		return 0
	},
	help: func(w io.Writer) {
		fmt.Fprint(w, `Usage: eda version

Prints "eda <version>": the version set at build time, else the module
version Go recorded, else "devel". eda --version does the same.
`)
	},
}
