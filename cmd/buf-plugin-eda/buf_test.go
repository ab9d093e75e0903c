package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/protoc-gen-eda/eda/internal/edatest"
)

// bufPath finds buf: on PATH, as on CI, or where .ci/run builds it.
func bufPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("buf"); err == nil {
		return p
	}
	p, err := filepath.Abs("../../.cache/bin/buf")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		edatest.Unavailable(t, "buf is not on PATH nor in .cache/bin (go build -modfile=tools/go.mod -o .cache/bin/buf github.com/bufbuild/buf/cmd/buf)")
	}
	return p
}

// buildPlugin builds this command into a temporary directory.
func buildPlugin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "buf-plugin-eda")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// newBufWorkspace writes a buf workspace under dir: the proto files of
// testdata/version in module proto, eda's options in module schemas, and a
// buf.yaml running the plugin at plugin.
func newBufWorkspace(t *testing.T, dir, version, plugin string) {
	t.Helper()
	if err := os.CopyFS(filepath.Join(dir, "proto"), os.DirFS(filepath.Join("testdata", version))); err != nil {
		t.Fatal(err)
	}
	options, err := os.ReadFile(filepath.Join(schemasDir, "eda/v1/options.proto"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "schemas/eda/v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "schemas/eda/v1/options.proto"), options, 0o644); err != nil {
		t.Fatal(err)
	}
	config := `version: v2
modules:
  - path: proto
  - path: schemas
plugins:
  - plugin: ` + plugin + `
lint:
  use: [EDA_LINT]
breaking:
  use: [EVENT_TYPE_STABLE, EVENT_NO_DELETE, EVENT_TOPIC_STABLE, EVENT_VERSION_BUMP]
`
	if err := os.WriteFile(filepath.Join(dir, "buf.yaml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runBuf runs buf in dir with --error-format json and returns its exit
// status and findings, one "path:line:col: RULE" each.
func runBuf(t *testing.T, buf, dir string, args ...string) (int, []string) {
	t.Helper()
	cmd := exec.Command(buf, append(args, "--error-format", "json")...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BUF_CACHE_DIR="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("buf %s: %v", strings.Join(args, " "), err)
	}
	var findings []string
	dec := json.NewDecoder(&stdout)
	for dec.More() {
		var f struct {
			Path        string `json:"path"`
			StartLine   int    `json:"start_line"`
			StartColumn int    `json:"start_column"`
			Type        string `json:"type"`
		}
		if err := dec.Decode(&f); err != nil {
			t.Fatalf("buf %s: output is not JSON lines: %v\n%s", strings.Join(args, " "), err, stdout.String())
		}
		findings = append(findings, f.Path+":"+strconv.Itoa(f.StartLine)+":"+strconv.Itoa(f.StartColumn)+": "+f.Type)
	}
	t.Logf("buf %s: stderr:\n%s", strings.Join(args, " "), stderr.String())
	return cmd.ProcessState.ExitCode(), findings
}

// TestBuf runs the plugin in the real buf lint and buf breaking.
func TestBuf(t *testing.T) {
	buf := bufPath(t)
	plugin := buildPlugin(t)
	root := t.TempDir()
	cur, prev := filepath.Join(root, "cur"), filepath.Join(root, "prev")
	newBufWorkspace(t, cur, "cur", plugin)
	newBufWorkspace(t, prev, "prev", plugin)

	t.Run("lint", func(t *testing.T) {
		code, got := runBuf(t, buf, cur, "lint")
		// buf's compiler places an option at its name, after "option ";
		// eda lint's, at the keyword (10:3).
		want := []string{
			"proto/shop/v1/orders.proto:10:10: EVENT_HAS_OWNER",
			"proto/shop/v1/orders.proto:23:9: EVENT_NAME_PAST_TENSE",
		}
		if code != 100 || !slices.Equal(got, want) {
			t.Errorf("buf lint: exit status %d, findings:\n%s\nwant 100 and:\n%s", code, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
	t.Run("breaking", func(t *testing.T) {
		code, got := runBuf(t, buf, cur, "breaking", "--against", prev)
		want := []string{
			// The file is gone: buf names no file, as for its own
			// FILE_NO_DELETE.
			":1:1: EVENT_NO_DELETE",
			"proto/shop/v1/orders.proto:9:1: EVENT_TOPIC_STABLE",
			"proto/shop/v1/orders.proto:9:1: EVENT_TYPE_STABLE",
		}
		if code != 100 || !slices.Equal(got, want) {
			t.Errorf("buf breaking: exit status %d, findings:\n%s\nwant 100 and:\n%s", code, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}
