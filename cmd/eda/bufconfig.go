package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// This file reads buf's configuration: buf.yaml (the workspace: its modules
// and their files) and buf.gen.yaml (the code generation template). Only
// version v2 of either is supported.

// usageError is an error in how eda was invoked or configured (flags,
// buf.yaml, buf.gen.yaml): eda exits with status 2 instead of 1.
type usageError struct{ error }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// A workspace is a buf.yaml v2 workspace: its modules, with their files.
type workspace struct {
	// dir is the directory holding buf.yaml, as given (relative to the
	// working directory, or absolute).
	dir     string
	modules []*module
	// deps are the buf.yaml dependencies, which eda does not fetch.
	deps []string
	// byFile maps each file (relative to its module) to its module.
	byFile map[string]*module
}

// A module is one entry of buf.yaml's modules.
type module struct {
	// path is the module's directory relative to the workspace,
	// slash-separated and clean ("." for the workspace itself).
	path string
	// files are the module's .proto files, relative to path,
	// slash-separated, sorted.
	files []string
}

// dir returns the module's directory relative to the working directory.
func (w *workspace) moduleDir(m *module) string {
	return filepath.Join(w.dir, filepath.FromSlash(m.path))
}

// importPaths returns every module's directory: in a workspace, every module
// imports from every other.
func (w *workspace) importPaths() []string {
	var dirs []string
	for _, m := range w.modules {
		dirs = append(dirs, w.moduleDir(m))
	}
	return dirs
}

// files returns every file of the workspace, relative to its module, sorted.
func (w *workspace) files() []string {
	var files []string
	for _, m := range w.modules {
		files = append(files, m.files...)
	}
	slices.Sort(files)
	return files
}

// diskPath returns where the file name (relative to its module) is, relative
// to the working directory; name itself when no module has it, as for
// google/protobuf imports.
func (w *workspace) diskPath(name string) string {
	if m := w.byFile[name]; m != nil {
		return filepath.Join(w.moduleDir(m), filepath.FromSlash(name))
	}
	return name
}

// bufYAML is the part of buf.yaml v2 eda reads; it ignores the rest (lint,
// breaking, names...).
type bufYAML struct {
	Version string          `yaml:"version"`
	Modules []bufModuleYAML `yaml:"modules"`
	Deps    []string        `yaml:"deps"`
}

// bufModuleYAML is one entry of buf.yaml's modules.
type bufModuleYAML struct {
	Path     string   `yaml:"path"`
	Includes []string `yaml:"includes"`
	Excludes []string `yaml:"excludes"`
}

// loadWorkspace reads dir/buf.yaml and lists the .proto files of its
// modules.
func loadWorkspace(dir string) (*workspace, error) {
	file := filepath.Join(dir, "buf.yaml")
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, usagef("no buf.yaml in %s: run eda generate in a buf v2 workspace, point --config at one, or give -I to compile without buf.yaml", displayDir(dir))
	}
	if err != nil {
		return nil, err
	}
	var conf bufYAML
	if err := yaml.Unmarshal(b, &conf); err != nil {
		return nil, usagef("%s: %s", file, yamlError(err))
	}
	if err := checkVersion(file, conf.Version); err != nil {
		return nil, err
	}
	if len(conf.Modules) == 0 {
		// Without modules, the workspace is one module.
		conf.Modules = []bufModuleYAML{{Path: "."}}
	}

	w := &workspace{dir: dir, deps: conf.Deps, byFile: map[string]*module{}}
	for i, mc := range conf.Modules {
		p, err := localPath(mc.Path)
		if err != nil {
			return nil, usagef("%s: modules[%d]: path %w", file, i, err)
		}
		info, err := os.Stat(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil || !info.IsDir() {
			return nil, usagef("%s: module %s: no such directory in %s", file, p, displayDir(dir))
		}
		for _, other := range w.modules {
			if within(other.path, p) || within(p, other.path) {
				return nil, usagef("%s: modules %s and %s overlap", file, other.path, p)
			}
		}
		includes, err := subPaths(file, p, "includes", mc.Includes)
		if err != nil {
			return nil, err
		}
		excludes, err := subPaths(file, p, "excludes", mc.Excludes)
		if err != nil {
			return nil, err
		}
		m := &module{path: p}
		if m.files, err = walkModule(dir, p, includes, excludes); err != nil {
			return nil, err
		}
		for _, f := range m.files {
			if other := w.byFile[f]; other != nil {
				return nil, usagef("%s: %s is in two modules, %s and %s: exclude it from one", file, f, other.path, p)
			}
			w.byFile[f] = m
		}
		w.modules = append(w.modules, m)
	}
	if len(w.byFile) == 0 {
		return nil, usagef("%s: the modules have no .proto files", file)
	}
	return w, nil
}

// checkVersion accepts only v2 configuration files.
func checkVersion(file, v string) error {
	switch v {
	case "v2":
		return nil
	case "":
		return usagef("%s has no version: eda reads version v2 files only (add `version: v2`)", file)
	default:
		return usagef("%s is version %s: eda reads version v2 files only (`buf config migrate` converts them)", file, v)
	}
}

// localPath cleans p, a slash-separated path relative to the workspace.
func localPath(p string) (string, error) {
	if p == "" {
		return "", errors.New("is missing")
	}
	c := path.Clean(filepath.ToSlash(p))
	if c != "." && !filepath.IsLocal(filepath.FromSlash(c)) {
		return "", fmt.Errorf("%q must be relative and inside the workspace", p)
	}
	return c, nil
}

