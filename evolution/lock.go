package evolution

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// LockFileName is the lock file's conventional name, beside buf.yaml.
const LockFileName = "eda.lock"

// lockFormat is the version of the lock file's layout.
const lockFormat = 1

// Lock is the history of released schemas, committed with them, so that
// transitive checks see every release without digging through git.
//
// On disk it is JSON: a format number and, per release, its name, its files,
// the SHA-256 of its descriptors and the descriptors themselves (a
// FileDescriptorSet with source info, imports included but for
// descriptor.proto and the eda options, which every eda binary has;
// gzip-compressed and base64-encoded), oldest first. Appending a release appends one entry; the
// earlier ones never change.
type Lock struct {
	Releases []Release
	// entries are the releases as read or added, written back unchanged.
	entries []lockEntry
}

type lockFile struct {
	Format   int         `json:"format"`
	Releases []lockEntry `json:"releases"`
}

type lockEntry struct {
	Name        string   `json:"name"`
	Files       []string `json:"files"`
	SHA256      string   `json:"sha256"`
	Descriptors string   `json:"descriptors"`
}

// ErrLockCorrupt is wrapped by ReadLock's errors about the file's content,
// as opposed to errors reading it.
var ErrLockCorrupt = errors.New("corrupt lock file")

// ReadLock reads a lock file.
func ReadLock(r io.Reader) (*Lock, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var f lockFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: not the JSON of an eda lock file: %v", ErrLockCorrupt, err)
	}
	if f.Format != lockFormat {
		return nil, fmt.Errorf("%w: format %d, but this eda reads format %d: upgrade eda", ErrLockCorrupt, f.Format, lockFormat)
	}
	l := &Lock{}
	seen := map[string]bool{}
	for i, e := range f.Releases {
		if e.Name == "" || seen[e.Name] {
			return nil, fmt.Errorf("%w: release %d has an empty or repeated name %q", ErrLockCorrupt, i+1, e.Name)
		}
		seen[e.Name] = true
		s, err := e.schema()
		if err != nil {
			return nil, fmt.Errorf("%w: release %s: %v; restore the file from version control", ErrLockCorrupt, e.Name, err)
		}
		l.Releases = append(l.Releases, Release{Name: e.Name, Schema: s})
		l.entries = append(l.entries, e)
	}
	return l, nil
}

