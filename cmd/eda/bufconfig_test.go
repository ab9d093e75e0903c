package main

import (
	"slices"
	"strings"
	"testing"
)

func TestRecognise(t *testing.T) {
	t.Parallel()
	tests := []struct {
		local []string
		list  bool
		want  string
	}{
		{[]string{"protoc-gen-go"}, false, "protoc-gen-go"},
		{[]string{"protoc-gen-eda"}, false, "protoc-gen-eda"},
		{[]string{"bin/protoc-gen-eda"}, false, "protoc-gen-eda"},
		{[]string{"/usr/local/bin/protoc-gen-go"}, false, "protoc-gen-go"},
		{[]string{"protoc-gen-go.exe"}, false, "protoc-gen-go"},
		{[]string{"protoc-gen-go"}, true, "protoc-gen-go"},
		{[]string{"go", "run", "google.golang.org/protobuf/cmd/protoc-gen-go"}, true, "protoc-gen-go"},
		{[]string{"go", "run", "google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.0"}, true, "protoc-gen-go"},
		{[]string{"go", "run", "./cmd/protoc-gen-eda"}, true, "protoc-gen-eda"},
		{[]string{"go", "run", "-mod=mod", "github.com/protoc-gen-eda/eda/cmd/protoc-gen-eda@latest"}, true, "protoc-gen-eda"},
		{[]string{"protoc-gen-go-grpc"}, false, ""},
		{[]string{"protoc-gen-connect-go"}, false, ""},
		{[]string{"go", "run", "google.golang.org/grpc/cmd/protoc-gen-go-grpc"}, true, ""},
		{[]string{"protoc-gen-eda", "--verbose"}, true, ""},
		{[]string{"my-protoc-gen-go"}, false, ""},
		{nil, true, ""},
	}
	for _, tt := range tests {
		if got := recognise(stringList{values: tt.local, list: tt.list}); got != tt.want {
			t.Errorf("recognise(%q) = %q, want %q", tt.local, got, tt.want)
		}
	}
}

func TestPinWarning(t *testing.T) {
	t.Parallel()
	have := moduleVersion("google.golang.org/protobuf")
	if have == "" {
		t.Skip("no build information for google.golang.org/protobuf")
	}
	tests := []struct {
		last string
		want string // substring; "" for no warning
	}{
		{"google.golang.org/protobuf/cmd/protoc-gen-go@v1.0.0", "buf.gen.yaml runs protoc-gen-go@v1.0.0; eda runs the protoc-gen-go " + have},
		{"google.golang.org/protobuf/cmd/protoc-gen-go@" + have, ""},
		{"google.golang.org/protobuf/cmd/protoc-gen-go@latest", ""},
		{"google.golang.org/protobuf/cmd/protoc-gen-go", ""},
	}
	for _, tt := range tests {
		got := pinWarning("protoc-gen-go", stringList{values: []string{"go", "run", tt.last}, list: true})
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("pinWarning(%s) = %q, want %q", tt.last, got, tt.want)
		}
	}
}

func TestByDirectory(t *testing.T) {
	t.Parallel()
	got := byDirectory([]string{"b/y.proto", "a.proto", "b/x.proto", "a/z.proto", "b/c/w.proto"})
	want := [][]string{{"a.proto"}, {"a/z.proto"}, {"b/x.proto", "b/y.proto"}, {"b/c/w.proto"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("byDirectory = %q, want %q", got, want)
	}
}

func TestYAMLError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir+"/buf.gen.yaml", "version: v2\nplugins:\n  - local: protoc-gen-go\n    out: gen\n    opts: x\n    outt: y\n")
	_, err := loadGenConfig(dir)
	if err == nil {
		t.Fatal("no error for unknown keys")
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || strings.Contains(msg, "main.") || !strings.Contains(msg, "line 5: field opts not found; line 6: field outt not found") {
		t.Errorf("error %q: want both unknown keys, on one line, without Go type names", msg)
	}
}
