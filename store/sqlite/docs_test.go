package sqlite_test

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/internal/docblocks"
)

// TestDocExamples runs every SQLite example of the documentation (the
// fenced blocks "sql sqlite NAME", see internal/docblocks) as written, the
// way the sqlite3 shell runs them: the whole block as one script, in one
// connection of its own to the database file, in document order, on a fresh
// file that Open migrated. Setup creates what an example assumes the reader
// already has (test setup, not part of the example); Check asserts the
// effect. A new example without an entry fails the test.
func TestDocExamples(t *testing.T) {
	t.Parallel()
	all, err := docblocks.Load("../..")
	require.NoError(t, err)
	blocks := docblocks.Select(all, docblocks.SQLite)

	path := filepath.Join(t.TempDir(), "hermod.db")
	newTestStoreAt(t, path) // migrated; stays open, as a running service would be

	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	ctx := t.Context()
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })

	exec := func(t *testing.T, query string, args ...any) {
		t.Helper()
		_, err := conn.ExecContext(ctx, query, args...)
		require.NoError(t, err, query)
	}
	rows := func(t *testing.T, query string, args ...any) [][]string {
		t.Helper()
		r, err := conn.QueryContext(ctx, query, args...)
		require.NoError(t, err, query)
		res, err := docblocks.Collect(r)
		require.NoError(t, err, query)
		require.Len(t, res, 1, query)
		return res[0].Rows
	}
	deleteAfter := func(t *testing.T, clientReference string) {
		t.Cleanup(func() {
			_, err := conn.ExecContext(ctx, `DELETE FROM Messages WHERE ClientReference = ?`, clientReference)
			require.NoError(t, err)
		})
	}

	examples := map[string]docblocks.Example{
		// docs/channels/smpp.md
		"add-channel": {
			Check: func(t *testing.T, results []docblocks.Result) {
				require.Empty(t, results)
				require.Equal(t, [][]string{{"smpp", "1", `{"host":"smpp.acme.example","systemId":"hermod","password":"s3cret"}`}},
					rows(t, `SELECT Type, Enabled, Settings FROM Channels WHERE Name = 'acme'`))
			},
		},

		// docs/sql-integration.md
		"minimum-insert": {
			Check: func(t *testing.T, results []docblocks.Result) {
				require.Empty(t, results)
				require.Equal(t, [][]string{{"OUT", "SCHEDULED", "Your code is 4711", ""}},
					rows(t, `SELECT Direction, Status, Body, TriggerStatus FROM Messages WHERE ToAddress = '+31612345678'`))
			},
		},
		"read-by-key": {
			Setup: func(t *testing.T) {
				exec(t, `INSERT INTO Messages (ToAddress, Body, ClientReference, Status, Reference, SentTime, DeliveredTime)
VALUES ('+31612345678', 'Your code is 4711', 'order-4711', 'DELIVERED', 'ref-1', '2026-01-02 03:04:05.006', '2026-01-02 03:04:06.007')`)
				deleteAfter(t, "order-4711")
			},
			Check: func(t *testing.T, results []docblocks.Result) {
				require.Len(t, results, 1)
				require.Equal(t, []string{"status", "reference", "senttime", "deliveredtime", "errorcode", "statusdetails"}, results[0].Columns)
				require.Equal(t, [][]string{{"DELIVERED", "ref-1", "2026-01-02 03:04:05.006", "2026-01-02 03:04:06.007", "NULL", "NULL"}}, results[0].Rows)
			},
		},
		"read-incoming": {
			Setup: func(t *testing.T) {
				exec(t, `INSERT INTO Messages (Direction, Status, FromAddress, ToAddress, Body, ReceivedTime, ClientReference)
VALUES ('IN', 'RECEIVED', '+31611111111', '+3197000000000', 'hello', '2026-01-02 03:04:05.006', 'incoming-1')`)
				deleteAfter(t, "incoming-1")
			},
			Check: func(t *testing.T, results []docblocks.Result) {
				require.Len(t, results, 1)
				require.Equal(t, []string{"id", "fromaddress", "body", "receivedtime"}, results[0].Columns)
				require.Len(t, results[0].Rows, 1, "only the incoming message: %v", results[0].Rows)
				require.Equal(t, []string{"+31611111111", "hello", "2026-01-02 03:04:05.006"}, results[0].Rows[0][1:])
			},
		},
		"cancel": {
			Setup: func(t *testing.T) {
				// The application's message, not yet handed to a channel.
				exec(t, `INSERT INTO Messages (ToAddress, Body, ClientReference) VALUES ('+31612345678', 'Your code is 4711', 'order-4711')`)
			},
			Check: func(t *testing.T, results []docblocks.Result) {
				require.Empty(t, results)
				r := rows(t, `SELECT Status, TriggerStatus, StatusDetails, Trace FROM Messages WHERE ClientReference = 'order-4711'`)
				require.Len(t, r, 1)
				require.Equal(t, []string{"CANCELLED", "", "cancelled by the application"}, r[0][:3])
				require.Regexp(t, `(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} CANCELLED cancelled by the application\n\z`, r[0][3])
			},
		},
		"shop-trigger": {
			Check: func(t *testing.T, results []docblocks.Result) {
				require.Empty(t, results)

				exec(t, `INSERT INTO Messages (ToAddress, Body, CampaignID, ClientReference) VALUES
    ('+31612345678', 'Your parcel is on its way', 'shop', 'shop-1'),
    ('+31612345679', 'Your parcel is on its way', 'shop', 'shop-2'),
    ('+31612345670', 'Newsletter', 'news', 'news-1')`)
				exec(t, `INSERT INTO Messages (ToAddress, Body, CampaignID, ClientReference, Status) VALUES ('+31612345671', 'Old order', 'shop', 'shop-3', 'NOREPORT')`)
				require.Empty(t, rows(t, `SELECT MessageID FROM ShopNotifications`), "an insert records nothing")
				exec(t, `UPDATE Messages SET Status = 'DELIVERED' WHERE ClientReference IN ('shop-1', 'news-1')`)
				exec(t, `UPDATE Messages SET Status = 'FAILED' WHERE ClientReference = 'shop-2'`)
				// A write that does not change Status records nothing (shop-3).
				exec(t, `UPDATE Messages SET Status = Status, Trace = Trace || 'note' || char(10) WHERE CampaignID = 'shop'`)
				require.Equal(t, [][]string{{"shop-1", "DELIVERED"}, {"shop-2", "FAILED"}},
					rows(t, `SELECT m.ClientReference, s.Outcome FROM ShopNotifications AS s JOIN Messages AS m ON m.ID = s.MessageID ORDER BY m.ClientReference`))

				r := rows(t, `SELECT ID FROM Channels WHERE Name = 'acme'`)
				require.Len(t, r, 1)
				acme := r[0][0]
				exec(t, fmt.Sprintf(`INSERT INTO Messages (Direction, Status, FromAddress, ToAddress, Body, ChannelID) VALUES
    ('IN', 'RECEIVED', '+31622222222', '+3197000000000', ' info ', %[1]s),
    ('IN', 'RECEIVED', '+31633333333', '+3197000000000', 'STOP', %[1]s)`, acme))
				require.Equal(t, [][]string{{"+31622222222", "OUT", "SCHEDULED", acme}},
					rows(t, `SELECT ToAddress, Direction, Status, ChannelID FROM Messages WHERE Body = 'Opening hours: 9-17'`))
			},
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
