package sqlite_test

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/internal/docblocks"
)

// TestDocExamples runs every SQLite example of the documentation (the
// fenced blocks "sql sqlite NAME", see internal/docblocks) as written, the
// way the sqlite3 shell runs them: the whole block as one script, in one
// connection of its own to the database file, in document order, on a fresh
// file that Open migrated. Each one has an entry in docblocks.SharedExamples
// (the examples every backend has) or below: Setup creates what an example
// assumes the reader already has (test setup, not part of the example);
// Check asserts the effect. A new example without an entry fails the test.
func TestDocExamples(t *testing.T) {
	t.Parallel()
	all, err := docblocks.Load("../..")
	require.NoError(t, err)
	blocks := docblocks.Select(all, docblocks.SQLite)

	path := filepath.Join(t.TempDir(), "hermod.db")
	newTestStoreAt(t, path) // migrated; stays open, as a running service would be

	file, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	t.Cleanup(func() { file.Close() })
	ctx := t.Context()
	conn, err := file.Conn(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })

	db := docblocks.ConnDB(ctx, conn)
	db.Hermod, db.Own, db.True = "", "", "1"
	examples := docblocks.SharedExamples(db)
	examples["cancel"] = docblocks.Example{
		Setup: func(t *testing.T) {
			// The application's message, not yet handed to a channel.
			db.Exec(t, `INSERT INTO Messages (ToAddress, Body, ClientReference) VALUES ('+31612345678', 'Your code is 4711', 'order-4711')`)
		},
		Check: func(t *testing.T, results []docblocks.Result) {
			require.Empty(t, results)
			r := db.Rows(t, `SELECT Status, TriggerStatus, StatusDetails, Trace FROM Messages WHERE ClientReference = 'order-4711'`)
			require.Len(t, r, 1)
			require.Equal(t, []string{"CANCELLED", "", "cancelled by the application"}, r[0][:3])
			require.Regexp(t, `(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} CANCELLED cancelled by the application\n\z`, r[0][3])
		},
	}

	docblocks.Run(t, blocks, examples, func(t *testing.T, b docblocks.Block) ([]docblocks.Result, error) {
		// The driver runs every statement of a script; of a script with
		// several SELECTs it returns the rows of one only, so an example
		// that reads has one SELECT (all of them do).
		r, err := conn.QueryContext(t.Context(), b.SQL)
		if err != nil {
			return nil, err
		}
		return docblocks.Collect(r)
	})
}
