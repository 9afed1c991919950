package testdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	mssql "github.com/microsoft/go-mssqldb"
	"github.com/stretchr/testify/require"
)

// fakeT records what a helper does to its test.
type fakeT struct {
	testing.TB
	skipped, failed string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Skipf(format string, args ...any) {
	f.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// call runs fn with a fakeT in a goroutine of its own (Skipf and Fatalf end
// it) and returns the fakeT.
func call(fn func(t testing.TB)) *fakeT {
	f := &fakeT{}
	var wg sync.WaitGroup
	wg.Go(func() { fn(f) })
	wg.Wait()
	return f
}

func TestServerURLSkipsOrFails(t *testing.T) {
	for _, c := range []struct {
		env, require string
		url          func(testing.TB) string
	}{
		{PostgresEnv, RequirePostgresEnv, PostgresURL},
		{SQLServerEnv, RequireSQLServerEnv, SQLServerURL},
	} {
		t.Setenv(c.env, "")
		t.Setenv(c.require, "")
		f := call(func(t testing.TB) { c.url(t) })
		require.Contains(t, f.skipped, c.env+" is not set")
		require.Empty(t, f.failed)

		t.Setenv(c.require, "1")
		f = call(func(t testing.TB) { c.url(t) })
		require.Empty(t, f.skipped)
		require.Contains(t, f.failed, c.require+" is set but "+c.env+" is not")

		t.Setenv(c.env, "x://y")
		var got string
		f = call(func(t testing.TB) { got = c.url(t) })
		require.Empty(t, f.skipped)
		require.Empty(t, f.failed)
		require.Equal(t, "x://y", got)
	}
}

func TestWithQuery(t *testing.T) {
	got, err := withQuery("sqlserver://u:p@h:1433?database=master&encrypt=disable&initial+catalog=x", "database", "hermod_t_1", "initial catalog")
	require.NoError(t, err)
	require.Equal(t, "sqlserver://u:p@h:1433?database=hermod_t_1&encrypt=disable", got)

	_, err = withQuery("sqlserver://u:s3cret@h:x/%zz", "database", "d")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cret")
}

func TestConcurrentDDL(t *testing.T) {
	require.True(t, concurrentDDL(fmt.Errorf("x: %w", mssql.Error{Number: 33557097, Message: "tuple concurrently updated"})))
	require.False(t, concurrentDDL(mssql.Error{Number: 1801, Message: "Database 'x' already exists."}))
	require.False(t, concurrentDDL(errors.New("tuple concurrently updated"))) // not from the server
}

func TestNewSQLite(t *testing.T) {
	db := New(t, SQLite)
	require.Equal(t, SQLite, db.Backend)
	require.True(t, strings.HasPrefix(db.URL, "sqlite://"), db.URL)
	require.NotEqual(t, db.URL, New(t, SQLite).URL)
}

// TestNewPostgres creates schemas in parallel and checks that they exist
// during the test and are gone after it.
func TestNewPostgres(t *testing.T) {
	url := PostgresURL(t)
	exists := func(schema string) bool {
		conn, err := pgx.Connect(t.Context(), url)
		require.NoError(t, err)
		defer conn.Close(context.Background())
		var n int
		require.NoError(t, conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, schema).Scan(&n))
		return n == 1
	}
	schemas := make([]string, 4)
	t.Run("group", func(t *testing.T) {
		for i := range schemas {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				db := New(t, Postgres)
				require.Equal(t, url, db.URL)
				require.True(t, exists(db.Schema), db.Schema)
				schemas[i] = db.Schema
			})
		}
	})
	for _, s := range schemas {
		require.NotEmpty(t, s)
		require.False(t, exists(s), "schema %s dropped", s)
	}
}

// TestNewSQLServer creates databases in parallel (Babelfish fails
// concurrent CREATE DATABASE unless they are serialised) and checks that
// each is usable during its test, emptied after it (the sessions left in it
// ended) and handed to the next test, and dropped when released for good.
func TestNewSQLServer(t *testing.T) {
	server := SQLServerURL(t)
	connector, err := mssql.NewConnector(server)
	require.NoError(t, err)
	admin := sql.OpenDB(connector)
	defer admin.Close()
	exists := func(name string) bool {
		var n int
		require.NoError(t, admin.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM sys.databases WHERE name = @p1`, name).Scan(&n))
		return n == 1
	}
	names := make([]string, 6)
	var leftOpen *sql.Tx
	t.Run("group", func(t *testing.T) {
		for i := range names {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				db := New(t, SQLServer)
				require.Empty(t, db.Schema)
				c, err := mssql.NewConnector(db.URL)
				require.NoError(t, err)
				conn := sql.OpenDB(c)
				defer conn.Close()
				require.NoError(t, conn.QueryRowContext(t.Context(), `SELECT DB_NAME()`).Scan(&names[i]))
				require.True(t, strings.HasPrefix(names[i], "hermod_t_"), names[i])
				require.True(t, exists(names[i]))
				if i == 0 {
					// A transaction left open holds locks that DROP
					// DATABASE would wait for (longer than the test's
					// timeout on Babelfish): the cleanup ends it.
					_, err := conn.ExecContext(t.Context(), `CREATE TABLE dbo.T (ID INT PRIMARY KEY)`)
					require.NoError(t, err)
					tx, err := conn.BeginTx(context.Background(), nil)
					require.NoError(t, err)
					_, err = tx.Exec(`INSERT INTO dbo.T VALUES (1)`)
					require.NoError(t, err)
					leftOpen = tx
				}
			})
		}
	})
	require.NotNil(t, leftOpen)
	require.Error(t, leftOpen.Commit(), "the transaction left open was ended")
	for _, n := range names {
		require.NotEmpty(t, n)
		require.True(t, exists(n), "database %s is in the pool", n)
	}

	// The next test gets one of them, emptied: the table of test 0 is gone.
	var again string
	t.Run("reuse", func(t *testing.T) {
		db := New(t, SQLServer)
		c, err := mssql.NewConnector(db.URL)
		require.NoError(t, err)
		conn := sql.OpenDB(c)
		defer conn.Close()
		require.NoError(t, conn.QueryRowContext(t.Context(), `SELECT DB_NAME()`).Scan(&again))
		var tables int
		require.NoError(t, conn.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM sys.tables WHERE schema_id = SCHEMA_ID(N'dbo')`).Scan(&tables))
		require.Zero(t, tables, "the tables a test made are dropped")
	})
	require.Contains(t, names, again, "a pooled database is reused")

	// Released for good, a database is dropped.
	for _, n := range names {
		require.NoError(t, ReleaseSQLServer(server, n, false))
		require.False(t, exists(n), "database %s dropped", n)
	}
	poolMu.Lock()
	pool[server] = nil
	poolMu.Unlock()
}
