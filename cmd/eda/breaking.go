package main

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bufbuild/protocompile/reporter"
	"github.com/spf13/pflag"

	"github.com/protoc-gen-eda/eda/evolution"
	"github.com/protoc-gen-eda/eda/evolution/samples"
)

var breakingCommand = &command{
	name:    "breaking",
	summary: "report schema changes that break the reading of stored events",
	run:     runBreaking,
	help:    func(w io.Writer) { newBreakingFlags().usage(w) },
}

const breakingUsage = `Usage: eda breaking [--against <dir | git ref | lock file>] [flags] [files...]

Breaking compares the workspace's .proto files (the modules of buf.yaml, in
the current directory or --config) with previous versions of them, and
reports every change that would stop stored events from being read back:
one line per finding, as file:line:col: RULE_ID: message.

--against is the previous version: a directory holding a checkout of it
(its buf.yaml and modules); a lock file written by eda lock, holding every
release (the transitive modes then check each one, and findings end with the
release they were found against); or, if no such directory or file exists, a
git commit, branch or tag of the repository holding the workspace. Without
--against, the workspace's eda.lock is used.

Each message is checked in its compatibility mode: events BACKWARD_TRANSITIVE,
commands FULL, aggregate state, projections and sagas NONE, unless the
message or its file sets (eda.v1.*).compatibility.

--samples checks the recorded payloads under a folder too (see
docs/samples.md): samples of each event's current version must decode with
the current schema.

Files, if given, restrict the check to them: .proto files or directories,
relative to a module root (shop/v1/orders.proto) or to buf.yaml's directory.

The exit status is 0 when nothing breaks, 1 when there are findings, and 2
when the schemas could not be checked: bad usage, a missing git ref, a
corrupt lock file, or a schema that does not compile.

Flags:
`

// Exit statuses of eda breaking: CI must tell "the change breaks stored
// events" from "the check could not run".
const (
	breakingOK       = 0
	breakingFound    = 1
	breakingCannotDo = 2
)

// Output formats of eda breaking.
const (
	formatText = "text"
	formatJSON = "json"
)

// breakingOptions are the flags of eda breaking.
type breakingOptions struct {
	flags   *pflag.FlagSet
	config  string
	against string
	samples string
	format  string
	help    bool
}

func newBreakingFlags() *breakingOptions {
	o := &breakingOptions{}
	fs := pflag.NewFlagSet("eda breaking", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.against, "against", "", "the previous version: a `dir`, a git ref or a lock file (default: the workspace's eda.lock)")
	fs.StringVar(&o.config, "config", ".", "the `dir` of buf.yaml")
	fs.StringVar(&o.samples, "samples", "", "also decode the recorded payloads under `dir`")
	fs.StringVar(&o.format, "format", formatText, "output `format`: text or json")
	fs.BoolVarP(&o.help, "help", "h", false, "print this help")
	o.flags = fs
	return o
}

func (o *breakingOptions) usage(w io.Writer) {
	fmt.Fprint(w, breakingUsage)
	fmt.Fprint(w, o.flags.FlagUsages())
}

// runBreaking is eda breaking.
func runBreaking(args []string, stdout, stderr io.Writer) int {
	o := newBreakingFlags()
	if err := o.flags.Parse(args); err != nil {
		return breakingUsageFailure(stderr, err)
	}
	if o.help {
		o.usage(stdout)
		return breakingOK
	}
	findings, err := o.check(context.Background(), stderr)
	var usage usageError
	if errors.As(err, &usage) {
		return breakingUsageFailure(stderr, err)
	}
	if err != nil {
		fmt.Fprintf(stderr, "eda breaking: %v\n", err)
		return breakingCannotDo
	}
	if err := writeFindings(stdout, o.format, findings); err != nil {
		fmt.Fprintf(stderr, "eda breaking: %v\n", err)
		return breakingCannotDo
	}
	if len(findings) > 0 {
		return breakingFound
	}
	return breakingOK
}

// breakingUsageFailure reports err, a usage error, and returns the exit
// status 2.
func breakingUsageFailure(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "eda breaking: %v\nRun 'eda breaking --help' for usage.\n", err)
	return breakingCannotDo
}

