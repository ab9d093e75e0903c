package benchmarks

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/pluginpb"

	"github.com/protoc-gen-eda/eda/internal/compile"
)

// The synthetic schema of BenchmarkGenerate: synthFiles files of one proto
// package, each declaring synthAggregates aggregates, and each aggregate a
// state message, len(eventVerbs) events and len(commandVerbs) commands:
// 20 × 5 × (1 + 12 + 7) = 2,000 annotated messages.
const (
	synthFiles      = 20
	synthAggregates = 5
	synthPackage    = "bench.synth.v1"
	synthGoPackage  = "example.com/bench/synth/v1;synthv1"
)

var (
	eventVerbs   = []string{"Created", "Updated", "Renamed", "Archived", "Restored", "Deleted", "Assigned", "Unassigned", "Approved", "Rejected", "Tagged", "Untagged"}
	commandVerbs = []string{"Create", "Update", "Rename", "Archive", "Restore", "Delete", "Assign"}
)

// writeSynthSchema writes the synthetic schema under dir and returns its
// file names, relative to dir.
func writeSynthSchema(tb testing.TB, dir string) []string {
	tb.Helper()
	var files []string
	for f := range synthFiles {
		name := fmt.Sprintf("bench/synth/v1/domain_%02d.proto", f)
		var s strings.Builder
		fmt.Fprintf(&s, "syntax = \"proto3\";\n\n// Domain %d of the synthetic benchmark schema.\npackage %s;\n\n", f, synthPackage)
		s.WriteString("import \"eda/v1/options.proto\";\nimport \"google/protobuf/timestamp.proto\";\n\n")
		fmt.Fprintf(&s, "option go_package = %q;\n", synthGoPackage)
		// One delivery default per file, as a team would set it.
		s.WriteString("option (eda.v1.file) = {delivery: {max_attempts: 5 dead_letter_topic: \"bench.dead\"}};\n\n")
		fmt.Fprintf(&s, "// Where an entity of domain %d is in its life.\nenum Status%02d {\n  STATUS%02d_UNSPECIFIED = 0;\n  STATUS%02d_ACTIVE = 1;\n  STATUS%02d_ARCHIVED = 2;\n}\n\n", f, f, f, f, f)
		for a := range synthAggregates {
			writeSynthAggregate(&s, f, f*synthAggregates+a)
		}
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(s.String()), 0o644); err != nil {
			tb.Fatal(err)
		}
		files = append(files, name)
	}
	return files
}

func writeSynthAggregate(s *strings.Builder, file, n int) {
	agg := fmt.Sprintf("Entity%03d", n)
	id := fmt.Sprintf("entity%03d_id", n)
	status := fmt.Sprintf("Status%02d", file)
	fmt.Fprintf(s, "// %s is the state of an entity, built from its events.\nmessage %s {\n", agg, agg)
	s.WriteString("  option (eda.v1.message).aggregate = {snapshot: {every: 100}};\n\n")
	fmt.Fprintf(s, "  string %s = 1 [(eda.v1.field).aggregate_id = true];\n", id)
	fmt.Fprintf(s, "  string name = 2;\n  %s status = 3;\n  repeated string tags = 4;\n  string owner_id = 5;\n  google.protobuf.Timestamp updated_at = 6;\n}\n\n", status)
	for i, verb := range eventVerbs {
		fmt.Fprintf(s, "// %s%s records that an entity was %s.\nmessage %s%s {\n", agg, verb, strings.ToLower(verb), agg, verb)
		if i%4 == 0 {
			fmt.Fprintf(s, "  option (eda.v1.message).event = {aggregate: %q delivery: {max_attempts: 3 initial_backoff: \"50ms\"}};\n\n", agg)
		} else {
			fmt.Fprintf(s, "  option (eda.v1.message).event = {aggregate: %q};\n\n", agg)
		}
		fmt.Fprintf(s, "  string %s = 1;\n", id)
		s.WriteString("  string tenant_id = 2 [(eda.v1.field).partition_key = true];\n")
		fmt.Fprintf(s, "  string actor = 3;\n  google.protobuf.Timestamp occurred_at = 4;\n  %s status = 5;\n  repeated string tags = 6;\n  int64 amount_cents = 7;\n}\n\n", status)
	}
	for _, verb := range commandVerbs {
		fmt.Fprintf(s, "// %s%s asks to %s an entity.\nmessage %s%s {\n", verb, agg, strings.ToLower(verb), verb, agg)
		fmt.Fprintf(s, "  option (eda.v1.message).command = {aggregate: %q};\n\n", agg)
		fmt.Fprintf(s, "  string %s = 1;\n  string tenant_id = 2;\n  string name = 3;\n  repeated string tags = 4;\n}\n\n", id)
	}
}

