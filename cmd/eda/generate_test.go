package main

import (
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// newWorkspace copies testdata/workspace to a temporary directory, adds the
// schemas module with the repository's eda/v1/options.proto, and returns the
// directory.
func newWorkspace(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/workspace")); err != nil {
		t.Fatal(err)
	}
	options, err := os.ReadFile(filepath.Join("..", "..", "schemas", "eda", "v1", "options.proto"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "schemas", "eda", "v1", "options.proto"), string(options))
	return dir
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// edit replaces old, which must be there, by new in the file at path.
func edit(t *testing.T, path, old, new string) {
	t.Helper()
	content := readFile(t, path)
	if !strings.Contains(content, old) {
		t.Fatalf("%s does not contain %q", path, old)
	}
	writeFile(t, path, strings.Replace(content, old, new, 1))
}

// listFiles returns the files under dir, relative to it, slash-separated and
// sorted; none if dir does not exist.
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return files
}

// readTree returns the contents of the files under dir, by path relative to
// it.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	tree := map[string]string{}
	for _, f := range listFiles(t, dir) {
		tree[f] = readFile(t, filepath.Join(dir, filepath.FromSlash(f)))
	}
	return tree
}

// lineCol returns the 1-based line and column of the first occurrence of s
// in the file at path.
func lineCol(t *testing.T, path, s string) (line, col int) {
	t.Helper()
	for i, l := range strings.Split(readFile(t, path), "\n") {
		if c := strings.Index(l, s); c >= 0 {
			return i + 1, c + 1
		}
	}
	t.Fatalf("%s does not contain %q", path, s)
	return 0, 0
}

// allFiles is what the testdata workspace generates.
var allFiles = []string{
	"eda/v1/options.pb.go",
	"shop/billing/v1/billing.pb.go",
	"shop/billing/v1/billing_eda.pb.go",
	"shop/orders/v1/money.pb.go",
	"shop/orders/v1/orders.pb.go",
	"shop/orders/v1/orders_eda.pb.go",
}

// generated runs eda generate on a fresh copy of the workspace and returns
// what it wrote, by path relative to gen.
func generated(t *testing.T) map[string]string {
	t.Helper()
	dir := newWorkspace(t)
	if code, _, stderr := runEda(t, "generate", "--config", dir); code != 0 {
		t.Fatalf("eda generate: exit status %d\n%s", code, stderr)
	}
	return readTree(t, filepath.Join(dir, "gen"))
}

