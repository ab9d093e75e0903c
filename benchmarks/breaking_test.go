package benchmarks

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/protoc-gen-eda/eda/evolution"
	"github.com/protoc-gen-eda/eda/internal/edatest"
)

// The schema of BenchmarkBreaking: evoFilesPerPackage files in each of
// evoPackages proto packages, each file an enum and evoAggregates
// aggregates, and each aggregate its state (with a nested message and a
// map), len(evoEvents) events, len(evoCommands) commands and three value
// types (money; an address with a nested message and a map; a payment with
// a oneof and a nested message): 4 × 5 × 5 × (1 + 10 + 6 + 3) = 2,000
// top-level messages. Unlike BenchmarkGenerate's schema it spans several
// packages and uses every kind of declaration the wire rules look at.
const (
	evoFilesPerPackage = 5
	evoAggregates      = 5
)

var (
	// evoPackages are the proto packages, each with its aggregates' noun.
	evoPackages = []struct{ pkg, noun string }{
		{"orders", "Order"}, {"billing", "Invoice"}, {"catalog", "Product"}, {"shipping", "Shipment"},
	}
	evoEvents   = []string{"Created", "Updated", "Renamed", "Archived", "Restored", "Assigned", "Unassigned", "Approved", "Rejected", "Tagged"}
	evoCommands = []string{"Create", "Update", "Rename", "Archive", "Restore", "Assign"}
)

// The current version differs from the previous one by additive changes
// everywhere (an enum value per file, a field in every Updated event, every
// Create command and every aggregate state, and a new event per aggregate of
// the orders package: 25 new messages) and by four breaking changes, each
// in the first aggregate of the first file of a package:
//
//   - billing: Invoice025Archived loses its field actor (3), neither number
//     nor name reserved;
//   - catalog: Product050Money.nanos goes from int32 to int64, which the
//     binary encoding accepts and protojson does not (a number becomes a
//     string), and Product050Payment.Card.exp_month from int32 to string;
//   - shipping: the enum value STATUS15_ARCHIVED is renamed STATUS15_RETIRED.
//
// All four are in events or in types events use, which both tools check
// (eda leaves aggregate state unchecked by default: it is rebuilt).
const (
	evoDeletePackage = 1
	evoRetypePackage = 2
	evoRenamePackage = 3
)

