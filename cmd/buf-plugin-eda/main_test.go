package main

import (
	"testing"

	"buf.build/go/bufplugin/check"
	"buf.build/go/bufplugin/check/checktest"

	"github.com/protoc-gen-eda/eda/evolution"
)

// schemasDir holds eda/v1/options.proto, which the test files import.
const schemasDir = "../../schemas"

func TestSpec(t *testing.T) {
	t.Parallel()
	checktest.SpecTest(t, newSpec())
}

// TestRuleSet checks which of evolution's rules the plugin registers, and
// as what.
func TestRuleSet(t *testing.T) {
	t.Parallel()
	got := map[string]check.RuleType{}
	for _, r := range newSpec().Rules {
		got[r.ID] = r.Type
	}
	for _, r := range evolution.Rules {
		typ, ok := got[r.ID]
		switch {
		case historyOnly[r.ID] && ok:
			t.Errorf("rule %s is registered, but only a history of releases can break it", r.ID)
		case r.Category == evolution.CategoryEvent && !historyOnly[r.ID] && (!ok || typ != check.RuleTypeBreaking):
			t.Errorf("EVENT rule %s: registered %v as %v, want a breaking rule", r.ID, ok, typ)
		case r.Category != evolution.CategoryEvent && ok:
			t.Errorf("%s rule %s is registered: buf has its own", r.Category, r.ID)
		}
	}
	for _, r := range evolution.LintRules {
		if typ, ok := got[r.ID]; !ok || typ != check.RuleTypeLint {
			t.Errorf("lint rule %s: registered %v as %v, want a lint rule", r.ID, ok, typ)
		}
	}
}

func TestBreaking(t *testing.T) {
	t.Parallel()
	checktest.CheckTest{
		Spec: newSpec(),
		Request: &checktest.RequestSpec{
			Files:        &checktest.ProtoFileSpec{DirPaths: []string{"testdata/cur", schemasDir}, FilePaths: []string{"shop/v1/orders.proto"}},
			AgainstFiles: &checktest.ProtoFileSpec{DirPaths: []string{"testdata/prev", schemasDir}, FilePaths: []string{"shop/v1/audit.proto", "shop/v1/orders.proto"}},
			RuleIDs:      ruleIDs(check.RuleTypeBreaking),
		},
		ExpectedAnnotations: []checktest.ExpectedAnnotation{
			{
				RuleID:              evolution.EventNoDelete,
				Message:             `Previously present event "shop.v1.AuditLogged" with type name "shop.AuditLogged" was deleted: streams still hold it, so keep the message and retire it with an upcaster; if it was renamed, list "shop.AuditLogged" in the new message's aliases.`,
				AgainstFileLocation: &checktest.ExpectedFileLocation{FileName: "shop/v1/audit.proto", StartLine: 7, StartColumn: 0, EndLine: 11, EndColumn: 1},
			},
			{
				RuleID:       evolution.EventTopicStable,
				Message:      `Event "shop.v1.OrderPlaced" moved from topic "shop.OrderPlaced" to topic "shop.OrderWasPlaced": consumers of the old topic stop receiving it and its history stays behind.`,
				FileLocation: &checktest.ExpectedFileLocation{FileName: "shop/v1/orders.proto", StartLine: 8, StartColumn: 0, EndLine: 12, EndColumn: 1},
			},
			{
				RuleID:       evolution.EventTypeStable,
				Message:      `Event "shop.v1.OrderPlaced" changed type name from "shop.OrderPlaced" to "shop.OrderWasPlaced": stored events and in-flight messages carry the old name; list it in aliases.`,
				FileLocation: &checktest.ExpectedFileLocation{FileName: "shop/v1/orders.proto", StartLine: 8, StartColumn: 0, EndLine: 12, EndColumn: 1},
			},
		},
	}.Run(t)
}

func TestLint(t *testing.T) {
	t.Parallel()
	checktest.CheckTest{
		Spec: newSpec(),
		Request: &checktest.RequestSpec{
			Files:   &checktest.ProtoFileSpec{DirPaths: []string{"testdata/cur", schemasDir}, FilePaths: []string{"shop/v1/orders.proto"}},
			RuleIDs: ruleIDs(check.RuleTypeLint),
		},
		// OrderCancel's buf:lint:ignore comment is honoured by evolution.Lint
		// itself; buf would drop the annotation anyway.
		ExpectedAnnotations: []checktest.ExpectedAnnotation{
			{
				RuleID:       evolution.EventHasOwner,
				FileLocation: &checktest.ExpectedFileLocation{FileName: "shop/v1/orders.proto", StartLine: 9, StartColumn: 2, EndLine: 9, EndColumn: 64},
			},
			{
				RuleID:       evolution.EventNamePastTense,
				Message:      `Event "shop.v1.OrderShip" is not named in the past tense: its last word "Ship" is not a past form; name it after what happened (OrderPlaced, PaymentDeclined).`,
				FileLocation: &checktest.ExpectedFileLocation{FileName: "shop/v1/orders.proto", StartLine: 22, StartColumn: 8, EndLine: 22, EndColumn: 17},
			},
		},
	}.Run(t)
}

// ruleIDs returns the IDs of the plugin's rules of type typ, as buf asks for
// them: buf runs lint and breaking rules in separate requests.
func ruleIDs(typ check.RuleType) []string {
	var ids []string
	for _, r := range newSpec().Rules {
		if r.Type == typ {
			ids = append(ids, r.ID)
		}
	}
	return ids
}
