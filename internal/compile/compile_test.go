package compile

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestMatchesProtoc checks that the in-process path produces what protoc and
// the plugin binary produce for the example schema. It needs protoc on PATH.
func TestMatchesProtoc(t *testing.T) {
	protoc, err := exec.LookPath("protoc")
	if err != nil {
		if os.Getenv("EDA_TEST_REQUIRE_ALL") != "" {
			t.Fatal("protoc is not installed, and EDA_TEST_REQUIRE_ALL forbids skipping")
		}
		t.Skip("protoc is not installed (apt-get install protobuf-compiler); skipping the protoc comparison")
	}
	root := filepath.Join("..", "..")
	dir := t.TempDir()
	plugin := filepath.Join(dir, "protoc-gen-eda")
	build := exec.Command("go", "build", "-o", plugin, "./cmd/protoc-gen-eda")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build plugin: %v\n%s", err, out)
	}
	file := "shop/orders/v1/orders.proto"
	imports := []string{filepath.Join(root, "schemas"), filepath.Join(root, "examples/orders/proto")}
	out := filepath.Join(dir, "protoc")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(protoc, "-I", imports[0], "-I", imports[1], "--plugin=protoc-gen-eda="+plugin, "--eda_out="+out, file)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, b)
	}
	req, err := Request(context.Background(), imports, []string{file}, "")
	if err != nil {
		t.Fatal(err)
	}
	files, err := Generate(req, "", Eda())
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 {
		t.Fatalf("got %d files, want 1", len(files))
	}
	want, err := os.ReadFile(filepath.Join(out, files[0].GetName()))
	if err != nil {
		t.Fatal(err)
	}
	if got := files[0].GetContent(); got != string(want) {
		t.Errorf("in-process output differs from protoc's for %s:\n--- in process\n%s\n--- protoc\n%s", files[0].GetName(), got, want)
	}
}