// schema decodes and links the release's descriptors.
func (e lockEntry) schema() (*Schema, error) {
	gz, err := base64.StdEncoding.DecodeString(e.Descriptors)
	if err != nil {
		return nil, fmt.Errorf("descriptors are not base64: %v", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("descriptors are not gzip: %v", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("descriptors are not gzip: %v", err)
	}
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != e.SHA256 {
		return nil, fmt.Errorf("descriptors do not match their sha256")
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("descriptors do not parse: %v", err)
	}
	files := &protoregistry.Files{}
	resolver := fallbackResolver{files}
	for _, fdp := range set.File {
		fd, err := protodesc.NewFile(fdp, resolver)
		if err != nil {
			return nil, fmt.Errorf("descriptors do not link: %v", err)
		}
		if err := files.RegisterFile(fd); err != nil {
			return nil, fmt.Errorf("descriptors do not link: %v", err)
		}
	}
	s := &Schema{}
	for _, path := range e.Files {
		fd, err := files.FindFileByPath(path)
		if err != nil {
			return nil, fmt.Errorf("file %s is listed but not among the descriptors", path)
		}
		s.Files = append(s.Files, fd)
	}
	return s, nil
}

// Latest returns the last release, or nil.
func (l *Lock) Latest() *Release {
	if len(l.Releases) == 0 {
		return nil
	}
	return &l.Releases[len(l.Releases)-1]
}

// Add appends s as the release called name. It fails if a release has that
// name already.
func (l *Lock) Add(name string, s *Schema) error {
	if name == "" || strings.TrimSpace(name) != name {
		return fmt.Errorf("release name %q: give a non-empty name without surrounding spaces, such as v1.2.0", name)
	}
	if slices.ContainsFunc(l.Releases, func(r Release) bool { return r.Name == name }) {
		return fmt.Errorf("release %s is in the lock file already: releases are never rewritten; name the new one differently", name)
	}
	e, err := newLockEntry(name, s)
	if err != nil {
		return err
	}
	l.Releases = append(l.Releases, Release{Name: name, Schema: s})
	l.entries = append(l.entries, e)
	return nil
}

// Write writes the lock file.
func (l *Lock) Write(w io.Writer) error {
	f := lockFile{Format: lockFormat, Releases: l.entries}
	if f.Releases == nil {
		f.Releases = []lockEntry{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(f)
}

func newLockEntry(name string, s *Schema) (lockEntry, error) {
	set := descriptorSet(s, true)
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(set)
	if err != nil {
		return lockEntry{}, err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return lockEntry{}, err
	}
	if _, err := zw.Write(raw); err != nil {
		return lockEntry{}, err
	}
	if err := zw.Close(); err != nil {
		return lockEntry{}, err
	}
	sum := sha256.Sum256(raw)
	e := lockEntry{Name: name, SHA256: hex.EncodeToString(sum[:]), Descriptors: base64.StdEncoding.EncodeToString(gz.Bytes())}
	for _, f := range s.Files {
		e.Files = append(e.Files, f.Path())
	}
	return e, nil
}

// descriptorSet returns s's files and everything they import, imports
// first, with or without source info.
func descriptorSet(s *Schema, sourceInfo bool) *descriptorpb.FileDescriptorSet {
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	own := map[string]bool{}
	for _, f := range s.Files {
		own[f.Path()] = true
	}
	var add func(f protoreflect.FileDescriptor)
	add = func(f protoreflect.FileDescriptor) {
		if seen[f.Path()] {
			return
		}
		seen[f.Path()] = true
		if builtin[f.Path()] && !own[f.Path()] {
			// Every eda binary links these; ReadLock takes them from there.
			return
		}
		for i := range f.Imports().Len() {
			add(f.Imports().Get(i).FileDescriptor)
		}
		fdp := protodesc.ToFileDescriptorProto(f)
		if !sourceInfo {
			fdp.SourceCodeInfo = nil
		}
		set.File = append(set.File, fdp)
	}
	for _, f := range s.Files {
		add(f)
	}
	return set
}

// SameSchema reports whether a and b declare the same files with the same
// descriptors, ignoring comments and layout: whether a release would
// record anything new.
func SameSchema(a, b *Schema) bool {
	return proto.Equal(resolved(descriptorSet(a, false)), resolved(descriptorSet(b, false)))
}

// resolved round-trips set through the wire format, so that options whose
// extensions a compiler left as unknown fields compare equal to the same
// options parsed with the extensions known.
func resolved(set *descriptorpb.FileDescriptorSet) *descriptorpb.FileDescriptorSet {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(set)
	if err != nil {
		return set
	}
	out := &descriptorpb.FileDescriptorSet{}
	if err := proto.Unmarshal(b, out); err != nil {
		return set
	}
	return out
}

// builtin are the imports a lock file leaves out, since every eda binary
// has them (descriptor.proto alone is most of a small release's size): the
// options are only read as extension bytes, so any version links.
var builtin = map[string]bool{
	"google/protobuf/descriptor.proto": true,
	edaOptionsPath:                     true,
}

// fallbackResolver finds files in the release, else among the builtin
// files linked into this binary.
type fallbackResolver struct{ files *protoregistry.Files }

func (r fallbackResolver) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	if fd, err := r.files.FindFileByPath(path); err == nil {
		return fd, nil
	}
	if builtin[path] {
		return protoregistry.GlobalFiles.FindFileByPath(path)
	}
	return nil, fmt.Errorf("import %s is missing from the release", path)
}

func (r fallbackResolver) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	if d, err := r.files.FindDescriptorByName(name); err == nil {
		return d, nil
	}
	return protoregistry.GlobalFiles.FindDescriptorByName(name)
}
