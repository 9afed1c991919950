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
// store/sqlite). Each one has an entry in docblocks.SharedExamples (the
// examples every backend has) or below: Setup creates what the example
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

	db := docblocks.ConnDB(ctx, conn)
	db.Hermod, db.Own, db.True = "hermod.", "dbo.", "true"
	examples := docblocks.SharedExamples(db)
	examples["send-and-cancel"] = docblocks.Example{
		Setup: func(t *testing.T) {
			db.Exec(t, `INSERT INTO hermod.Channels (Name, Type) VALUES (N'smpp1', N'simulator');`)
		},
		Check: func(t *testing.T, results []docblocks.Result) {
			msg := db.Rows(t, `SELECT ID, Status, FromAddress, ChannelID, Priority, Body FROM hermod.Messages WHERE ClientReference = N'order-4711';`)
			require.Len(t, msg, 1, "SendMessage inserted one message")
			// The result set of SendMessage: the new ID, not an existing one.
			require.Len(t, results, 1)
			require.Equal(t, [][]string{{msg[0][0], "false"}}, results[0].Rows)
			// CANCELLED: CancelMessage got the ID through the OUTPUT parameter.
			require.Equal(t, []string{"CANCELLED", "Shop", db.ChannelID(t, "smpp1"), "5", "Your code is 4711"}, msg[0][1:])
		},
	}
	// The trigger lives in its table's schema (SQL Server's error 2103).
	shop := examples["shop-trigger"]
	check := shop.Check
	shop.Check = func(t *testing.T, results []docblocks.Result) {
		require.Equal(t, [][]string{{"hermod"}},
			db.Rows(t, `SELECT s.name FROM sys.triggers AS tr JOIN sys.objects AS o ON o.object_id = tr.object_id JOIN sys.schemas AS s ON s.schema_id = o.schema_id WHERE tr.name = N'TR_Messages_Shop';`))
		check(t, results)
	}
	examples["shop-trigger"] = shop

	// docs/operations.md, SQL Server by hand: no engine runs here, so the
	// rows stay as inserted; each check removes its rows again.
	examples["hand-insert"] = docblocks.Example{
		Check: func(t *testing.T, results []docblocks.Result) {
			require.Len(t, results, 1)
			require.Len(t, results[0].Rows, 1)
			require.Equal(t, "SCHEDULED", results[0].Rows[0][1], "the new row, read back")
			db.Exec(t, `DELETE FROM hermod.Messages WHERE ToAddress = N'+31612345678' AND Body = N'hello';`)
		},
	}
	examples["hand-send-batch"] = docblocks.Example{
		Check: func(t *testing.T, results []docblocks.Result) {
			require.Len(t, results, 2, "SendMessage's result set, then SELECT @id")
			require.Equal(t, "false", results[0].Rows[0][1])
			require.Equal(t, results[0].Rows[0][0], results[1].Rows[0][0], "@id came back through OUTPUT")
			db.Exec(t, `DELETE FROM hermod.Messages WHERE Body = N'hello via batch';`)
		},
	}
	examples["hand-two-nodes"] = docblocks.Example{
		Check: func(t *testing.T, results []docblocks.Result) {
			require.Equal(t, [][]string{{"2000"}}, db.Rows(t, `SELECT COUNT(*) FROM hermod.Messages WHERE Body LIKE N'two-node %' AND Status = N'SCHEDULED';`))
			db.Exec(t, `DELETE FROM hermod.Messages WHERE Body LIKE N'two-node %';`)
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