// check compiles both versions and compares them. Its findings name files
// as on disk, relative to the working directory.
func (o *breakingOptions) check(ctx context.Context, stderr io.Writer) ([]evolution.Finding, error) {
	if o.format != formatText && o.format != formatJSON {
		return nil, usagef("--format %s: it is text or json", o.format)
	}
	if info, err := os.Stat(o.config); err != nil || !info.IsDir() {
		return nil, usagef("--config %s is not a directory: give the directory holding buf.yaml", o.config)
	}
	if o.against == "" {
		lock := filepath.Join(o.config, evolution.LockFileName)
		if _, err := os.Stat(lock); err != nil {
			return nil, usagef("--against is required when there is no %s: give a directory holding the previous version, a git ref such as main or HEAD~1, or record releases with eda lock --release", lock)
		}
		o.against = lock
	}
	cur, err := loadWorkspace(o.config)
	if err != nil {
		return nil, err
	}
	var findings []evolution.Finding
	var curSchema *evolution.Schema
	if info, err := os.Stat(o.against); err == nil && info.Mode().IsRegular() {
		findings, curSchema, err = o.checkLock(ctx, cur)
		if err != nil {
			return nil, err
		}
	} else if findings, curSchema, err = o.checkPrevious(ctx, cur); err != nil {
		return nil, err
	}
	if o.samples != "" {
		res, err := samples.Check(curSchema, o.samples)
		if err != nil {
			return nil, fmt.Errorf("--samples %s: %v", o.samples, err)
		}
		findings = append(findings, res.Findings...)
		if len(res.Older) > 0 {
			fmt.Fprintf(stderr, "eda breaking: %d samples of older versions are not decoded here: samples.Replay checks them through the upcasters in go test\n", len(res.Older))
		}
		for _, t := range res.Missing {
			fmt.Fprintf(stderr, "eda breaking: no sample of the current version of %s under %s: record one with samples.Write\n", t, o.samples)
		}
	}
	return findings, nil
}

// checkLock checks the workspace against every release of the lock file
// --against names. Findings about files gone from the workspace name the
// lock file: lockfile:path.
func (o *breakingOptions) checkLock(ctx context.Context, cur *workspace) ([]evolution.Finding, *evolution.Schema, error) {
	lock, err := readLockFile(o.against)
	if err != nil {
		return nil, nil, err
	}
	curFiles := cur.files()
	if args := o.flags.Args(); len(args) > 0 {
		if curFiles, err = cur.selectFiles(args); err != nil {
			return nil, nil, err
		}
		// Compare the same files of each release.
		for i := range lock.Releases {
			lock.Releases[i].Schema = onlyFiles(lock.Releases[i].Schema, curFiles)
		}
	}
	curSchema, err := compileWorkspace(ctx, cur, curFiles, cur.diskPath)
	if err != nil {
		return nil, nil, fmt.Errorf("the current schema does not compile; fix it, then check again:\n%v", err)
	}
	findings := evolution.CheckHistory(lock.Releases, curSchema)
	for i := range findings {
		f := &findings[i]
		if cur.byFile[f.File] != nil {
			f.File = cur.diskPath(f.File)
		} else {
			f.File = o.against + ":" + f.File
		}
	}
	return findings, curSchema, nil
}

// onlyFiles keeps the files of s that files lists.
func onlyFiles(s *evolution.Schema, files []string) *evolution.Schema {
	out := &evolution.Schema{}
	for _, f := range s.Files {
		if slices.Contains(files, f.Path()) {
			out.Files = append(out.Files, f)
		}
	}
	return out
}