// schemasDir is the import root of eda/v1/options.proto.
var schemasDir = filepath.Join("..", "schemas")

// BenchmarkGenerate runs protoc-gen-eda and protoc-gen-go in process on the
// same request: the 2,000-message synthetic schema, compiled once before the
// timer. Each op is one plugin run on the whole request, as protoc or `eda
// generate` would start it, including protogen's own work on the request.
func BenchmarkGenerate(b *testing.B) {
	dir := b.TempDir()
	files := writeSynthSchema(b, dir)
	req, err := compile.Request(context.Background(), []string{dir, schemasDir}, files, "")
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range []func() compile.Plugin{compile.Eda, compile.Go} {
		plugin := p()
		b.Run(strings.TrimPrefix(plugin.Name, "protoc-gen-"), func(b *testing.B) {
			b.ReportAllocs()
			var out []*pluginpb.CodeGeneratorResponse_File
			cpu0 := cpuTime()
			for b.Loop() {
				var err error
				if out, err = compile.Generate(req, "", plugin); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu0)
			b.ReportMetric(float64(outputBytes(out)), "out-bytes")
		})
	}
}

// reportCPU reports the process CPU time (user and system, every thread,
// the garbage collector's included) per op since cpu0: steadier than ns/op
// when other processes compete for the cores.
func reportCPU(b *testing.B, cpu0 time.Duration) {
	if cpu := cpuTime() - cpu0; cpu > 0 && b.N > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

func outputBytes(files []*pluginpb.CodeGeneratorResponse_File) int {
	n := 0
	for _, f := range files {
		n += len(f.GetContent())
	}
	return n
}

// orders is the example schema: one file, five annotated messages.
var (
	ordersImports = []string{filepath.Join("..", "examples", "orders", "proto"), schemasDir}
	ordersFile    = "shop/orders/v1/orders.proto"
)

// BenchmarkGenerateOrders is the one-file schema end to end in process:
// compile the .proto with protocompile and generate, as `eda generate` does.
// "eda" runs protoc-gen-eda only; "go+eda" runs both plugins, which is what
// `eda generate` does for a buf.gen.yaml like this repository's.
func BenchmarkGenerateOrders(b *testing.B) {
	run := func(b *testing.B, plugins ...func() compile.Plugin) {
		b.ReportAllocs()
		ctx := context.Background()
		cpu0 := cpuTime()
		for b.Loop() {
			req, err := compile.Request(ctx, ordersImports, []string{ordersFile}, "")
			if err != nil {
				b.Fatal(err)
			}
			for _, p := range plugins {
				if _, err := compile.Generate(req, "", p()); err != nil {
					b.Fatal(err)
				}
			}
		}
		reportCPU(b, cpu0)
	}
	b.Run("compile", func(b *testing.B) { run(b) })
	b.Run("eda", func(b *testing.B) { run(b, compile.Eda) })
	b.Run("go+eda", func(b *testing.B) { run(b, compile.Go, compile.Eda) })
}

// BenchmarkProtocOrders runs protoc on the orders example with the plugin
// binaries, built before the timer from this module: the cost a protoc or
// buf user sees, process start-up included. "none" runs protoc with no
// plugin (it writes a descriptor set) as the floor. Skipped without protoc.
func BenchmarkProtocOrders(b *testing.B) {
	protoc, err := exec.LookPath("protoc")
	if err != nil {
		b.Skip("protoc is not on PATH")
	}
	bin := b.TempDir()
	build := func(name, pkg string) string {
		path := filepath.Join(bin, name)
		cmd := exec.Command("go", "build", "-o", path, pkg)
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
		return path
	}
	edaPlugin := build("protoc-gen-eda", "./cmd/protoc-gen-eda")
	goPlugin := build("protoc-gen-go", "google.golang.org/protobuf/cmd/protoc-gen-go")
	out := b.TempDir()
	args := []string{"-I", ordersImports[0], "-I", ordersImports[1]}
	for _, c := range []struct {
		name string
		args []string
	}{
		{"none", []string{"-o", filepath.Join(out, "orders.binpb")}},
		{"go", []string{"--plugin=protoc-gen-go=" + goPlugin, "--go_out=" + out}},
		{"eda", []string{"--plugin=protoc-gen-eda=" + edaPlugin, "--eda_out=" + out}},
	} {
		b.Run(c.name, func(b *testing.B) {
			argv := append(append(append([]string{}, args...), c.args...), ordersFile)
			for b.Loop() {
				if out, err := exec.Command(protoc, argv...).CombinedOutput(); err != nil {
					b.Fatalf("protoc: %v\n%s", err, out)
				}
			}
		})
	}
}
