package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/protoc-gen-eda/eda/evolution"
	"github.com/protoc-gen-eda/eda/evolution/samples"
)

// runLockIn runs eda lock with args and returns its exit status and output.
func runLockIn(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runLock(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestLockAndBreaking records releases of a workspace and checks later
// changes against them all: a field deleted in one release and its number
// given back in the next is found, though the last release alone looks
// fine.
func TestLockAndBreaking(t *testing.T) {
	ws := newBreakingWorkspace(t)
	orders := filepath.Join(ws, ordersFile)
	lock := filepath.Join(ws, evolution.LockFileName)

	code, stdout, stderr := runLockIn(t, "--config", ws, "--release", "v1")
	if code != 0 || stdout != "recorded release v1 (3 files) in "+lock+"\n" {
		t.Fatalf("eda lock v1: exit status %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	first := readFile(t, lock)
	code, stdout, _ = runLockIn(t, "--config", ws, "--release", "v1.0.1")
	if code != 0 || stdout != "unchanged since release v1: nothing recorded\n" || readFile(t, lock) != first {
		t.Fatalf("eda lock of an unchanged schema: exit status %d, stdout %q", code, stdout)
	}

	// v2 drops total_cents without reserving it: a break eda lock refuses
	// to record, until --force.
	edit(t, orders, "  int64 total_cents = 2;\n", "")
	code, stdout, _ = runLockIn(t, "--config", ws, "--release", "v2")
	if code != 1 || !strings.Contains(stdout, "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED") || !strings.Contains(stdout, "release v2 not recorded") {
		t.Fatalf("eda lock of a breaking change: exit status %d, stdout:\n%s", code, stdout)
	}
	if readFile(t, lock) != first {
		t.Fatal("a refused release changed the lock file")
	}
	if code, stdout, stderr = runLockIn(t, "--config", ws, "--release", "v2", "--force"); code != 0 || !strings.Contains(stdout, "recorded release v2") {
		t.Fatalf("eda lock --force: exit status %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, _, stderr = runLockIn(t, "--config", ws, "--release", "v2", "--force"); code != 2 || !strings.Contains(stderr, "release v2 is in the lock file already") {
		t.Errorf("eda lock of an existing name: exit status %d, stderr %q", code, stderr)
	}

	// Now number 2 comes back as another field. Against v2 alone it is an
	// addition; the lock's history knows v1 stored a total there.
	edit(t, orders, "  string order_id = 1;\n", "  string order_id = 1;\n  string coupon = 2;\n")
	code, stdout, stderr = runBreakingIn(t, "--config", ws)
	if code != 1 {
		t.Fatalf("eda breaking with the lock: exit status %d, stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{
		ws + "/" + ordersFile + ":13:3: FIELD_NUMBER_NO_REUSE: Field \"2\" with name \"coupon\" on message \"shop.v1.OrderPlaced\" reuses the number of field \"total_cents\" (int64) of release v1",
		"FIELD_WIRE_COMPATIBLE_TYPE: Field \"2\" with name \"coupon\" on message \"shop.v1.OrderPlaced\" changed type from \"int64\" to \"string\". (against release v1)",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("eda breaking output:\n%s\nlacks %q", stdout, want)
		}
	}
	// --against the lock file is the same as the default.
	if code2, stdout2, _ := runBreakingIn(t, "--config", ws, "--against", lock); code2 != code || stdout2 != stdout {
		t.Errorf("--against %s: exit status %d, output:\n%s\nwant the default's", lock, code2, stdout2)
	}
}

func TestBreakingLockErrors(t *testing.T) {
	ws := newBreakingWorkspace(t)
	// No lock and no --against: a usage error that says what to do.
	code, _, stderr := runBreakingIn(t, "--config", ws)
	if code != 2 || !strings.Contains(stderr, "--against is required when there is no") || !strings.Contains(stderr, "eda lock --release") {
		t.Errorf("no lock: exit status %d, stderr %q", code, stderr)
	}
	lock := filepath.Join(ws, evolution.LockFileName)
	writeFile(t, lock, `{"format": 1, "releases": [{"name": "v1", "files": ["a.proto"], "sha256": "00", "descriptors": "AAAA"}]}`)
	for _, args := range [][]string{{"--config", ws}, {"--config", ws, "--against", lock}} {
		code, stdout, stderr := runBreakingIn(t, args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, lock+": corrupt lock file: release v1") || !strings.Contains(stderr, "restore the file from version control") {
			t.Errorf("eda breaking %q with a corrupt lock: exit status %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
	code, _, stderr = runLockIn(t, "--config", ws, "--release", "v2")
	if code != 2 || !strings.Contains(stderr, "corrupt lock file") {
		t.Errorf("eda lock with a corrupt lock: exit status %d, stderr %q", code, stderr)
	}
	if code, _, stderr = runLockIn(t, "--config", ws); code != 2 || !strings.Contains(stderr, "--release is required") {
		t.Errorf("eda lock without --release: exit status %d, stderr %q", code, stderr)
	}
}

// TestBreakingSamples records a payload of the current schema, then deletes
// the field it holds: the sample no longer decodes.
func TestBreakingSamples(t *testing.T) {
	ws := newBreakingWorkspace(t)
	s, err := evolution.Compile(t.Context(), []string{filepath.Join(ws, "proto")}, []string{"shop/v1/orders.proto"})
	if err != nil {
		t.Fatal(err)
	}
	desc := s.Files[0].Messages().ByName("OrderPlaced")
	m := dynamicpb.NewMessage(desc)
	m.Set(desc.Fields().ByName("order_id"), protoreflect.ValueOfString("o-1"))
	m.Set(desc.Fields().ByName("total_cents"), protoreflect.ValueOfInt64(1250))
	dir := filepath.Join(ws, "samples")
	if err := samples.Write(dir, "placed", m); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := runBreakingIn(t, "--config", ws, "--against", ws, "--samples", dir); code != 0 || stdout != "" || stderr != "" {
		t.Fatalf("unchanged schema: exit status %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	prev := t.TempDir()
	if err := os.CopyFS(prev, os.DirFS(ws)); err != nil {
		t.Fatal(err)
	}
	edit(t, filepath.Join(ws, ordersFile), "  int64 total_cents = 2;\n", "  reserved 2;\n  reserved \"total_cents\";\n")
	code, stdout, stderr := runBreakingIn(t, "--config", ws, "--against", prev, "--samples", dir)
	if code != 1 || !strings.Contains(stdout, "SAMPLE_DECODES:") || !strings.Contains(stdout, "SAMPLE_DECODES_JSON:") {
		t.Errorf("field deleted: exit status %d, stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if code, _, stderr := runBreakingIn(t, "--config", ws, "--against", prev, "--samples", filepath.Join(ws, "proto")); code != 2 || !strings.Contains(stderr, "--samples") {
		t.Errorf("a folder that is not samples: exit status %d, stderr %q", code, stderr)
	}
}
