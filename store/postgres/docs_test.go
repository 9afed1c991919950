package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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
// migrated into the default schema hermod. Each one has an entry in
// docblocks.SharedExamples (the examples every backend has) or below: Setup
// creates what an example assumes the reader already has (test setup, not
// part of the example); Check asserts the effect. A new example without an entry fails the test.
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

	db := docblocks.DB{
		Exec: func(t *testing.T, query string) {
			t.Helper()
			_, err := conn.Exec(ctx, query)
			require.NoError(t, err, query)
		},
		Rows: func(t *testing.T, query string) [][]string {
			t.Helper()
			r, err := conn.Query(ctx, query)
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
		},
		Hermod: "hermod.", Own: "public.", True: "true",
	}
	examples := docblocks.SharedExamples(db)
	examples["send-and-cancel"] = docblocks.Example{
		Setup: func(t *testing.T) {
			db.Exec(t, `INSERT INTO hermod.Channels (Name, Type) VALUES ('smpp1', 'simulator')`)
		},
		Check: func(t *testing.T, results []docblocks.Result) {
			require.Len(t, results, 3, "three SELECTs, three results")
			message := func(t *testing.T, res docblocks.Result) [][]string {
				require.Len(t, res.Rows, 1)
				return db.Rows(t, `SELECT Status, ChannelID, Priority, ClientReference FROM hermod.Messages WHERE ID = `+res.Rows[0][0])
			}
			// The first call: routed, no key; the second, cancelled by the third.
			require.Equal(t, [][]string{{"SCHEDULED", "NULL", "0", "NULL"}}, message(t, results[0]))
			require.Equal(t, [][]string{{"CANCELLED", db.ChannelID(t, "smpp1"), "5", "order-4711"}}, message(t, results[1]))
			require.Equal(t, [][]string{{"t"}}, results[2].Rows, "CancelMessage returned true")
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