// writeEvolutionWorkspace writes one version of the schema as a buf v2
// workspace under dir: buf.yaml checking WIRE_JSON, a copy of the eda
// options, and the files. current selects the current version.
func writeEvolutionWorkspace(tb testing.TB, dir string, current bool) {
	tb.Helper()
	options, err := os.ReadFile(filepath.Join(schemasDir, "eda", "v1", "options.proto"))
	if err != nil {
		tb.Fatal(err)
	}
	files := map[string]string{
		"buf.yaml":             "version: v2\nbreaking:\n  use:\n    - WIRE_JSON\n",
		"eda/v1/options.proto": string(options),
	}
	for p, pkg := range evoPackages {
		for f := range evoFilesPerPackage {
			file := p*evoFilesPerPackage + f
			name := fmt.Sprintf("bench/%s/v1/%s_%02d.proto", pkg.pkg, pkg.pkg, f)
			files[name] = evolutionFile(p, file, current)
		}
	}
	for name, body := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// evolutionFile returns file number file (counted across packages) of
// package p.
func evolutionFile(p, file int, current bool) string {
	pkg := evoPackages[p]
	var s strings.Builder
	fmt.Fprintf(&s, "syntax = \"proto3\";\n\n// The %s domain, part %d, of the schema evolution benchmark.\npackage bench.%s.v1;\n\n", pkg.pkg, file, pkg.pkg)
	s.WriteString("import \"eda/v1/options.proto\";\nimport \"google/protobuf/timestamp.proto\";\n\n")
	fmt.Fprintf(&s, "option go_package = \"example.com/bench/%s/v1;%sv1\";\n\n", pkg.pkg, pkg.pkg)
	archived := "ARCHIVED"
	if current && p == evoRenamePackage && file == p*evoFilesPerPackage {
		archived = "RETIRED"
	}
	fmt.Fprintf(&s, "// Where an entity of part %d is in its life.\nenum Status%02d {\n  STATUS%02d_UNSPECIFIED = 0;\n  STATUS%02d_ACTIVE = 1;\n  STATUS%02d_%s = 2;\n", file, file, file, file, file, archived)
	if current {
		fmt.Fprintf(&s, "  STATUS%02d_SUSPENDED = 3;\n", file)
	}
	s.WriteString("}\n\n")
	for a := range evoAggregates {
		n := file*evoAggregates + a
		first := a == 0 && file == p*evoFilesPerPackage
		writeEvolutionAggregate(&s, evolutionAggregate{
			name:    fmt.Sprintf("%s%03d", pkg.noun, n),
			id:      fmt.Sprintf("%s%03d_id", strings.ToLower(pkg.noun), n),
			status:  fmt.Sprintf("Status%02d", file),
			current: current,
			added:   current && p == 0,
			deleted: current && first && p == evoDeletePackage,
			retyped: current && first && p == evoRetypePackage,
		})
	}
	return s.String()
}

// evolutionAggregate says what to write for one aggregate.
type evolutionAggregate struct {
	name, id, status string
	// current adds the additive changes; added a new event.
	current, added bool
	// deleted and retyped apply a breaking change (see the constants).
	deleted, retyped bool
}

func writeEvolutionAggregate(s *strings.Builder, g evolutionAggregate) {
	nanos, expMonth := "int32", "int32"
	if g.retyped {
		nanos, expMonth = "int64", "string"
	}
	// Value types.
	fmt.Fprintf(s, "// %sMoney is an amount in a currency.\nmessage %sMoney {\n  int64 units = 1;\n  %s nanos = 2;\n  string currency = 3;\n}\n\n", g.name, g.name, nanos)
	fmt.Fprintf(s, "// %sAddress is a postal address.\nmessage %sAddress {\n", g.name, g.name)
	s.WriteString("  // Geo is a position on the globe.\n  message Geo {\n    double lat = 1;\n    double lng = 2;\n  }\n\n")
	s.WriteString("  repeated string lines = 1;\n  string city = 2;\n  string postal_code = 3;\n  string country = 4;\n  Geo geo = 5;\n  map<string, string> labels = 6;\n}\n\n")
	fmt.Fprintf(s, "// %sPayment is how something was paid.\nmessage %sPayment {\n", g.name, g.name)
	fmt.Fprintf(s, "  // Card is a payment card.\n  message Card {\n    string last4 = 1;\n    %s exp_month = 2;\n    int32 exp_year = 3;\n  }\n\n", expMonth)
	fmt.Fprintf(s, "  oneof method {\n    Card card = 1;\n    string voucher_code = 2;\n    bool cash = 3;\n  }\n  %sMoney amount = 4;\n}\n\n", g.name)

	// The aggregate's state.
	fmt.Fprintf(s, "// %s is the state of an entity, built from its events.\nmessage %s {\n", g.name, g.name)
	s.WriteString("  option (eda.v1.message).aggregate = {snapshot: {every: 100}};\n\n")
	fmt.Fprintf(s, "  // Line is one line of the entity.\n  message Line {\n    string sku = 1;\n    int32 quantity = 2;\n    %sMoney price = 3;\n  }\n\n", g.name)
	fmt.Fprintf(s, "  string %s = 1 [(eda.v1.field).aggregate_id = true];\n  string name = 2;\n  %s status = 3;\n", g.id, g.status)
	s.WriteString("  map<string, Line> lines = 4;\n  repeated string tags = 5;\n  google.protobuf.Timestamp updated_at = 6;\n")
	if g.current {
		s.WriteString("  int64 revision = 20;\n")
	}
	s.WriteString("}\n\n")

	events := evoEvents
	if g.added {
		events = append(slices.Clip(events), "Commented")
	}
	for i, verb := range events {
		fmt.Fprintf(s, "// %s%s records that an entity was %s.\nmessage %s%s {\n", g.name, verb, strings.ToLower(verb), g.name, verb)
		fmt.Fprintf(s, "  option (eda.v1.message).event = {aggregate: %q};\n\n", g.name)
		fmt.Fprintf(s, "  string %s = 1;\n  string tenant_id = 2 [(eda.v1.field).partition_key = true];\n", g.id)
		if !(g.deleted && verb == "Archived") {
			s.WriteString("  string actor = 3;\n")
		}
		fmt.Fprintf(s, "  google.protobuf.Timestamp occurred_at = 4;\n  %s status = 5;\n  repeated string tags = 6;\n  %sMoney amount = 7;\n", g.status, g.name)
		switch i % 3 {
		case 0:
			fmt.Fprintf(s, "  %sAddress address = 8;\n  map<string, string> attributes = 9;\n", g.name)
		case 1:
			fmt.Fprintf(s, "  %sPayment payment = 8;\n", g.name)
		default:
			s.WriteString("  oneof reason {\n    string note = 8;\n    int32 code = 9;\n  }\n")
		}
		if g.current && verb == "Updated" {
			s.WriteString("  string change_reason = 20;\n")
		}
		s.WriteString("}\n\n")
	}
	for _, verb := range evoCommands {
		fmt.Fprintf(s, "// %s%s asks to %s an entity.\nmessage %s%s {\n", verb, g.name, strings.ToLower(verb), verb, g.name)
		fmt.Fprintf(s, "  option (eda.v1.message).command = {aggregate: %q};\n\n", g.name)
		fmt.Fprintf(s, "  string %s = 1;\n  string tenant_id = 2;\n  string requested_by = 3;\n  %sMoney amount = 4;\n  map<string, string> metadata = 5;\n", g.id, g.name)
		if g.current && verb == "Create" {
			s.WriteString("  repeated string labels = 20;\n")
		}
		s.WriteString("}\n\n")
	}
}

// breakingFixture is what BenchmarkBreaking and TestBreakingBenchAgrees
// share: both versions on disk and the two commands.
type breakingFixture struct {
	prev, cur string
	eda, buf  string
	// bufCache is BUF_CACHE_DIR for every buf run, shared across them.
	bufCache string
}

// newBreakingFixture writes both versions and builds eda. It skips,
// through edatest.Unavailable, when buf is missing.
func newBreakingFixture(tb testing.TB) *breakingFixture {
	tb.Helper()
	fx := &breakingFixture{buf: findBuf(tb)}
	root := tb.TempDir()
	fx.prev, fx.cur = filepath.Join(root, "prev"), filepath.Join(root, "cur")
	fx.bufCache = filepath.Join(root, "buf-cache")
	writeEvolutionWorkspace(tb, fx.prev, false)
	writeEvolutionWorkspace(tb, fx.cur, true)
	fx.eda = filepath.Join(root, "eda")
	cmd := exec.Command("go", "build", "-o", fx.eda, "./cmd/eda")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build ./cmd/eda: %v\n%s", err, out)
	}
	return fx
}

