package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/protoc-gen-eda/eda/generator"
)

// runEda runs eda with args and returns its exit status and output.
func runEda(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestRun(t *testing.T) {
	t.Parallel()
	versionLine := "eda " + generator.Version("") + "\n"
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     string // substring; "=" prefix for the whole output
		stderr     string // substring
		noStdout   bool
		noStderror bool
	}{
		{name: "no arguments", args: nil, code: 2, stderr: "Usage:", noStdout: true},
		{name: "help", args: []string{"help"}, code: 0, stdout: "\tgenerate   generate .pb.go", noStderror: true},
		{name: "--help", args: []string{"--help"}, code: 0, stdout: "eda <command> [arguments]", noStderror: true},
		{name: "-h", args: []string{"-h"}, code: 0, stdout: "\tversion ", noStderror: true},
		{name: "help generate", args: []string{"help", "generate"}, code: 0, stdout: "Usage: eda generate [flags] [files...]", noStderror: true},
		{name: "generate --help", args: []string{"generate", "--help"}, code: 0, stdout: "-I, --proto_path dir", noStderror: true},
		{name: "generate -h", args: []string{"generate", "-h"}, code: 0, stdout: "--go_opt parameter", noStderror: true},
		{name: "help version", args: []string{"help", "version"}, code: 0, stdout: "Usage: eda version", noStderror: true},
		{name: "help unknown", args: []string{"help", "frob"}, code: 2, stderr: `unknown command "frob"`, noStdout: true},
		{name: "version", args: []string{"version"}, code: 0, stdout: "=" + versionLine, noStderror: true},
		{name: "--version", args: []string{"--version"}, code: 0, stdout: "=" + versionLine, noStderror: true},
		{name: "version with argument", args: []string{"version", "x"}, code: 2, stderr: "usage: eda version", noStdout: true},
		{name: "unknown command", args: []string{"frob"}, code: 2, stderr: "eda: unknown command \"frob\"\nRun 'eda help' for usage.\n", noStdout: true},
		{name: "unknown flag", args: []string{"--frob"}, code: 2, stderr: "unknown flag --frob", noStdout: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runEda(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit status %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			if want, ok := strings.CutPrefix(tt.stdout, "="); ok {
				if stdout != want {
					t.Errorf("stdout %q, want %q", stdout, want)
				}
			} else if !strings.Contains(stdout, tt.stdout) {
				t.Errorf("stdout does not contain %q:\n%s", tt.stdout, stdout)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr does not contain %q:\n%s", tt.stderr, stderr)
			}
			if tt.noStdout && stdout != "" {
				t.Errorf("unexpected stdout: %s", stdout)
			}
			if tt.noStderror && stderr != "" {
				t.Errorf("unexpected stderr: %s", stderr)
			}
		})
	}
}

// TestVersionIsModuleVersion checks what eda version prints does not come
// from nowhere: without -ldflags it is generator.Version's answer.
func TestVersionIsModuleVersion(t *testing.T) {
	t.Parallel()
	_, stdout, _ := runEda(t, "version")
	if got, want := strings.TrimSpace(stdout), "eda "+generator.Version(""); got != want || strings.TrimPrefix(got, "eda ") == "" {
		t.Errorf("eda version printed %q, want %q", got, want)
	}
}

// TestDocListsFlags keeps the manual (doc.go) in step with the flags.
func TestDocListsFlags(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimRight(newGenerateFlags().flags.FlagUsages(), "\n"), "\n") {
		if !bytes.Contains(doc, []byte("//\t"+strings.TrimPrefix(line, "  ")+"\n")) {
			t.Errorf("doc.go does not list the flag line %q", line)
		}
	}
	for _, c := range commands {
		if !bytes.Contains(doc, []byte("//\t"+c.name+" ")) {
			t.Errorf("doc.go does not list the command %s", c.name)
		}
	}
}
