package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/pluginpb"

	"github.com/protoc-gen-eda/eda/internal/compile"
)

// plugin builds the binary once per test.
func plugin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "protoc-gen-eda")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func TestBinary(t *testing.T) {
	bin := plugin(t)
	req, err := compile.Request(context.Background(),
		[]string{"../../examples/orders/proto", "../../schemas"}, []string{"shop/orders/v1/orders.proto"}, "")
	if err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, param string) *pluginpb.CodeGeneratorResponse {
		t.Helper()
		r := proto.CloneOf(req)
		r.Parameter = proto.String(param)
		in, err := proto.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin)
		cmd.Stdin = bytes.NewReader(in)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("plugin: %v", err)
		}
		resp := &pluginpb.CodeGeneratorResponse{}
		if err := proto.Unmarshal(out, resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}

	t.Run("generates and declares its features", func(t *testing.T) {
		resp := run(t, "paths=source_relative")
		if resp.Error != nil {
			t.Fatalf("error: %s", resp.GetError())
		}
		if len(resp.File) != 1 || resp.File[0].GetName() != "shop/orders/v1/orders_eda.pb.go" {
			t.Fatalf("files = %v", resp.File)
		}
		want := uint64(pluginpb.CodeGeneratorResponse_FEATURE_PROTO3_OPTIONAL | pluginpb.CodeGeneratorResponse_FEATURE_SUPPORTS_EDITIONS)
		if resp.GetSupportedFeatures() != want {
			t.Errorf("supported features = %b, want %b", resp.GetSupportedFeatures(), want)
		}
		// The binary and the in-process path give the same bytes.
		files, err := compile.Generate(req, "paths=source_relative", compile.Eda())
		if err != nil {
			t.Fatal(err)
		}
		if files[0].GetContent() != resp.File[0].GetContent() {
			t.Error("the binary's output differs from the in-process generator's")
		}
	})
	t.Run("rejects an unknown parameter", func(t *testing.T) {
		// protogen reports a bad parameter on stderr with exit status 1, as
		// protoc-gen-go does; protoc prints it after the plugin's name.
		r := proto.CloneOf(req)
		r.Parameter = proto.String("emit=events")
		in, err := proto.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin)
		cmd.Stdin = bytes.NewReader(in)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("exit: %v, want status 1", err)
		}
		if !strings.Contains(stderr.String(), `unknown parameter "emit"`) || len(out) != 0 {
			t.Errorf("stderr = %q, stdout %d bytes; want the parameter named and no response", stderr.String(), len(out))
		}
	})
}

func TestFlags(t *testing.T) {
	bin := plugin(t)
	for _, tc := range []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"--version"}, 0, "protoc-gen-eda "},
		{[]string{"extra"}, 2, `unexpected argument "extra"`},
		{[]string{"--nope"}, 2, "unknown flag"},
	} {
		cmd := exec.Command(bin, tc.args...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code || !strings.Contains(string(out), tc.contains) {
			t.Errorf("%v: exit %d, output %q; want exit %d and %q", tc.args, code, out, tc.code, tc.contains)
		}
	}
}
