package sqlserver

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/internal/docblocks"
)

// TestDocExamples runs every SQL Server example of the documentation as
// written, the way a user runs it in SSMS or sqlcmd: split into batches on
// GO lines (splitBatches, the splitter the store applies its scripts with),
// each batch sent as it is, without parameters, all in one session, in
// document order, against one fresh database that Open migrated.
//
// The examples are the fenced blocks whose info string is
// "sql sqlserver NAME" (see internal/docblocks for the convention;
// "sql postgres NAME" and "sql sqlite NAME" blocks run in store/postgres and
// store/sqlite). Each one has an entry below: Setup creates what the example
// assumes the reader already has (test setup, not part of the example), and
// Check asserts the effect. A new example without an entry fails the test.
// An example that needs a feature Babelfish lacks gets a Skip naming the
// feature; sql/tsqlcheck still parses it with the T-SQL grammar.
func TestDocExamples(t *testing.T) {
	testServerURL(t)
	all, err := docblocks.Load("../..")
	require.NoError(t, err)
	blocks := docblocks.Select(all, docblocks.SQLServer)

	s := newTestStore(t)
	ctx := t.Context()
	conn, err := s.db.Conn(ctx)
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
	// deleteAfter removes a message the test setup inserted once the
	// example's subtest ends, so that later examples start without it.
	deleteAfter := func(t *testing.T, clientReference string) {
		t.Cleanup(func() {
			_, err := conn.ExecContext(ctx, `DELETE FROM hermod.Messages WHERE ClientReference = @p1;`, clientReference)
			require.NoError(t, err)
		})
	}
	channelID := func(t *testing.T, name string) string {
		t.Helper()
		r := rows(t, `SELECT ID FROM hermod.Channels WHERE Name = @p1;`, name)
		require.Len(t, r, 1, "channel %s", name)
		return r[0][0]
	}

	examples := map[string]docblocks.Example{
		// docs/channels/smpp.md
		"add-channel": {
			Check: func(t *testing.T, results []docblocks.Result) {
				require.Empty(t, results)
				require.Equal(t, [][]string{{"smpp", "true", `{"host":"smpp.acme.example","systemId":"hermod","password":"s3cret"}`}},
					rows(t, `SELECT Type, Enabled, Settings FROM hermod.Channels WHERE Name = N'acme';`))
			},
		},

		// docs/sql-integration.md
		"minimum-insert": {
			Check: func(t *testing.T, results []docblocks.Result) {
				require.Empty(t, results)
				require.Equal(t, [][]string{{"OUT", "SCHEDULED", "Your code is 4711", ""}},
					rows(t, `SELECT Direction, Status, Body, TriggerStatus FROM hermod.Messages WHERE ToAddress = N'+31612345678';`))
			},
		},
		"read-by-key": {
			Setup: func(t *testing.T) {
				// The application's message, delivered.
				exec(t, `INSERT INTO hermod.Messages (ToAddress, Body, ClientReference, Status, Reference, SentTime, DeliveredTime)
VALUES (N'+31612345678', N'Your code is 4711', N'order-4711', N'DELIVERED', N'ref-1', '2026-01-02 03:04:05.006', '2026-01-02 03:04:06.007');`)
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
				exec(t, `INSERT INTO hermod.Messages (Direction, Status, FromAddress, ToAddress, Body, ReceivedTime, ClientReference)
VALUES (N'IN', N'RECEIVED', N'+31611111111', N'+3197000000000', N'hello', '2026-01-02 03:04:05.006', N'incoming-1');`)
				deleteAfter(t, "incoming-1")
			},
			Check: func(t *testing.T, results []docblocks.Result) {
				require.Len(t, results, 1)
				require.Equal(t, []string{"id", "fromaddress", "body", "receivedtime"}, results[0].Columns)
				require.Len(t, results[0].Rows, 1, "only the incoming message: %v", results[0].Rows)
				require.Equal(t, []string{"+31611111111", "hello", "2026-01-02 03:04:05.006"}, results[0].Rows[0][1:])
			},
		},
		"send-and-cancel": {
			Setup: func(t *testing.T) {
				exec(t, `INSERT INTO hermod.Channels (Name, Type) VALUES (N'smpp1', N'simulator');`)
			},
			Check: func(t *testing.T, results []docblocks.Result) {
				msg := rows(t, `SELECT ID, Status, FromAddress, ChannelID, Priority, Body FROM hermod.Messages WHERE ClientReference = N'order-4711';`)
				require.Len(t, msg, 1, "SendMessage inserted one message")
				// The result set of SendMessage: the new ID, not an existing one.
				require.Len(t, results, 1)
				require.Equal(t, [][]string{{msg[0][0], "false"}}, results[0].Rows)
				// CANCELLED: CancelMessage got the ID through the OUTPUT parameter.
				require.Equal(t, []string{"CANCELLED", "Shop", channelID(t, "smpp1"), "5", "Your code is 4711"}, msg[0][1:])
			},
		},
		"shop-trigger": {
			Check: func(t *testing.T, results []docblocks.Result) {
				require.Empty(t, results)
				require.Equal(t, [][]string{{"hermod"}},
					rows(t, `SELECT s.name FROM sys.triggers AS tr JOIN sys.objects AS o ON o.object_id = tr.object_id JOIN sys.schemas AS s ON s.schema_id = o.schema_id WHERE tr.name = N'TR_Messages_Shop';`))

				// A shop message and another campaign's, in one statement (the
				// trigger is set-based), then delivered in one statement.
				exec(t, `INSERT INTO hermod.Messages (ToAddress, Body, CampaignID, ClientReference) VALUES
    (N'+31612345678', N'Your parcel is on its way', N'shop', N'shop-1'),
    (N'+31612345679', N'Your parcel is on its way', N'shop', N'shop-2'),
    (N'+31612345670', N'Newsletter', N'news', N'news-1');`)
				// Imported as final: only a change of Status counts, not the insert.
				exec(t, `INSERT INTO hermod.Messages (ToAddress, Body, CampaignID, ClientReference, Status) VALUES (N'+31612345671', N'Old order', N'shop', N'shop-3', N'NOREPORT');`)
				require.Empty(t, rows(t, `SELECT MessageID FROM dbo.ShopNotifications;`), "an insert records nothing")
				exec(t, `UPDATE hermod.Messages SET Status = N'DELIVERED' WHERE ClientReference IN (N'shop-1', N'news-1');`)
				exec(t, `UPDATE hermod.Messages SET Status = N'FAILED' WHERE ClientReference = N'shop-2';`)
				// A write that does not change Status records nothing (shop-3).
				exec(t, `UPDATE hermod.Messages SET Trace = Trace + N'note' + NCHAR(10) WHERE CampaignID = N'shop';`)
				require.Equal(t, [][]string{{"shop-1", "DELIVERED"}, {"shop-2", "FAILED"}},
					rows(t, `SELECT m.ClientReference, s.Outcome FROM dbo.ShopNotifications AS s JOIN hermod.Messages AS m ON m.ID = s.MessageID ORDER BY m.ClientReference;`))

				// An incoming INFO gets the auto-reply, through its channel;
				// other incoming messages do not.
				acme := channelID(t, "acme")
				exec(t, fmt.Sprintf(`INSERT INTO hermod.Messages (Direction, Status, FromAddress, ToAddress, Body, ChannelID) VALUES
    (N'IN', N'RECEIVED', N'+31622222222', N'+3197000000000', N' info ', %[1]s),
    (N'IN', N'RECEIVED', N'+31633333333', N'+3197000000000', N'STOP', %[1]s);`, acme))
				require.Equal(t, [][]string{{"+31622222222", "OUT", "SCHEDULED", acme}},
					rows(t, `SELECT ToAddress, Direction, Status, ChannelID FROM hermod.Messages WHERE Body = N'Opening hours: 9-17';`))
			},
		},
	}

	docblocks.Run(t, blocks, examples, func(t *testing.T, b docblocks.Block) ([]docblocks.Result, error) {
		batches, err := splitBatches(b.SQL)
		if err != nil {
			return nil, err
		}
		var results []docblocks.Result
		for _, bt := range batches {
			for range bt.Count {
				res, err := runBatch(conn, t, bt.SQL)
				if err != nil {
					return nil, fmt.Errorf("the batch at %s:%d: %w", b.File, b.Line+bt.Line-1, err)
				}
				results = append(results, res...)
			}
		}
		return results, nil
	})
}

// runBatch sends one batch as it is (no parameters: a plain SQL batch, as
// SSMS and sqlcmd send it) and returns its result sets.
func runBatch(conn *sql.Conn, t *testing.T, text string) ([]docblocks.Result, error) {
	if strings.TrimSpace(text) == "" {
		return nil, nil
	}
	r, err := conn.QueryContext(t.Context(), text)
	if err != nil {
		return nil, err
	}
	return docblocks.Collect(r)
}
