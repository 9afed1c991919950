package testdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
	"github.com/microsoft/go-mssqldb/azuread"
)

// NewSQLServer returns the URL of a database of t's own on the server of
// HERMOD_TEST_SQLSERVER (skipping t without it), empty but maybe migrated
// already (see AcquireSQLServer); when t ends it is emptied for the next
// test, or dropped. Close what uses it first: register the store's cleanup
// after calling NewSQLServer.
func NewSQLServer(t testing.TB) string {
	t.Helper()
	serverURL := SQLServerURL(t)
	name, dbURL, err := AcquireSQLServer(serverURL)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	t.Cleanup(func() {
		if err := ReleaseSQLServer(serverURL, name, true); err != nil {
			t.Errorf("testdb: %v", err)
		}
	})
	return dbURL
}

// SQL Server test databases are pooled: creating one is quick, but
// migrating it (tables, indexes, procedures) takes seconds on Babelfish,
// for every test of every package. A released database is emptied the way
// EmptySQLServer does and handed to the next test, whose store then finds
// the schema current and migrates nothing.
var (
	poolMu sync.Mutex
	pool   = map[string][]string{} // server URL: free database names
)

// poolPrefix starts every test database's name, followed by the hour it was
// created (for cleaning up after killed test processes) and a random part.
const poolPrefix = "hermod_t_"

// staleAfter is the age after which a test database is taken to be left
// behind by a killed test process and is dropped.
const staleAfter = 3 * time.Hour

// AcquireSQLServer returns a free pooled database of the server, or creates
// one; name is the database's, dbURL the server URL naming it. Release it
// with ReleaseSQLServer.
func AcquireSQLServer(serverURL string) (name, dbURL string, err error) {
	poolMu.Lock()
	if free := pool[serverURL]; len(free) > 0 {
		name = free[len(free)-1]
		pool[serverURL] = free[:len(free)-1]
	}
	poolMu.Unlock()
	if name == "" {
		name = randomName(fmt.Sprintf("%s%d_", poolPrefix, time.Now().Unix()/3600))
		err = sqlServerAdmin(serverURL, func(ctx context.Context, conn *sql.Conn) error {
			dropStale(ctx, conn)
			return retryDDL(ctx, conn, "CREATE DATABASE "+name)
		})
		if err != nil {
			return "", "", fmt.Errorf("create the SQL Server database %s (the login of %s needs CREATE DATABASE): %w", name, SQLServerEnv, err)
		}
	}
	dbURL, err = withQuery(serverURL, "database", name, "initial catalog")
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", SQLServerEnv, err)
	}
	return name, dbURL, nil
}

// ReleaseSQLServer gives a database of AcquireSQLServer back: emptied into
// the pool when reuse is set and that works, else dropped.
func ReleaseSQLServer(serverURL, name string, reuse bool) error {
	if reuse {
		err := sqlServerAdmin(serverURL, func(ctx context.Context, conn *sql.Conn) error {
			if err := endSessions(ctx, conn, name); err != nil {
				return err
			}
			if _, err := conn.ExecContext(ctx, "USE "+name); err != nil {
				return err
			}
			defer conn.ExecContext(ctx, "USE master") //nolint:errcheck // the connection is reset when it is reused anyway
			return EmptySQLServer(ctx, conn)
		})
		if err == nil {
			poolMu.Lock()
			pool[serverURL] = append(pool[serverURL], name)
			poolMu.Unlock()
			return nil
		}
	}
	err := sqlServerAdmin(serverURL, func(ctx context.Context, conn *sql.Conn) error {
		if err := endSessions(ctx, conn, name); err != nil {
			return err
		}
		return retryDDL(ctx, conn, "DROP DATABASE IF EXISTS "+name)
	})
	if err != nil {
		return fmt.Errorf("drop the SQL Server database %s: %w", name, err)
	}
	return nil
}

// execer is what *sql.DB and *sql.Conn share.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// EmptySQLServer makes a used test database (the current database of db)
// like a freshly migrated one: the triggers and the tables outside the
// schema hermod that a test made are dropped, every table of hermod but the
// migration version table and Options is truncated (which also restarts
// IDENTITY at 1), and the options but the store's own (named hermod.*)
// are deleted. The migration version and the procedures stay: a store
// opened on it next finds its schema current.
func EmptySQLServer(ctx context.Context, db execer) error {
	rows, err := db.QueryContext(ctx, `SELECT N'DROP TRIGGER ' + QUOTENAME(SCHEMA_NAME(o.schema_id)) + N'.' + QUOTENAME(tr.name)
FROM sys.triggers AS tr JOIN sys.objects AS o ON o.object_id = tr.parent_id
UNION ALL
SELECT N'DROP TABLE ' + QUOTENAME(SCHEMA_NAME(tb.schema_id)) + N'.' + QUOTENAME(tb.name)
FROM sys.tables AS tb WHERE SCHEMA_NAME(tb.schema_id) <> N'hermod'
UNION ALL
SELECT N'TRUNCATE TABLE hermod.' + QUOTENAME(tb.name)
FROM sys.tables AS tb WHERE tb.schema_id = SCHEMA_ID(N'hermod') AND tb.name NOT IN (N'SchemaMigrations', N'Options');`)
	if err != nil {
		return fmt.Errorf("empty the test database: %w", err)
	}
	stmts, err := scanStrings(rows)
	if err != nil {
		return fmt.Errorf("empty the test database: %w", err)
	}
	stmts = append(stmts, "IF OBJECT_ID(N'hermod.Options', N'U') IS NOT NULL DELETE FROM hermod.Options WHERE Name NOT LIKE N'hermod.%'")
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("empty the test database: %s: %w", q, err)
		}
	}
	return nil
}

