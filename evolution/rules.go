package evolution

import "slices"

// Category groups rules by the encoding they protect, as buf's breaking
// categories do: a service that only ever stores binary protobuf can drop
// the WireJSON findings, one that stores or publishes protojson needs both.
type Category string

// Categories, named after buf's.
const (
	// CategoryWire rules protect the binary encoding.
	CategoryWire Category = "WIRE"
	// CategoryWireJSON rules protect the protojson encoding on top of the
	// binary one.
	CategoryWireJSON Category = "WIRE_JSON"
	// CategoryFile rules protect declarations per file: what generated
	// code and the event type registry are built from.
	CategoryFile Category = "FILE"
)

// Rule is one entry of the catalogue.
type Rule struct {
	// ID is the name printed in findings, in buf's style.
	ID string
	// Category is the narrowest encoding the rule protects.
	Category Category
	// Doc says what the rule catches and why it matters for stored events.
	Doc string
}

// Rule IDs. Each is documented in Rules.
const (
	FieldNoDeleteUnlessNumberReserved     = "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED"
	FieldNoDeleteUnlessNameReserved       = "FIELD_NO_DELETE_UNLESS_NAME_RESERVED"
	FieldWireCompatibleType               = "FIELD_WIRE_COMPATIBLE_TYPE"
	FieldWireJSONCompatibleType           = "FIELD_WIRE_JSON_COMPATIBLE_TYPE"
	FieldWireCompatibleCardinality        = "FIELD_WIRE_COMPATIBLE_CARDINALITY"
	FieldWireJSONCompatibleCardinality    = "FIELD_WIRE_JSON_COMPATIBLE_CARDINALITY"
	FieldSameOneof                        = "FIELD_SAME_ONEOF"
	FieldSameJSONName                     = "FIELD_SAME_JSON_NAME"
	EnumValueNoDeleteUnlessNumberReserved = "ENUM_VALUE_NO_DELETE_UNLESS_NUMBER_RESERVED"
	EnumValueNoDeleteUnlessNameReserved   = "ENUM_VALUE_NO_DELETE_UNLESS_NAME_RESERVED"
	ReservedMessageNoDelete               = "RESERVED_MESSAGE_NO_DELETE"
	ReservedEnumNoDelete                  = "RESERVED_ENUM_NO_DELETE"
	MessageNoDelete                       = "MESSAGE_NO_DELETE"
	EnumNoDelete                          = "ENUM_NO_DELETE"
	FileNoDelete                          = "FILE_NO_DELETE"
)

// Rules is the catalogue, in the order a reader meets the concepts. Check
// applies every rule; callers filter findings by Category.
var Rules = []Rule{
	{FieldNoDeleteUnlessNumberReserved, CategoryWire, `A message field was deleted without reserving its number.
Stored events still carry bytes under that number; a later field that reuses it
decodes them as its own value, silently and forever. Reserving the number makes
the compiler refuse the reuse.`},
	{FieldNoDeleteUnlessNameReserved, CategoryWireJSON, `A message field was deleted without reserving its name.
protojson keys fields by name; a later field of the same name would read the old
events' values with a different meaning, or fail to parse them.`},
	{FieldWireCompatibleType, CategoryWire, `A field's type changed to one that decodes old bytes differently or not
at all. Wire-compatible groups: int32, uint32, int64, uint64 and bool (varints);
sint32 and sint64 (zigzag varints); fixed32 and sfixed32; fixed64 and sfixed64;
string to bytes (not back: bytes need not be UTF-8). float, double, enums,
messages and groups stand alone; a message field must keep its message type and
an enum field may only change to an enum with the same short name holding every
old value. Old events are decoded with the new type on every replay.`},
	{FieldWireJSONCompatibleType, CategoryWireJSON, `A field's type changed in a way the binary encoding tolerates but protojson
does not: for example int32 to int64 (a number becomes a string), bool to int32,
or string to bytes (text becomes base64). Reported only when the change is
wire-compatible; otherwise FIELD_WIRE_COMPATIBLE_TYPE reports it.`},
	{FieldWireCompatibleCardinality, CategoryWire, `A field changed between singular, required and repeated (maps count as
repeated). A singular reader keeps only the last element of a repeated value and
numeric repeated values are packed, which a singular reader cannot parse; old
events lose data or fail to decode. A change of packed encoding alone is not
reported: parsers accept both encodings for repeated scalars.`},
	{FieldWireJSONCompatibleCardinality, CategoryWireJSON, `A field changed between repeated and map. The binary encoding is the
same, but protojson writes a list for one and an object for the other.`},
	{FieldSameOneof, CategoryWire, `A field moved into, out of, or between oneofs. Members of a oneof clear
each other when decoded, so an old event that set two fields now in one oneof
loses one of them on replay. proto3 optional's synthetic oneofs do not count.`},
	{FieldSameJSONName, CategoryWireJSON, `A field's JSON name changed (json_name or a rename). protojson events
written with the old key are no longer read into the field.`},
	{EnumValueNoDeleteUnlessNumberReserved, CategoryWire, `An enum value was deleted without reserving its number. Stored events keep
the number; a later value reusing it gives them a new meaning.`},
	{EnumValueNoDeleteUnlessNameReserved, CategoryWireJSON, `An enum value was deleted without reserving its name. protojson stores
enum values by name; events holding it fail to parse, and a later value of the
same name would take them over.`},
	{ReservedMessageNoDelete, CategoryWire, `A reserved number range or name was removed from a message. The
reservation is the only record that old events use that number; removing it
allows the reuse FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED guards against.`},
	{ReservedEnumNoDelete, CategoryWire, `A reserved number range or name was removed from an enum, allowing a later
value to reuse a number or name that stored events hold.`},
	{MessageNoDelete, CategoryFile, `A message was deleted from its file. Events of that type, or holding it,
are still in streams and must still be decoded; retire an event type with an
upcaster instead. Moving a message to another file is reported too, as buf's
FILE category does; the wire rules still pair the moved message by full name,
so an otherwise compatible move shows only this finding.`},
	{EnumNoDelete, CategoryFile, `An enum was deleted from its file; stored events whose fields use it
still hold its values.`},
	{FileNoDelete, CategoryFile, `A file of the previous schema is gone. The deletion of the messages and
enums it declared is not reported one by one; those moved elsewhere are still
checked by the wire rules, paired by full name.`},
}

// RuleByID returns the catalogue entry for id, so a caller can filter
// findings by Category or print a rule's doc.
func RuleByID(id string) (Rule, bool) {
	i := slices.IndexFunc(Rules, func(r Rule) bool { return r.ID == id })
	if i < 0 {
		return Rule{}, false
	}
	return Rules[i], true
}
