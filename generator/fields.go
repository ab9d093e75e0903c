package generator

import (
	"slices"
	"strings"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/protoc-gen-eda/eda/generator/model"
	edav1 "github.com/protoc-gen-eda/eda/schemas/eda/v1"
)

// Field roles: which fields fill envelope attributes, checked once per file.

// checkFieldRoles validates every field role in the file: on the right kind
// of message, on a field of a type that can fill the envelope, at most once.
func (b *builder) checkFieldRoles(f *protogen.File, msgs []*protogen.Message) {
	for _, m := range msgs {
		kind := "message"
		if a, ok := b.byName[m.Desc.FullName()]; ok {
			kind = a.kind()
		}
		seen := map[string]string{}
		for _, fld := range m.Fields {
			opts := fieldOptions(fld)
			if opts == nil {
				continue
			}
			subject := kind + " " + string(m.Desc.Name())
			path := []int32{fieldOptionsPath, edaExtensionNumber}
			for _, role := range []struct {
				name  string
				set   bool
				kinds []string
			}{
				{"aggregate_id", opts.GetAggregateId(), []string{"event", "command", "aggregate"}},
				{"partition_key", opts.GetPartitionKey(), []string{"event", "command"}},
				{"correlation_id", opts.GetCorrelationId(), []string{"event", "command"}},
			} {
				if !role.set {
					continue
				}
				switch {
				case seen[role.name] != "":
					b.errorf(fld.Desc, subject, path, "field %s: %s is already field %s: mark one field per message", fld.Desc.Name(), role.name, seen[role.name])
				case !slices.Contains(role.kinds, kind):
					b.errorf(fld.Desc, subject, path, "field %s: %s applies to fields of %s messages, and this is %s", fld.Desc.Name(), role.name, strings.Join(role.kinds, ", "), article(kind))
				case fld.Desc.Cardinality() == protoreflect.Repeated:
					b.errorf(fld.Desc, subject, path, "field %s: %s needs a singular field, not a repeated or map field", fld.Desc.Name(), role.name)
				case envelopeField(fld) == nil || (role.name == "correlation_id" && fld.Desc.Kind() != protoreflect.StringKind):
					b.errorf(fld.Desc, subject, path, "field %s: %s needs a string%s field, not %s", fld.Desc.Name(), role.name, map[bool]string{true: "", false: " or integer"}[role.name == "correlation_id"], fieldType(fld))
				}
				if seen[role.name] == "" {
					seen[role.name] = string(fld.Desc.Name())
				}
			}
		}
		b.checkFieldRoles(f, m.Messages)
	}
}

// roleField returns the field of m whose options set role.
func roleField(m *protogen.Message, role func(*edav1.FieldOptions) bool) *protogen.Field {
	for _, f := range m.Fields {
		if opts := fieldOptions(f); opts != nil && role(opts) {
			return f
		}
	}
	return nil
}

// envelopeField returns how to read f into an envelope attribute, or nil for
// a field that cannot be one.
func envelopeField(f *protogen.Field) *model.Field {
	if f.Desc.Cardinality() == protoreflect.Repeated {
		return nil
	}
	var k model.FieldKind
	switch f.Desc.Kind() {
	case protoreflect.StringKind:
		k = model.String
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		k = model.Int32
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		k = model.Int64
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		k = model.Uint32
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		k = model.Uint64
	default:
		return nil
	}
	return &model.Field{Getter: "Get" + f.GoName, Kind: k}
}

func fieldType(f *protogen.Field) string {
	switch {
	case f.Message != nil:
		return "message " + string(f.Message.Desc.FullName())
	case f.Enum != nil:
		return "enum " + string(f.Enum.Desc.FullName())
	}
	return f.Desc.Kind().String()
}
