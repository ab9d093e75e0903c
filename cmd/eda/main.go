package main

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// A command is one subcommand of eda. Each lives in its own file.
type command struct {
	name    string
	summary string // one line, for the command list
	// run runs the command with the arguments that follow its name and
	// returns the exit status: 0 success, 1 failure, 2 bad usage.
	run func(args []string, stdout, stderr io.Writer) int
	// help prints the command's full usage.
	help func(w io.Writer)
}

// commands are eda's subcommands, in the order `eda help` lists them.
var commands = []*command{
	generateCommand,
	breakingCommand,
	lockCommand,
	dlqCommand,
	lintCommand,
	versionCommand,
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is eda with the given arguments (without the program name); it returns
// the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch name := args[0]; name {
	case "help", "-h", "-help", "--help":
		return help(args[1:], stdout, stderr)
	case "--version", "-version":
		return versionCommand.run(args[1:], stdout, stderr)
	default:
		if c := lookup(name); c != nil {
			return c.run(args[1:], stdout, stderr)
		}
		if strings.HasPrefix(name, "-") {
			fmt.Fprintf(stderr, "eda: unknown flag %s: flags go after the command, as in eda generate -v\nRun 'eda help' for usage.\n", name)
		} else {
			fmt.Fprintf(stderr, "eda: unknown command %q\nRun 'eda help' for usage.\n", name)
		}
		return 2
	}
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// help is `eda help [command]`.
func help(args []string, stdout, stderr io.Writer) int {
	switch len(args) {
	case 0:
		usage(stdout)
		return 0
	case 1:
		if c := lookup(args[0]); c != nil {
			c.help(stdout)
			return 0
		}
		fmt.Fprintf(stderr, "eda help: unknown command %q\nRun 'eda help' for usage.\n", args[0])
		return 2
	default:
		fmt.Fprintln(stderr, "usage: eda help [command]")
		return 2
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `eda generates typed Go publishers, handlers and command buses from Protobuf
schemas annotated with eda.v1 options, with nothing but Go installed.

Usage:

	eda <command> [arguments]

Commands:

`)
	for _, c := range commands {
		fmt.Fprintf(w, "\t%-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\t%-10s %s\n", "help", "print the usage of eda or of a command")
	fmt.Fprint(w, `
Run 'eda help <command>' or 'eda <command> --help' for a command's flags.
`)
}
