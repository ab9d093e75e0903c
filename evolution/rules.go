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
	// CategoryEvent rules protect what the eda.v1 annotations make part of
	// an event's or command's contract beyond its bytes: type name, stream,
	// topic, ordering and meaning. They apply to messages annotated as
	// events or commands only; aggregate state, projections and sagas are
	// rebuilt rather than kept, so only the wire rules apply to them.
	CategoryEvent Category = "EVENT"
	// CategorySample rules decode recorded payloads of past versions with
	// the current schema (see package evolution/samples).
	CategorySample Category = "SAMPLE"
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
	FieldSameName                         = "FIELD_SAME_NAME"
	FieldSameDefault                      = "FIELD_SAME_DEFAULT"
	MessageSameRequiredFields             = "MESSAGE_SAME_REQUIRED_FIELDS"
	EnumValueSameName                     = "ENUM_VALUE_SAME_NAME"
	FileSamePackage                       = "FILE_SAME_PACKAGE"
	EnumValueNoDeleteUnlessNumberReserved = "ENUM_VALUE_NO_DELETE_UNLESS_NUMBER_RESERVED"
	EnumValueNoDeleteUnlessNameReserved   = "ENUM_VALUE_NO_DELETE_UNLESS_NAME_RESERVED"
	ReservedMessageNoDelete               = "RESERVED_MESSAGE_NO_DELETE"
	ReservedEnumNoDelete                  = "RESERVED_ENUM_NO_DELETE"
	MessageNoDelete                       = "MESSAGE_NO_DELETE"
	EnumNoDelete                          = "ENUM_NO_DELETE"
	FileNoDelete                          = "FILE_NO_DELETE"
	EventTypeStable                       = "EVENT_TYPE_STABLE"
	EventNoDelete                         = "EVENT_NO_DELETE"
	EventAggregateIDStable                = "EVENT_AGGREGATE_ID_STABLE"
	EventPartitionKeyStable               = "EVENT_PARTITION_KEY_STABLE"
	EventTopicStable                      = "EVENT_TOPIC_STABLE"
	EventMeaningChange                    = "EVENT_MEANING_CHANGE"
	EventVersionBump                      = "EVENT_VERSION_BUMP"
	FieldNumberNoReuse                    = "FIELD_NUMBER_NO_REUSE"
	EnumValueNumberNoReuse                = "ENUM_VALUE_NUMBER_NO_REUSE"
	SampleTypeKnown                       = "SAMPLE_TYPE_KNOWN"
	SampleDecodes                         = "SAMPLE_DECODES"
	SampleDecodesJSON                     = "SAMPLE_DECODES_JSON"
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
or string to bytes (text becomes base64). As in buf, every change
FIELD_WIRE_COMPATIBLE_TYPE reports is reported here too, so a check of either
category alone catches it.`},
	{FieldWireCompatibleCardinality, CategoryWire, `A field changed between singular, required and repeated (maps count as
repeated). A singular reader keeps only the last element of a repeated value and
numeric repeated values are packed, which a singular reader cannot parse; old
events lose data or fail to decode. A change of packed encoding alone is not
reported: parsers accept both encodings for repeated scalars.`},
	{FieldWireJSONCompatibleCardinality, CategoryWireJSON, `A field changed between repeated and map: the binary encoding is the
same, but protojson writes a list for one and an object for the other. Every
change FIELD_WIRE_COMPATIBLE_CARDINALITY reports is reported here too.`},
	{FieldSameOneof, CategoryWire, `A field moved into, out of, or between oneofs. Members of a oneof clear
