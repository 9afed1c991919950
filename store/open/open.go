// Package open opens a Hermod store from a database URL, choosing the
// backend from the URL's scheme, the way golang-migrate chooses a driver:
//
//	sqlite://hermod.db                 (or a bare path ending in .db)
//	postgres://user@host:5432/db       (or postgresql://)
//	sqlserver://user:pass@host?database=hermod
//	azuresql://server.database.windows.net?database=hermod&fedauth=ActiveDirectoryDefault
//
// It is the one place that knows every backend, so that the command line, the
// service and the tests open a database the same way. Errors never contain a
// password: use Redact to show a URL to a person.
package open

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/hermod-sms/hermod/store"
	"github.com/hermod-sms/hermod/store/postgres"
	"github.com/hermod-sms/hermod/store/sqlite"
	"github.com/hermod-sms/hermod/store/sqlserver"
)

// Supported lists the accepted URL forms, for error messages and help text.
const Supported = "sqlite://PATH (or a path ending in .db), postgres://, postgresql://, sqlserver://, azuresql://"

// ErrUnsupported is returned for a URL whose scheme names no backend.
var ErrUnsupported = errors.New("unsupported database URL")

// Options tune how a store is opened. The zero value is ready to use.
type Options struct {
	// Logger receives the store's logs; nil uses slog.Default().
	Logger *slog.Logger
	// Schema is the PostgreSQL schema holding Hermod's objects; "" is the
	// backend's default ("hermod").
	Schema string
	// NoMigrate skips the automatic migration to the latest schema version
	// (for databases whose DBA applies migrations by hand).
	NoMigrate bool
	// BaseDir is the directory a relative SQLite path is resolved against;
	// "" is the process's working directory. A Windows service starts in
	// System32, so the service sets it to the executable's directory.
	BaseDir string
}

// Store is what Open returns: every backend is both a store.Store and a
// store.Migrator.
type Store interface {
	store.Store
	store.Migrator
}

// Backend names the backend a URL selects ("sqlite", "postgres",
// "sqlserver"), or returns an error wrapping ErrUnsupported that lists the
// supported forms.
func Backend(rawURL string) (string, error) {
	u := strings.TrimSpace(rawURL)
	if u == "" {
		return "", fmt.Errorf("%w: the database URL is empty: set --db, HERMOD_DB or db: in the configuration file (supported: %s)", ErrUnsupported, Supported)
	}
	scheme, _, hasScheme := strings.Cut(u, "://")
	if !hasScheme {
		if isSQLitePath(u) {
			return "sqlite", nil
		}
		return "", fmt.Errorf("%w %q: it has no scheme and is not a path ending in .db (supported: %s)", ErrUnsupported, Redact(u), Supported)
	}
	switch strings.ToLower(scheme) {
	case "sqlite":
		return "sqlite", nil
	case "postgres", "postgresql":
		return "postgres", nil
	case "sqlserver", "azuresql":
		return "sqlserver", nil
	}
	return "", fmt.Errorf("%w scheme %q in %q (supported: %s)", ErrUnsupported, scheme, Redact(u), Supported)
}

// Open opens (and, unless opts.NoMigrate, migrates) the store rawURL names.
// The error, if any, names the backend and never contains the password.
func Open(ctx context.Context, rawURL string, opts Options) (Store, error) {
	backend, err := Backend(rawURL)
	if err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	u := strings.TrimSpace(rawURL)
	var s Store
	switch backend {
	case "sqlite":
		u = SQLiteURL(u, opts.BaseDir)
		s, err = sqlite.Open(ctx, u, sqlite.Options{Logger: opts.Logger, NoMigrate: opts.NoMigrate})
	case "postgres":
		u = withConnectTimeout(u)
		s, err = postgres.Open(ctx, u, postgres.Options{Logger: opts.Logger, Schema: opts.Schema, NoMigrate: opts.NoMigrate})
	case "sqlserver":
		s, err = sqlserver.Open(ctx, u, sqlserver.Options{Logger: opts.Logger, NoMigrate: opts.NoMigrate})
	}
	if err != nil {
		return nil, scrub(fmt.Errorf("open %s database %s: %w", backend, Redact(u), err), rawURL)
	}
	return s, nil
}

// DefaultConnectTimeout bounds connecting to PostgreSQL when the URL sets
// no connect_timeout, so that an unreachable server is an error within
// seconds instead of the operating system's TCP timeout of minutes.
const DefaultConnectTimeout = "15"

