package samples

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/protoc-gen-eda/eda/evolution"
	"github.com/protoc-gen-eda/eda/golden/options"
	"github.com/protoc-gen-eda/eda/runtime"
)

// The history of golden/options' StockCounted, version 3 and type
// "golden.StockCounted": at version 1 it was "golden.StockTaken" and held
// the count as field 4, "qty"; version 2 took its current name and fields.
const (
	stockTakenV1 = `syntax = "proto3";
package golden.options;
import "eda/v1/options.proto";
message StockTaken {
  option (eda.v1.message).event = {type: "golden.StockTaken"};
  string warehouse_id = 1;
  string sku = 2;
  int32 qty = 4;
}
`
	stockCountedV2 = `syntax = "proto3";
package golden.options;
import "eda/v1/options.proto";
message StockCounted {
  option (eda.v1.message).event = {type: "golden.StockCounted" version: 2};
  string warehouse_id = 1;
  string sku = 2;
  int64 count = 3;
}
`
)

// recordHistory writes samples of every version of StockCounted under dir.
func recordHistory(t *testing.T, dir string) {
	t.Helper()
	for _, old := range []struct{ source, msg, payload string }{
		{stockTakenV1, "StockTaken", `{"warehouseId": "w-1", "sku": "a", "qty": 5}`},
		{stockCountedV2, "StockCounted", `{"warehouseId": "w-1", "sku": "a", "count": "6"}`},
	} {
		src := t.TempDir()
		if err := os.WriteFile(filepath.Join(src, "old.proto"), []byte(old.source), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := evolution.Compile(context.Background(), []string{src}, []string{"old.proto"})
		if err != nil {
			t.Fatal(err)
		}
		record(t, dir, s, old.msg, old.payload)
	}
	if err := Write(dir, "s", &options.StockCounted{WarehouseId: "w-1", Sku: "a", Count: 7}); err != nil {
		t.Fatal(err)
	}
}

// Field numbers of the count in versions 1 and 2.
const (
	qtyField   = 4
	countField = 3
)

// takenToCounted upcasts golden.StockTaken version 1 to
// golden.StockCounted version 2, moving qty to count; with rename false it
// forgets to, the bug Replay is there to catch.
func takenToCounted(rename bool) runtime.UpcastFunc {
	return func(_ context.Context, rec *runtime.EventRecord) error {
		rec.Type, rec.SchemaVersion = options.StockCountedEventType, 2
		if !rename {
			return nil
		}
		if rec.ContentType == runtime.ContentTypeJSON {
			var fields map[string]any
			if err := json.Unmarshal(rec.Data, &fields); err != nil {
				return err
			}
			fields["count"] = fields["qty"]
			delete(fields, "qty")
			data, err := json.Marshal(fields)
			rec.Data = data
			return err
		}
		var out []byte
		for b := rec.Data; len(b) > 0; {
			num, typ, n := protowire.ConsumeTag(b)
			m := protowire.ConsumeFieldValue(num, typ, b[n:])
			if n < 0 || m < 0 {
				return errors.New("malformed payload")
			}
			if num == qtyField {
				num = countField
			}
			out = protowire.AppendTag(out, num, typ)
			out = append(out, b[n:n+m]...)
			b = b[n+m:]
		}
		rec.Data = out
		return nil
	}
}

// bumpVersion upcasts golden.StockCounted version 2, whose fields version 3
// kept, by relabelling it.
func bumpVersion(_ context.Context, rec *runtime.EventRecord) error {
	rec.SchemaVersion = 3
	return nil
}

func TestReplay(t *testing.T) {
	type upcaster struct {
		eventType string
		version   uint32
		fn        runtime.UpcastFunc
	}
	tests := []struct {
		name      string
		upcasters []upcaster
		extra     string // a sample file to add, under dir
		want      []string
	}{
		{
			name:      "every version upcasts to the current one",
			upcasters: []upcaster{{"golden.StockTaken", 1, takenToCounted(true)}, {"golden.StockCounted", 2, bumpVersion}},
		},
		{
			name: "no upcasters",
			want: []string{
				`/golden.StockCounted/v2/s.binpb: golden.StockCounted version 2 has no upcaster path to version 3 of event "golden.options.StockCounted": register an upcaster for golden.StockCounted version 2`,
				`/golden.StockCounted/v2/s.json: golden.StockCounted version 2 has no upcaster path to version 3 of event "golden.options.StockCounted": register an upcaster for golden.StockCounted version 2`,
				`/golden.StockTaken/v1/s.binpb: golden.StockTaken version 1 has no upcaster path to version 3 of event "golden.options.StockCounted": register an upcaster for golden.StockTaken version 1`,
				`/golden.StockTaken/v1/s.json: golden.StockTaken version 1 has no upcaster path to version 3 of event "golden.options.StockCounted": register an upcaster for golden.StockTaken version 1`,
			},
		},
		{
			name:      "a gap in the chain",
			upcasters: []upcaster{{"golden.StockTaken", 1, takenToCounted(true)}},
			want: []string{
				`/golden.StockCounted/v2/s.binpb: golden.StockCounted version 2 has no upcaster path`,
				`/golden.StockCounted/v2/s.json: golden.StockCounted version 2 has no upcaster path`,
				`/golden.StockTaken/v1/s.binpb: golden.StockTaken version 1, upcast to golden.StockCounted version 2, has no upcaster path to version 3 of event "golden.options.StockCounted": register an upcaster for golden.StockCounted version 2`,
				`/golden.StockTaken/v1/s.json: golden.StockTaken version 1, upcast to golden.StockCounted version 2, has no upcaster path`,
			},
		},
		{
			name:      "an upcaster that loses a field",
			upcasters: []upcaster{{"golden.StockTaken", 1, takenToCounted(false)}, {"golden.StockCounted", 2, bumpVersion}},
			want: []string{
				`/golden.StockTaken/v1/s.binpb: golden.StockTaken version 1, upcast to golden.StockCounted version 3, holds field 4 of golden.options.StockCounted (in the payload), which the current schema does not declare: replay loses its value`,
				`/golden.StockTaken/v1/s.json:4:3: golden.StockTaken version 1, upcast to golden.StockCounted version 3, does not parse: unknown field "qty"`,
			},
		},
		{
			name:      "an upcaster that fails",
			upcasters: []upcaster{{"golden.StockTaken", 1, func(context.Context, *runtime.EventRecord) error { return errors.New("boom") }}, {"golden.StockCounted", 2, bumpVersion}},
			want: []string{
				`/golden.StockTaken/v1/s.binpb: upcast golden.StockTaken version 1: boom`,
				`/golden.StockTaken/v1/s.json: upcast golden.StockTaken version 1: boom`,
			},
		},
		{
			name:      "a retired type",
			upcasters: []upcaster{{"golden.StockTaken", 1, takenToCounted(true)}, {"golden.StockCounted", 2, bumpVersion}},
			extra:     "golden.StockGone/v1/s.binpb",
			want: []string{
				`/golden.StockGone/v1/s.binpb: golden.StockGone version 1 has no event or command of that type name or alias in the files given: restore it, list it in the aliases of its successor, or register an upcaster that maps it to a current type`,
			},
		},
		{
			name:      "a version above the current one",
			upcasters: []upcaster{{"golden.StockTaken", 1, takenToCounted(true)}, {"golden.StockCounted", 2, bumpVersion}},
			extra:     "golden.StockCounted/v4/s.json",
			want: []string{
				`/golden.StockCounted/v4/s.json: golden.StockCounted version 4 is above version 3 of event "golden.options.StockCounted", the current one`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			recordHistory(t, dir)
			if tt.extra != "" {
				path := filepath.Join(dir, filepath.FromSlash(tt.extra))
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte("{}\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			u := runtime.NewUpcasters()
			for _, up := range tt.upcasters {
				if err := u.Register(up.eventType, up.version, up.fn); err != nil {
					t.Fatal(err)
				}
			}
			err := Replay(context.Background(), dir, u, options.File_options_options_proto)
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Replay returned %d problems, want %d:\n%v", len(got), len(tt.want), err)
			}
			root := filepath.ToSlash(dir)
			for i, want := range tt.want {
				if !strings.HasPrefix(got[i], root+want) {
					t.Errorf("problem %d:\n%s\nwant it to start with:\n%s", i, got[i], root+want)
				}
			}
		})
	}
}

func TestReplayNeedsFilesAndSamples(t *testing.T) {
	ctx := context.Background()
	if err := Replay(ctx, t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "no proto files") {
		t.Errorf("Replay without files: %v", err)
	}
	dir := t.TempDir()
	if err := Replay(ctx, dir, nil, options.File_options_options_proto); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%s holds no samples", dir)) {
		t.Errorf("Replay of an empty folder: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "golden.StockCounted", "3"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Replay(ctx, dir, nil, options.File_options_options_proto); err == nil || !strings.Contains(err.Error(), Layout) {
		t.Errorf("Replay of a malformed folder: %v", err)
	}
}
