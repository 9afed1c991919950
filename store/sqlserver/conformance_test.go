package sqlserver

import (
	"context"
	"database/sql"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/procedures"
	"github.com/hermod-sms/hermod/store"
	"github.com/hermod-sms/hermod/store/storetest"
	"github.com/hermod-sms/hermod/store/storetest/testdb"
)

// testServerURL returns HERMOD_TEST_SQLSERVER, a sqlserver:// URL of a login
// that may create databases (e.g.
// sqlserver://sa:Passw0rd!@127.0.0.1:1433?database=master), or skips the
// test without it (fails it when HERMOD_REQUIRE_SQLSERVER is set). Without
// a server the T-SQL is still grammar-checked by sql/tsqlcheck.
func testServerURL(t *testing.T) string {
	t.Helper()
	return testdb.SQLServerURL(t)
}

// newTestStore creates a fresh database hermod_t_<random>, opens a migrated
// store on it and drops the database when the test ends.
func newTestStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), testdb.NewSQLServer(t), Options{})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	testServerURL(t)
	storetest.Run(t, func(t *testing.T) store.Store { return newTestStore(t) })
}

func TestMigrations(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()

	current, latest, dirty, err := s.MigrateStatus(ctx)
	require.NoError(t, err)
	require.False(t, dirty)
	require.Equal(t, latest, current)

	// Applying again changes nothing, and the procedures survive ALTER.
	require.NoError(t, s.MigrateUp(ctx))

	// All the way down and up again.
	require.NoError(t, s.MigrateDown(ctx, 0))
	current, _, _, err = s.MigrateStatus(ctx)
	require.NoError(t, err)
	require.Zero(t, current)
	var objects int
	require.NoError(t, s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sys.objects WHERE schema_id = SCHEMA_ID(N'hermod') AND type IN ('U', 'P', 'V', 'FN', 'IF', 'TF') AND name <> N'SchemaMigrations';`).Scan(&objects))
	require.Zero(t, objects, "down removes every table and procedure")
	require.NoError(t, s.MigrateUp(ctx))
	current, latest, _, err = s.MigrateStatus(ctx)
	require.NoError(t, err)
	require.Equal(t, latest, current)
}

func TestProcedures(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()

	scripts, err := loadScripts(procedures.SQLServer)
	require.NoError(t, err)
	for _, sc := range scripts {
		var id sql.NullInt64
		require.NoError(t, s.db.QueryRowContext(ctx, `SELECT OBJECT_ID(@p1);`, "hermod."+sc.Name[len("sqlserver/"):len(sc.Name)-len(".sql")]).Scan(&id))
		require.True(t, id.Valid, "%s created its object", sc.Name)
	}

	sendMessage := func(ref string) (int64, bool) {
		t.Helper()
		var out, id int64
		var existing bool
		require.NoError(t, s.db.QueryRowContext(ctx, `EXEC hermod.SendMessage @ToAddress = @p1, @Body = @p2, @ClientReference = @p3, @ID = @p4 OUTPUT;`,
			"+31600000001", "hello", ref, sql.Out{Dest: &out}).Scan(&id, &existing))
		require.Equal(t, id, out, "@ID and the result set agree")
		return id, existing
	}
	id, existing := sendMessage("order-1")
	require.False(t, existing)
	again, existing := sendMessage("order-1")
	require.True(t, existing)
	require.Equal(t, id, again)

	m, err := s.MessageGet(ctx, id)
	require.NoError(t, err)
	require.Equal(t, store.StatusScheduled, m.Status)
	require.Equal(t, "order-1", m.ClientReference)
	storetest.RequireTraceEndsWith(t, m, store.StatusScheduled)

	_, err = s.db.ExecContext(ctx, `EXEC hermod.SendMessage @ToAddress = N'+1', @Body = N'x', @Channel = N'nosuch';`)
	require.ErrorIs(t, mapError(err, "send"), store.ErrInvalid)

	_, err = s.db.ExecContext(ctx, `EXEC hermod.CancelMessage @ID = @p1;`, id)
	require.NoError(t, err)
	m, err = s.MessageGet(ctx, id)
	require.NoError(t, err)
	require.Equal(t, store.StatusCancelled, m.Status)

	_, err = s.db.ExecContext(ctx, `EXEC hermod.CancelMessage @ID = @p1;`, id)
	require.ErrorIs(t, mapError(err, "cancel"), store.ErrConflict)
	_, err = s.db.ExecContext(ctx, `EXEC hermod.CancelMessage @ID = 987654;`)
	require.ErrorIs(t, mapError(err, "cancel"), store.ErrNotFound)
}

// TestTriggersDoNotBreakTheStore installs a trigger on hermod.Messages, as
// users do, and runs a message through: a bare OUTPUT clause would fail
// with error 334.
func TestTriggersDoNotBreakTheStore(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()

	_, err := s.db.ExecContext(ctx, `CREATE TRIGGER hermod.TR_Messages_Audit ON hermod.Messages AFTER INSERT, UPDATE AS
BEGIN
	SET NOCOUNT ON;
	UPDATE m SET CustomField2 = N'seen by trigger' FROM hermod.Messages AS m JOIN inserted AS i ON i.ID = m.ID
	WHERE m.CustomField2 IS NULL;
END;`)
	require.NoError(t, err)

	ch := storetest.CreateChannel(t, s, "a")
	ids := storetest.InsertN(t, s, 3)
	res, err := s.MessageRoute(ctx, store.RouteParams{Channels: []int64{ch.ID}, Limit: 10})
	require.NoError(t, err)
	require.Equal(t, 3, res.Queued)
	ms := storetest.Claim(t, s, ch.ID, "node1", 10)
	require.Len(t, ms, 3)
	n, err := s.MessageMarkSent(ctx, []store.SentParams{{ID: ids[0], Owner: "node1", Reference: "r0"}})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, "seen by trigger", storetest.Get(t, s, ids[0]).CustomField2)
}