func TestGenerateBufMode(t *testing.T) {
	t.Parallel()
	dir := newWorkspace(t)
	// Excluded in buf.yaml: were it compiled, it would fail.
	writeFile(t, filepath.Join(dir, "proto", "shop", "drafts", "draft.proto"), "this is not protobuf\n")
	before := listFiles(t, dir)

	code, stdout, stderr := runEda(t, "generate", "--config", dir)
	if code != 0 {
		t.Fatalf("exit status %d, want 0\n%s", code, stderr)
	}
	if stdout != "" || stderr != "" {
		t.Errorf("eda generate printed something without -v:\nstdout: %s\nstderr: %s", stdout, stderr)
	}
	gen := readTree(t, filepath.Join(dir, "gen"))
	if got := slices.Sorted(maps.Keys(gen)); !slices.Equal(got, allFiles) {
		t.Errorf("generated\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(allFiles, "\n  "))
	}
	for file, want := range map[string]string{
		"shop/orders/v1/orders.pb.go":       "package ordersv1",
		"shop/orders/v1/orders_eda.pb.go":   "package ordersv1",
		"shop/billing/v1/billing_eda.pb.go": `"shop.payments"`,
		"shop/orders/v1/money.pb.go":        "type Money struct",
	} {
		if !strings.Contains(gen[file], want) {
			t.Errorf("%s does not contain %s", file, want)
		}
	}
	var outside []string
	for _, f := range listFiles(t, dir) {
		if !strings.HasPrefix(f, "gen/") && !slices.Contains(before, f) {
			outside = append(outside, f)
		}
	}
	if len(outside) > 0 {
		t.Errorf("eda generate wrote outside gen: %v", outside)
	}
}

func TestGenerateVerbose(t *testing.T) {
	t.Parallel()
	dir := newWorkspace(t)
	code, stdout, stderr := runEda(t, "generate", "-v", "--config", dir)
	if code != 0 {
		t.Fatalf("exit status %d\n%s", code, stderr)
	}
	var want []string
	for _, f := range allFiles {
		want = append(want, filepath.Join(dir, "gen", filepath.FromSlash(f)))
	}
	got := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("-v listed\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestGenerateInWorkingDirectory runs eda generate with no --config, as
// users do, and checks error positions are relative to the working
// directory.
func TestGenerateInWorkingDirectory(t *testing.T) {
	dir := newWorkspace(t)
	t.Chdir(dir)
	if code, _, stderr := runEda(t, "generate"); code != 0 {
		t.Fatalf("exit status %d\n%s", code, stderr)
	}
	if got := listFiles(t, "gen"); !slices.Equal(got, allFiles) {
		t.Errorf("generated %v, want %v", got, allFiles)
	}

	file := filepath.Join("proto", "shop", "orders", "v1", "orders.proto")
	edit(t, file, `event = {aggregate: "Order"}`, `event = {aggregate: "Nope"}`)
	line, col := lineCol(t, file, `option (eda.v1.message).event`)
	code, _, stderr := runEda(t, "generate")
	if want := file + ":" + strconv.Itoa(line) + ":" + strconv.Itoa(col) + ": event OrderPlaced: "; code != 1 || !strings.HasPrefix(stderr, want) {
		t.Errorf("exit status %d, stderr:\n%s\nwant status 1 and stderr starting with %q", code, stderr, want)
	}
}

// TestGenerateMatchesBuf checks that eda generate writes what buf generate
// writes with the plugin binaries, byte for byte. It needs buf on PATH.
func TestGenerateMatchesBuf(t *testing.T) {
	t.Parallel()
	buf, err := exec.LookPath("buf")
	if err != nil {
		if os.Getenv("EDA_TEST_REQUIRE_ALL") != "" {
			t.Fatal("buf is not installed, and EDA_TEST_REQUIRE_ALL forbids skipping")
		}
		t.Skip("buf is not installed; skipping the buf comparison")
	}
	bin := t.TempDir()
	for _, pkg := range []string{"google.golang.org/protobuf/cmd/protoc-gen-go", "./cmd/protoc-gen-eda"} {
		build := exec.Command("go", "build", "-o", bin, pkg)
		build.Dir = filepath.Join("..", "..")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	dir := newWorkspace(t)
	cmd := exec.Command(buf, "generate")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "BUF_CACHE_DIR="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("buf generate: %v\n%s", err, out)
	}
	want := readTree(t, filepath.Join(dir, "gen"))
	got := generated(t)
	if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))) {
		t.Fatalf("eda generate wrote %v, buf generate %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	for f := range want {
		if got[f] != want[f] {
			t.Errorf("%s differs from buf's:\n--- eda\n%s\n--- buf\n%s", f, got[f], want[f])
		}
	}
}

// TestGenerateSelectedFiles checks that files given as arguments restrict
// generation to them, with the same output as a full run.
func TestGenerateSelectedFiles(t *testing.T) {
	t.Parallel()
	full := generated(t)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"file relative to its module", []string{"shop/orders/v1/orders.proto"}, []string{"shop/orders/v1/orders.pb.go", "shop/orders/v1/orders_eda.pb.go"}},
		{"file relative to buf.yaml", []string{"proto/shop/billing/v1/billing.proto"}, []string{"shop/billing/v1/billing.pb.go", "shop/billing/v1/billing_eda.pb.go"}},
		{"plain file", []string{"shop/orders/v1/money.proto"}, []string{"shop/orders/v1/money.pb.go"}},
		{"directory", []string{"shop/orders"}, []string{"shop/orders/v1/money.pb.go", "shop/orders/v1/orders.pb.go", "shop/orders/v1/orders_eda.pb.go"}},
		{"module directory", []string{"schemas"}, []string{"eda/v1/options.pb.go"}},
		{"absolute path", []string{"DIR/proto/shop/orders/v1/orders.proto"}, []string{"shop/orders/v1/orders.pb.go", "shop/orders/v1/orders_eda.pb.go"}},
		{"files of two directories", []string{"shop/orders/v1/orders.proto", "eda/v1/options.proto"}, []string{"eda/v1/options.pb.go", "shop/orders/v1/orders.pb.go", "shop/orders/v1/orders_eda.pb.go"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := newWorkspace(t)
			args := []string{"generate", "--config", dir}
			for _, a := range tt.args {
				if rest, ok := strings.CutPrefix(a, "DIR/"); ok {
					a = filepath.Join(dir, filepath.FromSlash(rest))
				}
				args = append(args, a)
			}
			code, _, stderr := runEda(t, args...)
			if code != 0 {
				t.Fatalf("exit status %d\n%s", code, stderr)
			}
			got := readTree(t, filepath.Join(dir, "gen"))
			checkSubset(t, got, tt.want, full, "the full run's")
		})
	}
}

