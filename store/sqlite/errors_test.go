package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"modernc.org/sqlite"

	"github.com/hermod-sms/hermod/store"
	hsqlite "github.com/hermod-sms/hermod/store/sqlite"
	"github.com/hermod-sms/hermod/store/storetest"
)

// errorBundle is a migrated store with a second connection to its file, as
// a DBA's sqlite3 shell would have, to break the schema under the store.
type errorBundle struct {
	store *hsqlite.Store
	shell *sql.DB
}

func setupErrors(t *testing.T) *errorBundle {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hermod.db")
	s := newTestStoreAt(t, path)
	shell, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	require.NoError(t, err)
	t.Cleanup(func() { _ = shell.Close() })
	return &errorBundle{store: s, shell: shell}
}

func (b *errorBundle) exec(t *testing.T, query string) {
	t.Helper()
	_, err := b.shell.ExecContext(t.Context(), query)
	require.NoError(t, err)
}

func TestStatementErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("a renamed column", func(t *testing.T) {
		t.Parallel()
		b := setupErrors(t)
		ch, err := b.store.ChannelCreate(ctx, store.Channel{Name: "sim", Type: "simulator", Enabled: true})
		require.NoError(t, err)
		_, err = b.store.MessageInsert(ctx, []store.NewMessage{{ToAddress: "+31612345678", Body: "hi", ChannelID: ch.ID}})
		require.NoError(t, err)
		_, err = b.store.MessageRoute(ctx, store.RouteParams{Channels: []int64{ch.ID}, Limit: 10})
		require.NoError(t, err)

		b.exec(t, `ALTER TABLE Messages RENAME COLUMN LeaseOwner TO LeaseHolder`)
		_, err = b.store.MessageClaim(ctx, store.ClaimParams{ChannelID: ch.ID, Limit: 10, Owner: "n#1", Lease: time.Minute})
		storetest.RequireStatement(t, err, store.FixSchema, "claim messages", "LeaseOwner")
		var se *sqlite.Error
		require.ErrorAs(t, err, &se, "the driver's error stays reachable")

		b.exec(t, `ALTER TABLE Messages RENAME COLUMN LeaseHolder TO LeaseOwner`)
		msgs, err := b.store.MessageClaim(ctx, store.ClaimParams{ChannelID: ch.ID, Limit: 10, Owner: "n#2", Lease: time.Minute})
		require.NoError(t, err)
		require.Len(t, msgs, 1)
	})

	t.Run("a dropped table", func(t *testing.T) {
		t.Parallel()
		b := setupErrors(t)
		b.exec(t, `DROP TABLE Options`)
		_, err := b.store.OptionGet(ctx, "x")
		storetest.RequireStatement(t, err, store.FixSchema, "no such table")
	})

	t.Run("a trigger that raises", func(t *testing.T) {
		t.Parallel()
		b := setupErrors(t)
		b.exec(t, `CREATE TRIGGER NoChannels BEFORE INSERT ON Channels BEGIN SELECT RAISE(ABORT, 'channels are frozen'); END`)
		_, err := b.store.ChannelCreate(ctx, store.Channel{Name: "sim", Type: "simulator"})
		storetest.RequireStatement(t, err, store.FixRaised, "channels are frozen")
	})

	t.Run("a row that does not scan", func(t *testing.T) {
		t.Parallel()
		b := setupErrors(t)
		res, err := b.store.MessageInsert(ctx, []store.NewMessage{{ToAddress: "+31612345678", Body: "hi"}})
		require.NoError(t, err)
		// SQLite keeps a TEXT that is no number in an INTEGER column.
		b.exec(t, `UPDATE Messages SET Attempts = 'many' WHERE ID = `+strconv.FormatInt(res[0].ID, 10))
		_, err = b.store.MessageGet(ctx, res[0].ID)
		storetest.RequireStatement(t, err, store.FixData, "get message", "Scan error", "Attempts")
	})
}

// A closed store is an outage, not a statement error.
func TestClosedStoreIsNoStatementError(t *testing.T) {
	t.Parallel()
	s, err := hsqlite.Open(t.Context(), filepath.Join(t.TempDir(), "hermod.db"), hsqlite.Options{})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = s.ChannelList(context.Background())
	storetest.RequireOutage(t, err)
}