// withConnectTimeout adds connect_timeout to a PostgreSQL URL without one.
func withConnectTimeout(rawURL string) string {
	pu, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	q := pu.Query()
	if q.Has("connect_timeout") {
		return rawURL
	}
	q.Set("connect_timeout", DefaultConnectTimeout)
	pu.RawQuery = q.Encode()
	return pu.String()
}

// isSQLitePath reports whether s, without a scheme, looks like a SQLite file.
func isSQLitePath(s string) bool {
	path, _, _ := strings.Cut(s, "?")
	switch strings.ToLower(filepath.Ext(path)) {
	case ".db", ".sqlite", ".sqlite3":
		return true
	}
	return false
}

// SQLitePath returns the file a SQLite URL or bare path names, resolved
// against baseDir when relative (baseDir "" leaves it relative). ok is false
// for a URL of another backend or an in-memory database.
func SQLitePath(rawURL, baseDir string) (path string, ok bool) {
	u := strings.TrimSpace(rawURL)
	if b, err := Backend(u); err != nil || b != "sqlite" {
		return "", false
	}
	if _, rest, found := strings.Cut(u, "://"); found {
		u = rest
	}
	u, _, _ = strings.Cut(u, "?")
	if u == "" || u == ":memory:" || strings.HasPrefix(u, ":memory:") {
		return "", false
	}
	u = filepath.FromSlash(u)
	if baseDir != "" && !filepath.IsAbs(u) {
		u = filepath.Join(baseDir, u)
	}
	return u, true
}

// SQLiteURL returns rawURL as a sqlite:// URL whose path is resolved
// against baseDir when relative, keeping its query parameters.
func SQLiteURL(rawURL, baseDir string) string {
	u := strings.TrimSpace(rawURL)
	path, ok := SQLitePath(u, baseDir)
	if !ok {
		return u
	}
	_, query, hasQuery := strings.Cut(u, "?")
	out := "sqlite://" + filepath.ToSlash(path)
	if hasQuery {
		out += "?" + query
	}
	return out
}

// secretKey matches query parameter and connection string keys whose value
// is a secret.
var secretKey = regexp.MustCompile(`(?i)(pass|pwd|secret|token|key)`)

// adoSecret matches "Password=...;" in ADO-style connection strings.
var adoSecret = regexp.MustCompile(`(?i)((?:password|pwd|secret|token)\s*=\s*)[^;]*`)

// Redact returns rawURL fit to show a person: the password of the user
// information and every secret-looking query parameter are replaced by
// "xxxxx".
func Redact(rawURL string) string {
	if !strings.Contains(rawURL, "://") {
		return adoSecret.ReplaceAllString(rawURL, "${1}xxxxx")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// Unparseable: keep the scheme and host-ish part only.
		scheme, rest, _ := strings.Cut(rawURL, "://")
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			rest = "xxxxx@" + rest[at+1:]
		}
		return scheme + "://" + adoSecret.ReplaceAllString(rest, "${1}xxxxx")
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	if u.RawQuery != "" {
		q := u.Query()
		changed := false
		for k := range q {
			if secretKey.MatchString(k) {
				q[k] = []string{"xxxxx"}
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}

// secrets returns the secret values rawURL contains.
func secrets(rawURL string) []string {
	var out []string
	if u, err := url.Parse(rawURL); err == nil {
		if p, has := u.User.Password(); has && p != "" {
			out = append(out, p, url.QueryEscape(p), url.PathEscape(p))
		}
		for k, vs := range u.Query() {
			if secretKey.MatchString(k) {
				for _, v := range vs {
					if v != "" {
						out = append(out, v, url.QueryEscape(v))
					}
				}
			}
		}
	}
	for _, m := range adoSecret.FindAllStringSubmatch(rawURL, -1) {
		if v := strings.TrimSpace(strings.TrimPrefix(m[0], m[1])); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// scrubbedError hides secrets in an error's text but keeps the chain for
// errors.Is and errors.As.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// scrub returns err with every secret of rawURL removed from its text.
func scrub(err error, rawURL string) error {
	msg := err.Error()
	changed := false
	for _, s := range secrets(rawURL) {
		if len(s) < 3 {
			// Too short to replace safely ("a" would mangle the message);
			// such a password is masked in the URL already.
			continue
		}
		if strings.Contains(msg, s) {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
			changed = true
		}
	}
	if !changed {
		return err
	}
	return &scrubbedError{msg: msg, err: err}
}

// Scrub removes the secrets of rawURL from err's text, keeping err's chain.
// Use it on any error that may quote a connection string.
func Scrub(err error, rawURL string) error {
	if err == nil {
		return nil
	}
	return scrub(err, rawURL)
}
