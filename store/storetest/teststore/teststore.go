// Package teststore opens a migrated store on a fresh test database of any
// backend (see testdb), for the tests of the packages above the stores: the
// engine, the API, the channels and the command.
package teststore

import (
	"context"
	"log/slog"
	"testing"

	"github.com/hermod-sms/hermod/store/open"
	"github.com/hermod-sms/hermod/store/storetest/testdb"
)

// Open returns a migrated store on a fresh database of backend (testdb.SQLite,
// testdb.Postgres or testdb.SQLServer) that t owns: it is closed, then
// dropped, when t ends. Without the backend's server t is skipped (failed
// when required).
func Open(t testing.TB, backend string) open.Store {
	t.Helper()
	return OpenDB(t, testdb.New(t, backend), open.Options{})
}

// OpenDB opens (and, unless opts.NoMigrate, migrates) a store on db, with
// db's schema and, unless opts sets one, a logger that discards. The store
// is closed when t ends.
func OpenDB(t testing.TB, db testdb.DB, opts open.Options) open.Store {
	t.Helper()
	opts.Schema = db.Schema
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := open.Open(context.Background(), db.URL, opts)
	if err != nil {
		t.Fatalf("teststore: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
