package generator

import (
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"

	edav1 "github.com/protoc-gen-eda/eda/schemas/eda/v1"
)

// This file is the only place that reads eda.v1 options.

func fileOptions(f *protogen.File) *edav1.FileOptions {
	if opts := f.Desc.Options(); opts != nil {
		if v, ok := proto.GetExtension(opts, edav1.E_File).(*edav1.FileOptions); ok && v != nil {
			return v
		}
	}
	return &edav1.FileOptions{}
}

func messageOptions(m *protogen.Message) *edav1.MessageOptions {
	if opts := m.Desc.Options(); opts != nil && proto.HasExtension(opts, edav1.E_Message) {
		if v, ok := proto.GetExtension(opts, edav1.E_Message).(*edav1.MessageOptions); ok {
			return v
		}
	}
	return nil
}

func fieldOptions(f *protogen.Field) *edav1.FieldOptions {
	if opts := f.Desc.Options(); opts != nil && proto.HasExtension(opts, edav1.E_Field) {
		if v, ok := proto.GetExtension(opts, edav1.E_Field).(*edav1.FieldOptions); ok {
			return v
		}
	}
	return nil
}

// Field numbers inside eda.v1 options, for error positions.
const (
	optEvent      = 1 // MessageOptions.event
	optCommand    = 2 // MessageOptions.command
	optAggregate  = 3
	optProjection = 4
	optSaga       = 5

	optType      = 1 // EventOptions.type and CommandOptions.type
	optAliases   = 2
	optTopic     = 4
	optAggRef    = 5 // EventOptions.aggregate and CommandOptions.aggregate
	optDelivery  = 6
	optRetry     = 8 // CommandOptions.retry_on_conflict
	optAggTopic  = 2 // AggregateOptions.events_topic
	optAggCmdTop = 3 // AggregateOptions.commands_topic
)