// findBuf returns the buf binary: on PATH, else the one .ci/run builds.
func findBuf(tb testing.TB) string {
	tb.Helper()
	if path, err := exec.LookPath("buf"); err == nil {
		return path
	}
	if path, err := filepath.Abs(filepath.Join("..", ".cache", "bin", "buf")); err == nil {
		if _, err := os.Stat(path); err == nil {
			return path
		}
	}
	edatest.Unavailable(tb, "buf is not on PATH nor at .cache/bin/buf (go build -modfile=tools/go.mod -o .cache/bin/buf github.com/bufbuild/buf/cmd/buf)")
	return ""
}

// Exit statuses that mean "findings reported": eda breaking's 1, buf's 100.
const (
	edaFoundBreaking = 1
	bufFoundBreaking = 100
)

// runEda runs `eda breaking --against prev` in the current workspace, as a
// user or CI does, and returns its output and the CPU time of the process.
func (fx *breakingFixture) runEda(tb testing.TB, args ...string) ([]byte, time.Duration) {
	return fx.run(tb, edaFoundBreaking, fx.eda, append([]string{"breaking", "--against", fx.prev}, args...)...)
}

// runBuf runs `buf breaking --against prev` in the current workspace.
func (fx *breakingFixture) runBuf(tb testing.TB, args ...string) ([]byte, time.Duration) {
	return fx.run(tb, bufFoundBreaking, fx.buf, append([]string{"breaking", "--against", fx.prev}, args...)...)
}

