package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/protoc-gen-eda/eda/evolution"
)

// badFile is added to the lint workspace by the tests: an event named
// wrongly and without an owner, findings at 7:9 and 8:3.
const (
	badFile = "proto/shop/v1/bad.proto"
	badBody = `syntax = "proto3";

package shop.v1;

import "eda/v1/options.proto";

message OrderPlace {
  option (eda.v1.message).event = {type: "shop.OrderPlace"};
}
`
	badName  = `{ws}/proto/shop/v1/bad.proto:7:9: EVENT_NAME_PAST_TENSE: Event "shop.v1.OrderPlace" is not named in the past tense: its last word "Place" is not a past form; name it after what happened (OrderPlaced, PaymentDeclined).` + "\n"
	badOwner = `{ws}/proto/shop/v1/bad.proto:8:3: EVENT_HAS_OWNER: Event "shop.v1.OrderPlace" has no owner: set its aggregate, its owner (option (eda.v1.message).event = {owner: "team-name"}) or the file's (option (eda.v1.file).owner = "team-name").` + "\n"
)

// newLintWorkspace copies testdata/lint to a temporary directory and
// returns it.
func newLintWorkspace(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/lint")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func runLintIn(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = runLint(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestLintCommand(t *testing.T) {
	addBad := func(t *testing.T, ws string) { writeFile(t, filepath.Join(ws, badFile), badBody) }
	tests := []struct {
		name string
		edit func(t *testing.T, ws string)
		args []string // after --config
		code int
		// stdout is the exact output, with {ws} for the workspace.
		stdout string
		stderr []string // substrings of stderr; none means it must be empty
	}{
		{name: "clean: ignore, ignore_only and an ignore comment at work", code: 0},
		{name: "findings", edit: addBad, code: 1, stdout: badName + badOwner},
		{name: "--disable", edit: addBad, args: []string{"--disable", "EVENT_HAS_OWNER"}, code: 1, stdout: badName},
		{
			name: "--disable, repeated and comma-separated",
			edit: addBad,
			args: []string{"--disable", "EVENT_HAS_OWNER", "--disable=EVENT_NAME_PAST_TENSE,EVENT_TYPE_EXPLICIT"},
			code: 0,
		},
		{
			name: "buf.yaml lint.except names an eda rule",
			edit: func(t *testing.T, ws string) {
				addBad(t, ws)
				edit(t, filepath.Join(ws, "buf.yaml"), "    - PACKAGE_VERSION_SUFFIX\n", "    - PACKAGE_VERSION_SUFFIX\n    - EVENT_NAME_PAST_TENSE\n")
			},
			code:   1,
			stdout: badOwner,
		},
		{
			name: "buf.yaml ignore_only for the file",
			edit: func(t *testing.T, ws string) {
				addBad(t, ws)
				edit(t, filepath.Join(ws, "buf.yaml"), "  ignore_only:\n", "  ignore_only:\n    EVENT_HAS_OWNER:\n      - proto/shop/v1/bad.proto\n")
			},
			code:   1,
			stdout: badName,
		},
		{
			name: "a module's lint section replaces the top level",
			edit: func(t *testing.T, ws string) {
				addBad(t, ws)
				edit(t, filepath.Join(ws, "buf.yaml"), "  - path: proto\n", "  - path: proto\n    lint:\n      except: [EVENT_HAS_OWNER]\n")
			},
			code: 1,
			// The top level's ignore and ignore_only no longer apply.
			stdout: badName + `{ws}/proto/shop/v1/drafts/draft.proto:8:9: EVENT_NAME_PAST_TENSE: Event "shop.v1.drafts.Draft" is not named in the past tense: its last word "Draft" is not a past form; name it after what happened (OrderPlaced, PaymentDeclined).` + "\n" +
				`{ws}/proto/shop/v1/drafts/draft.proto:9:3: EVENT_TYPE_UNVERSIONED: Event "shop.v1.drafts.Draft" has type "shop.v1.Draft", which names package version "v1": the payload's version is the envelope's; drop "v1" from the type before the first release.` + "\n" +
				`{ws}/proto/shop/v1/legacy.proto:12:3: EVENT_TYPE_EXPLICIT: Event "shop.v1.AuditLogged" has no explicit type, so its type name is "shop.v1.AuditLogged", package version included: set a type without it, like {type: "shop.AuditLogged"}, before the first release.` + "\n",
		},
		{
			name: "disallow_comment_ignores",
			edit: func(t *testing.T, ws string) {
				edit(t, filepath.Join(ws, "buf.yaml"), "lint:\n", "lint:\n  disallow_comment_ignores: true\n")
			},
			code:   1,
			stdout: `{ws}/proto/shop/v1/legacy.proto:18:9: EVENT_NAME_PAST_TENSE: Event "shop.v1.AuditTrail" is not named in the past tense: its last word "Trail" is not a past form; name it after what happened (OrderPlaced, PaymentDeclined).` + "\n",
		},
		{
			name: "an ignore comment",
			edit: func(t *testing.T, ws string) {
				writeFile(t, filepath.Join(ws, badFile), strings.Replace(badBody, "message OrderPlace", "// eda:lint:ignore EVENT_NAME_PAST_TENSE EVENT_HAS_OWNER\nmessage OrderPlace", 1))
			},
			code: 0,
		},
		{name: "files restrict the check", edit: addBad, args: []string{"shop/v1/orders.proto", "proto/shop/v1/legacy.proto"}, code: 0},
		{name: "a file named", edit: addBad, args: []string{"shop/v1/bad.proto"}, code: 1, stdout: badName + badOwner},
		{
			name:   "unknown file",
			args:   []string{"shop/v1/nope.proto"},
			code:   2,
			stderr: []string{"shop/v1/nope.proto is not a .proto file or directory of the workspace"},
		},
		{
			name:   "unknown rule",
			args:   []string{"--disable", "FIELD_LOWER_SNAKE_CASE"},
			code:   2,
			stderr: []string{"--disable FIELD_LOWER_SNAKE_CASE: no such rule; the rules are EVENT_NAME_PAST_TENSE, ", "Run 'eda lint --help'"},
		},
		{name: "bad format", args: []string{"--format", "yaml"}, code: 2, stderr: []string{"--format yaml: it is text or json"}},
		{
			name: "does not compile",
			edit: func(t *testing.T, ws string) {
				writeFile(t, filepath.Join(ws, badFile), strings.Replace(badBody, "};\n", "};\n  Money total = 1;\n", 1))
			},
			code:   2,
			stderr: []string{"the schema does not compile", "{ws}/proto/shop/v1/bad.proto:9:3: field shop.v1.OrderPlace.total: unknown type Money"},
		},
		{
			name: "no buf.yaml",
			edit: func(t *testing.T, ws string) {
				if err := os.Remove(filepath.Join(ws, "buf.yaml")); err != nil {
					t.Fatal(err)
				}
			},
			code:   2,
			stderr: []string{"no buf.yaml in {ws}"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ws := newLintWorkspace(t)
			if tt.edit != nil {
				tt.edit(t, ws)
			}
			code, stdout, stderr := runLintIn(append([]string{"--config", ws}, tt.args...)...)
			want := strings.ReplaceAll(tt.stdout, "{ws}", ws)
			if code != tt.code || stdout != want {
				t.Errorf("exit status %d, stdout:\n%s\nstderr:\n%s\nwant %d and stdout:\n%s", code, stdout, stderr, tt.code, want)
			}
			if len(tt.stderr) == 0 && stderr != "" {
				t.Errorf("stderr:\n%s", stderr)
			}
			for _, s := range tt.stderr {
				if s = strings.ReplaceAll(s, "{ws}", ws); !strings.Contains(stderr, s) {
					t.Errorf("stderr does not contain %q:\n%s", s, stderr)
				}
			}
		})
	}
}

