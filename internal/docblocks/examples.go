package docblocks

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// DB is how the checks shared by the three backends reach the database
// under test. The checks' own SQL (setup and assertions, never the
// examples) is written once, with hermod.Messages for Hermod's tables and
// own.X for the reader's own ones; Query rewrites both prefixes.
type DB struct {
	// Exec runs a statement of the test's own; Rows runs a query and
	// returns its rows as Text. Both fail t on an error.
	Exec func(t *testing.T, query string)
	Rows func(t *testing.T, query string) [][]string
	// Hermod is the prefix of Hermod's tables ("hermod." or "" on SQLite);
	// Own the prefix of the reader's own tables in the examples ("dbo.",
	// "public.", "").
	Hermod, Own string
	// True is how a true boolean column reads back ("true", or "1" on
	// SQLite).
	True string
}

// Query rewrites the prefixes of a check's SQL for this backend.
func (db DB) Query(q string) string {
	return strings.NewReplacer("hermod.", db.Hermod, "own.", db.Own).Replace(q)
}

func (db DB) exec(t *testing.T, q string) {
	t.Helper()
	db.Exec(t, db.Query(q))
}

func (db DB) rows(t *testing.T, q string) [][]string {
	t.Helper()
	return db.Rows(t, db.Query(q))
}

// deleteAfter removes the messages the setup inserted with this
// ClientReference when the example's subtest ends, so that later examples
// start without them.
func (db DB) deleteAfter(t *testing.T, clientReference string) {
	t.Cleanup(func() { db.exec(t, "DELETE FROM hermod.Messages WHERE ClientReference = '"+clientReference+"'") })
}

// ChannelID returns the ID of the channel name, as text.
func (db DB) ChannelID(t *testing.T, name string) string {
	t.Helper()
	r := db.rows(t, "SELECT ID FROM hermod.Channels WHERE Name = '"+name+"'")
	require.Len(t, r, 1, "channel %s", name)
	return r[0][0]
}

