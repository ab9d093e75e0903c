package plain_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/protoc-gen-eda/eda/golden/plain"
)

// A file without eda annotations gets protoc-gen-go's output only.
func TestNoEdaFile(t *testing.T) {
	if _, err := os.Stat("plain_eda.pb.go"); !os.IsNotExist(err) {
		t.Errorf("plain_eda.pb.go: stat err = %v, want it not to exist", err)
	}
	eda, err := filepath.Glob("*_eda.pb.go")
	if err != nil {
		t.Fatal(err)
	}
	if len(eda) != 0 {
		t.Errorf("eda files generated for a plain proto: %v", eda)
	}
	if _, err := os.Stat("plain.pb.go"); err != nil {
		t.Errorf("plain.pb.go: %v", err)
	}
	_ = (&plain.Note{Text: "compiles"}).GetText()
}
