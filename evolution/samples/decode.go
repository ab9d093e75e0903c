package samples

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/protoc-gen-eda/eda/runtime"
)

// resolver finds the message and extension types a payload refers to (in
// Any values and extensions).
type resolver interface {
	protoregistry.MessageTypeResolver
	protoregistry.ExtensionTypeResolver
}

// problem is why a payload does not decode cleanly, with the position in
// the payload when the decoder gave one.
type problem struct {
	line, col int
	msg       string
}

// decode decodes data of contentType into m, strictly: a binary payload
// must leave no unknown fields and a protojson payload must name only known
// fields and enum values, since either means that replay loses or refuses
// what the payload holds. It returns nil when m reads the payload whole.
func decode(m protoreflect.Message, contentType string, data []byte, types resolver) *problem {
	switch contentType {
	case runtime.ContentTypeProtobuf, "":
		if err := (proto.UnmarshalOptions{Resolver: types}).Unmarshal(data, m.Interface()); err != nil {
			return &problem{line: 1, col: 1, msg: fmt.Sprintf("does not decode: %s", trimProto(err.Error()))}
		}
		if unknown := unknownFields(m, ""); len(unknown) > 0 {
			return &problem{line: 1, col: 1, msg: strings.Join(unknown, "; ")}
		}
		return nil
	case runtime.ContentTypeJSON:
		if err := (protojson.UnmarshalOptions{Resolver: types}).Unmarshal(data, m.Interface()); err != nil {
			return jsonProblem(err)
		}
		return nil
	}
	return &problem{line: 1, col: 1, msg: fmt.Sprintf("has content type %q, which samples do not hold", contentType)}
}

// jsonPosition matches the position protojson puts in its errors.
var jsonPosition = regexp.MustCompile(`\(line (\d+):(\d+)\): `)

// jsonProblem turns a protojson error into a problem at the position it
// names, if any.
func jsonProblem(err error) *problem {
	text := trimProto(err.Error())
	p := &problem{line: 1, col: 1}
	if loc := jsonPosition.FindStringSubmatchIndex(text); loc != nil {
		p.line, _ = strconv.Atoi(text[loc[2]:loc[3]])
		p.col, _ = strconv.Atoi(text[loc[4]:loc[5]])
		text = text[:loc[0]] + text[loc[1]:]
	}
	p.msg = "does not parse: " + text
	return p
}

// trimProto drops the "proto:" prefix of protobuf-go's errors, which is
// followed by a space or, at random, a non-breaking one.
func trimProto(s string) string {
	s, _ = strings.CutPrefix(s, "proto:")
	return strings.TrimLeft(s, " \u00a0")
}

// unknownFields describes the unknown fields left in m and the messages it
// holds, at their path from the payload's root ("items[0]"). A field number
// the message declares is there because its wire type changed.
func unknownFields(m protoreflect.Message, path string) []string {
	var out []string
	if raw := m.GetUnknown(); len(raw) > 0 {
		where := "the payload"
		if path != "" {
			where = path
		}
		for _, num := range fieldNumbers(raw) {
			if f := m.Descriptor().Fields().ByNumber(num); f != nil {
				out = append(out, fmt.Sprintf("holds field %d of %s (in %s) with another wire type than the current field %q: replay loses its value", num, m.Descriptor().FullName(), where, f.Name()))
			} else {
				out = append(out, fmt.Sprintf("holds field %d of %s (in %s), which the current schema does not declare: replay loses its value", num, m.Descriptor().FullName(), where))
			}
		}
	}
	m.Range(func(f protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := string(f.Name())
		if f.IsExtension() {
			name = "[" + string(f.FullName()) + "]"
		}
		if path != "" {
			name = path + "." + name
		}
		switch {
		case f.IsMap():
			if f.MapValue().Message() == nil {
				return true
			}
			var keys []protoreflect.MapKey
			v.Map().Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				keys = append(keys, k)
				return true
			})
			slices.SortFunc(keys, func(a, b protoreflect.MapKey) int { return strings.Compare(a.String(), b.String()) })
			for _, k := range keys {
				out = append(out, unknownFields(v.Map().Get(k).Message(), fmt.Sprintf("%s[%v]", name, k.Interface()))...)
			}
		case f.IsList():
			if f.Message() == nil {
				return true
			}
			for i := range v.List().Len() {
				out = append(out, unknownFields(v.List().Get(i).Message(), fmt.Sprintf("%s[%d]", name, i))...)
			}
		case f.Message() != nil:
			out = append(out, unknownFields(v.Message(), name)...)
		}
		return true
	})
	return out
}

// fieldNumbers lists the distinct field numbers of raw, in order of first
// appearance.
func fieldNumbers(raw protoreflect.RawFields) []protoreflect.FieldNumber {
	var nums []protoreflect.FieldNumber
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			break
		}
		m := protowire.ConsumeFieldValue(num, typ, raw[n:])
		if m < 0 {
			break
		}
		raw = raw[n+m:]
		if !slices.Contains(nums, num) {
			nums = append(nums, num)
		}
	}
	return nums
}
