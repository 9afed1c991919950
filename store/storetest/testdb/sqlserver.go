package testdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
	"github.com/microsoft/go-mssqldb/azuread"
)

// NewSQLServer creates a fresh database hermod_t_<random> on the server of
// HERMOD_TEST_SQLSERVER (skipping t without it) and returns the URL of that
// database; the database is dropped when t ends. Close what uses it first:
// register the store's cleanup after calling NewSQLServer.
func NewSQLServer(t testing.TB) string {
	t.Helper()
	serverURL := SQLServerURL(t)
	name := randomName("hermod_t_")
	dbURL, err := withQuery(serverURL, "database", name, "initial catalog")
	if err != nil {
		t.Fatalf("testdb: %s: %v", SQLServerEnv, err)
	}
	err = sqlServerAdmin(serverURL, func(ctx context.Context, conn *sql.Conn) error {
		return retryDDL(ctx, conn, "CREATE DATABASE "+name)
	})
	if err != nil {
		t.Fatalf("testdb: create the SQL Server database %s (the login of %s needs CREATE DATABASE): %v", name, SQLServerEnv, err)
	}
	t.Cleanup(func() {
		err := sqlServerAdmin(serverURL, func(ctx context.Context, conn *sql.Conn) error {
			if err := endSessions(ctx, conn, name); err != nil {
				return err
			}
			return retryDDL(ctx, conn, "DROP DATABASE IF EXISTS "+name)
		})
		if err != nil {
			t.Errorf("testdb: drop the SQL Server database %s: %v", name, err)
		}
	})
	return dbURL
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
