package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/protoc-gen-eda/eda/evolution"
)

var lockCommand = &command{
	name:    "lock",
	summary: "record the current schema as a release in eda.lock",
	run:     runLock,
	help:    func(w io.Writer) { newLockFlags().usage(w) },
}

const lockUsage = `Usage: eda lock --release <name> [flags] [files...]

Lock records the workspace's schema (the modules of buf.yaml, in the current
directory or --config) as a release in the lock file, eda.lock beside
buf.yaml. Commit the lock file with the schemas: eda breaking then checks
every later change against each release (transitively for events), with no
git history needed, and catches field and enum numbers reused after a
release that dropped them. Files, if given, restrict the release to them
(.proto files or directories, as for eda breaking): the schemas you publish,
without test fixtures.

Before recording, the schema is checked against the releases already in the
lock file, as eda breaking would, and nothing is recorded if anything breaks,
unless --force (for a change whose break is accepted: the findings are still
printed). A schema unchanged since the last release (comments and layout
aside) is not recorded again.

The exit status is 0 when the release was recorded or nothing changed, 1
when findings stopped it, and 2 when it could not run.

Flags:
`

type lockOptions struct {
	flags   *pflag.FlagSet
	config  string
	lock    string
	release string
	force   bool
	help    bool
}

func newLockFlags() *lockOptions {
	o := &lockOptions{}
	fs := pflag.NewFlagSet("eda lock", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.release, "release", "", "the release's `name`, such as v1.4.0 (required)")
	fs.StringVar(&o.config, "config", ".", "the `dir` of buf.yaml")
	fs.StringVar(&o.lock, "lock", "", "the lock `file` (default: eda.lock beside buf.yaml)")
	fs.BoolVar(&o.force, "force", false, "record the release even if it breaks earlier ones")
	fs.BoolVarP(&o.help, "help", "h", false, "print this help")
	o.flags = fs
	return o
}

func (o *lockOptions) usage(w io.Writer) {
	fmt.Fprint(w, lockUsage)
	fmt.Fprint(w, o.flags.FlagUsages())
}

// runLock is eda lock.
func runLock(args []string, stdout, stderr io.Writer) int {
	o := newLockFlags()
	if err := o.flags.Parse(args); err != nil {
		return lockUsageFailure(stderr, err)
	}
	if o.help {
		o.usage(stdout)
		return breakingOK
	}
	status, err := o.run(context.Background(), stdout)
	var usage usageError
	if errors.As(err, &usage) {
		return lockUsageFailure(stderr, err)
	}
	if err != nil {
		fmt.Fprintf(stderr, "eda lock: %v\n", err)
		return breakingCannotDo
	}
	return status
}

func lockUsageFailure(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "eda lock: %v\nRun 'eda lock --help' for usage.\n", err)
	return breakingCannotDo
}

func (o *lockOptions) run(ctx context.Context, stdout io.Writer) (int, error) {
	switch {
	case o.release == "":
		return 0, usagef("--release is required: name the release, such as v1.4.0")
	}
	if info, err := os.Stat(o.config); err != nil || !info.IsDir() {
		return 0, usagef("--config %s is not a directory: give the directory holding buf.yaml", o.config)
	}
	if o.lock == "" {
		o.lock = filepath.Join(o.config, evolution.LockFileName)
	}
	lock := &evolution.Lock{}
	if _, err := os.Stat(o.lock); err == nil {
		if lock, err = readLockFile(o.lock); err != nil {
			return 0, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	for _, r := range lock.Releases {
		if r.Name == o.release {
			return 0, usagef("release %s is in the lock file already: releases are never rewritten; name the new one differently", o.release)
		}
	}
	ws, err := loadWorkspace(o.config)
	if err != nil {
		return 0, err
	}
	files := ws.files()
	if o.flags.NArg() > 0 {
		if files, err = ws.selectFiles(o.flags.Args()); err != nil {
			return 0, err
		}
	}
	cur, err := compileWorkspace(ctx, ws, files, ws.diskPath)
	if err != nil {
		return 0, fmt.Errorf("the schema does not compile, so it cannot be released; fix it first:\n%v", err)
	}
	if last := lock.Latest(); last != nil && evolution.SameSchema(last.Schema, cur) {
		fmt.Fprintf(stdout, "unchanged since release %s: nothing recorded\n", last.Name)
		return breakingOK, nil
	}
	findings := evolution.CheckHistory(lock.Releases, cur)
	for i := range findings {
		if f := &findings[i]; ws.byFile[f.File] != nil {
			f.File = ws.diskPath(f.File)
		} else {
			f.File = o.lock + ":" + f.File
		}
	}
	if err := writeFindings(stdout, formatText, findings); err != nil {
		return 0, err
	}
	if len(findings) > 0 && !o.force {
		fmt.Fprintf(stdout, "release %s not recorded: it breaks earlier releases (fix the findings, or record it anyway with --force)\n", o.release)
		return breakingFound, nil
	}
	if err := lock.Add(o.release, cur); err != nil {
		return 0, usagef("%v", err)
	}
	var buf bytes.Buffer
	if err := lock.Write(&buf); err != nil {
		return 0, err
	}
	if err := writeFileAtomic(o.lock, buf.Bytes()); err != nil {
		return 0, err
	}
	fmt.Fprintf(stdout, "recorded release %s (%d files) in %s\n", o.release, len(cur.Files), o.lock)
	return breakingOK, nil
}

// writeFileAtomic replaces path with data, so an interrupted write leaves
// the old lock file whole.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".eda-lock-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
