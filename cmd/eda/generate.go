package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/bufbuild/protocompile/reporter"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/types/pluginpb"

	"github.com/protoc-gen-eda/eda/generator"
	"github.com/protoc-gen-eda/eda/internal/compile"
)

var generateCommand = &command{
	name:    "generate",
	summary: "generate .pb.go and _eda.pb.go files, as buf generate would",
	run:     runGenerate,
	help:    func(w io.Writer) { newGenerateFlags().usage(w) },
}

const generateUsage = `Usage: eda generate [flags] [files...]

Generate compiles .proto files in process and writes what protoc-gen-go
(x.pb.go) and protoc-gen-eda (x_eda.pb.go) generate for them. It needs no
protoc, no buf and no plugin binaries.

Without -I (buf mode) it reads buf.yaml and buf.gen.yaml, both version v2,
from the current directory or --config, and writes what buf generate writes
for their protoc-gen-go and protoc-gen-eda plugins; it skips other plugins
with a warning. Files, if given, restrict generation to them: files or
directories relative to a module root or to buf.yaml's directory.

With -I (flag mode) it compiles the files given, relative to an -I directory
(or paths to files under one), and writes both plugins' output under --out.

An error in a .proto file is printed as file:line:col: message; then nothing
is written and the exit status is 1. Bad usage exits with status 2.

Flags:
`

// generateOptions are the flags of eda generate.
type generateOptions struct {
	flags      *pflag.FlagSet
	config     string
	protoPaths []string
	out        string
	opts       []string
	goGen      bool
	goOpts     []string
	verbose    bool
	help       bool
}

func newGenerateFlags() *generateOptions {
	o := &generateOptions{}
	fs := pflag.NewFlagSet("eda generate", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.config, "config", ".", "buf mode: the `dir` of buf.yaml and buf.gen.yaml")
	fs.StringArrayVarP(&o.protoPaths, "proto_path", "I", nil, "import `dir`, repeatable; selects flag mode")
	fs.StringVar(&o.out, "out", ".", "flag mode: output `dir`")
	fs.StringArrayVar(&o.opts, "opt", nil, "flag mode: protoc-gen-eda `parameter`, repeatable")
	fs.BoolVar(&o.goGen, "go", true, "flag mode: also run protoc-gen-go")
	fs.StringArrayVar(&o.goOpts, "go_opt", nil, "flag mode: protoc-gen-go `parameter`, repeatable")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "list the files written")
	fs.BoolVarP(&o.help, "help", "h", false, "print this help")
	o.flags = fs
	return o
}

func (o *generateOptions) usage(w io.Writer) {
	fmt.Fprint(w, generateUsage)
	fmt.Fprint(w, o.flags.FlagUsages())
}

// runGenerate is eda generate.
func runGenerate(args []string, stdout, stderr io.Writer) int {
	o := newGenerateFlags()
	if err := o.flags.Parse(args); err != nil {
		return usageFailure(stderr, err)
	}
	if o.help {
		o.usage(stdout)
		return 0
	}
	var p *plan
	var err error
	if len(o.protoPaths) > 0 {
		p, err = o.flagPlan(o.flags.Args())
	} else {
		p, err = o.bufPlan(o.flags.Args(), stderr)
	}
	var usage usageError
	if errors.As(err, &usage) {
		return usageFailure(stderr, err)
	}
	if err != nil {
		fmt.Fprintf(stderr, "eda generate: %v\n", err)
		return 1
	}
	sets, err := p.generate(context.Background())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	for _, dir := range p.clean {
		if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintf(stderr, "eda generate: clean: %v\n", err)
			return 1
		}
	}
	for _, s := range sets {
		written, err := compile.Write(s.dir, s.files)
		if o.verbose {
			for _, w := range written {
				fmt.Fprintln(stdout, w)
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "eda generate: %v\n", err)
			return 1
		}
	}
	return 0
}

// usageFailure reports err, a usage error, and returns the exit status 2.
func usageFailure(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "eda generate: %v\nRun 'eda generate --help' for usage.\n", err)
	return 2
}

// A plan is what eda generate is to do: the requests to compile, the
// plugins to run on them, and where their output goes.
type plan struct {
	importPaths []string
	runs        []*pluginRun
	// diskPath returns where a file named as in an import statement is,
	// for messages.
	diskPath func(name string) string
	// clean are the directories to delete before writing (clean: true).
	clean []string
	// note follows compile errors.
	note string
}

