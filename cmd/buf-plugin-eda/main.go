// Command buf-plugin-eda is a buf check plugin running eda's rules inside
// buf lint and buf breaking: the EVENT rules of eda breaking (type names,
// aggregate ids, partition keys, topics, meaning and version of events and
// commands) as breaking rules, and the rules of eda lint as lint rules. The
// WIRE, WIRE_JSON and FILE rules of eda breaking are buf's own and are not
// registered again, nor are FIELD_NUMBER_NO_REUSE and
// ENUM_VALUE_NUMBER_NO_REUSE, which need the history of releases that eda
// lock records (buf breaking compares with one version).
//
// Install it and name it in buf.yaml (v2):
//
//	go install github.com/protoc-gen-eda/eda/cmd/buf-plugin-eda@latest
//
//	version: v2
//	modules:
//	  - path: proto
//	plugins:
//	  - plugin: buf-plugin-eda
//	lint:
//	  use: [STANDARD, EDA_LINT]
//	breaking:
//	  use: [WIRE_JSON, EDA_EVENT]
//
// EDA_EVENT is the category of the breaking rules and EDA_LINT that of the
// lint rules; each rule can also be named alone, and buf's except,
// ignore_only and // buf:lint:ignore comments apply to them as to buf's own.
// The rules are documented in package github.com/protoc-gen-eda/eda/evolution
// and in docs/lint.md; buf config ls-lint-rules and ls-breaking-rules list
// them with their purpose.
package main

import (
	"buf.build/go/bufplugin/check"
)

func main() {
	check.Main(newSpec())
}
