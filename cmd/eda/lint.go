package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/protoc-gen-eda/eda/evolution"
)

var lintCommand = &command{
	name:    "lint",
	summary: "check the conventions of eda annotations: event names, owners, type names",
	run:     runLint,
	help:    func(w io.Writer) { newLintFlags().usage(w) },
}

const lintUsage = `Usage: eda lint [flags] [files...]

Lint checks the conventions of the eda annotations in the workspace's .proto
files (the modules of buf.yaml, in the current directory or --config): events
named in the past tense, commands in the imperative, every event with an
owner, explicit and unversioned type names. It prints one line per finding,
as file:line:col: RULE_ID: message. The rules are listed below; what each
checks, why, and how to fix a finding is in docs/lint.md.

A rule is switched off with --disable, with buf.yaml's lint.except (entries
naming eda lint rules), for some paths with lint.ignore_only, and for one
message with a leading comment // eda:lint:ignore RULE_ID. Files under
lint.ignore are not checked. lint.use is not read: eda lint applies all its
rules.

Files, if given, restrict the check to them: .proto files or directories,
relative to a module root (shop/v1/orders.proto) or to buf.yaml's directory.

The exit status is 0 when there is no finding, 1 when there are findings,
and 2 when the schemas could not be checked: bad usage, a missing buf.yaml,
or a schema that does not compile.

Flags:
`

// lintOptions are the flags of eda lint.
type lintOptions struct {
	flags   *pflag.FlagSet
	config  string
	format  string
	disable []string
	help    bool
}

func newLintFlags() *lintOptions {
	o := &lintOptions{}
	fs := pflag.NewFlagSet("eda lint", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.config, "config", ".", "the `dir` of buf.yaml")
	fs.StringVar(&o.format, "format", formatText, "output `format`: text or json")
	fs.StringSliceVar(&o.disable, "disable", nil, "switch the `rule` off, repeatable")
	fs.BoolVarP(&o.help, "help", "h", false, "print this help")
	o.flags = fs
	return o
}

func (o *lintOptions) usage(w io.Writer) {
	fmt.Fprint(w, lintUsage)
	fmt.Fprint(w, o.flags.FlagUsages())
	fmt.Fprint(w, "\nRules:\n")
	for _, r := range evolution.LintRules {
		fmt.Fprintf(w, "  %s\n", r.ID)
	}
}

// runLint is eda lint. It shares eda breaking's exit statuses.
func runLint(args []string, stdout, stderr io.Writer) int {
	o := newLintFlags()
	if err := o.flags.Parse(args); err != nil {
		return lintUsageFailure(stderr, err)
	}
	if o.help {
		o.usage(stdout)
		return breakingOK
	}
	findings, err := o.lint(context.Background())
	var usage usageError
	if errors.As(err, &usage) {
		return lintUsageFailure(stderr, err)
	}
	if err != nil {
		fmt.Fprintf(stderr, "eda lint: %v\n", err)
		return breakingCannotDo
	}
	if err := writeFindings(stdout, o.format, findings); err != nil {
		fmt.Fprintf(stderr, "eda lint: %v\n", err)
		return breakingCannotDo
	}
	if len(findings) > 0 {
		return breakingFound
	}
	return breakingOK
}

func lintUsageFailure(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "eda lint: %v\nRun 'eda lint --help' for usage.\n", err)
	return breakingCannotDo
}