// TestGenerateInputErrors checks that an error in a .proto file is reported
// at its position, with exit status 1, and that nothing is written.
func TestGenerateInputErrors(t *testing.T) {
	t.Parallel()
	orders := filepath.Join("proto", "shop", "orders", "v1", "orders.proto")
	money := filepath.Join("proto", "shop", "orders", "v1", "money.proto")
	tests := []struct {
		name     string
		flagMode bool
		file     string // the file to break
		old, new string
		at       string // where the error is, in the broken file
		msg      string // what follows the position
	}{
		{
			name: "unknown aggregate", file: orders,
			old: `event = {aggregate: "Order"}`, new: `event = {aggregate: "Nope"}`,
			at: `option (eda.v1.message).event`, msg: `event OrderPlaced: aggregate "Nope" is not a known message`,
		},
		{
			name: "unknown aggregate in flag mode", flagMode: true, file: orders,
			old: `event = {aggregate: "Order"}`, new: `event = {aggregate: "Nope"}`,
			at: `option (eda.v1.message).event`, msg: `event OrderPlaced: aggregate "Nope" is not a known message`,
		},
		{
			// money.proto is imported from two directories, so compiled
			// twice: the error is reported once.
			name: "unknown type in an imported file", file: money,
			old: "int64 cents", new: "int63 cents",
			at: "int63", msg: "field shop.orders.v1.Money.cents: unknown type int63",
		},
		{
			name: "syntax error", file: orders,
			old: "string order_id = 1;", new: "string order_id = ;",
			at: "= ;", msg: "syntax error",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := newWorkspace(t)
			path := filepath.Join(dir, tt.file)
			edit(t, path, tt.old, tt.new)
			line, col := lineCol(t, path, tt.at)
			if tt.msg == "syntax error" {
				col += 2 // at the semicolon
			}
			args := []string{"generate", "--config", dir}
			if tt.flagMode {
				args = []string{"generate", "-I", filepath.Join(dir, "schemas"), "-I", filepath.Join(dir, "proto"), "--out", filepath.Join(dir, "gen"), "shop/orders/v1/orders.proto", "shop/billing/v1/billing.proto"}
			}
			code, stdout, stderr := runEda(t, args...)
			if code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			want := regexp.QuoteMeta(path+":"+strconv.Itoa(line)+":"+strconv.Itoa(col)+": ") + ".*" + regexp.QuoteMeta(tt.msg)
			if n := len(regexp.MustCompile("(?m)^"+want).FindAllString(stderr, -1)); n != 1 {
				t.Errorf("stderr has %d lines matching %s, want 1:\n%s", n, want, stderr)
			}
			if stdout != "" {
				t.Errorf("unexpected stdout: %s", stdout)
			}
			if files := listFiles(t, filepath.Join(dir, "gen")); len(files) > 0 {
				t.Errorf("wrote %v despite the error", files)
			}
		})
	}
}