// run runs name in the current workspace; it must exit with found, since
// the versions differ by breaking changes.
func (fx *breakingFixture) run(tb testing.TB, found int, name string, args ...string) ([]byte, time.Duration) {
	tb.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = fx.cur, &stdout, &stderr
	cmd.Env = append(os.Environ(), "BUF_CACHE_DIR="+fx.bufCache)
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != found {
		tb.Fatalf("%s %s: %v, want exit status %d\n%s%s", filepath.Base(name), strings.Join(args, " "), err, found, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes(), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// BenchmarkBreaking runs `eda breaking` and `buf breaking` (WIRE_JSON) on
// the 2,000-message schema against its previous version, each as a new
// process in the workspace of the current version, as CI runs them: every
// op compiles both versions from source and compares them. "ratio" runs
// both twice per op, each going first once, and reports eda's wall time
// over buf's, which machine noise moves far less than the two separate
// sub-benchmarks; "compile" and "check" are eda's two steps in process.
// cpu-ns/op of "eda" and "buf" is the child process's user and system time.
func BenchmarkBreaking(b *testing.B) {
	fx := newBreakingFixture(b)
	fx.assertAgree(b)

	process := func(b *testing.B, run func(testing.TB, ...string) ([]byte, time.Duration)) {
		var cpu time.Duration
		for b.Loop() {
			_, c := run(b)
			cpu += c
		}
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
	b.Run("eda", func(b *testing.B) { process(b, fx.runEda) })
	b.Run("buf", func(b *testing.B) { process(b, fx.runBuf) })
	b.Run("ratio", func(b *testing.B) {
		// Each op runs eda, buf, buf, eda: both orders, so neither tool
		// always runs on a cache the other warmed or in the other's wake.
		var edaTime, bufTime time.Duration
		timed := func(run func(testing.TB, ...string) ([]byte, time.Duration)) time.Duration {
			start := time.Now()
			run(b)
			return time.Since(start)
		}
		for b.Loop() {
			edaTime += timed(fx.runEda)
			bufTime += timed(fx.runBuf)
			bufTime += timed(fx.runBuf)
			edaTime += timed(fx.runEda)
		}
		b.ReportMetric(float64(edaTime)/float64(bufTime), "eda/buf")
	})

	ctx := context.Background()
	compile := func(b testing.TB, dir string) *evolution.Schema {
		s, err := evolution.Compile(ctx, []string{dir}, evolutionFiles(b, dir))
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	b.Run("compile", func(b *testing.B) {
		b.ReportAllocs()
		cpu0 := cpuTime()
		for b.Loop() {
			compile(b, fx.prev)
			compile(b, fx.cur)
		}
		reportCPU(b, cpu0)
	})
	b.Run("check", func(b *testing.B) {
		prev, cur := compile(b, fx.prev), compile(b, fx.cur)
		b.ReportAllocs()
		var findings []evolution.Finding
		cpu0 := cpuTime()
		for b.Loop() {
			findings = evolution.Check(prev, cur)
		}
		reportCPU(b, cpu0)
		b.ReportMetric(float64(len(findings)), "findings")
	})
}

// evolutionFiles lists the .proto files of the workspace in dir, relative
// to it, as eda breaking finds them.
func evolutionFiles(tb testing.TB, dir string) []string {
	tb.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".proto") {
			rel, err := filepath.Rel(dir, path)
			files = append(files, filepath.ToSlash(rel))
			return err
		}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return files
}

// TestBreakingBenchAgrees checks that BenchmarkBreaking compares equal
// work: on the benchmark's schema, eda and buf report the same number of
// findings of each WIRE_JSON rule they share, and those are the breaking
// changes the schema was written with.
func TestBreakingBenchAgrees(t *testing.T) {
	fx := newBreakingFixture(t)
	got := fx.assertAgree(t)
	want := map[string]int{
		evolution.FieldNoDeleteUnlessNumberReserved: 1, // Invoice025Archived.actor
		evolution.FieldNoDeleteUnlessNameReserved:   1,
		evolution.FieldWireJSONCompatibleType:       2, // Product050Money.nanos, Product050Payment.Card.exp_month
		evolution.EnumValueSameName:                 1, // STATUS15_ARCHIVED
	}
	if !maps.Equal(got, want) {
		t.Errorf("findings by shared rule = %v, want %v", got, want)
	}
}

// assertAgree runs both tools once and fails unless they report the same
// number of findings per shared rule. It returns those counts.
func (fx *breakingFixture) assertAgree(tb testing.TB) map[string]int {
	tb.Helper()
	shared := fx.sharedRules(tb)

	edaOut, _ := fx.runEda(tb, "--format", "json")
	var edaFindings []struct{ Rule string }
	if err := json.Unmarshal(edaOut, &edaFindings); err != nil {
		tb.Fatalf("eda breaking --format json: %v", err)
	}
	edaCount := map[string]int{}
	for _, f := range edaFindings {
		if shared[f.Rule] {
			edaCount[f.Rule]++
		}
	}

	bufOut, _ := fx.runBuf(tb, "--error-format", "json")
	bufCount := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(bufOut))
	for sc.Scan() {
		var f struct{ Type string }
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			tb.Fatalf("buf breaking --error-format json: %v in %q", err, sc.Text())
		}
		if shared[f.Type] {
			bufCount[f.Type]++
		}
	}
	if !maps.Equal(edaCount, bufCount) {
		tb.Fatalf("eda and buf disagree on the shared WIRE_JSON rules, so the benchmark would not compare equal work:\neda: %v\nbuf: %v\n(eda's output:\n%s\nbuf's:\n%s)", edaCount, bufCount, edaOut, bufOut)
	}
	if len(edaCount) == 0 {
		tb.Fatal("neither tool reports a finding of a shared rule: the two versions do not differ as the benchmark means")
	}
	return edaCount
}

// sharedRules returns the rules buf checks in the workspace (WIRE_JSON)
// that eda's catalogue has too.
func (fx *breakingFixture) sharedRules(tb testing.TB) map[string]bool {
	tb.Helper()
	cmd := exec.Command(fx.buf, "config", "ls-breaking-rules", "--configured-only", "--format", "json")
	cmd.Dir = fx.cur
	cmd.Env = append(os.Environ(), "BUF_CACHE_DIR="+fx.bufCache)
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("buf config ls-breaking-rules: %v", err)
	}
	shared := map[string]bool{}
	for l := range strings.Lines(string(out)) {
		var r struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			tb.Fatalf("buf config ls-breaking-rules: %v in %q", err, l)
		}
		if _, ok := evolution.RuleByID(r.ID); ok {
			shared[r.ID] = true
		}
	}
	if len(shared) == 0 {
		tb.Fatalf("buf checks no rule eda has; buf config ls-breaking-rules printed:\n%s", out)
	}
	return shared
}
