package evolution

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// imp imports the eda options on line 4; the first declaration is on line 5.
const imp = "import \"eda/v1/options.proto\";\n"

// event is a one-line event message with the given options and fields.
func event(name, opts, fields string) string {
	return "message " + name + " {\n  option (eda.v1.message).event = {" + opts + "};\n" + fields + "}\n"
}

// order is an aggregate with an id field, for events that name it.
const order = "message Order {\n  option (eda.v1.message).aggregate = {};\n  string order_id = 1 [(eda.v1.field).aggregate_id = true];\n}\n"

func TestCheckEvents(t *testing.T) {
	tests := []struct {
		name      string
		prev, cur map[string]string
		want      []string
	}{
		{
			name: "type name changed without alias",
			prev: one(imp + event("OrderPlaced", "", "  string id = 1;\n")),
			cur:  one(imp + event("OrderPlaced", `type: "shop.OrderPlaced"`, "  string id = 1;\n")),
			want: []string{
				`shop.proto:5:1: EVENT_TOPIC_STABLE: Event "shop.v1.OrderPlaced" moved from topic "shop.v1.OrderPlaced" to topic "shop.OrderPlaced": consumers of the old topic stop receiving it and its history stays behind.`,
				`shop.proto:5:1: EVENT_TYPE_STABLE: Event "shop.v1.OrderPlaced" changed type name from "shop.v1.OrderPlaced" to "shop.OrderPlaced": stored events and in-flight messages carry the old name; list it in aliases.`,
			},
		},
		{
			name: "type name changed with alias and topic kept",
			prev: one(imp + event("OrderPlaced", "", "  string id = 1;\n")),
			cur:  one(imp + event("OrderPlaced", `type: "shop.OrderPlaced" aliases: ["shop.v1.OrderPlaced"] topic: "shop.v1.OrderPlaced"`, "  string id = 1;\n")),
		},
		{
			name: "event deleted",
			prev: one(imp + event("OrderPlaced", "", "") + event("OrderCancelled", "", "")),
			cur:  one(imp + event("OrderPlaced", "", "")),
			want: []string{
				`shop.proto:2:1: EVENT_NO_DELETE: Previously present event "shop.v1.OrderCancelled" with type name "shop.v1.OrderCancelled" was deleted: streams still hold it, so keep the message and retire it with an upcaster; if it was renamed, list "shop.v1.OrderCancelled" in the new message's aliases.`,
				`shop.proto:2:1: MESSAGE_NO_DELETE: Previously present message "shop.v1.OrderCancelled" was deleted from file.`,
			},
		},
		{
			name: "event renamed with alias",
			prev: one(imp + event("OrderCreated", `topic: "orders"`, "  string id = 1;\n")),
			cur:  one(imp + event("OrderPlaced", `aliases: ["shop.v1.OrderCreated"] topic: "orders"`, "  string id = 1;\n")),
			want: []string{
				`shop.proto:2:1: MESSAGE_NO_DELETE: Previously present message "shop.v1.OrderCreated" was deleted from file.`,
			},
		},
		{
			name: "annotation removed and plain messages ignored",
			prev: one(imp + event("OrderPlaced", "", "") + "message Note {}\n"),
			cur:  one(imp + "message OrderPlaced {}\n"),
			want: []string{
				`shop.proto:2:1: MESSAGE_NO_DELETE: Previously present message "shop.v1.Note" was deleted from file.`,
				`shop.proto:5:1: EVENT_NO_DELETE: Previously present event "shop.v1.OrderPlaced" with type name "shop.v1.OrderPlaced" was deleted: streams still hold it, so keep the message and retire it with an upcaster; if it was renamed, list "shop.v1.OrderPlaced" in the new message's aliases.`,
			},
		},
		{
			name: "aggregate id and partition key changed",
			prev: one(imp + order + event("OrderPlaced", `aggregate: "Order"`, "  string order_id = 1;\n  string customer_id = 2 [(eda.v1.field).partition_key = true];\n  string region = 3;\n")),
			cur:  one(imp + order + event("OrderPlaced", `aggregate: "Order"`, "  string order_id = 1;\n  string customer_id = 2 [(eda.v1.field).aggregate_id = true];\n  string region = 3 [(eda.v1.field).partition_key = true];\n")),
			want: []string{
				`shop.proto:12:3: EVENT_AGGREGATE_ID_STABLE: Event "shop.v1.OrderPlaced" changed its aggregate id from field "1" with name "order_id" to field "2" with name "customer_id": stored events are filed under the old id's value.`,
				`shop.proto:13:3: EVENT_PARTITION_KEY_STABLE: Event "shop.v1.OrderPlaced" changed its partition key from field "2" with name "customer_id" to field "3" with name "region": messages of one key are no longer delivered in order with those already published.`,
			},
		},
		{
			name: "aggregate id kept: marked instead of named like the aggregate's; default partition key",
			prev: one(imp + order + event("OrderPlaced", `aggregate: "Order"`, "  string order_id = 1;\n")),
			cur:  one(imp + order + event("OrderPlaced", `aggregate: "Order"`, "  string order_ref = 1 [(eda.v1.field).aggregate_id = true, json_name = \"orderId\"];\n")),
			want: []string{
				`shop.proto:11:3: FIELD_SAME_NAME: Field "1" on message "shop.v1.OrderPlaced" changed name from "order_id" to "order_ref".`,
			},
		},
		{
			name: "partition key mark dropped: falls back to the aggregate id",
			prev: one(imp + event("OrderPlaced", "", "  string order_id = 1 [(eda.v1.field).aggregate_id = true];\n  string customer_id = 2 [(eda.v1.field).partition_key = true];\n")),
			cur:  one(imp + event("OrderPlaced", "", "  string order_id = 1 [(eda.v1.field).aggregate_id = true];\n  string customer_id = 2;\n")),
			want: []string{
				`shop.proto:7:3: EVENT_PARTITION_KEY_STABLE: Event "shop.v1.OrderPlaced" changed its partition key from field "2" with name "customer_id" to field "1" with name "order_id": messages of one key are no longer delivered in order with those already published.`,
			},
		},
		{
			name: "topic changed through the aggregate",
			prev: one(imp + order + event("OrderPlaced", `aggregate: "Order"`, "  string order_id = 1;\n")),
			cur:  one(imp + strings.Replace(order, "aggregate = {}", `aggregate = {events_topic: "orders"}`, 1) + event("OrderPlaced", `aggregate: "Order"`, "  string order_id = 1;\n")),
			want: []string{
				`shop.proto:9:1: EVENT_TOPIC_STABLE: Event "shop.v1.OrderPlaced" moved from topic "shop.v1.Order.events" to topic "orders": consumers of the old topic stop receiving it and its history stays behind.`,
			},
		},
		{
			name: "topic kept: explicit topic equal to the default",
			prev: one(imp + order + event("OrderPlaced", `aggregate: "Order"`, "  string order_id = 1;\n")),
			cur:  one(imp + strings.Replace(order, "aggregate = {}", `aggregate = {events_topic: "shop.v1.Order.events"}`, 1) + event("OrderPlaced", `aggregate: ".shop.v1.Order" topic: "shop.v1.Order.events"`, "  string order_id = 1;\n")),
		},
		{
			name: "meaning changed on wire-compatible types",
			prev: one(imp + event("OrderPlaced", "", "  int32 qty = 1;\n  string note = 2;\n  int64 total = 3;\n  int32 count = 4;\n") + "message Plain {\n  int32 qty = 1;\n}\n"),
			cur:  one(imp + event("OrderPlaced", "", "  uint32 qty = 1;\n  bytes note = 2;\n  int32 total = 3;\n  int64 count = 4;\n") + "message Plain {\n  uint32 qty = 1;\n}\n"),
			want: []string{
				`shop.proto:5:1: EVENT_VERSION_BUMP: Event "shop.v1.OrderPlaced" changed incompatibly but its version went from 1 to 1: bump it and register an upcaster for version 1.`,
				`shop.proto:7:3: EVENT_MEANING_CHANGE: Field "1" with name "qty" on message "shop.v1.OrderPlaced" changed type from "int32" to "uint32": stored events decode, but to different values; add a new field instead.`,
				`shop.proto:8:3: EVENT_MEANING_CHANGE: Field "2" with name "note" on message "shop.v1.OrderPlaced" changed type from "string" to "bytes": stored events decode, but to different values; add a new field instead.`,
				`shop.proto:8:3: FIELD_WIRE_JSON_COMPATIBLE_TYPE: Field "2" with name "note" on message "shop.v1.OrderPlaced" changed type from "string" to "bytes", which protojson encodes differently.`,
				`shop.proto:9:3: EVENT_MEANING_CHANGE: Field "3" with name "total" on message "shop.v1.OrderPlaced" changed type from "int64" to "int32": stored events decode, but values out of the new range to different ones; add a new field instead.`,
				`shop.proto:9:3: FIELD_WIRE_JSON_COMPATIBLE_TYPE: Field "3" with name "total" on message "shop.v1.OrderPlaced" changed type from "int64" to "int32", which protojson encodes differently.`,
				`shop.proto:10:3: FIELD_WIRE_JSON_COMPATIBLE_TYPE: Field "4" with name "count" on message "shop.v1.OrderPlaced" changed type from "int32" to "int64", which protojson encodes differently.`,
			},
		},
		{
			name: "meaning change without a version bump; WIRE changes left to the wire rules",
			prev: one(imp + event("OrderPlaced", "", "  fixed32 qty = 1;\n  int32 n = 2;\n")),
			cur:  one(imp + event("OrderPlaced", "", "  sfixed32 qty = 1;\n  repeated int32 n = 2;\n")),
			want: []string{
				`shop.proto:5:1: EVENT_VERSION_BUMP: Event "shop.v1.OrderPlaced" changed incompatibly but its version went from 1 to 1: bump it and register an upcaster for version 1.`,
				`shop.proto:7:3: EVENT_MEANING_CHANGE: Field "1" with name "qty" on message "shop.v1.OrderPlaced" changed type from "fixed32" to "sfixed32": stored events decode, but to different values; add a new field instead.`,
				`shop.proto:8:3: FIELD_WIRE_COMPATIBLE_CARDINALITY: Field "2" with name "n" on message "shop.v1.OrderPlaced" changed cardinality from "singular" to "repeated".`,
				`shop.proto:8:3: FIELD_WIRE_JSON_COMPATIBLE_CARDINALITY: Field "2" with name "n" on message "shop.v1.OrderPlaced" changed cardinality from "singular" to "repeated", which protojson encodes differently.`,
			},
		},
		{
			name: "wire break without a version bump",
			prev: one(imp + event("OrderPlaced", "version: 2", "  string id = 1;\n  map<string, int32> qty = 2;\n")),
			cur:  one(imp + event("OrderPlaced", "", "  string id = 1;\n  map<string, string> qty = 2;\n")),
			want: []string{
				`shop.proto:5:1: EVENT_VERSION_BUMP: Event "shop.v1.OrderPlaced" changed incompatibly but its version went from 2 to 1: bump it and register an upcaster for version 2.`,
				`shop.proto:8:3: FIELD_WIRE_COMPATIBLE_TYPE: Field "2" with name "value" on message "shop.v1.OrderPlaced.QtyEntry" changed type from "int32" to "string".`,
				`shop.proto:8:3: FIELD_WIRE_JSON_COMPATIBLE_TYPE: Field "2" with name "value" on message "shop.v1.OrderPlaced.QtyEntry" changed type from "int32" to "string", which protojson encodes differently.`,
			},
		},
		{
			name: "wire break with a version bump",
			prev: one(imp + event("OrderPlaced", "", "  string id = 1;\n  string note = 2;\n")),
			cur:  one(imp + event("OrderPlaced", "version: 2", "  string id = 1;\n")),
			want: []string{
				`shop.proto:5:1: FIELD_NO_DELETE_UNLESS_NAME_RESERVED: Previously present field "2" with name "note" on message "shop.v1.OrderPlaced" was deleted without reserving the name "note".`,
				`shop.proto:5:1: FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED: Previously present field "2" with name "note" on message "shop.v1.OrderPlaced" was deleted without reserving the number "2".`,
			},
		},
		{
			name: "renamed event checked against its old message",
			prev: one(imp + event("OrderCreated", `topic: "orders"`, "  string id = 1;\n  string note = 2;\n")),
			cur:  one(imp + event("OrderPlaced", `aliases: ["shop.v1.OrderCreated"] topic: "orders"`, "  string id = 1;\n  reserved 2;\n  reserved \"note\";\n")),
			want: []string{
				`shop.proto:2:1: MESSAGE_NO_DELETE: Previously present message "shop.v1.OrderCreated" was deleted from file.`,
			},
		},
		{
			name: "renamed event with a wire break",
			prev: one(imp + event("OrderCreated", `topic: "orders"`, "  string id = 1;\n")),
			cur:  one(imp + event("OrderPlaced", `aliases: ["shop.v1.OrderCreated"] topic: "orders"`, "  int64 id = 1;\n")),
			want: []string{
				`shop.proto:2:1: MESSAGE_NO_DELETE: Previously present message "shop.v1.OrderCreated" was deleted from file.`,
				`shop.proto:5:1: EVENT_VERSION_BUMP: Event "shop.v1.OrderPlaced" changed incompatibly but its version went from 1 to 1: bump it and register an upcaster for version 1.`,
				`shop.proto:7:3: FIELD_WIRE_COMPATIBLE_TYPE: Field "1" with name "id" on message "shop.v1.OrderPlaced" changed type from "string" to "int64".`,
				`shop.proto:7:3: FIELD_WIRE_JSON_COMPATIBLE_TYPE: Field "1" with name "id" on message "shop.v1.OrderPlaced" changed type from "string" to "int64", which protojson encodes differently.`,
			},
		},
		{
			name: "command renamed without alias; event and command kinds not paired",
			prev: one(imp + "message PlaceOrder {\n  option (eda.v1.message).command = {topic: \"cmds\"};\n}\n" + event("OrderPlaced", "", "")),
			cur:  one(imp + "message PlaceOrder {\n  option (eda.v1.message).command = {type: \"shop.PlaceOrder\" topic: \"cmds\"};\n}\nmessage OrderPlaced {\n  option (eda.v1.message).command = {};\n}\n"),
			want: []string{
				`shop.proto:5:1: EVENT_TYPE_STABLE: Command "shop.v1.PlaceOrder" changed type name from "shop.v1.PlaceOrder" to "shop.PlaceOrder": stored events and in-flight messages carry the old name; list it in aliases.`,
				`shop.proto:8:1: EVENT_NO_DELETE: Previously present event "shop.v1.OrderPlaced" with type name "shop.v1.OrderPlaced" was deleted: streams still hold it, so keep the message and retire it with an upcaster; if it was renamed, list "shop.v1.OrderPlaced" in the new message's aliases.`,
			},
		},
		{
			name: "aggregate state and projections are rebuilt: mode NONE",
			prev: one(imp + "message Order {\n  option (eda.v1.message).aggregate = {};\n  int32 n = 1;\n}\nmessage Summary {\n  option (eda.v1.message).projection = {};\n  int32 n = 1;\n}\n"),
			cur:  one(imp + "message Order {\n  option (eda.v1.message).aggregate = {type: \"shop.Order\"};\n  uint32 n = 1;\n}\nmessage Summary {\n  option (eda.v1.message).projection = {};\n  string n = 1;\n}\n"),
			want: nil,
		},
		{
			name: "a file mode makes a projection checked",
			prev: one(imp + "option (eda.v1.file).compatibility = COMPATIBILITY_BACKWARD;\nmessage Summary {\n  option (eda.v1.message).projection = {};\n  int32 n = 1;\n}\n"),
			cur:  one(imp + "option (eda.v1.file).compatibility = COMPATIBILITY_BACKWARD;\nmessage Summary {\n  option (eda.v1.message).projection = {};\n  string n = 1;\n}\n"),
			want: []string{
				`shop.proto:8:3: FIELD_WIRE_COMPATIBLE_TYPE: Field "1" with name "n" on message "shop.v1.Summary" changed type from "int32" to "string".`,
				`shop.proto:8:3: FIELD_WIRE_JSON_COMPATIBLE_TYPE: Field "1" with name "n" on message "shop.v1.Summary" changed type from "int32" to "string", which protojson encodes differently.`,
			},
		},
		{
			name: "file holding an event deleted",
			prev: map[string]string{"shop.proto": "message Order {}\n", "old.proto": imp + event("OrderPlaced", "", "")},
			cur:  one("message Order {}\n"),
			want: []string{
				`old.proto:2:1: FILE_NO_DELETE: Previously present file "old.proto" was deleted.`,
				`old.proto:5:1: EVENT_NO_DELETE: Previously present event "shop.v1.OrderPlaced" with type name "shop.v1.OrderPlaced" was deleted: streams still hold it, so keep the message and retire it with an upcaster; if it was renamed, list "shop.v1.OrderPlaced" in the new message's aliases.`,
			},
		},
	}
	runCheckTests(t, tests)
}

