package golden

import (
	"context"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/pluginpb"

	"github.com/protoc-gen-eda/eda/internal/compile"
)

var update = flag.Bool("update", false, "rewrite the expected output of the golden cases")

// module is the Go module prefix that `module=` strips, as buf.gen.yaml does.
const module = "github.com/protoc-gen-eda/eda"

// schemas is the import root of eda/v1/options.proto.
var schemas = filepath.Join("..", "schemas")

func TestGolden(t *testing.T) {
	dirs := protoDirs(t, ".", "errors")
	if len(dirs) == 0 {
		t.Fatal("no golden cases found")
	}
	// Every file either case produces, relative to the repo root, to find
	// stale generated files.
	produced := map[string]bool{}
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			files := protoFiles(t, ".", dir)
			req, err := compile.Request(context.Background(), []string{".", schemas}, files, "")
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			var out []*pluginpb.CodeGeneratorResponse_File
			for _, p := range []compile.Plugin{compile.Go(), compile.Eda()} {
				files, err := compile.Generate(req, "module="+module, p)
				if err != nil {
					t.Fatalf("%s: %v", p.Name, err)
				}
				out = append(out, files...)
			}
			for _, f := range out {
				produced[f.GetName()] = true
				path := filepath.Join("..", filepath.FromSlash(f.GetName()))
				check(t, path, f.GetContent())
			}
		})
	}
	// A committed generated file that no case produces is stale.
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".pb.go") {
			return err
		}
		name := "golden/" + filepath.ToSlash(path)
		if !produced[name] {
			if *update {
				return os.Remove(path)
			}
			t.Errorf("%s is not produced by any case: delete it, or run go test ./golden -update", name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestGoldenErrors(t *testing.T) {
	root := "errors"
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		t.Run(e.Name(), func(t *testing.T) {
			dir := filepath.Join(root, e.Name())
			files := protoFiles(t, dir, ".")
			// generate.txt, when present, lists the files to generate; the
			// others are only imported.
			if b, err := os.ReadFile(filepath.Join(dir, "generate.txt")); err == nil {
				files = strings.Fields(string(b))
			}
			param := ""
			if b, err := os.ReadFile(filepath.Join(dir, "params.txt")); err == nil {
				param = strings.TrimSpace(string(b))
			}
			req, err := compile.Request(context.Background(), []string{dir, schemas}, files, "")
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			out, err := compile.Generate(req, param, compile.Eda())
			if err == nil {
				t.Fatalf("generated %d files, want an error", len(out))
			}
			if len(out) != 0 {
				t.Errorf("an error must come with no output, got %d files", len(out))
			}
			check(t, filepath.Join(dir, "want.txt"), err.Error()+"\n")
		})
	}
}

// check compares got with the file at path, or writes it with -update.
func check(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("%s: %v (run go test ./golden -update to create it)", path, err)
		return
	}
	if string(want) != got {
		t.Errorf("%s differs from the generator's output (run go test ./golden -update and review the diff):\n%s", path, diff(string(want), got))
	}
}

// diff shows the first differing line, enough to find the change.
func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(w), len(g)) {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return "line " + itoa(i+1) + ":\n  want: " + wl + "\n  got:  " + gl
		}
	}
	return "(same lines, different line endings)"
}

func itoa(i int) string { return strings.TrimSpace(strings.Repeat(" ", 0) + fmtInt(i)) }

func fmtInt(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return fmtInt(i/10) + string(rune('0'+i%10))
}

// protoDirs returns the directories below root, relative to it, that hold
// .proto files, skipping the subtree skip.
func protoDirs(t *testing.T, root, skip string) []string {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path == filepath.Join(root, skip) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".proto") {
			rel, _ := filepath.Rel(root, filepath.Dir(path))
			seen[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dirs := make([]string, 0, len(seen))
	for d := range seen {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	return dirs
}

// protoFiles returns the .proto files directly in root/dir, relative to root.
func protoFiles(t *testing.T, root, dir string) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(root, dir, "*.proto"))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, m := range matches {
		rel, _ := filepath.Rel(root, m)
		files = append(files, filepath.ToSlash(rel))
	}
	slices.Sort(files)
	return files
}