each other when decoded, so an old event that set two fields now in one oneof
loses one of them on replay. proto3 optional's synthetic oneofs do not count.`},
	{FieldSameJSONName, CategoryWireJSON, `A field's JSON name changed (json_name or a rename). protojson events
written with the old key are no longer read into the field.`},
	{FieldSameName, CategoryWireJSON, `A field's name changed. protojson writes the JSON name but accepts the
field's proto name too, so producers that write proto names (UseProtoNames)
wrote events whose keys no longer match. Renaming an event's field also tends
to hide a change of meaning: add a new field instead.`},
	{FieldSameDefault, CategoryWire, `A proto2 (or editions) field's explicit default changed. A stored event
that did not set the field reads as the default: changing it changes the value
of every old event on replay.`},
	{MessageSameRequiredFields, CategoryWire, `A required field was added or removed. A reader rejects a payload that
lacks one of its required fields: new readers reject stored events written
before the field existed, old readers reject new payloads once it is gone.`},
	{EnumValueSameName, CategoryWireJSON, `A name of an enum number is gone: renamed, or an alias dropped. protojson
stores enum values by name and parses any alias; stored JSON events with the
old name no longer parse. Keep the old name as an alias (allow_alias) instead.`},
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
	{FileSamePackage, CategoryWire, `A file's proto package changed. Every message's full name changes with it:
type URLs in Any fields, the default type names of events and commands, and
the pairing of old and new declarations all depend on it.`},
	{EventTypeStable, CategoryEvent, `An event's or command's type name changed: its explicit type, or the
full name it defaults to (after a rename or a package change), without the old
name in aliases. Every stored event and in-flight message carries the type name;
the registry no longer knows the old one, so replay and consumers that are
behind fail to decode them. The versions are paired by type name and aliases,
else by full name, else by name within the same file. In FORWARD and FULL modes
(commands by default) a rename with an alias is reported too: the alias serves
new readers, but readers of the previous version receive a name they do not
know.`},
	{EventNoDelete, CategoryEvent, `An event or command present before is gone: no current event or command
of the same kind has its type name or lists it in aliases, so a rename with an
alias is not a deletion. Streams hold events of that type forever; keep the
message and retire the type with an upcaster that turns old events into their
replacement.`},
	{EventAggregateIDStable, CategoryEvent, `The field holding an event's or command's aggregate id (marked
aggregate_id, or named like the aggregate's) changed number, appeared or
disappeared. The aggregate id is the envelope subject and the key of the event
stream: stored events stay filed under the old field's values.`},
	{EventPartitionKeyStable, CategoryEvent, `The field holding an event's or command's partition key changed
number. Messages with one key are delivered in order; a new key interleaves new
messages with those already published under the old one. A key left to default
follows the aggregate id and is covered by EVENT_AGGREGATE_ID_STABLE.`},
	{EventTopicStable, CategoryEvent, `An event's or command's resolved topic changed (its own topic, its
type name it defaults to, or its aggregate's events or commands topic).
Subscribers of the old topic stop receiving it, and the messages already
published stay behind on the old topic.`},
	{EventMeaningChange, CategoryEvent, `A field of an event or command changed type in a way the binary
encoding accepts but that changes the stored values' meaning: a sign change
(int32 to uint32, fixed64 to sfixed64), a narrowing (int64 to int32), an
integer to bool, or string to bytes. Old events decode without error, to
different values, on every replay. Changes the WIRE rules report (for example
integer to enum or singular to repeated) are not repeated here. A widening
(int32 to int64, bool to an integer) keeps every stored value, so it passes in
BACKWARD modes (events by default) but is reported in FORWARD and FULL modes
(commands by default): readers of the previous version truncate the new values;
a narrowing is the other way round.`},
	{EventVersionBump, CategoryEvent, `An event or command has a finding on its own fields' shape (a WIRE type,
cardinality, oneof, default or required-field change, or EVENT_MEANING_CHANGE;
a map field's included, nested message types not) but its version did not
increase. Consumers and upcasters tell old payloads from new ones by
the envelope's version; a breaking change without a bump gives them no way to
upcast stored events. With the bump, the change to the message's own fields is
accepted (type, cardinality, oneof and JSON name findings, and
EVENT_MEANING_CHANGE, are not reported) because the upcaster registered for the
old version rewrites stored payloads (so are the name, default and
required-field changes of those rules): samples.Replay, run in go test, fails
when a recorded payload of the old version has no upcaster. A field deleted
without reserving its number, changes to nested message types, and type name,
topic and role changes are never accepted this way.`},
	{FieldNumberNoReuse, CategoryEvent, `A field number that an earlier release used for another field (another
name or type), and that releases after it dropped, is in use again. Stored
events of that release still hold bytes under the number and now decode them
into the new field. Reserving a deleted field's number prevents this, but a
deletion that was released without the reservation leaves only the lock file's
history to catch the reuse: this rule needs eda lock's releases and applies to
every message a compatibility mode checks, not only to events.`},
	{EnumValueNumberNoReuse, CategoryEvent, `An enum number that an earlier release gave to other names, and that
releases after it dropped, is in use again: stored events holding the number
now read as the new value. Checked from the lock file's history, like
FIELD_NUMBER_NO_REUSE.`},
	{SampleTypeKnown, CategorySample, `A recorded payload's type name is neither the type nor an alias of any
current event or command. Stored events of that type can no longer be decoded:
the type was deleted or renamed without an alias.`},
	{SampleDecodes, CategorySample, `A recorded binary payload of the event's current version does not decode
with the current schema, or decodes with fields the schema no longer knows
(their values are lost on replay). Payloads of older versions are upcast first;
eda breaking, which cannot run Go upcasters, leaves those to samples.Replay in
go test. A sample of a version above the current one is reported here too
(SAMPLE_DECODES_JSON for protojson): the schema cannot have written it.`},
	{SampleDecodesJSON, CategorySample, `A recorded protojson payload does not parse with the current schema: a
field or enum value name it uses is gone or renamed, or a value's JSON form
changed.`},
}

// RuleByID returns the catalogue entry for id, of Rules or LintRules, so a caller can filter
// findings by Category or print a rule's doc.
func RuleByID(id string) (Rule, bool) {
	for _, rules := range [][]Rule{Rules, LintRules} {
		if i := slices.IndexFunc(rules, func(r Rule) bool { return r.ID == id }); i >= 0 {
			return rules[i], true
		}
	}
	return Rule{}, false
}
