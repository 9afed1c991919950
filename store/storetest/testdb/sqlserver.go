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

// ddlMu serialises CREATE and DROP DATABASE within the process: Babelfish
// fails ("tuple concurrently updated") when two run at the same moment.
// Other processes (go test runs packages in parallel) are handled by
// retrying, see sqlServerDDL.
var ddlMu sync.Mutex

// ddlTimeout bounds the retries of one CREATE or DROP DATABASE.
const ddlTimeout = 3 * time.Minute

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
	if err := sqlServerDDL(serverURL, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testdb: create the SQL Server database %s (the login of %s needs CREATE DATABASE): %v", name, SQLServerEnv, err)
	}
	t.Cleanup(func() {
		// SINGLE_USER ends the sessions a failed test left behind (SQL
		// Server refuses to drop a database in use). Babelfish and Azure SQL
		// Database have no such option (and Babelfish drops a database in
		// use): its error is ignored.
		_ = sqlServerDDL(serverURL, "ALTER DATABASE "+name+" SET SINGLE_USER WITH ROLLBACK IMMEDIATE")
		if err := sqlServerDDL(serverURL, "DROP DATABASE IF EXISTS "+name); err != nil {
			t.Errorf("testdb: drop the SQL Server database %s: %v", name, err)
		}
	})
	return dbURL
}

// sqlServerDDL runs stmt (CREATE, ALTER or DROP DATABASE) on the server of
// serverURL, one at a time in this process, and again after a jittered
// pause while another process's CREATE or DROP DATABASE makes Babelfish
// fail with "tuple concurrently updated".
func sqlServerDDL(serverURL, stmt string) error {
	connector, err := sqlServerConnector(serverURL)
	if err != nil {
		return fmt.Errorf("%s: %w", SQLServerEnv, err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()

	ddlMu.Lock()
	defer ddlMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), ddlTimeout)
	defer cancel()
	pause := 50 * time.Millisecond
	for {
		_, err := db.ExecContext(ctx, stmt)
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
