package evolution

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// eventProto uses the eda options, so compiling it needs eda/v1/options.proto.
const eventProto = `syntax = "proto3";
package shop.v1;

import "eda/v1/options.proto";

message OrderPlaced {
  option (eda.v1.message).event = {type: "shop.OrderPlaced"};
  string order_id = 1;
}
`

func TestCompile(t *testing.T) {
	repoSchemas := filepath.Join("..", "schemas")
	tests := []struct {
		name    string
		body    string
		schemas bool   // put the repository's schemas/ on the import path
		wantErr string // substring of the error; "" for success
	}{
		{name: "eda options from schemas dir", body: eventProto, schemas: true},
		{name: "eda options built in", body: eventProto},
		{
			name:    "errors carry positions",
			body:    "syntax = \"proto3\";\npackage shop.v1;\n\nmessage Order {\n  Missing m = 1;\n}\n",
			wantErr: "shop.proto:5:3: field shop.v1.Order.m: unknown type Missing",
		},
		{
			name:    "missing import names the import paths",
			body:    "syntax = \"proto3\";\npackage shop.v1;\n\nimport \"nope/v1/nope.proto\";\n",
			wantErr: "nope/v1/nope.proto",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "shop.proto"), []byte(tt.body), 0o644); err != nil {
				t.Fatal(err)
			}
			imports := []string{dir}
			if tt.schemas {
				imports = append(imports, repoSchemas)
			}
			s, err := Compile(context.Background(), imports, []string{"shop.proto"})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Files) != 1 || s.Files[0].Path() != "shop.proto" {
				t.Fatalf("files = %v, want [shop.proto]", s.Files)
			}
			msg := s.Files[0].Messages().ByName("OrderPlaced")
			if msg == nil {
				t.Fatal("OrderPlaced not compiled")
			}
			// Source info is what Check's positions come from.
			if loc := s.Files[0].SourceLocations().ByDescriptor(msg); loc.StartLine+1 != 6 {
				t.Errorf("OrderPlaced at line %d, want 6", loc.StartLine+1)
			}
		})
	}
}

func TestCheckProto2Required(t *testing.T) {
	write := func(body string) *Schema {
		dir := t.TempDir()
		src := "syntax = \"proto2\";\npackage shop.v1;\n\n" + body
		if err := os.WriteFile(filepath.Join(dir, "legacy.proto"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := Compile(context.Background(), []string{dir}, []string{"legacy.proto"})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	prev := write("message Order {\n  required string id = 1;\n  optional string note = 2;\n  optional int32 n = 3 [default = 5];\n}\n")
	cur := write("message Order {\n  optional string id = 1;\n  required string note = 2;\n  optional int32 n = 3 [default = 6];\n}\n")
	got := findingStrings(Check(prev, cur))
	want := []string{
		`legacy.proto:4:1: MESSAGE_SAME_REQUIRED_FIELDS: Message "shop.v1.Order" had required field "1" deleted: readers of the previous version reject payloads without it.`,
		`legacy.proto:5:3: FIELD_WIRE_COMPATIBLE_CARDINALITY: Field "1" with name "id" on message "shop.v1.Order" changed cardinality from "required" to "singular".`,
		`legacy.proto:5:3: FIELD_WIRE_JSON_COMPATIBLE_CARDINALITY: Field "1" with name "id" on message "shop.v1.Order" changed cardinality from "required" to "singular", which protojson encodes differently.`,
		`legacy.proto:6:3: FIELD_WIRE_COMPATIBLE_CARDINALITY: Field "2" with name "note" on message "shop.v1.Order" changed cardinality from "singular" to "required".`,
		`legacy.proto:6:3: FIELD_WIRE_JSON_COMPATIBLE_CARDINALITY: Field "2" with name "note" on message "shop.v1.Order" changed cardinality from "singular" to "required", which protojson encodes differently.`,
		`legacy.proto:6:3: MESSAGE_SAME_REQUIRED_FIELDS: Message "shop.v1.Order" had required field "2" added: stored events written without it are rejected.`,
		`legacy.proto:7:3: FIELD_SAME_DEFAULT: Field "3" with name "n" on message "shop.v1.Order" changed default value from 5 to 6.`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
