package samples

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// WriteOptions configures Write.
type WriteOptions struct {
	// Overwrite replaces a sample that exists with different bytes. Leave it
	// false: a sample of a released version records what stores hold and
	// must not change. Set it only while the version is unreleased.
	Overwrite bool
}

// Write records m under dir with WriteOptions{}; see WriteOptions.Write.
func Write(dir, name string, m proto.Message) error {
	return WriteOptions{}.Write(dir, name, m)
}

// Write records m, an event or command message annotated with eda.v1
// options, as the sample called name of its type name and current version:
// <dir>/<type name>/v<version>/<name>.binpb and <name>.json. The binary
// encoding is deterministic; the protojson one uses the runtime's field
// names and two-space indentation and ends with a newline, so re-recording
// the same message writes the same bytes.
//
// Rewriting a sample with the same bytes does nothing; with different bytes
// it is an error unless o.Overwrite is set. Call Write from a test behind a
// flag, and commit the files:
//
//	var record = flag.Bool("record", false, "record the event samples")
//
//	if *record {
//		err := samples.Write("samples", "placed", &ordersv1.OrderPlaced{...})
//	}
func (o WriteOptions) Write(dir, name string, m proto.Message) error {
	if m == nil || !m.ProtoReflect().IsValid() {
		return errors.New("samples.Write: the message is nil")
	}
	desc := m.ProtoReflect().Descriptor()
	t, ok := typeOf(desc)
	if !ok {
		return fmt.Errorf("samples.Write: %s is neither an event nor a command: annotate it with option (eda.v1.message).event or .command", desc.FullName())
	}
	if err := checkName("sample name", name); err != nil {
		return err
	}
	if err := checkName("type name", t.typeName); err != nil {
		return err
	}
	bin, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("samples.Write: %s: %w", t.typeName, err)
	}
	js, err := marshalJSON(m)
	if err != nil {
		return fmt.Errorf("samples.Write: %s: %w", t.typeName, err)
	}
	base := filepath.Join(dir, t.typeName, fmt.Sprintf("v%d", t.version), name)
	files := []struct {
		path string
		data []byte
	}{{base + extBinary, bin}, {base + extJSON, js}}
	// Check both before writing either, so a refusal leaves no half sample.
	for _, f := range files {
		old, err := os.ReadFile(f.path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return fmt.Errorf("samples.Write: %w", err)
		case !bytes.Equal(old, f.data) && !o.Overwrite:
			return fmt.Errorf("samples.Write: %s exists with other bytes: samples of a released version must not change; "+
				"record this one under another name, or set WriteOptions.Overwrite if version %d of %s is unreleased", filepath.ToSlash(f.path), t.version, t.typeName)
		}
	}
	if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
		return fmt.Errorf("samples.Write: %w", err)
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, f.data, 0o644); err != nil {
			return fmt.Errorf("samples.Write: %w", err)
		}
	}
	return nil
}

// marshalJSON encodes m as the runtime's protojson codec does, in a stable
// layout: protojson varies its whitespace on purpose, so it is re-indented.
func marshalJSON(m proto.Message) ([]byte, error) {
	raw, err := protojson.MarshalOptions{}.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// checkName refuses names that are not one path element.
func checkName(what, name string) error {
	if name == "" || name == "." || name == ".." || strings.HasPrefix(name, ".") || strings.ContainsAny(name, `/\`) {
		return fmt.Errorf("samples.Write: %s %q cannot name a file: use a name without slashes that does not start with a dot", what, name)
	}
	return nil
}