// dropStale drops the test databases created more than staleAfter ago:
// left behind by test processes that were killed. Errors are ignored (a
// database another process drops at the same moment).
func dropStale(ctx context.Context, conn *sql.Conn) {
	rows, err := conn.QueryContext(ctx, `SELECT name FROM sys.databases WHERE name LIKE N'`+poolPrefix+`%'`)
	if err != nil {
		return
	}
	names, err := scanStrings(rows)
	if err != nil {
		return
	}
	cutoff := time.Now().Add(-staleAfter).Unix() / 3600
	for _, name := range names {
		hour, _, ok := strings.Cut(strings.TrimPrefix(name, poolPrefix), "_")
		if h, err := strconv.ParseInt(hour, 10, 64); !ok || err != nil || h >= cutoff {
			continue
		}
		if endSessions(ctx, conn, name) == nil {
			_ = retryDDL(ctx, conn, "DROP DATABASE IF EXISTS "+name)
		}
	}
}

// scanStrings reads a one-column result of strings and closes rows.
func scanStrings(rows *sql.Rows) ([]string, error) {
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Connecting to Babelfish costs a few hundred milliseconds of the server's
// CPU: the helpers keep one pool per server for the whole test process.
var (
	adminMu    sync.Mutex // serialises CREATE and DROP DATABASE, guards admins
	adminPools = map[string]*sql.DB{}
)

// ddlTimeout bounds one CREATE or DROP DATABASE with its retries.
const ddlTimeout = 3 * time.Minute

// lockTimeout bounds the wait for a lock of one attempt: a DROP DATABASE
// waits for the locks of sessions still in the database.
const lockTimeout = 30 * time.Second

// sqlServerAdmin runs fn on a connection to the server of serverURL, one
// at a time in this process: Babelfish fails CREATE and DROP DATABASE that
// run at the same moment ("tuple concurrently updated"). Other processes
// (go test runs packages in parallel) are handled by retrying, see
// retryDDL.
func sqlServerAdmin(serverURL string, fn func(ctx context.Context, conn *sql.Conn) error) error {
	adminMu.Lock()
	defer adminMu.Unlock()
	db := adminPools[serverURL]
	if db == nil {
		connector, err := sqlServerConnector(serverURL)
		if err != nil {
			return fmt.Errorf("%s: %w", SQLServerEnv, err)
		}
		db = sql.OpenDB(connector)
		db.SetMaxOpenConns(1)
		db.SetConnMaxIdleTime(time.Minute)
		adminPools[serverURL] = db
	}
	ctx, cancel := context.WithTimeout(context.Background(), ddlTimeout)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Each use: the driver resets the session's options when it reuses a
	// connection.
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("SET LOCK_TIMEOUT %d", lockTimeout.Milliseconds())); err != nil {
		return err
	}
	return fn(ctx, conn)
}

// retryDDL runs stmt, and again after a jittered pause while another
// process's CREATE or DROP DATABASE makes Babelfish fail with "tuple
// concurrently updated".
func retryDDL(ctx context.Context, conn *sql.Conn, stmt string) error {
	pause := 50 * time.Millisecond
	for {
		_, err := conn.ExecContext(ctx, stmt)
		if err == nil || !concurrentDDL(err) {
			return err
		}
		sleep := pause/2 + rand.N(pause)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (still failing after %s of retries)", err, ddlTimeout)
		case <-time.After(sleep):
		}
		pause = min(2*pause, 2*time.Second)
	}
}

// endSessions ends the sessions connected to database name, which would
// make DROP DATABASE fail (SQL Server) or wait for their locks (Babelfish):
// a transaction a failed test left open, a node process not yet noticed
// dead, a connection closed a moment ago.
func endSessions(ctx context.Context, conn *sql.Conn, name string) error {
	// SQL Server: SINGLE_USER rolls the others back and disconnects them.
	// Babelfish and Azure SQL Database have no such option: the error is
	// ignored and KILL does it below.
	_, _ = conn.ExecContext(ctx, "ALTER DATABASE "+name+" SET SINGLE_USER WITH ROLLBACK IMMEDIATE")
	rows, err := conn.QueryContext(ctx, `SELECT session_id FROM sys.dm_exec_sessions WHERE database_id = DB_ID(@p1) AND session_id <> @@SPID`, name)
	if err != nil {
		return fmt.Errorf("list the sessions in %s: %w", name, err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	for _, id := range ids {
		// A session may end by itself meanwhile: a failed KILL is left to
		// DROP DATABASE to report.
		_, _ = conn.ExecContext(ctx, fmt.Sprintf("KILL %d", id))
	}
	return nil
}

// concurrentDDL reports whether err is Babelfish's failure of catalog
// changes that collide with another session's.
func concurrentDDL(err error) bool {
	var me mssql.Error
	if !errors.As(err, &me) {
		return false
	}
	msg := strings.ToLower(me.Message)
	return strings.Contains(msg, "tuple concurrently updated") || strings.Contains(msg, "deadlock")
}

// sqlServerConnector connects with go-mssqldb, through its azuread
// connector (Microsoft Entra ID authentication) for an azuresql:// URL, as
// the store does.
func sqlServerConnector(rawURL string) (driver.Connector, error) {
	if rest, ok := cutPrefixFold(rawURL, "azuresql://"); ok {
		return azuread.NewConnector("sqlserver://" + rest)
	}
	return mssql.NewConnector(rawURL)
}

// cutPrefixFold is strings.CutPrefix ignoring case.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}
