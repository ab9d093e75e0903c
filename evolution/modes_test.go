package evolution

import (
	"maps"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// command is a one-line command message with the given options and fields.
func command(name, opts, fields string) string {
	return "message " + name + " {\n  option (eda.v1.message).command = {" + opts + "};\n" + fields + "}\n"
}

func TestModes(t *testing.T) {
	s := compileFiles(t, one(imp+
		event("OrderPlaced", "", "  Money total = 1;\n  Status status = 2;\n")+
		command("PlaceOrder", "", "  Money total = 1;\n  Line line = 2;\n")+
		event("Audited", "compatibility: COMPATIBILITY_NONE", "  Note note = 1;\n")+
		"message Order {\n  option (eda.v1.message).aggregate = {};\n  Snap snap = 1;\n}\n"+
		"message Money {\n  int64 units = 1;\n}\n"+
		"message Line {\n  Money price = 1;\n}\n"+
		"message Note {}\nmessage Snap {}\nmessage Loose {}\n"+
		"enum Status {\n  STATUS_UNSPECIFIED = 0;\n}\n"))
	got := Modes(s)
	want := map[protoreflect.FullName]Mode{
		"shop.v1.OrderPlaced": ModeBackwardTransitive,
		"shop.v1.PlaceOrder":  ModeFull,
		"shop.v1.Audited":     ModeNone,
		"shop.v1.Order":       ModeNone,
		// Used by an event and a command: both modes at once.
		"shop.v1.Money":  ModeFullTransitive,
		"shop.v1.Line":   ModeFull,
		"shop.v1.Status": ModeBackwardTransitive,
		// Used only by messages checked with NONE.
		"shop.v1.Note": ModeNone,
		"shop.v1.Snap": ModeNone,
		// Used by nothing annotated.
		"shop.v1.Loose": DefaultPlainMode,
	}
	if !maps.Equal(got, want) {
		t.Errorf("Modes:\n got %v\nwant %v", got, want)
	}

	fileMode := compileFiles(t, one(imp+"option (eda.v1.file).compatibility = COMPATIBILITY_FORWARD;\n"+
		event("A", "", "")+event("B", "compatibility: COMPATIBILITY_FULL", "")+"message Order {\n  option (eda.v1.message).aggregate = {};\n}\nmessage P {}\n"))
	got = Modes(fileMode)
	want = map[protoreflect.FullName]Mode{
		"shop.v1.A": ModeForward, "shop.v1.B": ModeFull, "shop.v1.Order": ModeForward, "shop.v1.P": ModeForward,
	}
	if !maps.Equal(got, want) {
		t.Errorf("Modes with a file mode:\n got %v\nwant %v", got, want)
	}
	if s := ModeFullTransitive.String(); s != "FULL_TRANSITIVE" {
		t.Errorf("String = %q", s)
	}
}

func TestCheckModes(t *testing.T) {
	tests := []struct {
		name      string
		prev, cur map[string]string
		want      []string
	}{
		{
			name: "a version bump accepts a field's type change",
			prev: one(imp + event("OrderPlaced", "", "  int32 qty = 1;\n")),
			cur:  one(imp + event("OrderPlaced", "version: 2", "  string qty = 1;\n")),
		},
		{
			name: "a version bump does not accept a field deleted without reserving its number",
			prev: one(imp + event("OrderPlaced", "", "  int32 qty = 1;\n  string note = 2;\n")),
			cur:  one(imp + event("OrderPlaced", "version: 2", "  string qty = 1;\n  reserved \"note\";\n")),
			want: []string{
				`shop.proto:5:1: FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED: Previously present field "2" with name "note" on message "shop.v1.OrderPlaced" was deleted without reserving the number "2".`,
			},
		},
		{
			name: "a version bump does not accept a change in a nested value type",
			prev: one(imp + event("OrderPlaced", "", "  Money m = 1;\n") + "message Money {\n  int32 units = 1;\n}\n"),
			cur:  one(imp + event("OrderPlaced", "version: 2", "  Money m = 1;\n") + "message Money {\n  string units = 1;\n}\n"),
			want: []string{
				`shop.proto:10:3: FIELD_WIRE_COMPATIBLE_TYPE: Field "1" with name "units" on message "shop.v1.Money" changed type from "int32" to "string".`,
				`shop.proto:10:3: FIELD_WIRE_JSON_COMPATIBLE_TYPE: Field "1" with name "units" on message "shop.v1.Money" changed type from "int32" to "string", which protojson encodes differently.`,
			},
		},
		{
			name: "events are backward: a widening keeps the meaning",
			prev: one(imp + event("OrderPlaced", "", "  uint32 qty = 1;\n")),
			cur:  one(imp + event("OrderPlaced", "", "  uint64 qty = 1;\n")),
			want: []string{
				`shop.proto:7:3: FIELD_WIRE_JSON_COMPATIBLE_TYPE: Field "1" with name "qty" on message "shop.v1.OrderPlaced" changed type from "uint32" to "uint64", which protojson encodes differently.`,
			},
		},
		{
			name: "commands are full: a widening breaks readers of the previous version",
			prev: one(imp + command("PlaceOrder", "", "  uint32 qty = 1;\n")),
			cur:  one(imp + command("PlaceOrder", "", "  uint64 qty = 1;\n")),
			want: []string{
				`shop.proto:7:3: EVENT_MEANING_CHANGE: Field "1" with name "qty" on message "shop.v1.PlaceOrder" changed type from "uint32" to "uint64": readers of the previous version decode new values out of range differently.`,
				`shop.proto:7:3: FIELD_WIRE_JSON_COMPATIBLE_TYPE: Field "1" with name "qty" on message "shop.v1.PlaceOrder" changed type from "uint32" to "uint64", which protojson encodes differently.`,
			},
		},
		{
			name: "an event renamed with an alias passes backward",
			prev: one(imp + event("OrderPlaced", `type: "shop.OrderPlaced" topic: "shop"`, "")),
			cur:  one(imp + event("OrderPlaced", `type: "shop.OrderSubmitted" aliases: ["shop.OrderPlaced"] topic: "shop"`, "")),
		},
		{
			name: "a command renamed with an alias breaks forward",
			prev: one(imp + command("PlaceOrder", `type: "shop.PlaceOrder" topic: "shop"`, "")),
			cur:  one(imp + command("PlaceOrder", `type: "shop.SubmitOrder" aliases: ["shop.PlaceOrder"] topic: "shop"`, "")),
			want: []string{
				`shop.proto:5:1: EVENT_TYPE_STABLE: Command "shop.v1.PlaceOrder" changed type name from "shop.PlaceOrder" to "shop.SubmitOrder": the alias lets new readers decode the old name, but readers of the previous version do not know the new one.`,
			},
		},
		{
			name: "an event with mode NONE is not checked",
			prev: one(imp + event("Audited", "compatibility: COMPATIBILITY_NONE", "  int32 n = 1;\n")),
			cur:  one(imp + event("Audited", "compatibility: COMPATIBILITY_NONE", "  string n = 1;\n")),
		},
		{
			name: "an event with mode FORWARD may be deleted",
			prev: one(imp + event("Audited", "compatibility: COMPATIBILITY_FORWARD", "") + "message Keep {}\n"),
			cur:  one(imp + "message Keep {}\n"),
			want: []string{
				`shop.proto:2:1: MESSAGE_NO_DELETE: Previously present message "shop.v1.Audited" was deleted from file.`,
			},
		},
		{
			name: "a value type used only by aggregate state is not checked",
			prev: one(imp + "message Order {\n  option (eda.v1.message).aggregate = {};\n  Snap s = 1;\n}\nmessage Snap {\n  int32 n = 1;\n}\n"),
			cur:  one(imp + "message Order {\n  option (eda.v1.message).aggregate = {};\n  Snap s = 1;\n}\nmessage Snap {\n  string n = 1;\n}\n"),
		},
	}
	runCheckTests(t, tests)
}
