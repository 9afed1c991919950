package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/internal/docblocks"
	"github.com/hermod-sms/hermod/store/postgres"
)

// TestDocExamples runs every PostgreSQL example of the documentation (the
// fenced blocks "sql postgres NAME", see internal/docblocks) as written, the
// way psql runs a script: each block sent as one simple-protocol query, all
// in one session, in document order. They name hermod.Messages, so they run
// against a fresh database (not a fresh schema) whose Hermod objects Open
// migrated into the default schema hermod. Setup creates what an example
// assumes the reader already has (test setup, not part of the example);
// Check asserts the effect. A new example without an entry fails the test.
func TestDocExamples(t *testing.T) {
	t.Parallel()
	all, err := docblocks.Load("../..")
	require.NoError(t, err)
	blocks := docblocks.Select(all, docblocks.Postgres)

	s := newTestDatabase(t)
	ctx := t.Context()
	conn, err := s.Pool().Acquire(ctx)
	require.NoError(t, err)
	t.Cleanup(conn.Release)

	exec := func(t *testing.T, query string, args ...any) {
		t.Helper()
		_, err := conn.Exec(ctx, query, args...)
		require.NoError(t, err, query)
	}
	rows := func(t *testing.T, query string, args ...any) [][]string {
		t.Helper()
		r, err := conn.Query(ctx, query, args...)
		require.NoError(t, err, query)
		out, err := pgx.CollectRows(r, func(row pgx.CollectableRow) ([]string, error) {
			vals, err := row.Values()
			texts := make([]string, len(vals))
			for i, v := range vals {
				texts[i] = docblocks.Text(v)
			}
			return texts, err
		})
		require.NoError(t, err, query)
		return out
	}
	deleteAfter := func(t *testing.T, clientReference string) {
		t.Cleanup(func() {
			_, err := conn.Exec(ctx, `DELETE FROM hermod.Messages WHERE ClientReference = $1`, clientReference)
			require.NoError(t, err)
		})
	}
	channelID := func(t *testing.T, name string) string {
		t.Helper()
		r := rows(t, `SELECT ID FROM hermod.Channels WHERE Name = $1`, name)
		require.Len(t, r, 1, "channel %s", name)
		return r[0][0]
	}

	examples := map[string]docblocks.Example{
		// docs/channels/smpp.md
		"add-channel": {
			Check: func(t *testing.T, results []docblocks.Result) {
				require.Empty(t, results)
				require.Equal(t, [][]string{{"smpp", "true", `{"host":"smpp.acme.example","systemId":"hermod","password":"s3cret"}`}},
					rows(t, `SELECT Type, Enabled, Settings FROM hermod.Channels WHERE Name = 'acme'`))
			},
		},

		// docs/sql-integration.md
		"minimum-insert": {
			Check: func(t *testing.T, results []docblocks.Result) {
				require.Empty(t, results)
				require.Equal(t, [][]string{{"OUT", "SCHEDULED", "Your code is 4711", ""}},
					rows(t, `SELECT Direction, Status, Body, TriggerStatus FROM hermod.Messages WHERE ToAddress = '+31612345678'`))
			},
		},
		"read-by-key": {
			Setup: func(t *testing.T) {
				exec(t, `INSERT INTO hermod.Messages (ToAddress, Body, ClientReference, Status, Reference, SentTime, DeliveredTime)
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
				exec(t, `INSERT INTO hermod.Messages (Direction, Status, FromAddress, ToAddress, Body, ReceivedTime, ClientReference)
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
		"send-and-cancel": {
			Setup: func(t *testing.T) {
				exec(t, `INSERT INTO hermod.Channels (Name, Type) VALUES ('smpp1', 'simulator')`)
			},
			Check: func(t *testing.T, results []docblocks.Result) {
				require.Len(t, results, 3, "three SELECTs, three results")
				// The first call: routed, no key.
				require.Len(t, results[0].Rows, 1)
				require.Equal(t, [][]string{{"SCHEDULED", "NULL", "0", "NULL"}},
					rows(t, `SELECT Status, ChannelID, Priority, ClientReference FROM hermod.Messages WHERE ID = $1::bigint`, results[0].Rows[0][0]))
				// The second, cancelled by the third.
				require.Len(t, results[1].Rows, 1)
				require.Equal(t, [][]string{{"CANCELLED", channelID(t, "smpp1"), "5", "order-4711"}},
					rows(t, `SELECT Status, ChannelID, Priority, ClientReference FROM hermod.Messages WHERE ID = $1::bigint`, results[1].Rows[0][0]))
				require.Equal(t, [][]string{{"t"}}, results[2].Rows, "CancelMessage returned true")
			},
		},
		"shop-trigger": {
			Check: func(t *testing.T, results []docblocks.Result) {
				require.Empty(t, results)

				exec(t, `INSERT INTO hermod.Messages (ToAddress, Body, CampaignID, ClientReference) VALUES
    ('+31612345678', 'Your parcel is on its way', 'shop', 'shop-1'),
    ('+31612345679', 'Your parcel is on its way', 'shop', 'shop-2'),
    ('+31612345670', 'Newsletter', 'news', 'news-1')`)
				exec(t, `INSERT INTO hermod.Messages (ToAddress, Body, CampaignID, ClientReference, Status) VALUES ('+31612345671', 'Old order', 'shop', 'shop-3', 'NOREPORT')`)
				require.Empty(t, rows(t, `SELECT message_id FROM public.shop_notifications`), "an insert records nothing")
				exec(t, `UPDATE hermod.Messages SET Status = 'DELIVERED' WHERE ClientReference IN ('shop-1', 'news-1')`)
				exec(t, `UPDATE hermod.Messages SET Status = 'FAILED' WHERE ClientReference = 'shop-2'`)
				// A write that does not change Status records nothing (shop-3).
				exec(t, `UPDATE hermod.Messages SET Status = Status, Trace = Trace || 'note' || chr(10) WHERE CampaignID = 'shop'`)
				require.Equal(t, [][]string{{"shop-1", "DELIVERED"}, {"shop-2", "FAILED"}},
					rows(t, `SELECT m.ClientReference, s.outcome FROM public.shop_notifications AS s JOIN hermod.Messages AS m ON m.ID = s.message_id ORDER BY m.ClientReference`))

				acme := channelID(t, "acme")
				exec(t, fmt.Sprintf(`INSERT INTO hermod.Messages (Direction, Status, FromAddress, ToAddress, Body, ChannelID) VALUES
    ('IN', 'RECEIVED', '+31622222222', '+3197000000000', ' info ', %[1]s),
    ('IN', 'RECEIVED', '+31633333333', '+3197000000000', 'STOP', %[1]s)`, acme))
				require.Equal(t, [][]string{{"+31622222222", "OUT", "SCHEDULED", acme}},
					rows(t, `SELECT ToAddress, Direction, Status, ChannelID FROM hermod.Messages WHERE Body = 'Opening hours: 9-17'`))
			},
		},
	}

	docblocks.Run(t, blocks, examples, func(t *testing.T, b docblocks.Block) ([]docblocks.Result, error) {
		// The simple protocol, as psql sends a script: several statements,
		// dollar-quoted bodies, one result per statement.
		all, err := conn.Conn().PgConn().Exec(t.Context(), b.SQL).ReadAll()
		if err != nil {
			return nil, err
		}
		var results []docblocks.Result
		for _, r := range all {
			if r.Err != nil {
				return nil, r.Err
			}
			if len(r.FieldDescriptions) == 0 {
				continue
			}
			res := docblocks.Result{}
			for _, f := range r.FieldDescriptions {
				res.Columns = append(res.Columns, f.Name)
			}
			for _, row := range r.Rows {
				texts := make([]string, len(row))
				for i, v := range row {
					texts[i] = docblocks.Text(v)
				}
				res.Rows = append(res.Rows, texts)
			}
			results = append(results, res)
		}
		return results, nil
	})
}

// newTestDatabase creates a fresh database hermod_d_<random>, opens a store
// on it with the default schema (hermod, as the documentation names it) and
// drops the database when the test ends.
func newTestDatabase(t *testing.T) *postgres.Store {
	t.Helper()
	serverURL := testURL(t)
	ctx := t.Context()

	admin, err := pgx.Connect(ctx, serverURL)
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close(context.Background()) })

	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "hermod_d_" + hex.EncodeToString(b[:])
	_, err = admin.Exec(ctx, "CREATE DATABASE "+name)
	require.NoError(t, err, "create the test database (the role of HERMOD_TEST_POSTGRES needs CREATEDB)")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})

	u, err := url.Parse(serverURL)
	require.NoError(t, err)
	u.Path = "/" + name
	s, err := postgres.Open(ctx, u.String(), postgres.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}
