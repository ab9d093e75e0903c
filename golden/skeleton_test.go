package golden

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/protoc-gen-eda/eda/templates"
)

// TestSkeletonsCompile builds every committed saga skeleton with its build
// tag: a skeleton is only useful if its copy compiles and implements the
// behaviour (it asserts that itself).
func TestSkeletonsCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds packages with the go command")
	}
	files, err := filepath.Glob(filepath.Join("..", "*", "*", "*_eda_skeleton.go"))
	if err != nil {
		t.Fatal(err)
	}
	more, err := filepath.Glob(filepath.Join("..", "examples", "*", "gen", "*", "*", "*", "*_eda_skeleton.go"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, more...)
	if len(files) < 2 {
		t.Fatalf("found %d skeletons (%v), want those of golden/saga and examples/checkout at least", len(files), files)
	}
	pkgs := map[string]bool{}
	args := []string{"vet", "-tags", templates.SkeletonBuildTag}
	for _, f := range files {
		dir := "./" + filepath.ToSlash(filepath.Dir(f))
		if !pkgs[dir] {
			pkgs[dir] = true
			args = append(args, dir)
		}
	}
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
