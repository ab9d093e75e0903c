package postgres_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/postgres"
)

// ReadStreamPayloads returns the fields rehydration uses exactly as
// ReadStream does, in both result formats, and nothing else.
func TestReadStreamPayloads(t *testing.T) {
	f := newFixture(t)
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		t.Run(mode.String(), func(t *testing.T) {
			pool := f.pool(t, func(c *pgxpool.Config) { c.ConnConfig.DefaultQueryExecMode = mode })
			s, err := postgres.New(testContext(t), pool, postgres.Config{Schema: freshSchema(t, f.url)})
			if err != nil {
				t.Fatal(err)
			}
			var _ runtime.PayloadReader = s
			stream := runtime.StreamID{Type: "t", ID: "a"}
			mustAppend(t, s, runtime.AppendRequest{Stream: stream, Events: events(t, 5)})
			full := readStream(t, s, stream, 2)
			var got []runtime.EventRecord
			if err := s.ReadStreamPayloads(testContext(t), stream, 2, func(r *runtime.EventRecord) error {
				c := *r
				c.Data = bytes.Clone(r.Data)
				got = append(got, c)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(full) || len(got) != 3 {
				t.Fatalf("read %d events, want %d", len(got), len(full))
			}
			for i, g := range got {
				w := full[i]
				if g.Stream != stream || g.Sequence != w.Sequence || g.Type != w.Type || g.SchemaVersion != w.SchemaVersion || g.ContentType != w.ContentType || !bytes.Equal(g.Data, w.Data) {
					t.Errorf("event %d = %+v, want the payload fields of %+v", i, g, w)
				}
				if g.ID != "" || g.Position != 0 || g.Metadata != nil || !g.RecordedAt.IsZero() {
					t.Errorf("event %d has fields ReadStreamPayloads does not read: %+v", i, g)
				}
			}
			stop := errors.New("stop")
			if err := s.ReadStreamPayloads(testContext(t), stream, 0, func(*runtime.EventRecord) error { return stop }); err != stop {
				t.Errorf("fn's error: got %v, want it returned as is", err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := s.ReadStreamPayloads(testContext(t), stream, 0, func(*runtime.EventRecord) error { return nil }); !errors.Is(err, runtime.ErrStoreClosed) {
				t.Errorf("after Close: err = %v, want ErrStoreClosed", err)
			}
		})
	}
}
