package postgres_test

import (
	"context"
	"fmt"
	neturl "net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/protoc-gen-eda/eda/runtime"
	"github.com/protoc-gen-eda/eda/runtime/postgres"
)

// TestLeastPrivilege opens stores as roles without the CREATE privilege on
// the database: one that may create tables in an existing schema, and one
// that may only use tables an administrator created.
func TestLeastPrivilege(t *testing.T) {
	f := newFixture(t)
	admin := f.pool(t, nil)
	ctx := testContext(t)
	schema := freshSchema(t, f.url)
	qschema := pgx.Identifier{schema}.Sanitize()
	exec := func(sql string) {
		t.Helper()
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`CREATE SCHEMA ` + qschema)

	// role creates a login role, dropped (with what it owns) when the test
	// ends, and returns the URL to connect as it.
	role := func(name string) string {
		t.Helper()
		q := pgx.Identifier{name}.Sanitize()
		exec(`CREATE ROLE ` + q + ` LOGIN`)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for _, sql := range []string{`DROP OWNED BY ` + q, `DROP ROLE ` + q} {
				if _, err := admin.Exec(ctx, sql); err != nil {
					t.Errorf("%s: %v", sql, err)
				}
			}
		})
		u, err := neturl.Parse(f.url)
		if err != nil {
			t.Fatal(err)
		}
		u.User = neturl.User(name)
		return u.String()
	}
	use := func(url, what string) {
		t.Helper()
		s, err := postgres.Open(ctx, url, postgres.Config{Schema: schema})
		if err != nil {
			t.Fatalf("%s: Open: %v", what, err)
		}
		defer s.Close()
		stream := runtime.StreamID{Type: "t", ID: what}
		if _, err := s.Append(ctx, runtime.AppendRequest{Stream: stream, Events: events(t, 1),
			Outbox: []runtime.OutboxMessage{{Topic: "t", UUID: newID(t)}}}); err != nil {
			t.Fatalf("%s: Append: %v", what, err)
		}
		if n, err := s.RelayOutbox(ctx, 10, func([]runtime.OutboxMessage) error { return nil }); err != nil || n != 1 {
			t.Fatalf("%s: RelayOutbox = %d, %v; want 1, nil", what, n, err)
		}
	}

	suffix := fmt.Sprintf("%d", time.Now().UnixNano())
	owner := role("edatest_owner_" + suffix)
	exec(fmt.Sprintf(`GRANT USAGE, CREATE ON SCHEMA %s TO %s`, qschema, pgx.Identifier{"edatest_owner_" + suffix}.Sanitize()))
	use(owner, "owner") // creates the tables

	user := role("edatest_user_" + suffix)
	quser := pgx.Identifier{"edatest_user_" + suffix}.Sanitize()
	exec(fmt.Sprintf(`GRANT USAGE ON SCHEMA %s TO %s`, qschema, quser))
	exec(fmt.Sprintf(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %s TO %s`, qschema, quser))
	exec(fmt.Sprintf(`GRANT USAGE ON ALL SEQUENCES IN SCHEMA %s TO %s`, qschema, quser))
	use(user, "user") // only uses them
}