// lint compiles the workspace and lints it. Its findings name files as on
// disk, relative to the working directory.
func (o *lintOptions) lint(ctx context.Context) ([]evolution.Finding, error) {
	if o.format != formatText && o.format != formatJSON {
		return nil, usagef("--format %s: it is text or json", o.format)
	}
	for _, id := range o.disable {
		if !isLintRule(id) {
			return nil, usagef("--disable %s: no such rule; the rules are %s", id, strings.Join(lintRuleIDs(), ", "))
		}
	}
	if info, err := os.Stat(o.config); err != nil || !info.IsDir() {
		return nil, usagef("--config %s is not a directory: give the directory holding buf.yaml", o.config)
	}
	w, err := loadWorkspace(o.config)
	if err != nil {
		return nil, err
	}
	conf, err := loadLintConfig(o.config)
	if err != nil {
		return nil, err
	}
	files := w.files()
	if args := o.flags.Args(); len(args) > 0 {
		if files, err = w.selectFiles(args); err != nil {
			return nil, err
		}
	}
	// Files under lint.ignore are not compiled as inputs (they are still
	// imported where needed), so a broken ignored file does not stop lint.
	files = slices.DeleteFunc(files, func(name string) bool {
		return conf.forModule(w.byFile[name].path).ignores("", path.Join(w.byFile[name].path, name))
	})
	if len(files) == 0 {
		return nil, nil
	}
	schema, err := compileWorkspace(ctx, w, files, w.diskPath)
	if err != nil {
		return nil, fmt.Errorf("the schema does not compile; fix it, then lint again:\n%v", err)
	}

	// Lint runs once, so disallow_comment_ignores is read from the
	// top-level section only; except, ignore and ignore_only are applied
	// per finding, from the section of the finding's module.
	cfg := evolution.LintConfig{Disable: o.disable, DisallowCommentIgnores: conf.DisallowCommentIgnores}
	var findings []evolution.Finding
	for _, f := range evolution.Lint(schema, cfg) {
		m := w.byFile[f.File]
		if m != nil && conf.forModule(m.path).ignores(f.Rule, path.Join(m.path, f.File)) {
			continue
		}
		f.File = w.diskPath(f.File)
		findings = append(findings, f)
	}
	return findings, nil
}

func isLintRule(id string) bool {
	return slices.ContainsFunc(evolution.LintRules, func(r evolution.Rule) bool { return r.ID == id })
}

func lintRuleIDs() []string {
	var ids []string
	for _, r := range evolution.LintRules {
		ids = append(ids, r.ID)
	}
	return ids
}

// bufLintYAML is the lint section of buf.yaml v2, at the top level or in a
// module.
type bufLintYAML struct {
	Except                 []string            `yaml:"except"`
	Ignore                 []string            `yaml:"ignore"`
	IgnoreOnly             map[string][]string `yaml:"ignore_only"`
	DisallowCommentIgnores bool                `yaml:"disallow_comment_ignores"`
}

// lintConfig is what eda lint reads of buf.yaml: the top-level lint section
// and the modules' own, which replace it for their files as in buf.
type lintConfig struct {
	bufLintYAML
	modules map[string]*bufLintYAML // by clean module path
}

// loadLintConfig reads the lint sections of dir/buf.yaml, which
// loadWorkspace has already checked.
func loadLintConfig(dir string) (*lintConfig, error) {
	file := filepath.Join(dir, "buf.yaml")
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var conf struct {
		Lint    bufLintYAML `yaml:"lint"`
		Modules []struct {
			Path string       `yaml:"path"`
			Lint *bufLintYAML `yaml:"lint"`
		} `yaml:"modules"`
	}
	if err := yaml.Unmarshal(b, &conf); err != nil {
		return nil, usagef("%s: %s", file, yamlError(err))
	}
	c := &lintConfig{bufLintYAML: conf.Lint, modules: map[string]*bufLintYAML{}}
	for _, m := range conf.Modules {
		if m.Lint != nil {
			p, _ := localPath(m.Path) // loadWorkspace checked it
			c.modules[p] = m.Lint
		}
	}
	for _, l := range append([]*bufLintYAML{&c.bufLintYAML}, slices.Collect(maps.Values(c.modules))...) {
		for i, p := range l.Ignore {
			if l.Ignore[i], err = localPath(p); err != nil {
				return nil, usagef("%s: lint: ignore: path %v", file, err)
			}
		}
		for rule, paths := range l.IgnoreOnly {
			for i, p := range paths {
				if paths[i], err = localPath(p); err != nil {
					return nil, usagef("%s: lint: ignore_only: %s: path %v", file, rule, err)
				}
			}
		}
	}
	return c, nil
}

// forModule returns the lint section that applies to the module at mod.
func (c *lintConfig) forModule(mod string) *bufLintYAML {
	if l := c.modules[mod]; l != nil {
		return l
	}
	return &c.bufLintYAML
}

// ignores reports whether rule is switched off for the file at p (relative
// to buf.yaml's directory): by except, ignore or ignore_only. An empty rule
// asks about ignore alone.
func (l *bufLintYAML) ignores(rule, p string) bool {
	if withinAny(l.Ignore, p) {
		return true
	}
	return rule != "" && (slices.Contains(l.Except, rule) || withinAny(l.IgnoreOnly[rule], p))
}
