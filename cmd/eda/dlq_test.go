package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestDLQUsage(t *testing.T) {
	tests := []struct {
		args   []string
		stderr string
	}{
		{[]string{"--broker", "mem://"}, "give the subcommand: eda dlq requeue"},
		{[]string{"requeue"}, "--broker is required"},
		{[]string{"requeue", "--broker", "mem://", "--max", "-1"}, "--max must not be negative"},
		{[]string{"requeue", "--broker", "pigeon://coop"}, "unknown broker scheme"},
		{[]string{"requeue", "--broker", "mem://", "--bogus"}, "unknown flag: --bogus"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		if code := runDLQ(tt.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tt.stderr) {
			t.Errorf("eda dlq %q: exit status %d, stderr %q; want 2 and %q", tt.args, code, stderr.String(), tt.stderr)
		}
	}
	// On the embedded bus the topic is empty (it lives in this process):
	// the run ends idle, having requeued nothing.
	var stdout, stderr bytes.Buffer
	if code := runDLQ([]string{"requeue", "--broker", "mem://", "--idle", "50ms"}, &stdout, &stderr); code != 0 || stdout.String() != "requeued 0, left on eda.dead_letter 0\n" {
		t.Errorf("eda dlq requeue on mem://: exit status %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}
