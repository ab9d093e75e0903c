package evolution_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/protoc-gen-eda/eda/evolution"
	"github.com/protoc-gen-eda/eda/internal/edatest"
)

// The rule catalogue's cases live in testdata/rules/<RULE_ID>/<case>/:
// prev/ and cur/ hold the two versions of the schema (each directory is its
// own import path), want.txt the findings Check returns, one
// Finding.String() a line. A case is a violation (named "violation" or
// "violation_*": the rule's own finding must be among want.txt) or a near
// miss ("near_miss" or "near_miss_*": a similar change the rule must not
// report). The first line of the first file of cur/ is a comment with the
// case's one-sentence description, which the rule catalogue in
// docs/evolution-rules.md shows above the case. A case of a rule that needs
// a history holds releases/<name>/ directories, oldest first by name,
// instead of prev/, and is checked with CheckHistory.

var update = flag.Bool("update", false, "rewrite testdata/rules/*/*/want.txt from Check's findings and docs/evolution-rules.md from the cases")

const (
	rulesDir = "testdata/rules"
	docPath  = "../docs/evolution-rules.md"
	// edaOptions is the eda options file, copied into buf's modules since
	// buf does not have evolution.Compile's built-in copy.
	edaOptions = "../schemas/eda/v1/options.proto"
)

// Case kinds, the prefixes of case directory names.
const (
	violation = "violation"
	nearMiss  = "near_miss"
)

// ruleCase is one case directory.
type ruleCase struct {
	rule, name, dir string
	// description is the first line of the first file of cur/, without
	// its comment marker.
	description string
	prev, cur   []protoFile
	// releases, if set, is the history CheckHistory compares cur with;
	// prev is then the last release.
	releases []release
	want     []string
}

// release is one release of a history case.
type release struct {
	name  string
	files []protoFile
}

func (c ruleCase) id() string   { return c.rule + "/" + c.name }
func (c ruleCase) kind() string { return kindOf(c.name) }

// protoFile is one file of a case, path relative to prev/ or cur/.
type protoFile struct {
	path, body string
}

// kindOf returns the kind a case directory's name gives, or "".
func kindOf(name string) string {
	for _, k := range []string{violation, nearMiss} {
		if name == k || strings.HasPrefix(name, k+"_") {
			return k
		}
	}
	return ""
}

// catalogueRules is the part of evolution.Rules that the cases cover: the
// SAMPLE rules decode recorded payloads and are tested with them.
func catalogueRules() []evolution.Rule {
	var out []evolution.Rule
	for _, r := range evolution.Rules {
		if r.Category != evolution.CategorySample {
			out = append(out, r)
		}
	}
	return out
}

// loadCases reads every case directory, sorted by rule and case name. A
// malformed directory fails the test.
func loadCases(t *testing.T) []ruleCase {
	t.Helper()
	rules, err := os.ReadDir(rulesDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []ruleCase
	for _, r := range rules {
		if !r.IsDir() {
			t.Errorf("%s/%s: only rule directories belong here", rulesDir, r.Name())
			continue
		}
		cases, err := os.ReadDir(filepath.Join(rulesDir, r.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			dir := filepath.Join(rulesDir, r.Name(), c.Name())
			if !c.IsDir() || kindOf(c.Name()) == "" {
				t.Errorf("%s: a case is a directory named violation, violation_*, near_miss or near_miss_*", dir)
				continue
			}
			rc := ruleCase{rule: r.Name(), name: c.Name(), dir: dir}
			if rels, err := os.ReadDir(filepath.Join(dir, "releases")); err == nil {
				for _, r := range rels {
					rc.releases = append(rc.releases, release{name: r.Name(), files: readProtos(t, filepath.Join(dir, "releases", r.Name()))})
				}
				if len(rc.releases) > 0 {
					rc.prev = rc.releases[len(rc.releases)-1].files
				}
			} else {
				rc.prev = readProtos(t, filepath.Join(dir, "prev"))
			}
			rc.cur = readProtos(t, filepath.Join(dir, "cur"))
			if len(rc.prev) == 0 || len(rc.cur) == 0 {
				t.Errorf("%s: prev/ and cur/ each need at least one .proto file", dir)
				continue
			}
			first, _, _ := strings.Cut(rc.cur[0].body, "\n")
			desc, ok := strings.CutPrefix(first, "// ")
			if !ok || strings.TrimSpace(desc) == "" {
				t.Errorf("%s: the first line of cur/%s must be a comment describing the case in one sentence", dir, rc.cur[0].path)
				continue
			}
			rc.description = strings.TrimSpace(desc)
			want, err := os.ReadFile(filepath.Join(dir, "want.txt"))
			if err != nil && !(*update && errors.Is(err, fs.ErrNotExist)) {
				t.Errorf("%s: %v (run go test ./evolution -run TestCatalogue -update to create it, then review it)", dir, err)
			}
			rc.want = lines(string(want))
			out = append(out, rc)
		}
	}
	return out
}

// readProtos returns the .proto files under dir, sorted by path.
func readProtos(t *testing.T, dir string) []protoFile {
	t.Helper()
	var out []protoFile
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".proto" {
			return err
		}
		body, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		out = append(out, protoFile{path: filepath.ToSlash(rel), body: string(body)})
		return nil
	})
	if err != nil {
		t.Errorf("%s: %v", dir, err)
	}
	slices.SortFunc(out, func(a, b protoFile) int { return strings.Compare(a.path, b.path) })
	return out
}