// readLockFile reads the lock file at path; a corrupt one is an error that
// says so, apart from the schema's own problems.
func readLockFile(path string) (*evolution.Lock, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	lock, err := evolution.ReadLock(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return lock, nil
}

// checkPrevious checks the workspace against the previous version in a
// directory or a git ref.
func (o *breakingOptions) checkPrevious(ctx context.Context, cur *workspace) ([]evolution.Finding, *evolution.Schema, error) {
	prevDir, display, cleanup, err := o.previousDir()
	if err != nil {
		return nil, nil, err
	}
	defer cleanup()
	prev, err := loadWorkspace(prevDir)
	if err != nil {
		return nil, nil, fmt.Errorf("the previous version, --against %s: %v", o.against, err)
	}
	curFiles, prevFiles := cur.files(), prev.files()
	if args := o.flags.Args(); len(args) > 0 {
		if curFiles, prevFiles, err = selectBoth(cur, prev, args); err != nil {
			return nil, nil, err
		}
	}

	curSchema, err := compileWorkspace(ctx, cur, curFiles, cur.diskPath)
	if err != nil {
		return nil, nil, fmt.Errorf("the current schema does not compile; fix it, then check again:\n%v", err)
	}
	prevPath := func(name string) string { return display(prev.diskPath(name)) }
	prevSchema, err := compileWorkspace(ctx, prev, prevFiles, prevPath)
	if err != nil {
		return nil, nil, fmt.Errorf("the previous schema (--against %s) does not compile, so it cannot be compared; point --against at a version that compiles:\n%v", o.against, err)
	}

	findings := evolution.Check(prevSchema, curSchema)
	for i := range findings {
		f := &findings[i]
		if cur.byFile[f.File] != nil {
			f.File = cur.diskPath(f.File)
		} else {
			// The file is gone: the finding points into the previous version.
			f.File = prevPath(f.File)
		}
	}
	return findings, curSchema, nil
}

// selectBoth returns the files of cur and of prev that args name, as
// selectFiles does for eda generate. A file that is in only one of them still
// counts, so a deleted file is reported rather than rejected.
func selectBoth(cur, prev *workspace, args []string) (curFiles, prevFiles []string, err error) {
	base, err := filepath.Abs(cur.dir)
	if err != nil {
		return nil, nil, err
	}
	for _, arg := range args {
		p := path.Clean(filepath.ToSlash(arg))
		if len(cur.match(p)) == 0 && len(prev.match(p)) == 0 {
			// A path on disk, in the current workspace.
			if abs, err := filepath.Abs(arg); err == nil {
				if rel, err := filepath.Rel(base, abs); err == nil && filepath.IsLocal(rel) {
					p = filepath.ToSlash(rel)
				}
			}
		}
		c, pr := cur.match(p), prev.match(p)
		if len(c) == 0 && len(pr) == 0 {
			return nil, nil, usagef("%s is not a .proto file or directory of the workspace, now or in --against: name it relative to a module root (like shop/v1/orders.proto) or to buf.yaml's directory", arg)
		}
		curFiles, prevFiles = append(curFiles, c...), append(prevFiles, pr...)
	}
	slices.Sort(curFiles)
	slices.Sort(prevFiles)
	return slices.Compact(curFiles), slices.Compact(prevFiles), nil
}

// compileWorkspace compiles files of w. Compile errors come back one per
// line, their files named by diskPath.
func compileWorkspace(ctx context.Context, w *workspace, files []string, diskPath func(string) string) (*evolution.Schema, error) {
	s, err := evolution.Compile(ctx, w.importPaths(), files)
	if err == nil {
		return s, nil
	}
	lines := describePositions(err, diskPath)
	if len(w.deps) > 0 {
		lines = append(lines, fmt.Sprintf("note: eda does not download buf.yaml's deps (%s): imports must be files of the workspace's modules or google/protobuf", strings.Join(w.deps, ", ")))
	}
	return nil, problems(lines)
}

// describePositions returns err's message, one line per problem, with the
// file of each position renamed by diskPath.
func describePositions(err error, diskPath func(string) string) []string {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var lines []string
		for _, e := range joined.Unwrap() {
			lines = append(lines, describePositions(e, diskPath)...)
		}
		return lines
	}
	var pos reporter.ErrorWithPos
	if errors.As(err, &pos) {
		p := pos.GetPosition()
		p.Filename = diskPath(p.Filename)
		return []string{fmt.Sprintf("%s: %v", p, pos.Unwrap())}
	}
	return []string{err.Error()}
}