func TestGenerateFlagMode(t *testing.T) {
	t.Parallel()
	full := generated(t)
	tests := []struct {
		name  string
		flags []string
		files []string // relative to dir when prefixed with "dir/"
		want  []string
	}{
		{
			name:  "both plugins",
			flags: []string{"--opt", "paths=source_relative", "--go_opt", "paths=source_relative"},
			files: []string{"shop/orders/v1/orders.proto"},
			want:  []string{"shop/orders/v1/orders.pb.go", "shop/orders/v1/orders_eda.pb.go"},
		},
		{
			name:  "--go=false",
			flags: []string{"--go=false", "--opt", "paths=source_relative"},
			files: []string{"shop/orders/v1/orders.proto"},
			want:  []string{"shop/orders/v1/orders_eda.pb.go"},
		},
		{
			name:  "file as a path under an import directory",
			flags: []string{"--opt", "paths=source_relative", "--go_opt", "paths=source_relative"},
			files: []string{"dir/proto/shop/billing/v1/billing.proto"},
			want:  []string{"shop/billing/v1/billing.pb.go", "shop/billing/v1/billing_eda.pb.go"},
		},
		{
			name:  "several files, repeated options",
			flags: []string{"--opt", "paths=source_relative", "--go_opt", "paths=source_relative", "--go_opt", "Mshop/orders/v1/money.proto=example.com/shop/gen/shop/orders/v1;ordersv1"},
			files: []string{"shop/orders/v1/orders.proto", "shop/orders/v1/money.proto", "shop/billing/v1/billing.proto"},
			want:  []string{"shop/billing/v1/billing.pb.go", "shop/billing/v1/billing_eda.pb.go", "shop/orders/v1/money.pb.go", "shop/orders/v1/orders.pb.go", "shop/orders/v1/orders_eda.pb.go"},
		},
		{
			name:  "import paths",
			flags: []string{"--opt", "module=example.com/shop/gen", "--go_opt", "module=example.com/shop/gen"},
			files: []string{"shop/orders/v1/orders.proto"},
			want:  []string{"shop/orders/v1/orders.pb.go", "shop/orders/v1/orders_eda.pb.go"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := newWorkspace(t)
			out := filepath.Join(dir, "out")
			args := []string{"generate", "-I", filepath.Join(dir, "schemas"), "--proto_path", filepath.Join(dir, "proto"), "--out", out}
			args = append(args, tt.flags...)
			for _, f := range tt.files {
				if rest, ok := strings.CutPrefix(f, "dir/"); ok {
					f = filepath.Join(dir, filepath.FromSlash(rest))
				}
				args = append(args, f)
			}
			code, stdout, stderr := runEda(t, args...)
			if code != 0 || stdout != "" || stderr != "" {
				t.Fatalf("exit status %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			got := readTree(t, out)
			checkSubset(t, got, tt.want, full, "buf mode's")
		})
	}
}

// TestGenerateUsageErrors checks that bad usage and unsupported
// configuration exit with status 2 and a message plus a one-line hint, and
// write nothing.
func TestGenerateUsageErrors(t *testing.T) {
	t.Parallel()
	const gen = "version: v2\nplugins:\n  - local: protoc-gen-eda\n    out: gen\n"
	tests := []struct {
		name   string
		setup  func(t *testing.T, dir string) // changes the workspace
		args   []string                       // after generate; "DIR" is the workspace
		stderr string
	}{
		{name: "unknown flag", args: []string{"--frob"}, stderr: "unknown flag: --frob"},
		{name: "flag mode without files", args: []string{"-I", "DIR/proto"}, stderr: "no files"},
		{name: "flag mode, file in no import path", args: []string{"-I", "DIR/proto", "nope.proto"}, stderr: "nope.proto is not a file in any -I directory"},
		{name: "--config in flag mode", args: []string{"-I", "DIR/proto", "--config", "DIR", "shop/orders/v1/money.proto"}, stderr: "--config is for buf mode"},
		{name: "--go_opt with --go=false", args: []string{"-I", "DIR/proto", "--go=false", "--go_opt", "paths=source_relative", "shop/orders/v1/money.proto"}, stderr: "--go_opt is for protoc-gen-go"},
		{name: "--config not a directory", args: []string{"--config", "DIR/buf.gen.yaml"}, stderr: "--config DIR/buf.gen.yaml is not a directory"},
		{name: "--out in buf mode", args: []string{"--config", "DIR", "--out", "x"}, stderr: "--out is for flag mode"},
		{name: "--opt in buf mode", args: []string{"--config", "DIR", "--opt", "x=y"}, stderr: "--opt is for flag mode"},
		{
			name:   "no buf.yaml",
			setup:  func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "buf.yaml")) },
			stderr: "no buf.yaml in",
		},
		{
			name:   "no buf.gen.yaml",
			setup:  func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "buf.gen.yaml")) },
			stderr: "no buf.gen.yaml in",
		},
		{
			name:   "buf.yaml v1",
			setup:  func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "buf.yaml"), "version: v1\n") },
			stderr: "buf.yaml is version v1: eda reads version v2 files only",
		},
		{
			name: "buf.yaml without version",
			setup: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "buf.yaml"), "modules:\n  - path: proto\n")
			},
			stderr: "buf.yaml has no version",
		},
		{
			name:   "buf.yaml not YAML",
			setup:  func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "buf.yaml"), "version: [v2\n") },
			stderr: "buf.yaml: ",
		},
		{
			name: "buf.gen.yaml v1",
			setup: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "buf.gen.yaml"), "version: v1\nplugins:\n  - plugin: go\n    out: gen\n")
			},
			stderr: "buf.gen.yaml is version v1",
		},
		{
			name:   "misspelt key in buf.gen.yaml",
			setup:  func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "buf.gen.yaml"), gen+"    opts: x\n") },
			stderr: "line 5: field opts not found",
		},
		{
			name: "managed mode",
			setup: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "buf.gen.yaml"), gen+"managed:\n  enabled: true\n")
			},
			stderr: "managed mode is not supported",
		},
		{
			name: "inputs",
			setup: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "buf.gen.yaml"), gen+"inputs:\n  - directory: proto\n")
			},
			stderr: "inputs are not supported",
		},
		{
			name: "include_imports",
			setup: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "buf.gen.yaml"), gen+"    include_imports: true\n")
			},
			stderr: "include_imports is not supported",
		},
		{
			name: "unknown strategy",
			setup: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "buf.gen.yaml"), gen+"    strategy: each\n")
			},
			stderr: `unknown strategy "each"`,
		},
		{
			name: "plugin without out",
			setup: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "buf.gen.yaml"), "version: v2\nplugins:\n  - local: protoc-gen-eda\n")
			},
			stderr: "plugin protoc-gen-eda: out is required",
		},
		{
			name: "no plugin eda runs",
			setup: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "buf.gen.yaml"), "version: v2\nplugins:\n  - local: protoc-gen-go-grpc\n    out: gen\n")
			},
			stderr: "has no protoc-gen-go or protoc-gen-eda plugin",
		},
		{
			name: "module that does not exist",
			setup: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "buf.yaml"), "version: v2\nmodules:\n  - path: proto\n  - path: nope\n")
			},
			stderr: "module nope: no such directory",
		},
		{
			name: "module outside the workspace",
			setup: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "buf.yaml"), "version: v2\nmodules:\n  - path: ../proto\n")
			},
			stderr: `path "../proto" must be relative and inside the workspace`,
		},
		{
			name: "overlapping modules",
			setup: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "buf.yaml"), "version: v2\nmodules:\n  - path: proto\n  - path: proto/shop\n")
			},
			stderr: "modules proto and proto/shop overlap",
		},
		{
			name: "exclude outside its module",
			setup: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "buf.yaml"), "version: v2\nmodules:\n  - path: proto\n    excludes: [shop/orders]\n")
			},
			stderr: "excludes: shop/orders is not in the module (paths are relative to buf.yaml)",
		},
		{
			name: "file in two modules",
			setup: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "other", "shop", "orders", "v1", "money.proto"), "syntax = \"proto3\";\n")
				writeFile(t, filepath.Join(dir, "buf.yaml"), "version: v2\nmodules:\n  - path: schemas\n  - path: proto\n  - path: other\n")
			},
			stderr: "shop/orders/v1/money.proto is in two modules, proto and other",
		},
		{name: "file not in the workspace", args: []string{"--config", "DIR", "shop/nope.proto"}, stderr: "shop/nope.proto is not a .proto file or directory of the workspace"},
		{
			name: "excluded file",
			setup: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "proto", "shop", "drafts", "draft.proto"), "syntax = \"proto3\";\n")
			},
			args:   []string{"--config", "DIR", "shop/drafts/draft.proto"},
			stderr: "shop/drafts/draft.proto is not a .proto file or directory of the workspace",
		},
		{
			name: "clean with out: .",
			setup: func(t *testing.T, dir string) {
				setClean(t, dir, ".")
				writeFile(t, filepath.Join(dir, "keep.txt"), "")
			},
			stderr: "clean: true would delete " + "DIR" + ", the directory of buf.gen.yaml",
		},
		{
			name:   "clean with out: a module",
			setup:  func(t *testing.T, dir string) { setClean(t, dir, "proto") },
			stderr: "which holds module proto",
		},
		{
			name:   "clean with out: a directory holding .proto files",
			setup:  func(t *testing.T, dir string) { setClean(t, dir, "proto/shop") },
			stderr: "which holds " + filepath.Join("DIR", "proto", "shop"),
		},
		{
			name:   "clean with out outside the workspace",
			setup:  func(t *testing.T, dir string) { setClean(t, dir, "../elsewhere") },
			stderr: "which is outside DIR",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := newWorkspace(t)
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			before := readTree(t, dir)
			args := tt.args
			if args == nil {
				args = []string{"--config", "DIR"}
			}
			args = slices.Clone(args)
			for i := range args {
				args[i] = strings.Replace(args[i], "DIR", dir, 1)
			}
			code, stdout, stderr := runEda(t, append([]string{"generate"}, args...)...)
			if code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
			want := strings.ReplaceAll(tt.stderr, "DIR", dir)
			// Warnings may come first.
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			lines = lines[max(0, len(lines)-2):]
			if len(lines) != 2 || !strings.Contains(lines[0], want) || lines[1] != "Run 'eda generate --help' for usage." {
				t.Errorf("stderr:\n%s\nwant a line containing %q and the hint", stderr, want)
			}
			if stdout != "" {
				t.Errorf("unexpected stdout: %s", stdout)
			}
			after := readTree(t, dir)
			if !maps.Equal(before, after) {
				t.Errorf("the workspace changed: %v -> %v", slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(after)))
			}
		})
	}
}