// A pluginRun is one plugin of the plan.
type pluginRun struct {
	name      string
	plugin    func() compile.Plugin
	parameter string
	// out is the directory to write to, relative to the working directory.
	out string
	// requests are the files to generate of each request, as named in
	// import statements.
	requests [][]string
}

// An outputSet is what one plugin generated, to write under dir.
type outputSet struct {
	dir   string
	files []*pluginpb.CodeGeneratorResponse_File
}

// plugins are the generators eda runs in process, by plugin name.
var plugins = map[string]func() compile.Plugin{
	"protoc-gen-go":  compile.Go,
	"protoc-gen-eda": compile.Eda,
}

// problems are the errors of a failed generation, one per line.
type problems []string

func (ps problems) Error() string { return strings.Join(ps, "\n") }

func (ps *problems) add(lines ...string) {
	for _, l := range lines {
		if !slices.Contains(*ps, l) {
			*ps = append(*ps, l)
		}
	}
}

// generate compiles the requests and runs the plugins on them, in memory.
// It fails, with every problem found, if any request does not compile or
// any plugin fails.
func (p *plan) generate(ctx context.Context) ([]outputSet, error) {
	key := func(files []string) string { return strings.Join(files, "\x00") }
	var errs problems
	reqs := map[string]*pluginpb.CodeGeneratorRequest{}
	for _, r := range p.runs {
		for _, files := range r.requests {
			if _, done := reqs[key(files)]; done {
				continue
			}
			req, err := compile.Request(ctx, p.importPaths, files, "")
			if err != nil {
				errs.add(p.describe(err)...)
			}
			reqs[key(files)] = req
		}
	}
	if len(errs) > 0 {
		if p.note != "" {
			errs = append(errs, p.note)
		}
		return nil, errs
	}

	var sets []outputSet
	written := map[string]string{} // path → content
	for _, r := range p.runs {
		set := outputSet{dir: r.out}
		for _, files := range r.requests {
			got, err := compile.Generate(reqs[key(files)], r.parameter, r.plugin())
			if err != nil {
				errs.add(p.describe(err)...)
				continue
			}
			for _, f := range got {
				name := f.GetName()
				switch {
				case f.GetInsertionPoint() != "":
					errs.add(fmt.Sprintf("%s: %s: insertion points are not supported", r.name, name))
					continue
				case !filepath.IsLocal(filepath.FromSlash(name)):
					errs.add(fmt.Sprintf("%s: generated file %q is not a path inside %s", r.name, name, r.out))
					continue
				}
				dest := filepath.Join(r.out, filepath.FromSlash(name))
				if prev, ok := written[dest]; ok {
					if prev != f.GetContent() {
						errs.add(fmt.Sprintf("%s: %s is generated twice, with different contents", r.name, dest))
					}
					continue
				}
				written[dest] = f.GetContent()
				set.files = append(set.files, f)
			}
		}
		sets = append(sets, set)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return sets, nil
}

// describe returns err's message, one line per problem, with the files of
// positions named as on disk (relative to the working directory) rather
// than as in import statements.
func (p *plan) describe(err error) []string {
	switch e := err.(type) {
	case interface{ Unwrap() []error }:
		var lines []string
		for _, err := range e.Unwrap() {
			lines = append(lines, p.describe(err)...)
		}
		return lines
	case reporter.ErrorWithPos:
		pos := e.GetPosition()
		pos.Filename = p.diskPath(pos.Filename)
		msg := e.Unwrap().Error()
		// protocompile names only the last directory it looked in.
		var missing *fs.PathError
		if errors.As(e.Unwrap(), &missing) && errors.Is(missing, fs.ErrNotExist) {
			msg = fmt.Sprintf("%s: no such file in %s", p.importName(missing.Path), strings.Join(p.importPaths, ", "))
		}
		return []string{fmt.Sprintf("%s: %s", pos, msg)}
	case generator.Errors:
		var lines []string
		for _, err := range e {
			lines = append(lines, p.describe(err)...)
		}
		return lines
	case *generator.Error:
		c := *e
		c.File = p.diskPath(c.File)
		return []string{c.Error()}
	}
	return []string{err.Error()}
}

// importName returns the name in import statements of file, a path under
// an import directory.
func (p *plan) importName(file string) string {
	for _, dir := range p.importPaths {
		if rel, err := filepath.Rel(dir, file); err == nil && filepath.IsLocal(rel) {
			return filepath.ToSlash(rel)
		}
	}
	return file
}

// flagPlan is the plan of flag mode: one request with every file, for both
// plugins.
func (o *generateOptions) flagPlan(args []string) (*plan, error) {
	for _, name := range []string{"config"} {
		if o.flags.Changed(name) {
			return nil, usagef("--%s is for buf mode, without -I", name)
		}
	}
	if len(args) == 0 {
		return nil, usagef("no files: with -I, give the .proto files to compile, relative to an -I directory")
	}
	if !o.goGen && len(o.goOpts) > 0 {
		return nil, usagef("--go_opt is for protoc-gen-go, which --go=false turns off")
	}
	var files []string
	for _, arg := range args {
		name, err := o.importName(arg)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(files, name) {
			files = append(files, name)
		}
	}
	p := &plan{importPaths: o.protoPaths, diskPath: func(name string) string {
		for _, dir := range o.protoPaths {
			if d := filepath.Join(dir, filepath.FromSlash(name)); isFile(d) {
				return d
			}
		}
		return name
	}}
	if o.goGen {
		p.runs = append(p.runs, &pluginRun{name: "protoc-gen-go", plugin: compile.Go, parameter: strings.Join(o.goOpts, ","), out: o.out, requests: [][]string{files}})
	}
	p.runs = append(p.runs, &pluginRun{name: "protoc-gen-eda", plugin: compile.Eda, parameter: strings.Join(o.opts, ","), out: o.out, requests: [][]string{files}})
	return p, nil
}

// importName returns the name of the file arg, relative to an -I directory
// or a path to a file under one, as an import statement would name it.
func (o *generateOptions) importName(arg string) (string, error) {
	name := path.Clean(filepath.ToSlash(arg))
	if filepath.IsLocal(filepath.FromSlash(name)) {
		for _, dir := range o.protoPaths {
			if isFile(filepath.Join(dir, filepath.FromSlash(name))) {
				return name, nil
			}
		}
	}
	if abs, err := filepath.Abs(arg); err == nil && isFile(abs) {
		for _, dir := range o.protoPaths {
			absDir, err := filepath.Abs(dir)
			if err != nil {
				continue
			}
			if rel, err := filepath.Rel(absDir, abs); err == nil && filepath.IsLocal(rel) {
				return filepath.ToSlash(rel), nil
			}
		}
	}
	return "", usagef("%s is not a file in any -I directory (%s)", arg, strings.Join(o.protoPaths, ", "))
}

func isFile(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.Mode().IsRegular()
}

// bufPlan is the plan of buf mode, from buf.yaml and buf.gen.yaml. Warnings
// go to stderr.
func (o *generateOptions) bufPlan(args []string, stderr io.Writer) (*plan, error) {
	for _, name := range []string{"out", "opt", "go", "go_opt"} {
		if o.flags.Changed(name) {
			return nil, usagef("--%s is for flag mode, with -I; in buf mode buf.gen.yaml sets the plugins' outputs and options", name)
		}
	}
	if info, err := os.Stat(o.config); err != nil || !info.IsDir() {
		return nil, usagef("--config %s is not a directory: give the directory holding buf.yaml and buf.gen.yaml", o.config)
	}
	ws, err := loadWorkspace(o.config)
	if err != nil {
		return nil, err
	}
	conf, err := loadGenConfig(o.config)
	if err != nil {
		return nil, err
	}
	files := ws.files()
	if len(args) > 0 {
		if files, err = ws.selectFiles(args); err != nil {
			return nil, err
		}
	}
	file := filepath.Join(o.config, "buf.gen.yaml")
	p := &plan{importPaths: ws.importPaths(), diskPath: ws.diskPath}
	if len(ws.deps) > 0 {
		p.note = fmt.Sprintf("note: eda does not download buf.yaml's deps (%s): imports must be files of the workspace's modules or google/protobuf", strings.Join(ws.deps, ", "))
	}
	var skipped []*genPlugin
	for i := range conf.Plugins {
		pc := &conf.Plugins[i]
		name := recognise(pc.Local)
		if name == "" {
			fmt.Fprintf(stderr, "eda generate: warning: skipping plugin %s: eda runs only protoc-gen-go and protoc-gen-eda (run buf generate for the others)\n", pc.name())
			skipped = append(skipped, pc)
			continue
		}
		if warning := pinWarning(name, pc.Local); warning != "" {
			fmt.Fprintf(stderr, "eda generate: warning: %s\n", warning)
		}
		r, err := o.pluginRun(file, name, pc, files)
		if err != nil {
			return nil, err
		}
		p.runs = append(p.runs, r)
	}
	if len(p.runs) == 0 {
		return nil, usagef("%s has no protoc-gen-go or protoc-gen-eda plugin: nothing to do", file)
	}
	if conf.Clean {
		if p.clean, err = o.cleanDirs(file, ws, p.runs, skipped, stderr); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// pluginRun returns the run of the plugin name, configured by pc, on files.
func (o *generateOptions) pluginRun(file, name string, pc *genPlugin, files []string) (*pluginRun, error) {
	bad := func(format string, args ...any) error {
		return usagef("%s: plugin %s: %s", file, pc.name(), fmt.Sprintf(format, args...))
	}
	switch {
	case pc.Out == "":
		return nil, bad("out is required")
	case strings.HasSuffix(pc.Out, ".zip") || strings.HasSuffix(pc.Out, ".jar"):
		return nil, bad("eda writes directories, not %s archives", path.Ext(pc.Out))
	case pc.IncludeImports:
		return nil, bad("include_imports is not supported by eda generate")
	case pc.IncludeWKT:
		return nil, bad("include_wkt is not supported by eda generate")
	case len(pc.Types) > 0 || len(pc.ExcludeTypes) > 0:
		return nil, bad("types and exclude_types are not supported by eda generate")
	}
	r := &pluginRun{
		name:      name,
		plugin:    plugins[name],
		parameter: strings.Join(pc.Opt.values, ","),
		out:       pc.Out,
	}
	if !filepath.IsAbs(r.out) {
		r.out = filepath.Join(o.config, filepath.FromSlash(pc.Out))
	}
	switch pc.Strategy {
	case "", "directory":
		r.requests = byDirectory(files)
	case "all":
		r.requests = [][]string{files}
	default:
		return nil, bad("unknown strategy %q: it is directory or all", pc.Strategy)
	}
	return r, nil
}

// recognise returns the name of the plugin a buf.gen.yaml local runs, if
// eda has it: protoc-gen-go or protoc-gen-eda, as a binary name or path, or
// as the last element of a command such as
// ["go", "run", "google.golang.org/protobuf/cmd/protoc-gen-go"].
func recognise(local stringList) string {
	if len(local.values) == 0 || (!local.list && len(local.values) != 1) {
		return ""
	}
	last := filepath.ToSlash(local.values[len(local.values)-1])
	last, _, _ = strings.Cut(last, "@") // go run pkg@version
	base := strings.TrimSuffix(path.Base(last), ".exe")
	if _, ok := plugins[base]; ok {
		return base
	}
	return ""
}

// pinWarning warns when local pins a version (go run pkg@version) other
// than the one eda runs.
func pinWarning(name string, local stringList) string {
	_, pinned, ok := strings.Cut(local.values[len(local.values)-1], "@")
	if !ok || pinned == "latest" {
		return ""
	}
	var have string
	switch name {
	case "protoc-gen-go":
		have = moduleVersion("google.golang.org/protobuf")
	case "protoc-gen-eda":
		have = generator.Version(version)
	}
	if have == "" || have == "devel" || have == pinned {
		return ""
	}
	return fmt.Sprintf("buf.gen.yaml runs %s@%s; eda runs the %s %s it is built with", name, pinned, name, have)
}

// moduleVersion returns the version of the module at modPath this binary
// is built with, or "".
func moduleVersion(modPath string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, dep := range info.Deps {
		if dep.Path == modPath {
			if dep.Replace != nil {
				return dep.Replace.Version
			}
			return dep.Version
		}
	}
	return ""
}

// byDirectory groups files by directory, as buf's default strategy does: one
// request per directory, directories and files in sorted order.
func byDirectory(files []string) [][]string {
	groups := map[string][]string{}
	for _, f := range files {
		dir := path.Dir(f)
		groups[dir] = append(groups[dir], f)
	}
	var requests [][]string
	for _, dir := range slices.Sorted(maps.Keys(groups)) {
		requests = append(requests, slices.Sorted(slices.Values(groups[dir])))
	}
	return requests
}

// selectFiles returns the workspace files that args name: files or
// directories relative to a module root or to the workspace directory.
func (w *workspace) selectFiles(args []string) ([]string, error) {
	var files []string
	base, err := filepath.Abs(w.dir)
	if err != nil {
		return nil, err
	}
	for _, arg := range args {
		got := w.match(path.Clean(filepath.ToSlash(arg)))
		if len(got) == 0 {
			// A path on disk (absolute, or relative to the working
			// directory when --config is elsewhere).
			if abs, err := filepath.Abs(arg); err == nil {
				if rel, err := filepath.Rel(base, abs); err == nil && filepath.IsLocal(rel) {
					got = w.match(filepath.ToSlash(rel))
				}
			}
		}
		if len(got) == 0 {
			return nil, usagef("%s is not a .proto file or directory of the workspace: name it relative to a module root (like shop/v1/orders.proto) or to buf.yaml's directory", arg)
		}
		files = append(files, got...)
	}
	slices.Sort(files)
	return slices.Compact(files), nil
}

func (w *workspace) match(p string) []string {
	var got []string
	// Relative to a module root.
	for name := range w.byFile {
		if within(p, name) {
			got = append(got, name)
		}
	}
	if len(got) > 0 {
		return got
	}
	// Relative to the workspace.
	for _, m := range w.modules {
		if !within(m.path, p) {
			continue
		}
		sub := strings.TrimPrefix(strings.TrimPrefix(p, m.path), "/")
		if m.path == "." {
			sub = p
		}
		if sub == "" {
			sub = "."
		}
		for _, name := range m.files {
			if within(sub, name) {
				got = append(got, name)
			}
		}
	}
	return got
}

// cleanDirs returns the output directories clean: true deletes. Unlike buf,
// eda refuses to delete anything but a subdirectory of buf.gen.yaml's
// directory with no .proto file and no module in it, and leaves alone a
// directory that a skipped plugin writes to as well.
func (o *generateOptions) cleanDirs(file string, ws *workspace, runs []*pluginRun, skipped []*genPlugin, stderr io.Writer) ([]string, error) {
	base, err := filepath.Abs(o.config)
	if err != nil {
		return nil, err
	}
	rel := func(dir string) (string, error) {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return "", err
		}
		r, err := filepath.Rel(base, abs)
		if err != nil {
			return "", err
		}
		return filepath.ToSlash(r), nil
	}
	var dirs, seen []string
	for _, r := range runs {
		if slices.Contains(seen, r.out) {
			continue
		}
		seen = append(seen, r.out)
		out, err := rel(r.out)
		if err != nil {
			return nil, err
		}
		refuse := func(why string, args ...any) error {
			return usagef("%s: clean: true would delete %s, %s; eda refuses (remove clean, or write to a dedicated directory)", file, r.out, fmt.Sprintf(why, args...))
		}
		if out == "." {
			return nil, refuse("the directory of buf.gen.yaml")
		}
		if !filepath.IsLocal(filepath.FromSlash(out)) {
			return nil, refuse("which is outside %s", displayDir(o.config))
		}
		for _, m := range ws.modules {
			if within(out, m.path) {
				return nil, refuse("which holds module %s", m.path)
			}
		}
		if proto := findProto(r.out); proto != "" {
			return nil, refuse("which holds %s", proto)
		}
		shared := ""
		for _, s := range skipped {
			if s.Out == "" {
				continue
			}
			dir := s.Out
			if !filepath.IsAbs(dir) {
				dir = filepath.Join(o.config, filepath.FromSlash(dir))
			}
			if other, err := rel(dir); err == nil && (within(out, other) || within(other, out)) {
				shared = s.name()
				break
			}
		}
		if shared != "" {
			fmt.Fprintf(stderr, "eda generate: warning: not cleaning %s: plugin %s, which eda skips, writes there too\n", r.out, shared)
			continue
		}
		dirs = append(dirs, r.out)
	}
	return dirs, nil
}

// findProto returns a .proto file in dir, or "".
func findProto(dir string) string {
	var found string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".proto") {
			found = p
			return fs.SkipAll
		}
		return nil
	})
	return found
}