// previousDir returns the directory holding the previous version's buf.yaml,
// a function naming its files in messages, and a cleanup to call when done.
// A directory is used as it is; anything else is taken for a git ref, whose
// tree is extracted to a temporary directory.
func (o *breakingOptions) previousDir() (dir string, display func(string) string, cleanup func(), err error) {
	if info, err := os.Stat(o.against); err == nil && info.IsDir() {
		return o.against, func(p string) string { return p }, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", "eda-breaking-")
	if err != nil {
		return "", nil, nil, err
	}
	cleanup = func() { os.RemoveAll(tmp) }
	prefix, err := extractGitRef(o.config, o.against, tmp)
	if err != nil {
		cleanup()
		return "", nil, nil, err
	}
	dir = filepath.Join(tmp, filepath.FromSlash(prefix))
	// Name the files of the ref as git does, ref:path from the repository
	// root, since the temporary directory is gone once eda exits.
	display = func(p string) string {
		if rel, err := filepath.Rel(tmp, p); err == nil && filepath.IsLocal(rel) {
			return o.against + ":" + filepath.ToSlash(rel)
		}
		return p
	}
	return dir, display, cleanup, nil
}

// extractGitRef writes the tree of ref, in the git repository holding dir,
// under tmp, and returns dir's path relative to the repository root.
func extractGitRef(dir, ref, tmp string) (string, error) {
	if _, err := exec.LookPath("git"); err != nil {
		return "", usagef("--against %s is not a directory, and git, needed to read it as a git ref, is not installed", ref)
	}
	git := func(args ...string) (string, error) {
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return strings.TrimSpace(string(out)), nil
	}
	prefix, err := git("rev-parse", "--show-prefix")
	if err != nil {
		return "", usagef("--against %s is not a directory, and %s is not in a git repository to read it as a git ref from: give a directory holding the previous version", ref, displayDir(dir))
	}
	commit, err := git("rev-parse", "--verify", "--quiet", "--end-of-options", ref+"^{commit}")
	if err != nil {
		return "", usagef("--against %s is neither a directory nor a commit, branch or tag of the git repository of %s: check its spelling, or fetch it (git fetch)", ref, displayDir(dir))
	}
	root, err := git("rev-parse", "--show-toplevel")
	if err != nil {
		return "", err
	}
	prefix = strings.TrimSuffix(prefix, "/")
	// From the root: in a subdirectory git archive limits itself to it.
	cmd := exec.Command("git", "-C", root, "archive", "--format=tar", commit+":"+prefix)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	extractErr := untar(out, filepath.Join(tmp, filepath.FromSlash(prefix)))
	io.Copy(io.Discard, out) // let git finish if extraction stopped early
	if err := cmd.Wait(); err != nil {
		if prefix != "" {
			return "", usagef("--against %s: %s does not exist at that commit (git archive: %s): give a ref from after the workspace was created", ref, prefix, strings.TrimSpace(stderr.String()))
		}
		return "", fmt.Errorf("git archive %s: %v: %s", ref, err, strings.TrimSpace(stderr.String()))
	}
	if extractErr != nil {
		return "", fmt.Errorf("extracting %s: %v", ref, extractErr)
	}
	return prefix, nil
}

// untar writes the directories and regular files of the tar stream r under
// dir. Links and other entries are skipped, and names leading outside dir
// are refused.
func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.FromSlash(strings.TrimSuffix(h.Name, "/"))
		if name == "" || name == "." {
			continue
		}
		if !filepath.IsLocal(name) {
			return fmt.Errorf("archive entry %q is outside the tree", h.Name)
		}
		target := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fs.FileMode(0o644))
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
}

// findingJSON is a finding in --format json.
type findingJSON struct {
	File     string `json:"file"`
	Line     int    `json:"line"`
	Column   int    `json:"column"`
	Rule     string `json:"rule"`
	Category string `json:"category"`
	Message  string `json:"message"`
}

// writeFindings prints findings in format: one line each in text, nothing
// when there are none; a JSON array (empty if need be) in json.
func writeFindings(w io.Writer, format string, findings []evolution.Finding) error {
	if format == formatText {
		for _, f := range findings {
			if _, err := fmt.Fprintln(w, f.String()); err != nil {
				return err
			}
		}
		return nil
	}
	out := make([]findingJSON, 0, len(findings))
	for _, f := range findings {
		var category string
		if r, ok := evolution.RuleByID(f.Rule); ok {
			category = string(r.Category)
		}
		out = append(out, findingJSON{File: f.File, Line: f.Line, Column: f.Col, Rule: f.Rule, Category: category, Message: f.Message})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
