// Package testdb gives each test a database of its own on every backend a
// test run can reach: SQLite always (a file in t.TempDir()), PostgreSQL when
// HERMOD_TEST_POSTGRES names a server (a fresh schema in that database), SQL
// Server when HERMOD_TEST_SQLSERVER names one (a fresh database, created by a
// login that may create databases). The schema or database is dropped when
// the test ends.
//
// Without its variable a PostgreSQL or SQL Server test is skipped with a
// message naming the variable; with HERMOD_REQUIRE_POSTGRES or
// HERMOD_REQUIRE_SQLSERVER set (as CI does) it fails instead.
//
// The package talks to the servers with pgx and go-mssqldb directly and
// imports no store, so that the stores' own tests can use it too.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
)

// The backends, as store.Store.Backend names them.
const (
	SQLite    = "sqlite"
	Postgres  = "postgres"
	SQLServer = "sqlserver"
)

// Environment variables read by the helpers.
const (
	PostgresEnv         = "HERMOD_TEST_POSTGRES"
	RequirePostgresEnv  = "HERMOD_REQUIRE_POSTGRES"
	SQLServerEnv        = "HERMOD_TEST_SQLSERVER"
	RequireSQLServerEnv = "HERMOD_REQUIRE_SQLSERVER"
)

// Examples of the variables' values, for skip messages.
const (
	postgresExample  = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	sqlServerExample = "sqlserver://sa:Passw0rd!@127.0.0.1:1433?database=master (for Babelfish: export " + SQLServerEnv + "=$(../shared/babelfish/babelfish start))"
)

// Backends lists every backend in the order tests run them.
var Backends = []string{SQLite, Postgres, SQLServer}

// Servers lists the backends that are database servers, which several
// processes (nodes of a cluster) share.
var Servers = []string{Postgres, SQLServer}

// DB is a database of one test.
type DB struct {
	// Backend is SQLite, Postgres or SQLServer.
	Backend string
	// URL opens the database (with store/open, or the backend's Open).
	URL string
	// Schema is the PostgreSQL schema holding the test's objects; "" on the
	// other backends (SQL Server keeps them in the schema hermod of the
	// test's own database).
	Schema string
}

// New returns a fresh, empty database on backend for t (no migration has
// run), dropped when t ends. Register the cleanup that closes a store on it
// after calling New, so that it runs before the drop.
func New(t testing.TB, backend string) DB {
	t.Helper()
	switch backend {
	case SQLite:
		return DB{Backend: SQLite, URL: "sqlite://" + filepath.ToSlash(filepath.Join(t.TempDir(), "hermod.db"))}
	case Postgres:
		u, schema := NewPostgres(t)
		return DB{Backend: Postgres, URL: u, Schema: schema}
	case SQLServer:
		return DB{Backend: SQLServer, URL: NewSQLServer(t)}
	}
	t.Fatalf("testdb: unknown backend %q (want one of %v)", backend, Backends)
	return DB{}
}

// Run runs f as one subtest per backend, named after it ("sqlite",
// "postgres", "sqlserver"). A backend whose server is not configured skips
// its subtest (fails it when required), so every run shows which backends
// were left out. f calls t.Parallel itself if it wants to.
func Run(t *testing.T, f func(t *testing.T, backend string)) {
	t.Helper()
	RunOn(t, Backends, f)
}

// RunOn is Run on the given backends only (e.g. Servers).
func RunOn(t *testing.T, backends []string, f func(t *testing.T, backend string)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			Require(t, b)
			f(t, b)
		})
	}
}

// Require skips t (or fails it, when required) unless backend can run.
func Require(t testing.TB, backend string) {
	t.Helper()
	switch backend {
	case Postgres:
		PostgresURL(t)
	case SQLServer:
		SQLServerURL(t)
	}
}

// PostgresURL returns HERMOD_TEST_POSTGRES, or skips t without it (fails
// it when HERMOD_REQUIRE_POSTGRES is set).
func PostgresURL(t testing.TB) string {
	t.Helper()
	return serverURL(t, PostgresEnv, RequirePostgresEnv, postgresExample)
}

// SQLServerURL returns HERMOD_TEST_SQLSERVER, a sqlserver:// URL of a login
// that may create databases, or skips t without it (fails it when
// HERMOD_REQUIRE_SQLSERVER is set).
func SQLServerURL(t testing.TB) string {
	t.Helper()
	return serverURL(t, SQLServerEnv, RequireSQLServerEnv, sqlServerExample)
}

func serverURL(t testing.TB, env, requireEnv, example string) string {
	t.Helper()
	u := os.Getenv(env)
	if u == "" {
		if os.Getenv(requireEnv) != "" {
			t.Fatalf("%s is set but %s is not: this test needs it (e.g. %s)", requireEnv, env, example)
		}
		t.Skipf("%s is not set (e.g. %s)", env, example)
	}
	return u
}

// randomName returns prefix followed by 12 random hexadecimal digits: a
// valid unquoted identifier in PostgreSQL and T-SQL.
func randomName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// withQuery returns rawURL with the query parameter key set to value (and
// the parameters in drop removed).
func withQuery(rawURL, key, value string, drop ...string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error repeats the URL, password included.
		return "", fmt.Errorf("the test database URL is not a valid URL")
	}
	q := u.Query()
	for _, k := range drop {
		q.Del(k)
	}
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// cleanupContext bounds a cleanup's statements.
func cleanupContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), cleanupTimeout)
}

// SkipOnBabelfish skips t when backend is SQL Server, which on the machines
// here is Babelfish for PostgreSQL; missing names what Babelfish lacks that
// the scenario needs. The scenario still runs on PostgreSQL and SQLite, and
// on a real SQL Server it must run: set HERMOD_SQLSERVER_NOT_BABELFISH=1.
func SkipOnBabelfish(t testing.TB, backend, missing string) {
	t.Helper()
	if backend == SQLServer && os.Getenv("HERMOD_SQLSERVER_NOT_BABELFISH") == "" {
		t.Skip("Babelfish lacks " + missing)
	}
}
