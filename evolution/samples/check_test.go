package samples

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/protoc-gen-eda/eda/evolution"
)

// header puts the first declaration of a test file on line 4.
const header = "syntax = \"proto3\";\npackage shop.v1;\nimport \"eda/v1/options.proto\";\n"

// compile compiles body, after header, as shop.proto.
func compile(t *testing.T, body string) *evolution.Schema {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "shop.proto"), []byte(header+body), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := evolution.Compile(context.Background(), []string{dir}, []string{"shop.proto"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// record writes the sample "s" of message name of schema s, set from the
// protojson payload.
func record(t *testing.T, dir string, s *evolution.Schema, name, payload string) {
	t.Helper()
	md := s.Files[0].Messages().ByName(protoreflect.Name(name))
	if md == nil {
		t.Fatalf("no message %s", name)
	}
	m := dynamicpb.NewMessage(md)
	if err := protojson.Unmarshal([]byte(payload), m); err != nil {
		t.Fatal(err)
	}
	if err := Write(dir, "s", m); err != nil {
		t.Fatal(err)
	}
}

const placed = `message OrderPlaced {
  option (eda.v1.message).event = {%s};
  string id = 1;
  Status status = 2;
  repeated Line lines = 3;
}
message Line {
  string sku = 1;
  int32 quantity = 2;
}
enum Status {
  STATUS_UNSPECIFIED = 0;
  STATUS_PLACED = 1;
}
`

func event(opts string) string { return strings.Replace(placed, "%s", opts, 1) }

const payload = `{"id": "o-1", "status": "STATUS_PLACED", "lines": [{"sku": "a", "quantity": 2}]}`

func TestCheck(t *testing.T) {
	tests := []struct {
		name      string
		prev, cur string
		msg       string // the message of prev recorded, default OrderPlaced
		want      []string
		decoded   int
		older     []string
		missing   []string
	}{
		{
			name:    "current sample",
			prev:    event(""),
			cur:     event(""),
			decoded: 2,
		},
		{
			name:    "field deleted",
			prev:    event(""),
			cur:     strings.Replace(event(""), "  Status status = 2;\n", "  reserved 2;\n  reserved \"status\";\n", 1),
			decoded: 2,
			want: []string{
				`samples/shop.v1.OrderPlaced/v1/s.binpb:1:1: SAMPLE_DECODES: Sample of event "shop.v1.OrderPlaced" version 1 holds field 2 of shop.v1.OrderPlaced (in the payload), which the current schema does not declare: replay loses its value.`,
				`samples/shop.v1.OrderPlaced/v1/s.json:3:3: SAMPLE_DECODES_JSON: Sample of event "shop.v1.OrderPlaced" version 1 does not parse: unknown field "status".`,
			},
		},
		{
			name:    "nested field deleted",
			prev:    event(""),
			cur:     strings.Replace(event(""), "  int32 quantity = 2;\n", "", 1),
			decoded: 2,
			want: []string{
				`samples/shop.v1.OrderPlaced/v1/s.binpb:1:1: SAMPLE_DECODES: Sample of event "shop.v1.OrderPlaced" version 1 holds field 2 of shop.v1.Line (in lines[0]), which the current schema does not declare: replay loses its value.`,
				`samples/shop.v1.OrderPlaced/v1/s.json:7:7: SAMPLE_DECODES_JSON: Sample of event "shop.v1.OrderPlaced" version 1 does not parse: unknown field "quantity".`,
			},
		},
		{
			name:    "field changed wire type",
			prev:    event(""),
			cur:     strings.Replace(event(""), "string id = 1;", "int64 id = 1;", 1),
			decoded: 2,
			want: []string{
				`samples/shop.v1.OrderPlaced/v1/s.binpb:1:1: SAMPLE_DECODES: Sample of event "shop.v1.OrderPlaced" version 1 holds field 1 of shop.v1.OrderPlaced (in the payload) with another wire type than the current field "id": replay loses its value.`,
				`samples/shop.v1.OrderPlaced/v1/s.json:2:9: SAMPLE_DECODES_JSON: Sample of event "shop.v1.OrderPlaced" version 1 does not parse: invalid value for int64 field id: "o-1".`,
			},
		},
		{
			name:    "enum value renamed",
			prev:    event(""),
			cur:     strings.Replace(event(""), "STATUS_PLACED = 1", "STATUS_OPEN = 1", 1),
			decoded: 2,
			want: []string{
				`samples/shop.v1.OrderPlaced/v1/s.json:3:13: SAMPLE_DECODES_JSON: Sample of event "shop.v1.OrderPlaced" version 1 does not parse: invalid value for enum field status: "STATUS_PLACED".`,
			},
		},
		{
			name:    "type renamed with alias",
			prev:    event(""),
			cur:     strings.Replace(event(`aliases: ["shop.v1.OrderPlaced"]`), "message OrderPlaced", "message OrderOpened", 1),
			decoded: 2,
		},
		{
			name:    "type name changed with alias",
			prev:    event(""),
			cur:     event(`type: "shop.OrderPlaced" aliases: ["shop.v1.OrderPlaced"]`),
			decoded: 2,
		},
		{
			name:    "type renamed without alias",
			prev:    event(""),
			cur:     strings.Replace(event(""), "message OrderPlaced", "message OrderOpened", 1),
			missing: []string{"shop.v1.OrderOpened"},
			want: []string{
				`samples/shop.v1.OrderPlaced/v1/s.binpb:1:1: SAMPLE_TYPE_KNOWN: Sample of type "shop.v1.OrderPlaced" version 1: no current event or command has this type name or alias; stored events of it can no longer be decoded. Restore the type, or list "shop.v1.OrderPlaced" in the aliases of the message that replaced it.`,
				`samples/shop.v1.OrderPlaced/v1/s.json:1:1: SAMPLE_TYPE_KNOWN: Sample of type "shop.v1.OrderPlaced" version 1: no current event or command has this type name or alias; stored events of it can no longer be decoded. Restore the type, or list "shop.v1.OrderPlaced" in the aliases of the message that replaced it.`,
			},
		},
		{
			name: "event became a plain message",
			prev: event(""),
			cur:  strings.Replace(event(""), "  option (eda.v1.message).event = {};\n", "", 1),
			want: []string{
				`samples/shop.v1.OrderPlaced/v1/s.binpb:1:1: SAMPLE_TYPE_KNOWN: Sample of type "shop.v1.OrderPlaced" version 1: no current event or command has this type name or alias; stored events of it can no longer be decoded. Restore the type, or list "shop.v1.OrderPlaced" in the aliases of the message that replaced it.`,
				`samples/shop.v1.OrderPlaced/v1/s.json:1:1: SAMPLE_TYPE_KNOWN: Sample of type "shop.v1.OrderPlaced" version 1: no current event or command has this type name or alias; stored events of it can no longer be decoded. Restore the type, or list "shop.v1.OrderPlaced" in the aliases of the message that replaced it.`,
			},
		},
		{
			name:    "sample of a newer version",
			prev:    event("version: 3"),
			cur:     event("version: 2"),
			missing: []string{"shop.v1.OrderPlaced"},
			want: []string{
				`samples/shop.v1.OrderPlaced/v3/s.binpb:1:1: SAMPLE_DECODES: Sample of event "shop.v1.OrderPlaced" is of version 3, above its current version 2: a version went down, or the sample was recorded from a schema not yet merged.`,
				`samples/shop.v1.OrderPlaced/v3/s.json:1:1: SAMPLE_DECODES_JSON: Sample of event "shop.v1.OrderPlaced" is of version 3, above its current version 2: a version went down, or the sample was recorded from a schema not yet merged.`,
			},
		},
		{
			name:    "sample of an older version is left to Replay",
			prev:    event(""),
			cur:     strings.Replace(event("version: 2"), "  Status status = 2;\n", "", 1),
			older:   []string{"samples/shop.v1.OrderPlaced/v1/s.binpb", "samples/shop.v1.OrderPlaced/v1/s.json"},
			missing: []string{"shop.v1.OrderPlaced"},
		},
		{
			name:    "command",
			prev:    "message PlaceOrder {\n  option (eda.v1.message).command = {version: 2};\n  string id = 1;\n  string note = 2;\n}\n",
			cur:     "message PlaceOrder {\n  option (eda.v1.message).command = {version: 2};\n  string id = 1;\n}\n",
			msg:     "PlaceOrder",
			decoded: 2,
			want: []string{
				`samples/shop.v1.PlaceOrder/v2/s.binpb:1:1: SAMPLE_DECODES: Sample of command "shop.v1.PlaceOrder" version 2 holds field 2 of shop.v1.PlaceOrder (in the payload), which the current schema does not declare: replay loses its value.`,
				`samples/shop.v1.PlaceOrder/v2/s.json:3:3: SAMPLE_DECODES_JSON: Sample of command "shop.v1.PlaceOrder" version 2 does not parse: unknown field "note".`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			prev := compile(t, tt.prev)
			msg, body := "OrderPlaced", payload
			if tt.msg != "" {
				msg, body = tt.msg, `{"id": "o-1", "note": "x"}`
			}
			record(t, "samples", prev, msg, body)
			cur := compile(t, tt.cur)
			res, err := Check(cur, "samples")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range res.Findings {
				got = append(got, f.String())
				if f.Rule != evolution.SampleTypeKnown && (f.Element == nil || f.Element.Parent() != cur.Files[0]) {
					t.Errorf("finding %s points at %v, not at a message of the current schema", f, f.Element)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if res.Decoded != tt.decoded || !slices.Equal(res.Older, tt.older) || !slices.Equal(res.Missing, tt.missing) {
				t.Errorf("decoded %d, older %q, missing %q; want %d, %q, %q", res.Decoded, res.Older, res.Missing, tt.decoded, tt.older, tt.missing)
			}
		})
	}
}

func TestCheckLayout(t *testing.T) {
	tests := []struct {
		name  string
		files []string // created empty under samples/
		want  string   // error substring; "" for none
	}{
		{name: "hidden files are ignored", files: []string{".DS_Store", "shop.v1.OrderPlaced/.keep", "shop.v1.OrderPlaced/v1/.s.json.swp"}},
		{name: "file at the type level", files: []string{"README.md"}, want: "samples/README.md is a file where a folder named after a type name is expected: a samples folder holds " + Layout},
		{name: "version folder without v", files: []string{"shop.v1.OrderPlaced/1/s.binpb"}, want: "samples/shop.v1.OrderPlaced/1 is not a folder named v<version>, such as v1"},
		{name: "version zero", files: []string{"shop.v1.OrderPlaced/v0/s.binpb"}, want: "samples/shop.v1.OrderPlaced/v0 is not a folder named v<version>"},
		{name: "file at the version level", files: []string{"shop.v1.OrderPlaced/v1"}, want: "samples/shop.v1.OrderPlaced/v1 is not a folder named v<version>"},
		{name: "unknown extension", files: []string{"shop.v1.OrderPlaced/v1/s.txt"}, want: "samples/shop.v1.OrderPlaced/v1/s.txt has neither the .binpb nor the .json extension"},
		{name: "folder at the sample level", files: []string{"shop.v1.OrderPlaced/v1/more/s.json"}, want: "samples/shop.v1.OrderPlaced/v1/more is a folder where sample files are expected"},
	}
	cur := compile(t, event(""))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			if err := os.Mkdir("samples", 0o755); err != nil {
				t.Fatal(err)
			}
			for _, f := range tt.files {
				path := filepath.Join("samples", filepath.FromSlash(f))
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			res, err := Check(cur, "samples")
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Check: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Check error %v, want it to contain %q", err, tt.want)
			case tt.want == "" && (len(res.Findings) > 0 || res.Decoded > 0):
				t.Fatalf("Check found %v, decoded %d in a folder of hidden files", res.Findings, res.Decoded)
			}
		})
	}
	if _, err := Check(cur, filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("Check of a missing folder succeeded")
	}
}

func TestWrite(t *testing.T) {
	s := compile(t, event("version: 2"))
	md := s.Files[0].Messages().ByName("OrderPlaced")
	newMsg := func(payload string) *dynamicpb.Message {
		m := dynamicpb.NewMessage(md)
		if err := protojson.Unmarshal([]byte(payload), m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	dir := t.TempDir()
	m := newMsg(payload)
	if err := Write(dir, "placed", m); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "shop.v1.OrderPlaced", "v2", "placed")
	js, err := os.ReadFile(base + ".json")
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := "{\n  \"id\": \"o-1\",\n  \"status\": \"STATUS_PLACED\",\n  \"lines\": [\n    {\n      \"sku\": \"a\",\n      \"quantity\": 2\n    }\n  ]\n}\n"
	if string(js) != wantJSON {
		t.Errorf("JSON sample:\n%s\nwant:\n%s", js, wantJSON)
	}
	bin, err := os.ReadFile(base + ".binpb")
	if err != nil {
		t.Fatal(err)
	}
	back := dynamicpb.NewMessage(md)
	if err := proto.Unmarshal(bin, back); err != nil || !proto.Equal(back, m) {
		t.Errorf("binary sample decodes to %v (%v), want %v", back, err, m)
	}

	// The same message again is a no-op; another one is refused, and
	// leaves both files as they were.
	if err := Write(dir, "placed", newMsg(payload)); err != nil {
		t.Errorf("rewriting the same sample: %v", err)
	}
	other := newMsg(`{"id": "o-2"}`)
	err = Write(dir, "placed", other)
	if want := "placed.binpb exists with other bytes: samples of a released version must not change; record this one under another name, or set WriteOptions.Overwrite if version 2 of shop.v1.OrderPlaced is unreleased"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("overwriting a sample: %v, want an error containing %q", err, want)
	}
	if js2, _ := os.ReadFile(base + ".json"); string(js2) != wantJSON {
		t.Errorf("a refused Write changed the JSON sample to:\n%s", js2)
	}
	if err := (WriteOptions{Overwrite: true}).Write(dir, "placed", other); err != nil {
		t.Fatalf("Overwrite: %v", err)
	}
	if js2, _ := os.ReadFile(base + ".json"); string(js2) != "{\n  \"id\": \"o-2\"\n}\n" {
		t.Errorf("overwritten JSON sample:\n%s", js2)
	}

	for _, tt := range []struct {
		name, sample string
		m            proto.Message
		want         string
	}{
		{"plain message", "s", dynamicpb.NewMessage(s.Files[0].Messages().ByName("Line")), `shop.v1.Line is neither an event nor a command`},
		{"nil message", "s", nil, "the message is nil"},
		{"path in the name", "a/b", m, `sample name "a/b" cannot name a file`},
		{"empty name", "", m, `sample name "" cannot name a file`},
	} {
		if err := Write(dir, tt.sample, tt.m); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Write error %v, want it to contain %q", tt.name, err, tt.want)
		}
	}
}
