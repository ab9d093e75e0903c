package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/protoc-gen-eda/eda/evolution"
	"github.com/protoc-gen-eda/eda/internal/edatest"
)

// Files of testdata/breaking, relative to the workspace: an event, and a
// plain message whose field the tests delete.
const (
	ordersFile   = "proto/shop/v1/orders.proto"
	customerFile = "proto/shop/v1/customer.proto"
)

// newBreakingWorkspace copies testdata/breaking to a temporary directory and
// returns it.
func newBreakingWorkspace(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/breaking")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runBreakingIn runs eda breaking with args and returns its exit status and
// output.
func runBreakingIn(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runBreaking(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

const deleteEmail = "  string email = 3;\n"

func TestBreakingAgainstDir(t *testing.T) {
	tests := []struct {
		name string
		// edit changes the current (cur) and previous (prev) workspaces.
		edit func(t *testing.T, cur, prev string)
		args []string // after --config and --against
		code int
		// stdout is the exact output, with {cur} and {prev} standing for
		// the workspaces' directories.
		stdout string
		stderr []string // substrings of stderr; none means it must be empty
	}{
		{name: "no change", edit: func(*testing.T, string, string) {}, code: 0},
		{
			name: "deleted field",
			edit: func(t *testing.T, cur, _ string) {
				edit(t, filepath.Join(cur, customerFile), deleteEmail, "")
			},
			code: 1,
			stdout: "{cur}/proto/shop/v1/customer.proto:7:1: FIELD_NO_DELETE_UNLESS_NAME_RESERVED: Previously present field \"3\" with name \"email\" on message \"shop.v1.Customer\" was deleted without reserving the name \"email\".\n" +
				"{cur}/proto/shop/v1/customer.proto:7:1: FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED: Previously present field \"3\" with name \"email\" on message \"shop.v1.Customer\" was deleted without reserving the number \"3\".\n",
		},
		{
			name: "deleted field, reserved",
			edit: func(t *testing.T, cur, _ string) {
				edit(t, filepath.Join(cur, customerFile), deleteEmail, "  reserved 3;\n  reserved \"email\";\n")
			},
			code: 0,
		},
		{
			name: "deleted file points into the previous version",
			edit: func(t *testing.T, cur, _ string) {
				if err := os.Remove(filepath.Join(cur, "proto/shop/v1/status.proto")); err != nil {
					t.Fatal(err)
				}
			},
			code:   1,
			stdout: "{prev}/proto/shop/v1/status.proto:3:1: FILE_NO_DELETE: Previously present file \"shop/v1/status.proto\" was deleted.\n",
		},
		{
			name: "files restrict the check",
			edit: func(t *testing.T, cur, _ string) {
				edit(t, filepath.Join(cur, customerFile), deleteEmail, "")
			},
			args: []string{"shop/v1/status.proto"},
			code: 0,
		},
		{
			name: "a deleted file can be named",
			edit: func(t *testing.T, cur, _ string) {
				if err := os.Remove(filepath.Join(cur, "proto/shop/v1/status.proto")); err != nil {
					t.Fatal(err)
				}
			},
			args:   []string{"proto/shop/v1/status.proto"},
			code:   1,
			stdout: "{prev}/proto/shop/v1/status.proto:3:1: FILE_NO_DELETE: Previously present file \"shop/v1/status.proto\" was deleted.\n",
		},
		{
			name:   "unknown file",
			edit:   func(*testing.T, string, string) {},
			args:   []string{"shop/v1/nope.proto"},
			code:   2,
			stderr: []string{"shop/v1/nope.proto is not a .proto file or directory of the workspace"},
		},
		{
			name: "previous does not compile",
			edit: func(t *testing.T, _, prev string) {
				edit(t, filepath.Join(prev, ordersFile), "int64 total_cents", "Money total_cents")
			},
			code:   2,
			stderr: []string{"the previous schema (--against {prev}) does not compile", "{prev}/proto/shop/v1/orders.proto:13:3: field shop.v1.OrderPlaced.total_cents: unknown type Money"},
		},
		{
			name: "current does not compile",
			edit: func(t *testing.T, cur, _ string) {
				edit(t, filepath.Join(cur, ordersFile), "int64 total_cents", "Money total_cents")
			},
			code:   2,
			stderr: []string{"the current schema does not compile", "{cur}/proto/shop/v1/orders.proto:13:3: field shop.v1.OrderPlaced.total_cents: unknown type Money"},
		},
		{
			name: "previous has no buf.yaml",
			edit: func(t *testing.T, _, prev string) {
				if err := os.Remove(filepath.Join(prev, "buf.yaml")); err != nil {
					t.Fatal(err)
				}
			},
			code:   2,
			stderr: []string{"the previous version, --against {prev}: no buf.yaml in {prev}"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cur, prev := newBreakingWorkspace(t), newBreakingWorkspace(t)
			tt.edit(t, cur, prev)
			expand := strings.NewReplacer("{cur}", cur, "{prev}", prev).Replace
			args := append([]string{"--config", cur, "--against", prev}, tt.args...)
			code, stdout, stderr := runBreakingIn(t, args...)
			if code != tt.code {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if want := expand(tt.stdout); stdout != want {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
			}
			if len(tt.stderr) == 0 && stderr != "" {
				t.Errorf("stderr: %s", stderr)
			}
			for _, want := range tt.stderr {
				if !strings.Contains(stderr, expand(want)) {
					t.Errorf("stderr:\n%s\nwant it to contain %q", stderr, expand(want))
				}
			}
		})
	}
}

func TestBreakingJSON(t *testing.T) {
	tests := []struct {
		name string
		edit func(t *testing.T, cur string)
		code int
		want []findingJSON // File relative to cur
	}{
		{name: "no change", edit: func(*testing.T, string) {}, code: 0, want: []findingJSON{}},
		{
			name: "deleted field",
			edit: func(t *testing.T, cur string) { edit(t, filepath.Join(cur, customerFile), deleteEmail, "") },
			code: 1,
			want: []findingJSON{
				{File: customerFile, Line: 7, Column: 1, Rule: evolution.FieldNoDeleteUnlessNameReserved, Category: string(evolution.CategoryWireJSON),
					Message: `Previously present field "3" with name "email" on message "shop.v1.Customer" was deleted without reserving the name "email".`},
				{File: customerFile, Line: 7, Column: 1, Rule: evolution.FieldNoDeleteUnlessNumberReserved, Category: string(evolution.CategoryWire),
					Message: `Previously present field "3" with name "email" on message "shop.v1.Customer" was deleted without reserving the number "3".`},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cur, prev := newBreakingWorkspace(t), newBreakingWorkspace(t)
			tt.edit(t, cur)
			code, stdout, stderr := runBreakingIn(t, "--config", cur, "--against", prev, "--format", "json")
			if code != tt.code {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			var got []findingJSON
			if err := json.Unmarshal([]byte(stdout), &got); err != nil {
				t.Fatalf("stdout is not a JSON array of findings: %v\n%s", err, stdout)
			}
			if got == nil {
				t.Fatalf("stdout is %q, want an array", stdout)
			}
			for i := range got {
				rel, err := filepath.Rel(cur, got[i].File)
				if err != nil {
					t.Fatal(err)
				}
				got[i].File = filepath.ToSlash(rel)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d findings %+v, want %+v", len(got), got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("finding %d:\n%+v\nwant\n%+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestBreakingUsage(t *testing.T) {
	cur := newBreakingWorkspace(t)
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{name: "no --against", args: []string{"--config", cur}, code: 2, stderr: "--against is required"},
		{name: "bad format", args: []string{"--config", cur, "--against", cur, "--format", "xml"}, code: 2, stderr: "--format xml: it is text or json"},
		{name: "unknown flag", args: []string{"--nope"}, code: 2, stderr: "unknown flag: --nope"},
		{name: "config not a directory", args: []string{"--config", filepath.Join(cur, "nope"), "--against", cur}, code: 2, stderr: "is not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runBreakingIn(t, tt.args...)
			if code != tt.code || stdout != "" || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("exit status %d, stdout %q, stderr %q; want %d, no stdout, stderr containing %q", code, stdout, stderr, tt.code, tt.stderr)
			}
		})
	}
}

// TestBreakingAgainstGitRef commits the workspace to a new git repository,
// in a subdirectory as a workspace often is, and checks against refs of it.
func TestBreakingAgainstGitRef(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		edatest.Unavailable(t, "git is not on PATH")
	}
	repo := t.TempDir()
	ws := filepath.Join(repo, "api")
	if err := os.CopyFS(ws, os.DirFS("testdata/breaking")); err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=eda", "-c", "user.email=eda@example.com", "-c", "commit.gpgsign=false"}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	git("init", "--quiet")
	git("add", ".")
	git("commit", "--quiet", "-m", "v1")

	tests := []struct {
		name    string
		against string
		deleted bool // delete the field in the working tree
		code    int
		stdout  string
		stderr  string
	}{
		{name: "HEAD, no change", against: "HEAD", code: 0},
		{
			name: "HEAD, deleted field", against: "HEAD", deleted: true, code: 1,
			stdout: ws + "/proto/shop/v1/customer.proto:7:1: FIELD_NO_DELETE_UNLESS_NAME_RESERVED: Previously present field \"3\" with name \"email\" on message \"shop.v1.Customer\" was deleted without reserving the name \"email\".\n" +
				ws + "/proto/shop/v1/customer.proto:7:1: FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED: Previously present field \"3\" with name \"email\" on message \"shop.v1.Customer\" was deleted without reserving the number \"3\".\n",
		},
		{name: "missing ref", against: "no-such-branch", code: 2, stderr: "--against no-such-branch is neither a directory nor a commit, branch or tag"},
		{name: "option-like ref", against: "--output=x", code: 2, stderr: "is neither a directory nor a commit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			customer := filepath.Join(ws, customerFile)
			original := readFile(t, customer)
			if tt.deleted {
				edit(t, customer, deleteEmail, "")
				t.Cleanup(func() { writeFile(t, customer, original) })
			}
			code, stdout, stderr := runBreakingIn(t, "--config", ws, "--against="+tt.against)
			if code != tt.code {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if stdout != tt.stdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, tt.stdout)
			}
			if !strings.Contains(stderr, tt.stderr) || (tt.stderr == "" && stderr != "") {
				t.Errorf("stderr:\n%s\nwant it to contain %q", stderr, tt.stderr)
			}
		})
	}

	// A deleted file is named as in git, ref:path, since the extracted tree
	// is temporary.
	t.Run("HEAD, deleted file", func(t *testing.T) {
		status := filepath.Join(ws, "proto/shop/v1/status.proto")
		original := readFile(t, status)
		if err := os.Remove(status); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { writeFile(t, status, original) })
		code, stdout, stderr := runBreakingIn(t, "--config", ws, "--against", "HEAD")
		want := "HEAD:api/proto/shop/v1/status.proto:3:1: FILE_NO_DELETE: Previously present file \"shop/v1/status.proto\" was deleted.\n"
		if code != 1 || stdout != want {
			t.Errorf("exit status %d, stdout:\n%s\nstderr:\n%s\nwant 1 and\n%s", code, stdout, stderr, want)
		}
	})
}

// TestBreakingIsACommand checks eda lists and runs breaking.
func TestBreakingIsACommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"help"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "\tbreaking   report schema changes") {
		t.Errorf("eda help: exit status %d, output:\n%s", code, stdout.String())
	}
	stdout.Reset()
	if code := run([]string{"breaking", "--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "--against dir") {
		t.Errorf("eda breaking --help: exit status %d, output:\n%s", code, stdout.String())
	}
}
