package evolution

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

// releases compiles each body as shop.proto and names them r1, r2, ...
func releases(t *testing.T, bodies ...string) []Release {
	t.Helper()
	var out []Release
	for i, b := range bodies {
		out = append(out, Release{Name: "r" + string(rune('1'+i)), Schema: compileFiles(t, one(b))})
	}
	return out
}

func TestCheckHistory(t *testing.T) {
	tests := []struct {
		name    string
		history []string
		cur     string
		want    []string
	}{
		{
			name: "a field number given back after a release without it",
			history: []string{
				"message Order {\n  string id = 1;\n  string note = 2;\n}\n",
				"message Order {\n  string id = 1;\n}\n",
			},
			cur: "message Order {\n  string id = 1;\n  int64 total = 2;\n}\n",
			want: []string{
				`shop.proto:6:3: FIELD_NUMBER_NO_REUSE: Field "2" with name "total" on message "shop.v1.Order" reuses the number of field "note" (string) of release r1, which later releases dropped: stored events of that time decode their "note" into it.`,
			},
		},
		{
			name: "the same field given back is no reuse",
			history: []string{
				"message Order {\n  string id = 1;\n  string note = 2;\n}\n",
				"message Order {\n  string id = 1;\n}\n",
			},
			cur: "message Order {\n  string id = 1;\n  string note = 2;\n}\n",
		},
		{
			name: "an enum number given back",
			history: []string{
				"enum Status {\n  STATUS_UNSPECIFIED = 0;\n  STATUS_PAID = 1;\n}\n",
				"enum Status {\n  STATUS_UNSPECIFIED = 0;\n}\n",
			},
			cur: "enum Status {\n  STATUS_UNSPECIFIED = 0;\n  STATUS_REFUNDED = 1;\n}\n",
			want: []string{
				`shop.proto:6:3: ENUM_VALUE_NUMBER_NO_REUSE: Enum value "STATUS_REFUNDED" reuses the number "1" of enum value "STATUS_PAID" of release r1, which later releases dropped: stored events of that time now read as "STATUS_REFUNDED".`,
			},
		},
		{
			name: "events are transitive: a deletion released in r1 is still checked",
			history: []string{
				imp + event("OrderPlaced", "", "  int32 qty = 1;\n  string note = 2;\n"),
				imp + event("OrderPlaced", "", "  int32 qty = 1;\n  reserved 2;\n  reserved \"note\";\n"),
			},
			cur: imp + event("OrderPlaced", "", "  int32 qty = 1;\n"),
			want: []string{
				`shop.proto:5:1: FIELD_NO_DELETE_UNLESS_NAME_RESERVED: Previously present field "2" with name "note" on message "shop.v1.OrderPlaced" was deleted without reserving the name "note". (against release r1)`,
				`shop.proto:5:1: FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED: Previously present field "2" with name "note" on message "shop.v1.OrderPlaced" was deleted without reserving the number "2". (against release r1)`,
				`shop.proto:5:1: RESERVED_MESSAGE_NO_DELETE: Previously present reserved name "note" on message "shop.v1.OrderPlaced" is missing. (against release r2)`,
				`shop.proto:5:1: RESERVED_MESSAGE_NO_DELETE: Previously present reserved range "2" on message "shop.v1.OrderPlaced" is missing. (against release r2)`,
			},
		},
		{
			name: "commands are not transitive: only the last release counts",
			history: []string{
				imp + command("PlaceOrder", "", "  int32 qty = 1;\n  string note = 2;\n"),
				imp + command("PlaceOrder", "", "  int32 qty = 1;\n  reserved 2;\n  reserved \"note\";\n"),
			},
			cur: imp + command("PlaceOrder", "", "  int32 qty = 1;\n"),
			want: []string{
				`shop.proto:5:1: RESERVED_MESSAGE_NO_DELETE: Previously present reserved name "note" on message "shop.v1.PlaceOrder" is missing. (against release r2)`,
				`shop.proto:5:1: RESERVED_MESSAGE_NO_DELETE: Previously present reserved range "2" on message "shop.v1.PlaceOrder" is missing. (against release r2)`,
			},
		},
		{
			name: "events are transitive: every release is checked",
			history: []string{
				imp + event("OrderPlaced", "", "  int32 qty = 1;\n  string note = 2;\n"),
				imp + event("OrderPlaced", "version: 2", "  string qty = 1;\n  string note = 2;\n"),
			},
			cur: imp + event("OrderPlaced", "version: 2", "  string qty = 1;\n  bytes note = 2;\n"),
			want: []string{
				`shop.proto:5:1: EVENT_VERSION_BUMP: Event "shop.v1.OrderPlaced" changed incompatibly but its version went from 2 to 2: bump it and register an upcaster for version 2. (against release r2)`,
				`shop.proto:8:3: EVENT_MEANING_CHANGE: Field "2" with name "note" on message "shop.v1.OrderPlaced" changed type from "string" to "bytes": stored events decode, but to different values; add a new field instead. (against release r2)`,
				`shop.proto:8:3: FIELD_WIRE_JSON_COMPATIBLE_TYPE: Field "2" with name "note" on message "shop.v1.OrderPlaced" changed type from "string" to "bytes", which protojson encodes differently. (against release r2)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := findingStrings(CheckHistory(releases(t, tt.history...), compileFiles(t, one(tt.cur))))
			if !slices.Equal(got, tt.want) {
				t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestLockRoundTrip(t *testing.T) {
	rs := releases(t,
		imp+event("OrderPlaced", "", "  int32 qty = 1;\n  string note = 2;\n"),
		imp+event("OrderPlaced", "", "  int32 qty = 1;\n"),
	)
	var l Lock
	for _, r := range rs {
		if err := l.Add(r.Name, r.Schema); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Add("r1", rs[0].Schema); err == nil || !strings.Contains(err.Error(), "already") {
		t.Errorf("Add of an existing name: err = %v", err)
	}
	var buf bytes.Buffer
	if err := l.Write(&buf); err != nil {
		t.Fatal(err)
	}
	read, err := ReadLock(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(read.Releases) != 2 || read.Latest().Name != "r2" {
		t.Fatalf("releases = %v", read.Releases)
	}
	for i := range rs {
		if !SameSchema(read.Releases[i].Schema, rs[i].Schema) {
			t.Errorf("release %s changed in the round trip", rs[i].Name)
		}
	}
	if SameSchema(rs[0].Schema, rs[1].Schema) {
		t.Error("SameSchema of different releases")
	}
	// Writing what was read gives the same bytes: releases never change.
	var again bytes.Buffer
	if err := read.Write(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Error("rewriting the lock file changed it")
	}
	// A release read back keeps its source positions: a field re-added
	// with a new meaning is found against it.
	cur := compileFiles(t, one(imp+event("OrderPlaced", "", "  int32 qty = 1;\n  bool note = 2;\n")))
	got := findingStrings(CheckHistory(read.Releases, cur))
	want := `shop.proto:8:3: FIELD_NUMBER_NO_REUSE: Field "2" with name "note" on message "shop.v1.OrderPlaced" reuses the number of field "note" (string) of release r1, which later releases dropped: stored events of that time decode their "note" into it.`
	if !slices.Contains(got, want) {
		t.Errorf("findings:\n%s\nwant among them:\n%s", strings.Join(got, "\n"), want)
	}
}

func TestReadLockCorrupt(t *testing.T) {
	rs := releases(t, "message Order {}\n")
	var l Lock
	if err := l.Add("v1", rs[0].Schema); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := l.Write(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.String()
	digest := good[strings.Index(good, `"sha256": "`)+11:][:64]
	tests := []struct{ name, data, want string }{
		{"not JSON", "{", "not the JSON of an eda lock file"},
		{"unknown field", `{"format": 1, "releases": [], "extra": 1}`, "unknown field"},
		{"newer format", `{"format": 2, "releases": []}`, "format 2"},
		{"digest mismatch", strings.Replace(good, digest, strings.Repeat("0", 64), 1), "do not match their sha256"},
		{"not base64", strings.Replace(good, `"descriptors": "`, `"descriptors": "!`, 1), "not base64"},
		{"repeated name", `{"format": 1, "releases": [{"name": ""}]}`, "empty or repeated name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadLock(strings.NewReader(tt.data))
			if !errors.Is(err, ErrLockCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrLockCorrupt mentioning %q", err, tt.want)
			}
		})
	}
}
