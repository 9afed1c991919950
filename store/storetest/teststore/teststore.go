// Package teststore opens a migrated store on a fresh test database of any
// backend (see testdb), for the tests of the packages above the stores: the
// engine, the API, the channels and the command.
package teststore

import (
	"context"
	"database/sql"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hermod-sms/hermod/store/open"
	"github.com/hermod-sms/hermod/store/storetest/testdb"
)

// Open returns a migrated store on a fresh database of backend (testdb.SQLite,
// testdb.Postgres or testdb.SQLServer) that t owns: it is closed, then
// dropped, when t ends. Without the backend's server t is skipped (failed
// when required).
func Open(t testing.TB, backend string) open.Store {
	t.Helper()
	if backend == testdb.SQLServer {
		return openSQLServer(t)
	}
	return OpenDB(t, testdb.New(t, backend), open.Options{})
}

// SQL Server stores are pooled open, on testdb's pooled databases: a new
// Babelfish session compiles the first run of each statement, up to a
// second each, which a test with fast engine timings (leases and
// leaderships of a fraction of a second) cannot afford. A store goes back
// to the pool when its test ends and its database was emptied through it
// (testdb.EmptySQLServer); one its test closed is dropped.
var (
	poolMu sync.Mutex
	pool   []pooledStore
)

type pooledStore struct {
	s               open.Store
	serverURL, name string
}

// dbHolder is what the SQL Server store offers for raw access.
type dbHolder interface{ DB() *sql.DB }

func openSQLServer(t testing.TB) open.Store {
	t.Helper()
	serverURL := testdb.SQLServerURL(t)
	var p pooledStore
	poolMu.Lock()
	for i := len(pool) - 1; i >= 0; i-- {
		if pool[i].serverURL == serverURL {
			p = pool[i]
			pool = append(pool[:i], pool[i+1:]...)
			break
		}
	}
	poolMu.Unlock()
	if p.s == nil {
		name, dbURL, err := testdb.AcquireSQLServer(serverURL)
		if err != nil {
			t.Fatalf("teststore: %v", err)
		}
		s, err := open.Open(context.Background(), dbURL, open.Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			_ = testdb.ReleaseSQLServer(serverURL, name, false)
			t.Fatalf("teststore: %v", err)
		}
		p = pooledStore{s: s, serverURL: serverURL, name: name}
	} else if err := p.s.MigrateUp(context.Background()); err != nil { // a test may have migrated down
		t.Fatalf("teststore: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if h, ok := p.s.(dbHolder); ok && h.DB().PingContext(ctx) == nil && testdb.EmptySQLServer(ctx, h.DB()) == nil {
			poolMu.Lock()
			pool = append(pool, p)
			poolMu.Unlock()
			return
		}
		_ = p.s.Close()
		if err := testdb.ReleaseSQLServer(p.serverURL, p.name, false); err != nil {
			t.Logf("teststore: %v", err)
		}
	})
	return p.s
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
