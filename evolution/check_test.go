package evolution

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// header starts every test file, so the first declaration is on line 4.
const header = "syntax = \"proto3\";\npackage shop.v1;\n\n"

// compileFiles writes files (path → body after header) under a temp
// directory and compiles them.
func compileFiles(t *testing.T, files map[string]string) *Schema {
	t.Helper()
	dir := t.TempDir()
	var names []string
	for name, body := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(header+body), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	s, err := Compile(context.Background(), []string{dir}, names)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name      string
		prev, cur map[string]string
		want      []string
	}{
		{
			name: "field deleted",
			prev: one("message Order {\n  string id = 1;\n  string note = 2;\n}\n"),
			cur:  one("message Order {\n  string id = 1;\n}\n"),
			want: []string{
				`shop.proto:4:1: FIELD_NO_DELETE_UNLESS_NAME_RESERVED: Previously present field "2" with name "note" on message "shop.v1.Order" was deleted without reserving the name "note".`,
				`shop.proto:4:1: FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED: Previously present field "2" with name "note" on message "shop.v1.Order" was deleted without reserving the number "2".`,
			},
		},
		{
			name: "field deleted with number reserved only",
			prev: one("message Order {\n  string id = 1;\n  string note = 2;\n}\n"),
			cur:  one("message Order {\n  string id = 1;\n  reserved 2;\n}\n"),
			want: []string{
				`shop.proto:4:1: FIELD_NO_DELETE_UNLESS_NAME_RESERVED: Previously present field "2" with name "note" on message "shop.v1.Order" was deleted without reserving the name "note".`,
			},
		},
		{
			name: "field deleted with number and name reserved",
			prev: one("message Order {\n  string id = 1;\n  string note = 2;\n}\n"),
			cur:  one("message Order {\n  string id = 1;\n  reserved 2;\n  reserved \"note\";\n}\n"),
		},
		{
			name: "field type changed incompatibly",
			prev: one("message Order {\n  int64 total = 1;\n  bytes blob = 2;\n  Item item = 3;\n}\nmessage Item {}\nmessage Line {}\n"),
			cur:  one("message Order {\n  double total = 1;\n  string blob = 2;\n  Line item = 3;\n}\nmessage Item {}\nmessage Line {}\n"),
			want: []string{
				`shop.proto:5:3: FIELD_WIRE_COMPATIBLE_TYPE: Field "1" with name "total" on message "shop.v1.Order" changed type from "int64" to "double".`,
				`shop.proto:5:3: FIELD_WIRE_JSON_COMPATIBLE_TYPE: Field "1" with name "total" on message "shop.v1.Order" changed type from "int64" to "double", which protojson encodes differently.`,
				`shop.proto:6:3: FIELD_WIRE_COMPATIBLE_TYPE: Field "2" with name "blob" on message "shop.v1.Order" changed type from "bytes" to "string".`,
				`shop.proto:6:3: FIELD_WIRE_JSON_COMPATIBLE_TYPE: Field "2" with name "blob" on message "shop.v1.Order" changed type from "bytes" to "string", which protojson encodes differently.`,
				`shop.proto:7:3: FIELD_WIRE_COMPATIBLE_TYPE: Field "3" with name "item" on message "shop.v1.Order" changed type from "shop.v1.Item" to "shop.v1.Line".`,
				`shop.proto:7:3: FIELD_WIRE_JSON_COMPATIBLE_TYPE: Field "3" with name "item" on message "shop.v1.Order" changed type from "shop.v1.Item" to "shop.v1.Line", which protojson encodes differently.`,
			},
		},
		{
			name: "field type changed within wire and JSON groups",
			prev: one("message Order {\n  int32 a = 1;\n  int64 b = 2;\n  fixed32 c = 3;\n  sfixed64 d = 4;\n}\n"),
			cur:  one("message Order {\n  uint32 a = 1;\n  uint64 b = 2;\n  sfixed32 c = 3;\n  fixed64 d = 4;\n}\n"),
		},
		{
			name: "field type changed wire compatibly but not for JSON",
			prev: one("message Order {\n  int32 a = 1;\n  sint32 b = 2;\n  string c = 3;\n}\n"),
			cur:  one("message Order {\n  int64 a = 1;\n  sint64 b = 2;\n  bytes c = 3;\n}\n"),
			want: []string{
				`shop.proto:5:3: FIELD_WIRE_JSON_COMPATIBLE_TYPE: Field "1" with name "a" on message "shop.v1.Order" changed type from "int32" to "int64", which protojson encodes differently.`,
				`shop.proto:6:3: FIELD_WIRE_JSON_COMPATIBLE_TYPE: Field "2" with name "b" on message "shop.v1.Order" changed type from "sint32" to "sint64", which protojson encodes differently.`,
				`shop.proto:7:3: FIELD_WIRE_JSON_COMPATIBLE_TYPE: Field "3" with name "c" on message "shop.v1.Order" changed type from "string" to "bytes", which protojson encodes differently.`,
			},
		},
		{
			name: "enum field switched to a different enum",
			prev: one("message Order {\n  Status status = 1;\n}\nenum Status {\n  STATUS_UNSPECIFIED = 0;\n}\nenum State {\n  STATE_UNSPECIFIED = 0;\n}\n"),
			cur:  one("message Order {\n  State status = 1;\n}\nenum Status {\n  STATUS_UNSPECIFIED = 0;\n}\nenum State {\n  STATE_UNSPECIFIED = 0;\n}\n"),
			want: []string{
				`shop.proto:5:3: FIELD_WIRE_COMPATIBLE_TYPE: Field "1" with name "status" on message "shop.v1.Order" changed type from "shop.v1.Status" to "shop.v1.State".`,
				`shop.proto:5:3: FIELD_WIRE_JSON_COMPATIBLE_TYPE: Field "1" with name "status" on message "shop.v1.Order" changed type from "shop.v1.Status" to "shop.v1.State", which protojson encodes differently.`,
			},
		},
		{
			name: "enum field switched to a same-named superset enum",
			prev: one("message Order {\n  Status status = 1;\n}\nenum Status {\n  STATUS_UNSPECIFIED = 0;\n}\nmessage V2 {\n  enum Status {\n    STATUS_UNSPECIFIED = 0;\n    STATUS_PAID = 1;\n  }\n}\n"),
			cur:  one("message Order {\n  V2.Status status = 1;\n}\nenum Status {\n  STATUS_UNSPECIFIED = 0;\n}\nmessage V2 {\n  enum Status {\n    STATUS_UNSPECIFIED = 0;\n    STATUS_PAID = 1;\n  }\n}\n"),
		},
		{
			name: "cardinality changed",
			prev: one("message Order {\n  string tag = 1;\n  repeated int32 qty = 2;\n  repeated Entry entries = 3;\n  message Entry {\n    string key = 1;\n    string value = 2;\n  }\n}\n"),
			cur:  one("message Order {\n  repeated string tag = 1;\n  int32 qty = 2;\n  map<string, string> entries = 3;\n  message Entry {\n    string key = 1;\n    string value = 2;\n  }\n}\n"),
			want: []string{
				`shop.proto:5:3: FIELD_WIRE_COMPATIBLE_CARDINALITY: Field "1" with name "tag" on message "shop.v1.Order" changed cardinality from "singular" to "repeated".`,
				`shop.proto:5:3: FIELD_WIRE_JSON_COMPATIBLE_CARDINALITY: Field "1" with name "tag" on message "shop.v1.Order" changed cardinality from "singular" to "repeated", which protojson encodes differently.`,
				`shop.proto:6:3: FIELD_WIRE_COMPATIBLE_CARDINALITY: Field "2" with name "qty" on message "shop.v1.Order" changed cardinality from "repeated" to "singular".`,
				`shop.proto:6:3: FIELD_WIRE_JSON_COMPATIBLE_CARDINALITY: Field "2" with name "qty" on message "shop.v1.Order" changed cardinality from "repeated" to "singular", which protojson encodes differently.`,
				`shop.proto:7:3: FIELD_WIRE_COMPATIBLE_TYPE: Field "3" with name "entries" on message "shop.v1.Order" changed type from "shop.v1.Order.Entry" to "shop.v1.Order.EntriesEntry".`,
				`shop.proto:7:3: FIELD_WIRE_JSON_COMPATIBLE_CARDINALITY: Field "3" with name "entries" on message "shop.v1.Order" changed cardinality from "repeated" to "map", which protojson encodes differently.`,
				`shop.proto:7:3: FIELD_WIRE_JSON_COMPATIBLE_TYPE: Field "3" with name "entries" on message "shop.v1.Order" changed type from "shop.v1.Order.Entry" to "shop.v1.Order.EntriesEntry", which protojson encodes differently.`,
			},
		},
		{
			name: "cardinality kept: optional added, packed encoding changed",
			prev: one("message Order {\n  string tag = 1;\n  repeated int32 qty = 2;\n}\n"),
			cur:  one("message Order {\n  optional string tag = 1;\n  repeated int32 qty = 2 [packed = false];\n}\n"),
		},
		{
			name: "oneof membership changed",
			prev: one("message Order {\n  string a = 1;\n  oneof pay {\n    string b = 2;\n  }\n  oneof ship {\n    string c = 3;\n  }\n}\n"),
			cur:  one("message Order {\n  oneof pay {\n    string a = 1;\n  }\n  string b = 2;\n  oneof post {\n    string c = 3;\n  }\n}\n"),
			want: []string{
				`shop.proto:6:5: FIELD_SAME_ONEOF: Field "1" with name "a" on message "shop.v1.Order" moved into oneof "pay".`,
				`shop.proto:8:3: FIELD_SAME_ONEOF: Field "2" with name "b" on message "shop.v1.Order" moved out of oneof "pay".`,
				`shop.proto:10:5: FIELD_SAME_ONEOF: Field "3" with name "c" on message "shop.v1.Order" moved from oneof "ship" to oneof "post".`,
			},
		},
		{
			name: "oneof kept; fields reordered inside it",
			prev: one("message Order {\n  oneof pay {\n    string a = 1;\n    string b = 2;\n  }\n}\n"),
			cur:  one("message Order {\n  oneof pay {\n    string b = 2;\n    string a = 1;\n  }\n}\n"),
		},
		{
			name: "JSON name changed",
			prev: one("message Order {\n  string order_id = 1;\n  string note = 2 [json_name = \"remark\"];\n}\n"),
			cur:  one("message Order {\n  string order_ref = 1;\n  string note = 2;\n}\n"),
			want: []string{
				`shop.proto:5:3: FIELD_SAME_JSON_NAME: Field "1" with name "order_ref" on message "shop.v1.Order" changed JSON name from "orderId" to "orderRef".`,
				`shop.proto:5:3: FIELD_SAME_NAME: Field "1" on message "shop.v1.Order" changed name from "order_id" to "order_ref".`,
				`shop.proto:6:3: FIELD_SAME_JSON_NAME: Field "2" with name "note" on message "shop.v1.Order" changed JSON name from "remark" to "note".`,
			},
		},
		{
			name: "JSON name kept by json_name on a renamed field: the proto name still counts",
			prev: one("message Order {\n  string order_id = 1;\n}\n"),
			cur:  one("message Order {\n  string order_ref = 1 [json_name = \"orderId\"];\n}\n"),
			want: []string{
				`shop.proto:5:3: FIELD_SAME_NAME: Field "1" on message "shop.v1.Order" changed name from "order_id" to "order_ref".`,
			},
		},
		{
			name: "enum value renamed; an alias keeps the old name",
			prev: one("enum Status {\n  STATUS_UNSPECIFIED = 0;\n  STATUS_OPEN = 1;\n  STATUS_DONE = 2;\n}\n"),
			cur:  one("enum Status {\n  option allow_alias = true;\n  STATUS_UNSPECIFIED = 0;\n  STATUS_OPENED = 1;\n  STATUS_DONE = 2;\n  STATUS_FINISHED = 2;\n}\n"),
			want: []string{
				`shop.proto:7:3: ENUM_VALUE_SAME_NAME: Enum value "1" on enum "shop.v1.Status" changed name from "STATUS_OPEN" to "STATUS_OPENED".`,
			},
		},
		{
			name: "enum value deleted",
			prev: one("enum Status {\n  STATUS_UNSPECIFIED = 0;\n  STATUS_PAID = 1;\n}\n"),
			cur:  one("enum Status {\n  STATUS_UNSPECIFIED = 0;\n}\n"),
			want: []string{
				`shop.proto:4:1: ENUM_VALUE_NO_DELETE_UNLESS_NAME_RESERVED: Previously present enum value "1" on enum "shop.v1.Status" was deleted without reserving the name "STATUS_PAID".`,
				`shop.proto:4:1: ENUM_VALUE_NO_DELETE_UNLESS_NUMBER_RESERVED: Previously present enum value "1" on enum "shop.v1.Status" was deleted without reserving the number "1".`,
			},
		},
		{
			name: "enum value deleted with number and name reserved",
			prev: one("enum Status {\n  STATUS_UNSPECIFIED = 0;\n  STATUS_PAID = 1;\n}\n"),
			cur:  one("enum Status {\n  STATUS_UNSPECIFIED = 0;\n  reserved 1;\n  reserved \"STATUS_PAID\";\n}\n"),
		},
		{
			name: "reserved ranges and names removed",
			prev: one("message Order {\n  reserved 2, 5 to 9;\n  reserved \"note\";\n}\nenum Status {\n  STATUS_UNSPECIFIED = 0;\n  reserved 1 to max;\n  reserved \"STATUS_PAID\";\n}\n"),
			cur:  one("message Order {\n  reserved 5 to 8;\n}\nenum Status {\n  STATUS_UNSPECIFIED = 0;\n  reserved 1 to 10;\n}\n"),
			want: []string{
				`shop.proto:4:1: RESERVED_MESSAGE_NO_DELETE: Previously present reserved name "note" on message "shop.v1.Order" is missing.`,
				`shop.proto:4:1: RESERVED_MESSAGE_NO_DELETE: Previously present reserved range "2" on message "shop.v1.Order" is missing.`,
				`shop.proto:4:1: RESERVED_MESSAGE_NO_DELETE: Previously present reserved range "5 to 9" on message "shop.v1.Order" is missing.`,
				`shop.proto:7:1: RESERVED_ENUM_NO_DELETE: Previously present reserved name "STATUS_PAID" on enum "shop.v1.Status" is missing.`,
				`shop.proto:7:1: RESERVED_ENUM_NO_DELETE: Previously present reserved range "1 to 2147483647" on enum "shop.v1.Status" is missing.`,
			},
		},
		{
			name: "reserved ranges split and widened",
			prev: one("message Order {\n  reserved 2 to 9;\n  reserved \"note\";\n}\nenum Status {\n  STATUS_UNSPECIFIED = 0;\n  reserved 3 to 4;\n}\n"),
			cur:  one("message Order {\n  reserved 1 to 4, 5, 6 to max;\n  reserved \"note\", \"memo\";\n}\nenum Status {\n  STATUS_UNSPECIFIED = 0;\n  reserved 3, 4;\n}\n"),
		},
		{
			name: "message and enum deleted",
			prev: one("message Order {\n  message Line {}\n  enum Kind {\n    KIND_UNSPECIFIED = 0;\n  }\n}\nmessage Refund {}\nenum Status {\n  STATUS_UNSPECIFIED = 0;\n}\n"),
			cur:  one("message Order {\n}\n"),
			want: []string{
				`shop.proto:2:1: ENUM_NO_DELETE: Previously present enum "shop.v1.Status" was deleted from file.`,
				`shop.proto:2:1: MESSAGE_NO_DELETE: Previously present message "shop.v1.Refund" was deleted from file.`,
				`shop.proto:4:1: ENUM_NO_DELETE: Previously present enum "shop.v1.Order.Kind" was deleted from file.`,
				`shop.proto:4:1: MESSAGE_NO_DELETE: Previously present message "shop.v1.Order.Line" was deleted from file.`,
			},
		},
		{
			name: "message replaced by an enum of the same name",
			prev: one("message Refund {}\n"),
			cur:  one("enum Refund {\n  REFUND_UNSPECIFIED = 0;\n}\n"),
			want: []string{
				`shop.proto:2:1: MESSAGE_NO_DELETE: Previously present message "shop.v1.Refund" was deleted from file.`,
			},
		},
		{
			name: "nothing deleted; declarations reordered",
			prev: one("message Order {\n  message Line {}\n}\nmessage Refund {}\nenum Status {\n  STATUS_UNSPECIFIED = 0;\n}\n"),
			cur:  one("enum Status {\n  STATUS_UNSPECIFIED = 0;\n}\nmessage Refund {}\nmessage Order {\n  message Line {}\n}\n"),
		},
		{
			name: "file deleted",
			prev: map[string]string{"shop.proto": "message Order {}\n", "old.proto": "message Old {}\n"},
			cur:  one("message Order {}\n"),
			want: []string{
				`old.proto:2:1: FILE_NO_DELETE: Previously present file "old.proto" was deleted.`,
			},
		},
		{
			name: "message moved between files",
			prev: map[string]string{"shop.proto": "message Order {\n  string id = 1;\n}\nmessage Refund {}\n"},
			cur:  map[string]string{"shop.proto": "message Order {\n  string id = 1;\n}\n", "refund.proto": "message Refund {\n  int32 n = 1;\n}\n"},
			want: []string{
				`shop.proto:2:1: MESSAGE_NO_DELETE: Previously present message "shop.v1.Refund" was deleted from file.`,
			},
		},
		{
			name: "map value type changed",
			prev: one("message Order {\n  string id = 1;\n  map<string, int32> qty = 2;\n}\n"),
			cur:  one("message Order {\n  string id = 1;\n  map<string, string> qty = 2;\n}\n"),
			want: []string{
				`shop.proto:6:3: FIELD_WIRE_COMPATIBLE_TYPE: Field "2" with name "value" on message "shop.v1.Order.QtyEntry" changed type from "int32" to "string".`,
				`shop.proto:6:3: FIELD_WIRE_JSON_COMPATIBLE_TYPE: Field "2" with name "value" on message "shop.v1.Order.QtyEntry" changed type from "int32" to "string", which protojson encodes differently.`,
			},
		},
		{
			name: "no change",
			prev: one("message Order {\n  string id = 1;\n  map<string, int32> qty = 2;\n}\n"),
			cur:  one("message Order {\n  string id = 1;\n  map<string, int32> qty = 2;\n}\n"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := findingStrings(Check(compileFiles(t, tt.prev), compileFiles(t, tt.cur)))
			if !slices.Equal(got, tt.want) {
				t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// one is a schema of a single file, shop.proto.
func one(body string) map[string]string {
	return map[string]string{"shop.proto": body}
}

func findingStrings(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.String())
	}
	return out
}