// setClean writes a buf.gen.yaml with clean: true and both plugins writing
// to out.
func setClean(t *testing.T, dir, out string) {
	t.Helper()
	writeFile(t, filepath.Join(dir, "buf.gen.yaml"), `version: v2
clean: true
plugins:
  - local: protoc-gen-go
    out: `+out+`
    opt: paths=source_relative
  - local: protoc-gen-eda
    out: `+out+`
    opt: paths=source_relative
`)
}

func TestGenerateClean(t *testing.T) {
	t.Parallel()
	dir := newWorkspace(t)
	setClean(t, dir, "gen")
	stale := filepath.Join(dir, "gen", "shop", "old", "v1", "old.pb.go")
	writeFile(t, stale, "package old\n")

	// Failed generation cleans nothing.
	orders := filepath.Join(dir, "proto", "shop", "orders", "v1", "orders.proto")
	edit(t, orders, `event = {aggregate: "Order"}`, `event = {aggregate: "Nope"}`)
	if code, _, _ := runEda(t, "generate", "--config", dir); code != 1 {
		t.Fatalf("exit status %d, want 1", code)
	}
	if got := listFiles(t, filepath.Join(dir, "gen")); !slices.Equal(got, []string{"shop/old/v1/old.pb.go"}) {
		t.Fatalf("after a failure, gen holds %v, want the stale file only", got)
	}

	edit(t, orders, `event = {aggregate: "Nope"}`, `event = {aggregate: "Order"}`)
	if code, _, stderr := runEda(t, "generate", "--config", dir); code != 0 {
		t.Fatalf("exit status %d\n%s", code, stderr)
	}
	if got := listFiles(t, filepath.Join(dir, "gen")); !slices.Equal(got, allFiles) {
		t.Errorf("after clean, gen holds %v, want %v", got, allFiles)
	}
}

