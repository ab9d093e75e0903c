package sqlbroker

import (
	"strings"
	"testing"
)

func TestTableName(t *testing.T) {
	short := tableName(offsetsPrefix, "shop.orders.v1.Order.events")
	if short != "watermill_offsets_shop.orders.v1.Order.events" {
		t.Errorf("short topic: table %q, want watermill-sql's own name", short)
	}
	long := strings.Repeat("x", 60)
	a, b := tableName(offsetsPrefix, long+".a"), tableName(offsetsPrefix, long+".b")
	if a == b {
		t.Errorf("two long topics share table %q", a)
	}
	for _, name := range []string{a, b} {
		if len(name) > maxIdentifierLen || !strings.HasPrefix(name, offsetsPrefix+"xxx") {
			t.Errorf("long topic: table %q (%d bytes), want a prefixed name within %d bytes", name, len(name), maxIdentifierLen)
		}
	}
	if again := tableName(offsetsPrefix, long+".a"); again != a {
		t.Errorf("table names are not deterministic: %q then %q", a, again)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
	err := Config{Schema: strings.Repeat("s", 64), PollInterval: -1, BatchSize: -1}.Validate()
	for _, want := range []string{"Schema", "PollInterval", "BatchSize"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to name %s", err, want)
		}
	}
}
