package evolution

import "testing"

func TestRulesCatalogue(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Rules {
		if seen[r.ID] {
			t.Errorf("rule %s listed twice", r.ID)
		}
		seen[r.ID] = true
		if r.Doc == "" || r.Category == "" {
			t.Errorf("rule %s lacks a doc or category", r.ID)
		}
	}
	if _, ok := RuleByID("NO_SUCH_RULE"); ok {
		t.Error("RuleByID found an unknown rule")
	}
	// Every ID Check can emit must be in the catalogue.
	for _, id := range []string{
		FieldNoDeleteUnlessNumberReserved, FieldNoDeleteUnlessNameReserved, FieldWireCompatibleType,
		FieldWireJSONCompatibleType, FieldWireCompatibleCardinality, FieldWireJSONCompatibleCardinality,
		FieldSameOneof, FieldSameJSONName, EnumValueNoDeleteUnlessNumberReserved, EnumValueNoDeleteUnlessNameReserved,
		ReservedMessageNoDelete, ReservedEnumNoDelete, MessageNoDelete, EnumNoDelete, FileNoDelete,
		EventTypeStable, EventNoDelete, EventAggregateIDStable, EventPartitionKeyStable, EventTopicStable,
		EventMeaningChange, EventVersionBump,
	} {
		if r, ok := RuleByID(id); !ok || r.ID != id {
			t.Errorf("RuleByID(%s) = %v, %v", id, r, ok)
		}
	}
}