func lines(s string) []string {
	var out []string
	for l := range strings.Lines(s) {
		if l = strings.TrimRight(l, "\r\n"); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// check compiles both versions of c and returns Check's findings.
func check(t *testing.T, c ruleCase) []evolution.Finding {
	t.Helper()
	compile := func(sub string, files []protoFile) *evolution.Schema {
		var names []string
		for _, f := range files {
			names = append(names, f.path)
		}
		s, err := evolution.Compile(context.Background(), []string{filepath.Join(c.dir, sub)}, names)
		if err != nil {
			t.Fatalf("%s/%s: %v", c.dir, sub, err)
		}
		return s
	}
	if len(c.releases) > 0 {
		var history []evolution.Release
		for _, r := range c.releases {
			history = append(history, evolution.Release{Name: r.name, Schema: compile(filepath.Join("releases", r.name), r.files)})
		}
		return evolution.CheckHistory(history, compile("cur", c.cur))
	}
	return evolution.Check(compile("prev", c.prev), compile("cur", c.cur))
}

// TestCatalogue checks every case's findings against its want.txt, and
// that every rule has a violation and a near miss.
func TestCatalogue(t *testing.T) {
	cases := loadCases(t)
	has := map[string]map[string]bool{}
	for _, c := range cases {
		if has[c.rule] == nil {
			has[c.rule] = map[string]bool{}
		}
		has[c.rule][c.kind()] = true
	}
	var missing []string
	for _, r := range catalogueRules() {
		for _, k := range []string{violation, nearMiss} {
			if !has[r.ID][k] {
				missing = append(missing, fmt.Sprintf("%s/%s", r.ID, k))
			}
		}
		delete(has, r.ID)
	}
	if len(missing) > 0 {
		t.Errorf("rules without a case (add %s/<RULE_ID>/<case>/{prev,cur}/*.proto):\n  %s", rulesDir, strings.Join(missing, "\n  "))
	}
	for _, rule := range slices.Sorted(func(yield func(string) bool) {
		for id := range has {
			if !yield(id) {
				return
			}
		}
	}) {
		if r, ok := evolution.RuleByID(rule); ok {
			t.Errorf("%s/%s: rule of category %s is tested elsewhere, not in the catalogue", rulesDir, rule, r.Category)
		} else {
			t.Errorf("%s/%s: no such rule in evolution.Rules", rulesDir, rule)
		}
	}

	for _, c := range cases {
		t.Run(c.id(), func(t *testing.T) {
			var got []string
			reported := false
			for _, f := range check(t, c) {
				got = append(got, f.String())
				reported = reported || f.Rule == c.rule
			}
			if *update {
				text := strings.Join(got, "\n")
				if text != "" {
					text += "\n"
				}
				if err := os.WriteFile(filepath.Join(c.dir, "want.txt"), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			} else if !slices.Equal(got, c.want) {
				t.Errorf("findings differ from want.txt (go test ./evolution -run TestCatalogue -update rewrites it)\ngot:\n  %s\nwant:\n  %s",
					strings.Join(got, "\n  "), strings.Join(c.want, "\n  "))
			}
			switch {
			case c.kind() == violation && !reported:
				t.Errorf("a violation case must produce a %s finding; got:\n  %s", c.rule, strings.Join(got, "\n  "))
			case c.kind() == nearMiss && reported:
				t.Errorf("a near miss must not produce a %s finding; got:\n  %s", c.rule, strings.Join(got, "\n  "))
			}
		})
	}
}

// bufException is a documented difference between our findings and buf's
// on one case: rule file:line entries only one side reports.
type bufException struct {
	onlyOurs, onlyBuf []string
	// why is shown in docs/evolution-rules.md.
	why string
}

// bufExceptions are the cases where `buf breaking` intentionally reports
// something else than Check for a rule both have, keyed by case.
var bufExceptions = map[string]bufException{
	"EVENT_VERSION_BUMP/near_miss": {
		onlyBuf: []string{"FIELD_WIRE_COMPATIBLE_TYPE orders.proto:12", "FIELD_WIRE_JSON_COMPATIBLE_TYPE orders.proto:12"},
		why: "An event's version bump accepts changes to its own fields: the upcaster registered for the old version " +
			"rewrites stored payloads. buf knows nothing of versions and reports the type change.",
	},
}

// bufPositionless are rules buf reports without a file or line; for them
// only the rule is compared.
var bufPositionless = map[string]string{
	evolution.FileNoDelete: "buf reports a deleted file at no path and 1:1; `eda breaking` points at the deleted file's package statement",
}

// bufFileLine is where buf points the deletion of a top-level message or
// enum: the file's first line. Check points at the file's package statement
// instead, next to the declarations; such findings are compared at the
// first line.
const bufFileLine = 1

// bufFinding is one line of `buf breaking --error-format json`.
type bufFinding struct {
	Path      string `json:"path"`
	StartLine int    `json:"start_line"`
	Type      string `json:"type"`
	Message   string `json:"message"`
}

// findBuf returns the buf binary: on PATH, else the one .ci/run builds.
func findBuf(t *testing.T) string {
	t.Helper()
	if path, err := exec.LookPath("buf"); err == nil {
		return path
	}
	if path, err := filepath.Abs("../.cache/bin/buf"); err == nil {
		if _, err := os.Stat(path); err == nil {
			return path
		}
	}
	edatest.Unavailable(t, "buf is not on PATH nor at .cache/bin/buf (go build -modfile=tools/go.mod -o .cache/bin/buf github.com/bufbuild/buf/cmd/buf)")
	return ""
}

// sharedRules returns the IDs of our WIRE, WIRE_JSON and FILE rules that buf
// also has, sorted.
func sharedRules(t *testing.T, buf string) []string {
	t.Helper()
	out, err := exec.Command(buf, "config", "ls-breaking-rules", "--version", "v2", "--format", "json").Output()
	if err != nil {
		t.Fatalf("buf config ls-breaking-rules: %v", err)
	}
	bufRules := map[string]bool{}
	for l := range strings.Lines(string(out)) {
		var r struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("buf config ls-breaking-rules: %v in %q", err, l)
		}
		bufRules[r.ID] = true
	}
	var ids []string
	for _, r := range evolution.Rules {
		switch r.Category {
		case evolution.CategoryWire, evolution.CategoryWireJSON, evolution.CategoryFile:
			if bufRules[r.ID] {
				ids = append(ids, r.ID)
			}
		}
	}
	slices.Sort(ids)
	return ids
}

// bufModule writes files into a new buf module (with the eda options, which
// buf has no built-in copy of) that checks rules, and returns its directory.
func bufModule(t *testing.T, files []protoFile, rules []string) string {
	t.Helper()
	dir := t.TempDir()
	options, err := os.ReadFile(edaOptions)
	if err != nil {
		t.Fatal(err)
	}
	all := append(slices.Clone(files),
		protoFile{"eda/v1/options.proto", string(options)},
		protoFile{"buf.yaml", "version: v2\nbreaking:\n  use:\n    - " + strings.Join(rules, "\n    - ") + "\n"})
	for _, f := range all {
		path := filepath.Join(dir, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(f.body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runBuf runs `buf breaking cur --against prev` and returns its findings.
func runBuf(t *testing.T, buf, prev, cur string) []bufFinding {
	t.Helper()
	var stdout, stderr bytes.Buffer
	// Run in cur so that buf names files relative to the module, as
	// Finding.File is.
	cmd := exec.Command(buf, "breaking", ".", "--against", prev, "--error-format", "json")
	cmd.Dir, cmd.Stdout, cmd.Stderr = cur, &stdout, &stderr
	err := cmd.Run()
	// buf exits with 100 when it found breaking changes.
	const bufFoundBreaking = 100
	if exit := (*exec.ExitError)(nil); err != nil && !(errors.As(err, &exit) && exit.ExitCode() == bufFoundBreaking) {
		t.Fatalf("buf breaking: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	var out []bufFinding
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var f bufFinding
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			t.Fatalf("buf breaking: %v in %q", err, sc.Text())
		}
		out = append(out, f)
	}
	return out
}

// key is how findings are compared with buf's: rule file:line.
func key(rule, file string, line int) string {
	if _, ok := bufPositionless[rule]; ok {
		return rule
	}
	return fmt.Sprintf("%s %s:%d", rule, file, line)
}

// TestCatalogueBuf runs `buf breaking` on every case and checks that, for
// the rules both have, buf reports the same rules at the same places as
// Check, but for the documented bufExceptions.
func TestCatalogueBuf(t *testing.T) {
	buf := findBuf(t)
	shared := sharedRules(t, buf)
	for _, id := range []string{evolution.FieldNoDeleteUnlessNumberReserved, evolution.FieldWireCompatibleType, evolution.MessageNoDelete} {
		if !slices.Contains(shared, id) {
			t.Fatalf("buf has no rule %s: is it buf v1.75.0? shared rules: %v", id, shared)
		}
	}
	cases := loadCases(t)
	for id := range bufExceptions {
		if !slices.ContainsFunc(cases, func(c ruleCase) bool { return c.id() == id }) {
			t.Errorf("bufExceptions names %s, which is not a case", id)
		}
	}
	for _, c := range cases {
		if len(c.releases) > 0 {
			// buf compares two versions; a history has no buf equivalent.
			continue
		}
		t.Run(c.id(), func(t *testing.T) {
			t.Parallel()
			ours := map[string]bool{}
			for _, f := range check(t, c) {
				if !slices.Contains(shared, f.Rule) {
					continue
				}
				line := f.Line
				if _, ok := f.Element.(protoreflect.FileDescriptor); ok && (f.Rule == evolution.MessageNoDelete || f.Rule == evolution.EnumNoDelete) {
					line = bufFileLine
				}
				ours[key(f.Rule, f.File, line)] = true
			}
			theirs := map[string]bool{}
			var raw []string
			found := runBuf(t, buf, bufModule(t, c.prev, shared), bufModule(t, c.cur, shared))
			for _, f := range found {
				theirs[key(f.Type, f.Path, f.StartLine)] = true
				raw = append(raw, fmt.Sprintf("%s:%d: %s: %s", f.Path, f.StartLine, f.Type, f.Message))
			}
			var onlyOurs, onlyBuf []string
			for k := range ours {
				if !theirs[k] {
					onlyOurs = append(onlyOurs, k)
				}
			}
			for k := range theirs {
				if !ours[k] {
					onlyBuf = append(onlyBuf, k)
				}
			}
			slices.Sort(onlyOurs)
			slices.Sort(onlyBuf)
			want := bufExceptions[c.id()]
			if !slices.Equal(onlyOurs, want.onlyOurs) || !slices.Equal(onlyBuf, want.onlyBuf) {
				t.Errorf("buf breaking and Check disagree beyond bufExceptions[%q]\nonly ours: %q (excepted %q)\nonly buf:  %q (excepted %q)\nbuf said:\n  %s",
					c.id(), onlyOurs, want.onlyOurs, onlyBuf, want.onlyBuf, strings.Join(raw, "\n  "))
			}
		})
	}
}

// categoryDocs introduces each category in docs/evolution-rules.md, in
// the order the document lists them.
var categoryDocs = []struct {
	category evolution.Category
	doc      string
}{
	{evolution.CategoryWire, "Rules that keep the binary encoding of stored events decodable: field numbers, wire types, reserved numbers."},
	{evolution.CategoryWireJSON, "Rules that keep protojson-encoded events parseable, on top of the binary encoding: field and enum value names, JSON names, JSON forms of values."},
	{evolution.CategoryFile, "Rules that keep each file's declarations, which generated code and the event type registry are built from."},
	{evolution.CategoryEvent, "Rules about what the eda.v1 annotations make part of an event's or command's contract beyond its bytes: type name, topic, aggregate id, partition key, meaning and version. They apply to messages annotated as events or commands only."},
}

// TestCatalogueDoc checks that docs/evolution-rules.md is generated from
// the current Rules and cases; -update rewrites it.
func TestCatalogueDoc(t *testing.T) {
	got := catalogueDoc(t, loadCases(t))
	if *update {
		if err := os.WriteFile(docPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatalf("%v (go test ./evolution -run TestCatalogueDoc -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of date with evolution.Rules or testdata/rules: go test ./evolution -run TestCatalogueDoc -update rewrites it", docPath)
	}
}

// catalogueDoc renders the rule catalogue.
func catalogueDoc(t *testing.T, cases []ruleCase) []byte {
	t.Helper()
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Schema evolution rules\n\n")
	p("<!-- Generated by `go test ./evolution -run TestCatalogueDoc -update` from evolution.Rules and evolution/testdata/rules. DO NOT EDIT. -->\n\n")
	p("`eda breaking` compares the current schema with the previous one and reports every change that would\n")
	p("keep stored events from being read back. Each finding names a rule of this catalogue. The rules are\n")
	p("grouped by category, after buf's breaking categories:\n\n")
	for _, c := range categoryDocs {
		p("- [%s](#%s): %s\n", c.category, strings.ToLower(string(c.category)), c.doc)
	}
	p("\nThe SAMPLE rules, which decode recorded payloads with the current schema, are described in\n[samples.md](samples.md).\n\n")
	p("A finding reads `file:line:column: RULE_ID: message`. The position points into the current schema at the\n")
	p("changed element or, for a deleted one, at its nearest surviving parent (its message or enum, or the\n")
	p("file's package statement); for a deleted file, at the previous file. Each rule below comes with a\n")
	p("violation and a near miss, a similar change the rule accepts, each as the proto files before and after\n")
	p("the change and the findings `eda breaking` prints for them (the cases live in\n")
	p("`evolution/testdata/rules`, and `go test ./evolution` checks them).\n\n")
	p("## Agreement with buf\n\n")
	p("The WIRE, WIRE_JSON and FILE rules carry the names of buf's rules, and `go test ./evolution` runs\n")
	p("`buf breaking` on every case below: for each rule buf also has, buf reports it in the same files and\n")
	p("lines as `eda breaking`, except for these documented differences:\n\n")
	p("- buf points the deletion of a top-level message or enum at the file's first line, `eda breaking` at its package statement.\n")
	for _, rule := range slices.Sorted(mapKeys(bufPositionless)) {
		p("- %s: %s.\n", rule, bufPositionless[rule])
	}
	for _, id := range slices.Sorted(mapKeys(bufExceptions)) {
		e := bufExceptions[id]
		rule, name, _ := strings.Cut(id, "/")
		p("- [%s, %s](#%s): %s", rule, strings.ReplaceAll(name, "_", " "), strings.ToLower(rule), e.why)
		if len(e.onlyBuf) > 0 {
			p(" Only buf reports `%s`.", strings.Join(e.onlyBuf, "`, `"))
		}
		if len(e.onlyOurs) > 0 {
			p(" Only `eda breaking` reports `%s`.", strings.Join(e.onlyOurs, "`, `"))
		}
		p("\n")
	}
	p("\nThe EVENT rules have no buf counterpart: they are where `eda breaking` is stricter than buf, which\n")
	p("sees only an event's bytes, not its type name, topic, stream or version.\n")

	byRule := map[string][]ruleCase{}
	for _, c := range cases {
		byRule[c.rule] = append(byRule[c.rule], c)
	}
	for _, cat := range categoryDocs {
		p("\n## %s\n", cat.category)
		for _, r := range catalogueRules() {
			if r.Category != cat.category {
				continue
			}
			p("\n### %s\n\n%s\n", r.ID, strings.Join(strings.Fields(r.Doc), " "))
			rc := byRule[r.ID]
			slices.SortStableFunc(rc, func(a, b ruleCase) int {
				// Violations first.
				return strings.Compare(b.kind(), a.kind())
			})
			for _, c := range rc {
				title := "Violation"
				if c.kind() == nearMiss {
					title = "Near miss"
				}
				p("\n**%s.** %s\n\n", title, c.description)
				if len(c.releases) > 0 {
					for _, r := range c.releases {
						writeFiles(&b, "Release "+r.name, r.files)
					}
				} else {
					writeFiles(&b, "Before", c.prev)
				}
				writeFiles(&b, "After", c.cur)
				if len(c.want) == 0 {
					p("No findings.\n")
					continue
				}
				p("Findings:\n\n```\n%s\n```\n", strings.Join(c.want, "\n"))
			}
		}
	}
	for _, r := range catalogueRules() {
		if !slices.ContainsFunc(categoryDocs, func(c struct {
			category evolution.Category
			doc      string
		}) bool {
			return c.category == r.Category
		}) {
			t.Errorf("rule %s has category %s, which categoryDocs does not describe", r.ID, r.Category)
		}
	}
	return []byte(b.String())
}

// writeFiles writes one version of a case's files as proto code blocks.
func writeFiles(b *strings.Builder, title string, files []protoFile) {
	for _, f := range files {
		fmt.Fprintf(b, "%s, `%s`:\n\n```proto\n%s```\n\n", title, f.path, f.body)
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