func TestLintJSON(t *testing.T) {
	t.Parallel()
	ws := newLintWorkspace(t)
	code, stdout, stderr := runLintIn("--config", ws, "--format", "json")
	if code != 0 || strings.TrimSpace(stdout) != "[]" {
		t.Errorf("clean: exit status %d, stdout %q, stderr %q; want 0 and []", code, stdout, stderr)
	}

	writeFile(t, filepath.Join(ws, badFile), badBody)
	code, stdout, stderr = runLintIn("--config", ws, "--format", "json")
	var got []findingJSON
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("exit status %d, stdout is not JSON: %v\n%s\nstderr:\n%s", code, err, stdout, stderr)
	}
	want := []findingJSON{
		{File: filepath.Join(ws, badFile), Line: 7, Column: 9, Rule: evolution.EventNamePastTense, Category: "LINT"},
		{File: filepath.Join(ws, badFile), Line: 8, Column: 3, Rule: evolution.EventHasOwner, Category: "LINT"},
	}
	if code != 1 || len(got) != len(want) {
		t.Fatalf("exit status %d, findings %+v; want 1 and %d findings", code, got, len(want))
	}
	for i := range want {
		if got[i].Message == "" {
			t.Errorf("finding %d has no message", i)
		}
		want[i].Message = got[i].Message
		if got[i] != want[i] {
			t.Errorf("finding %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestLintRepository lints this repository's own workspace: the examples
// (and the annotation schemas; buf.yaml's lint.ignore skips the golden
// cases, which break conventions on purpose).
func TestLintRepository(t *testing.T) {
	t.Parallel()
	// The examples' events set no explicit type (EVENT_TYPE_EXPLICIT); drop
	// the --disable once they do.
	code, stdout, stderr := runLintIn("--config", "../..", "--disable", evolution.EventTypeExplicit)
	if code != 0 {
		t.Errorf("eda lint on the repository: exit status %d, findings:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// TestLintIsACommand checks eda lists and runs lint.
func TestLintIsACommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"help"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "\tlint       check the conventions") {
		t.Errorf("eda help: exit status %d, output:\n%s", code, stdout.String())
	}
	stdout.Reset()
	if code := run([]string{"lint", "--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "--disable rule") || !strings.Contains(stdout.String(), "  EVENT_HAS_OWNER\n") {
		t.Errorf("eda lint --help: exit status %d, output:\n%s", code, stdout.String())
	}
}