// SharedExamples are the setups and checks of the examples that the
// documentation gives for every backend, in each backend's dialect with
// the same effect. A backend's test adds those of its own examples.
func SharedExamples(db DB) map[string]Example {
	return map[string]Example{
		// docs/channels/smpp.md
		"add-channel": {
			Check: func(t *testing.T, results []Result) {
				require.Empty(t, results)
				require.Equal(t, [][]string{{"smpp", db.True, `{"host":"smpp.acme.example","systemId":"hermod","password":"s3cret"}`}},
					db.rows(t, "SELECT Type, Enabled, Settings FROM hermod.Channels WHERE Name = 'acme'"))
			},
		},

		// docs/sql-integration.md
		"minimum-insert": {
			Check: func(t *testing.T, results []Result) {
				require.Empty(t, results)
				require.Equal(t, [][]string{{"OUT", "SCHEDULED", "Your code is 4711", ""}},
					db.rows(t, "SELECT Direction, Status, Body, TriggerStatus FROM hermod.Messages WHERE ToAddress = '+31612345678'"))
			},
		},
		"read-by-key": {
			Setup: func(t *testing.T) {
				// The application's message, delivered.
				db.exec(t, `INSERT INTO hermod.Messages (ToAddress, Body, ClientReference, Status, Reference, SentTime, DeliveredTime)
VALUES ('+31612345678', 'Your code is 4711', 'order-4711', 'DELIVERED', 'ref-1', '2026-01-02 03:04:05.006', '2026-01-02 03:04:06.007')`)
				db.deleteAfter(t, "order-4711")
			},
			Check: func(t *testing.T, results []Result) {
				require.Len(t, results, 1)
				require.Equal(t, []string{"status", "reference", "senttime", "deliveredtime", "errorcode", "statusdetails"}, results[0].Columns)
				require.Equal(t, [][]string{{"DELIVERED", "ref-1", "2026-01-02 03:04:05.006", "2026-01-02 03:04:06.007", "NULL", "NULL"}}, results[0].Rows)
			},
		},
		"read-incoming": {
			Setup: func(t *testing.T) {
				db.exec(t, `INSERT INTO hermod.Messages (Direction, Status, FromAddress, ToAddress, Body, ReceivedTime, ClientReference)
VALUES ('IN', 'RECEIVED', '+31611111111', '+3197000000000', 'hello', '2026-01-02 03:04:05.006', 'incoming-1')`)
				db.deleteAfter(t, "incoming-1")
			},
			Check: func(t *testing.T, results []Result) {
				require.Len(t, results, 1)
				require.Equal(t, []string{"id", "fromaddress", "body", "receivedtime"}, results[0].Columns)
				require.Len(t, results[0].Rows, 1, "only the incoming message: %v", results[0].Rows)
				require.Equal(t, []string{"+31611111111", "hello", "2026-01-02 03:04:05.006"}, results[0].Rows[0][1:])
			},
		},
		"shop-trigger": {
			Check: func(t *testing.T, results []Result) {
				require.Empty(t, results)

				// Two shop messages and another campaign's, in one statement
				// (a trigger sees many rows at once), and one imported as
				// final: only a change of Status counts, not an insert.
				db.exec(t, `INSERT INTO hermod.Messages (ToAddress, Body, CampaignID, ClientReference) VALUES
    ('+31612345678', 'Your parcel is on its way', 'shop', 'shop-1'),
    ('+31612345679', 'Your parcel is on its way', 'shop', 'shop-2'),
    ('+31612345670', 'Newsletter', 'news', 'news-1')`)
				db.exec(t, "INSERT INTO hermod.Messages (ToAddress, Body, CampaignID, ClientReference, Status) VALUES ('+31612345671', 'Old order', 'shop', 'shop-3', 'NOREPORT')")
				require.Empty(t, db.rows(t, "SELECT MessageID FROM own.ShopNotifications"), "an insert records nothing")
				db.exec(t, "UPDATE hermod.Messages SET Status = 'DELIVERED' WHERE ClientReference IN ('shop-1', 'news-1')")
				db.exec(t, "UPDATE hermod.Messages SET Status = 'FAILED' WHERE ClientReference = 'shop-2'")
				// A write that does not change Status records nothing (shop-3).
				db.exec(t, "UPDATE hermod.Messages SET Status = Status, Priority = Priority + 1 WHERE CampaignID = 'shop'")
				require.Equal(t, [][]string{{"shop-1", "DELIVERED"}, {"shop-2", "FAILED"}},
					db.rows(t, "SELECT m.ClientReference, s.Outcome FROM own.ShopNotifications AS s JOIN hermod.Messages AS m ON m.ID = s.MessageID ORDER BY m.ClientReference"))

				// An incoming INFO gets the auto-reply, through its channel;
				// other incoming messages do not.
				acme := db.ChannelID(t, "acme")
				db.exec(t, `INSERT INTO hermod.Messages (Direction, Status, FromAddress, ToAddress, Body, ChannelID) VALUES
    ('IN', 'RECEIVED', '+31622222222', '+3197000000000', ' info ', `+acme+`),
    ('IN', 'RECEIVED', '+31633333333', '+3197000000000', 'STOP', `+acme+`)`)
				require.Equal(t, [][]string{{"+31622222222", "OUT", "SCHEDULED", acme}},
					db.rows(t, "SELECT ToAddress, Direction, Status, ChannelID FROM hermod.Messages WHERE Body = 'Opening hours: 9-17'"))
			},
		},
	}
}

// ConnDB is a DB whose Exec and Rows use conn (database/sql: SQL Server,
// SQLite) under ctx; the caller sets the prefixes and True.
func ConnDB(ctx context.Context, conn *sql.Conn) DB {
	return DB{
		Exec: func(t *testing.T, query string) {
			t.Helper()
			_, err := conn.ExecContext(ctx, query)
			require.NoError(t, err, query)
		},
		Rows: func(t *testing.T, query string) [][]string {
			t.Helper()
			r, err := conn.QueryContext(ctx, query)
			require.NoError(t, err, query)
			res, err := Collect(r)
			require.NoError(t, err, query)
			require.Len(t, res, 1, query)
			return res[0].Rows
		},
	}
}