// TestGenerateSkipsPlugins checks that plugins eda does not have are skipped
// with a warning, and that clean then spares their output directory.
func TestGenerateSkipsPlugins(t *testing.T) {
	t.Parallel()
	dir := newWorkspace(t)
	config := filepath.Join(dir, "buf.gen.yaml")
	writeFile(t, config, readFile(t, config)+`  - local: protoc-gen-go-grpc
    out: gen
    opt: paths=source_relative
  - remote: buf.build/connectrpc/go
    out: gen
clean: true
`)
	grpc := filepath.Join(dir, "gen", "shop", "orders", "v1", "orders_grpc.pb.go")
	writeFile(t, grpc, "package ordersv1\n")

	code, stdout, stderr := runEda(t, "generate", "--config", dir)
	if code != 0 {
		t.Fatalf("exit status %d\n%s", code, stderr)
	}
	for _, want := range []string{
		"eda generate: warning: skipping plugin protoc-gen-go-grpc: eda runs only protoc-gen-go and protoc-gen-eda",
		"eda generate: warning: skipping plugin buf.build/connectrpc/go:",
		"eda generate: warning: not cleaning " + filepath.Join(dir, "gen") + ": plugin protoc-gen-go-grpc, which eda skips, writes there too",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not contain %q:\n%s", want, stderr)
		}
	}
	if stdout != "" {
		t.Errorf("unexpected stdout: %s", stdout)
	}
	want := append(slices.Clone(allFiles), "shop/orders/v1/orders_grpc.pb.go")
	slices.Sort(want)
	if got := listFiles(t, filepath.Join(dir, "gen")); !slices.Equal(got, want) {
		t.Errorf("gen holds %v, want %v", got, want)
	}
}