// subPaths checks that the includes or excludes of the module at mod lie in
// it, and cleans them.
func subPaths(file, mod, key string, paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		c, err := localPath(p)
		if err != nil {
			return nil, usagef("%s: module %s: %s: path %w", file, mod, key, err)
		}
		if !within(mod, c) {
			return nil, usagef("%s: module %s: %s: %s is not in the module (paths are relative to buf.yaml)", file, mod, key, p)
		}
		out = append(out, c)
	}
	return out, nil
}

// within reports whether the slash-separated clean path p is dir or inside
// it.
func within(dir, p string) bool {
	return dir == "." || p == dir || strings.HasPrefix(p, dir+"/")
}

func withinAny(dirs []string, p string) bool {
	return slices.ContainsFunc(dirs, func(d string) bool { return within(d, p) })
}

// walkModule lists the .proto files of the module at mod (relative to the
// workspace dir) that are in includes, if any, and not in excludes, relative
// to the module.
func walkModule(dir, mod string, includes, excludes []string) ([]string, error) {
	root := filepath.Join(dir, filepath.FromSlash(mod))
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if withinAny(excludes, rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !strings.HasSuffix(p, ".proto") {
			return nil
		}
		if !d.Type().IsRegular() {
			// A symbolic link counts if it leads to a file.
			if info, err := os.Stat(p); err != nil || !info.Mode().IsRegular() {
				return nil
			}
		}
		if len(includes) > 0 && !withinAny(includes, rel) {
			return nil
		}
		name, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		files = append(files, filepath.ToSlash(name))
		return nil
	})
	slices.Sort(files)
	return files, err
}

// genYAML is buf.gen.yaml v2. Every key buf knows is declared so that a
// misspelt one is an error, as it is for buf.
type genYAML struct {
	Version string      `yaml:"version"`
	Clean   bool        `yaml:"clean"`
	Managed yaml.Node   `yaml:"managed"`
	Plugins []genPlugin `yaml:"plugins"`
	Inputs  yaml.Node   `yaml:"inputs"`
}

// genPlugin is one entry of buf.gen.yaml's plugins.
type genPlugin struct {
	Local          stringList `yaml:"local"`
	Remote         string     `yaml:"remote"`
	ProtocBuiltin  string     `yaml:"protoc_builtin"`
	Revision       int        `yaml:"revision"`
	ProtocPath     stringList `yaml:"protoc_path"`
	Out            string     `yaml:"out"`
	Opt            stringList `yaml:"opt"`
	IncludeImports bool       `yaml:"include_imports"`
	IncludeWKT     bool       `yaml:"include_wkt"`
	Strategy       string     `yaml:"strategy"`
	Types          []string   `yaml:"types"`
	ExcludeTypes   []string   `yaml:"exclude_types"`
}

// name returns how buf.gen.yaml names the plugin, for messages.
func (p *genPlugin) name() string {
	switch {
	case len(p.Local.values) > 0:
		return strings.Join(p.Local.values, " ")
	case p.Remote != "":
		return p.Remote
	case p.ProtocBuiltin != "":
		return "protoc_builtin " + p.ProtocBuiltin
	}
	return "(unnamed)"
}

// stringList is a YAML string or list of strings.
type stringList struct {
	values []string
	list   bool // written as a list
}

func (s *stringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.SequenceNode {
		s.list = true
		return n.Decode(&s.values)
	}
	var v string
	if err := n.Decode(&v); err != nil {
		return err
	}
	s.values = []string{v}
	return nil
}

// loadGenConfig reads dir/buf.gen.yaml.
func loadGenConfig(dir string) (*genYAML, error) {
	file := filepath.Join(dir, "buf.gen.yaml")
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, usagef("no buf.gen.yaml in %s: eda generate reads the plugins to run from it (or give -I to run without buf)", displayDir(dir))
	}
	if err != nil {
		return nil, err
	}
	// The version first, so that a v1 file is reported as such rather than
	// by its first unknown key.
	var v struct {
		Version string `yaml:"version"`
	}
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, usagef("%s: %s", file, yamlError(err))
	}
	if err := checkVersion(file, v.Version); err != nil {
		return nil, err
	}
	var conf genYAML
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&conf); err != nil && err != io.EOF {
		return nil, usagef("%s: %s", file, yamlError(err))
	}
	if conf.Managed.Kind != 0 {
		var managed struct {
			Enabled bool `yaml:"enabled"`
		}
		if err := conf.Managed.Decode(&managed); err != nil {
			return nil, usagef("%s: managed: %s", file, yamlError(err))
		}
		if managed.Enabled {
			return nil, usagef("%s: managed mode is not supported: eda compiles the files as they are (set go_package in them, or run buf generate)", file)
		}
	}
	if conf.Inputs.Kind != 0 {
		return nil, usagef("%s: inputs are not supported: eda generates the modules of buf.yaml (remove inputs, or run buf generate)", file)
	}
	return &conf, nil
}

var yamlTypeName = regexp.MustCompile(` in type main\.\w+`)

// yamlError returns err's message on one line, without Go type names.
func yamlError(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.ReplaceAll(msg, "unmarshal errors:\n  ", "")
	msg = strings.ReplaceAll(msg, "\n  ", "; ")
	return yamlTypeName.ReplaceAllString(msg, "")
}

// displayDir names dir in messages.
func displayDir(dir string) string {
	if dir == "." || dir == "" {
		return "the current directory"
	}
	return dir
}
