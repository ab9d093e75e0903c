package sqlite

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// URLScheme is the scheme of the URLs Open accepts besides paths.
const URLScheme = "sqlite"

// target is the database Open was asked to open.
type target struct {
	// dsn is the driver's data source name without the store's parameters.
	dsn string
	// query holds parameters the caller gave, passed to the driver.
	query string
	// memory is true for a private in-memory database, which exists only as
	// long as its one connection.
	memory bool
}

// parseTarget reads Open's path argument: ":memory:", a file path, a
// "file:" URI, or a sqlite:// URL (sqlite:///abs/path.db,
// sqlite://relative.db, sqlite://:memory:).
func parseTarget(path string) (target, error) {
	if path == "" {
		return target{}, errors.New("sqlite: empty database path: give a file path, a file: URI, a sqlite:// URL or \":memory:\"")
	}
	if rest, ok := strings.CutPrefix(path, URLScheme+"://"); ok {
		p, query, _ := strings.Cut(rest, "?")
		p, err := url.PathUnescape(p)
		if err != nil {
			return target{}, fmt.Errorf("sqlite: URL %q: %w", path, err)
		}
		if p == "" {
			return target{}, fmt.Errorf("sqlite: URL %q names no database: write sqlite:///abs/path.db, sqlite://relative.db or sqlite://:memory:", path)
		}
		t, err := parseTarget(p)
		if err != nil {
			return target{}, err
		}
		t.query = query
		return t, nil
	}
	if path == ":memory:" {
		return target{dsn: ":memory:", memory: true}, nil
	}
	if uri, ok := strings.CutPrefix(path, "file:"); ok {
		p, query, _ := strings.Cut(uri, "?")
		// Every connection to these opens a database of its own, so they
		// are run on a single connection as ":memory:" is.
		memory := p == ":memory:" || strings.Contains("&"+query+"&", "&mode=memory&")
		return target{dsn: "file:" + p, query: query, memory: memory}, nil
	}
	return target{dsn: "file:" + escapeURIPath(path)}, nil
}

// escapeURIPath escapes the characters that end or escape the path of a
// SQLite URI, so that any file name survives being written as "file:".
func escapeURIPath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
}

// withParams returns the DSN with the store's parameters and the caller's.
// The caller's come last so that the driver sees them too, but the store's
// own pragmas should not be given again (see Open).
func (t target) withParams(store []string) string {
	params := append([]string(nil), store...)
	if t.query != "" {
		params = append(params, t.query)
	}
	if len(params) == 0 {
		return t.dsn
	}
	return t.dsn + "?" + strings.Join(params, "&")
}

// pragmaParam is a driver parameter running PRAGMA name(value) on every new
// connection.
func pragmaParam(name, value string) string {
	return "_pragma=" + url.QueryEscape(name+"("+value+")")
}

// busyTimeoutParam sets busy_timeout in milliseconds.
func busyTimeoutParam(ms int64) string {
	return pragmaParam("busy_timeout", strconv.FormatInt(ms, 10))
}