// TestGenerateGoRunPlugins checks the buf.gen.yaml of this repository's
// style, with plugins run by go run and options as lists and strategies.
func TestGenerateGoRunPlugins(t *testing.T) {
	t.Parallel()
	full := generated(t)
	dir := newWorkspace(t)
	writeFile(t, filepath.Join(dir, "buf.gen.yaml"), `version: v2
plugins:
  - local: ["go", "run", "google.golang.org/protobuf/cmd/protoc-gen-go"]
    out: gen
    opt: [paths=source_relative]
  - local: ["go", "run", "./cmd/protoc-gen-eda"]
    out: gen2
    strategy: all
    opt:
      - paths=import
      - module=example.com/shop/gen
`)
	if code, _, stderr := runEda(t, "generate", "--config", dir); code != 0 || stderr != "" {
		t.Fatalf("exit status %d\n%s", code, stderr)
	}
	if got, want := listFiles(t, filepath.Join(dir, "gen")), []string{"eda/v1/options.pb.go", "shop/billing/v1/billing.pb.go", "shop/orders/v1/money.pb.go", "shop/orders/v1/orders.pb.go"}; !slices.Equal(got, want) {
		t.Errorf("gen holds %v, want %v", got, want)
	}
	got := readTree(t, filepath.Join(dir, "gen2"))
	if files, want := slices.Sorted(maps.Keys(got)), []string{"shop/billing/v1/billing_eda.pb.go", "shop/orders/v1/orders_eda.pb.go"}; !slices.Equal(files, want) {
		t.Fatalf("gen2 holds %v, want %v", files, want)
	}
	for f, content := range got {
		if content != full[f] {
			t.Errorf("%s differs from the one of the default template", f)
		}
	}
}

