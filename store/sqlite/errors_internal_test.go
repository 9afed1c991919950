package sqlite

import (
	"testing"

	"github.com/stretchr/testify/require"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/hermod-sms/hermod/store"
)

// The result codes of the database file, its locks and its disk are
// outages; those of the statement are not. (errors_test.go produces the
// statement errors with real statements.)
func TestStatementFix(t *testing.T) {
	t.Parallel()
	for _, code := range []int{
		sqlite3.SQLITE_BUSY, sqlite3.SQLITE_BUSY_SNAPSHOT, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR,
		sqlite3.SQLITE_IOERR_WRITE, sqlite3.SQLITE_FULL, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_CANTOPEN,
		sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_INTERRUPT,
	} {
		_, ok := statementFix(code)
		require.False(t, ok, "code %d is an outage", code)
	}
	for code, fix := range map[int]string{
		sqlite3.SQLITE_ERROR:                 store.FixSchema,
		sqlite3.SQLITE_CONSTRAINT_TRIGGER:    store.FixRaised,
		sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY: store.FixData,
		sqlite3.SQLITE_MISMATCH:              store.FixData,
		sqlite3.SQLITE_TOOBIG:                store.FixData,
	} {
		got, ok := statementFix(code)
		require.True(t, ok, "code %d is a statement error", code)
		require.Equal(t, fix, got, "code %d", code)
	}
}