func runCheckTests(t *testing.T, tests []struct {
	name      string
	prev, cur map[string]string
	want      []string
}) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := findingStrings(Check(compileFiles(t, tt.prev), compileFiles(t, tt.cur)))
			if !slices.Equal(got, tt.want) {
				t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestCheckEventsPackageChange moves an event to another proto package,
// which compileFiles' fixed header cannot express.
func TestCheckEventsPackageChange(t *testing.T) {
	compile := func(t *testing.T, pkg, opts string) *Schema {
		t.Helper()
		dir := t.TempDir()
		body := "syntax = \"proto3\";\npackage " + pkg + ";\n\n" + imp + event("OrderPlaced", opts, "")
		if err := os.WriteFile(filepath.Join(dir, "shop.proto"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := Compile(context.Background(), []string{dir}, []string{"shop.proto"})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	pkg := `shop.proto:2:1: FILE_SAME_PACKAGE: File package changed from "shop.v1" to "shop.v2".`
	tests := []struct {
		name, opts string
		want       []string
	}{
		{name: "without alias", want: []string{
			pkg,
			`shop.proto:5:1: EVENT_TOPIC_STABLE: Event "shop.v2.OrderPlaced" moved from topic "shop.v1.OrderPlaced" to topic "shop.v2.OrderPlaced": consumers of the old topic stop receiving it and its history stays behind.`,
			`shop.proto:5:1: EVENT_TYPE_STABLE: Event "shop.v2.OrderPlaced" changed type name from "shop.v1.OrderPlaced" to "shop.v2.OrderPlaced": stored events and in-flight messages carry the old name; list it in aliases.`,
		}},
		{name: "with alias and topic kept", opts: `aliases: ["shop.v1.OrderPlaced"] topic: "shop.v1.OrderPlaced"`, want: []string{pkg}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := findingStrings(Check(compile(t, "shop.v1", ""), compile(t, "shop.v2", tt.opts)))
			if !slices.Equal(got, tt.want) {
				t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestValuePreserving(t *testing.T) {
	tests := []struct {
		from, to string
		want     bool
	}{
		{"int32", "int64", true},
		{"uint32", "int64", true},
		{"uint32", "uint64", true},
		{"bool", "uint64", true},
		{"sint32", "sint64", true},
		{"int32", "uint32", false},
		{"uint32", "int32", false},
		{"int64", "int32", false},
		{"uint64", "int64", false},
		{"int32", "bool", false},
		{"fixed64", "sfixed64", false},
		{"string", "bytes", false},
	}
	kinds := map[string]protoreflect.Kind{}
	for k := protoreflect.Kind(1); k <= protoreflect.Sint64Kind; k++ {
		kinds[k.String()] = k
	}
	for _, tt := range tests {
		if got := valuePreserving(kinds[tt.from], kinds[tt.to]); got != tt.want {
			t.Errorf("valuePreserving(%s, %s) = %v, want %v", tt.from, tt.to, got, tt.want)
		}
	}
}