// TestBufPlanRequests checks the requests of buf mode: one per directory,
// as buf's default strategy, or one in all with strategy: all.
func TestBufPlanRequests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		strategy string
		args     []string
		want     [][]string
	}{
		{
			name: "directory",
			want: [][]string{{"eda/v1/options.proto"}, {"shop/billing/v1/billing.proto"}, {"shop/orders/v1/money.proto", "shop/orders/v1/orders.proto"}},
		},
		{
			name: "directory, selected files", args: []string{"shop/orders/v1/orders.proto", "proto/shop/billing"},
			want: [][]string{{"shop/billing/v1/billing.proto"}, {"shop/orders/v1/orders.proto"}},
		},
		{
			name: "all", strategy: "all",
			want: [][]string{{"eda/v1/options.proto", "shop/billing/v1/billing.proto", "shop/orders/v1/money.proto", "shop/orders/v1/orders.proto"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := newWorkspace(t)
			if tt.strategy != "" {
				config := filepath.Join(dir, "buf.gen.yaml")
				writeFile(t, config, strings.ReplaceAll(readFile(t, config), "    out: gen\n", "    out: gen\n    strategy: "+tt.strategy+"\n"))
			}
			o := newGenerateFlags()
			o.config = dir
			p, err := o.bufPlan(tt.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.runs) != 2 {
				t.Fatalf("%d plugin runs, want 2", len(p.runs))
			}
			for _, r := range p.runs {
				if !slices.EqualFunc(r.requests, tt.want, slices.Equal) {
					t.Errorf("%s requests %q, want %q", r.name, r.requests, tt.want)
				}
			}
			if got, want := []string{p.runs[0].name, p.runs[1].name}, []string{"protoc-gen-go", "protoc-gen-eda"}; !slices.Equal(got, want) {
				t.Errorf("runs %v, want %v", got, want)
			}
		})
	}
}

// TestGenerateDepsNote checks that a compile error in a workspace with
// buf.yaml deps says eda does not download them.
func TestGenerateDepsNote(t *testing.T) {
	t.Parallel()
	dir := newWorkspace(t)
	config := filepath.Join(dir, "buf.yaml")
	writeFile(t, config, readFile(t, config)+"deps:\n  - buf.build/bufbuild/protovalidate\n")
	orders := filepath.Join(dir, "proto", "shop", "orders", "v1", "orders.proto")
	edit(t, orders, `import "eda/v1/options.proto";`, `import "eda/v1/options.proto";`+"\n"+`import "buf/validate/validate.proto";`)
	line, col := lineCol(t, orders, `"buf/validate/validate.proto"`)
	code, _, stderr := runEda(t, "generate", "--config", dir)
	if code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	for _, want := range []string{
		orders + ":" + strconv.Itoa(line) + ":" + strconv.Itoa(col) + ": buf/validate/validate.proto: no such file in " + filepath.Join(dir, "schemas") + ", " + filepath.Join(dir, "proto") + "\n",
		"\nnote: eda does not download buf.yaml's deps (buf.build/bufbuild/protovalidate)",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not contain %q:\n%s", want, stderr)
		}
	}
	if files := listFiles(t, filepath.Join(dir, "gen")); len(files) > 0 {
		t.Errorf("wrote %v despite the error", files)
	}
}

// checkSubset checks that got holds exactly the files want, each with the
// content it has in full, the output of the reference run named by ref.
func checkSubset(t *testing.T, got map[string]string, want []string, full map[string]string, ref string) {
	t.Helper()
	if files := slices.Sorted(maps.Keys(got)); !slices.Equal(files, want) {
		t.Fatalf("generated %v, want %v", files, want)
	}
	for f, content := range got {
		if content != full[f] {
			t.Errorf("%s differs from %s", f, ref)
		}
	}
}
