package sqlserver

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

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

// newTestStore opens a migrated store on a database of its own for the
// length of the test. Open stores are pooled on top of testdb's pooled
// databases: a fresh Babelfish session takes a second to compile the first
// run of each statement. At the end of a test its database is emptied
// (testdb.EmptySQLServer) through the store's own connections and the
// store handed to the next test; one that cannot be emptied (a test closed
// it) is dropped. TestMain closes the pool.
func newTestStore(t *testing.T) *Store {
	t.Helper()
	serverURL := testServerURL(t)
	s, err := stores.take(t.Context(), serverURL)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := testdb.EmptySQLServer(ctx, s.db); err != nil {
			t.Logf("empty the test database for the next test: %v; dropping it", err)
			stores.release(s, false)
			return
		}
		stores.put(s)
	})
	return s
}

// stores is the pool of open test stores.
var stores storePool

type storePool struct {
	mu    sync.Mutex
	free  []*Store
	names map[*Store][2]string // server URL, database
}

// take returns a free store, or opens one on a database from testdb.
func (p *storePool) take(ctx context.Context, serverURL string) (*Store, error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		s := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		// A test may have migrated the schema down.
		return s, s.MigrateUp(ctx)
	}
	p.mu.Unlock()
	name, dbURL, err := testdb.AcquireSQLServer(serverURL)
	if err != nil {
		return nil, err
	}
	s, err := Open(ctx, dbURL, Options{})
	if err != nil {
		_ = testdb.ReleaseSQLServer(serverURL, name, false)
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.names == nil {
		p.names = map[*Store][2]string{}
	}
	p.names[s] = [2]string{serverURL, name}
	return s, nil
}

func (p *storePool) put(s *Store) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.free = append(p.free, s)
}

// release closes s and gives its database back to testdb.
func (p *storePool) release(s *Store, reuse bool) {
	p.mu.Lock()
	n := p.names[s]
	delete(p.names, s)
	p.mu.Unlock()
	s.Close()
	if err := testdb.ReleaseSQLServer(n[0], n[1], reuse); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}

// closeAll closes every store and drops its database.
func (p *storePool) closeAll() {
	p.mu.Lock()
	all := make([]*Store, 0, len(p.names))
	for s := range p.names {
		all = append(all, s)
	}
	p.free = nil
	p.mu.Unlock()
	for _, s := range all {
		p.release(s, false)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	stores.closeAll()
	os.Exit(code)
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

	// Three ways to call a procedure: as an RPC (go-mssqldb does this when
	// the query text is just the procedure's name: what ADO.NET's
	// CommandType.StoredProcedure and JDBC's CallableStatement do), EXEC in
	// a plain batch with a declared variable (what SSMS, sqlcmd and SQL
	// Agent jobs do), and EXEC in a parameterised batch with an output
	// parameter.
	type call func(conn *sql.Conn, ref string) (id, out int64, existing bool, err error)
	rpc := func(conn *sql.Conn, ref string) (id, out int64, existing bool, err error) {
		err = conn.QueryRowContext(ctx, "hermod.SendMessage", sql.Named("ToAddress", "+31600000001"), sql.Named("Body", "hello"),
			sql.Named("ClientReference", ref), sql.Named("ID", sql.Out{Dest: &out})).Scan(&id, &existing)
		return
	}
	batch := func(conn *sql.Conn, ref string) (id, out int64, existing bool, err error) {
		rows, err := conn.QueryContext(ctx, `DECLARE @id BIGINT;
EXEC hermod.SendMessage @ToAddress = N'+31600000001', @Body = N'hello', @ClientReference = N'`+ref+`', @ID = @id OUTPUT;
SELECT @id;`)
		if err != nil {
			return 0, 0, false, err
		}
		defer rows.Close()
		if !rows.Next() {
			return 0, 0, false, fmt.Errorf("no result set: %v", rows.Err())
		}
		if err := rows.Scan(&id, &existing); err != nil {
			return 0, 0, false, err
		}
		for rows.Next() {
		}
		if !rows.NextResultSet() || !rows.Next() {
			return 0, 0, false, fmt.Errorf("no second result set: %v", rows.Err())
		}
		err = rows.Scan(&out)
		return
	}
	paramBatch := func(conn *sql.Conn, ref string) (id, out int64, existing bool, err error) {
		err = conn.QueryRowContext(ctx, `EXEC hermod.SendMessage @ToAddress = @p1, @Body = @p2, @ClientReference = @p3, @ID = @p4 OUTPUT;`,
			"+31600000001", "hello", ref, sql.Out{Dest: &out}).Scan(&id, &existing)
		return
	}
	ways := []struct {
		name string
		call call
	}{{"rpc", rpc}, {"batch", batch}, {"parameterised batch", paramBatch}}

	conn, err := s.db.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	var ids []int64
	for i, w := range ways {
		if w.name == "parameterised batch" && s.Server().Babelfish {
			t.Logf("%s: skipped on Babelfish, which does not return output parameters of an EXEC inside a parameterised batch (sp_executesql); RPC and plain batches are tested", w.name)
			continue
		}
		ref := fmt.Sprintf("order-%d", i)
		id, out, existing, err := w.call(conn, ref)
		require.NoError(t, err, w.name)
		require.False(t, existing, w.name)
		require.Equal(t, id, out, "%s: @ID and the result set agree", w.name)
		again, out, existing, err := w.call(conn, ref)
		require.NoError(t, err, w.name)
		require.True(t, existing, "%s: a ClientReference that exists returns its message", w.name)
		require.Equal(t, id, again, w.name)
		require.Equal(t, id, out, w.name)

		m, err := s.MessageGet(ctx, id)
		require.NoError(t, err)
		require.Equal(t, store.StatusScheduled, m.Status)
		require.Equal(t, ref, m.ClientReference)
		storetest.RequireTraceEndsWith(t, m, store.StatusScheduled)
		ids = append(ids, id)
	}

	// A trigger created and dropped on hermod.Messages invalidates the
	// plans the session cached for the procedures: they must still work
	// (Babelfish used to fail a re-planned UPDATE ... OUTPUT INTO @table).
	_, err = conn.ExecContext(ctx, `CREATE TRIGGER hermod.TR_Messages_Test ON hermod.Messages AFTER UPDATE AS SET NOCOUNT ON;`)
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, `DROP TRIGGER hermod.TR_Messages_Test;`)
	require.NoError(t, err)
	id, _, _, err := rpc(conn, "after-trigger")
	require.NoError(t, err)
	ids = append(ids, id)
	_, err = conn.ExecContext(ctx, "hermod.CancelMessage", sql.Named("ID", id))
	require.NoError(t, err, "CancelMessage after its plan was invalidated")

	_, err = conn.ExecContext(ctx, `EXEC hermod.SendMessage @ToAddress = N'+1', @Body = N'x', @Channel = N'nosuch';`)
	require.ErrorIs(t, mapError(err, "send"), store.ErrInvalid)

	// CancelMessage, several times in one session (its table variable and
	// OUTPUT ... INTO must work again), as RPC and in a batch.
	_, err = conn.ExecContext(ctx, "hermod.CancelMessage", sql.Named("ID", ids[0]))
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, `EXEC hermod.CancelMessage @ID = @p1;`, ids[1])
	require.NoError(t, err)
	for _, id := range ids[:2] {
		m, err := s.MessageGet(ctx, id)
		require.NoError(t, err)
		require.Equal(t, store.StatusCancelled, m.Status)
		storetest.RequireTraceEndsWith(t, m, store.StatusScheduled, store.StatusCancelled)
	}

	_, err = conn.ExecContext(ctx, `EXEC hermod.CancelMessage @ID = @p1;`, ids[0])
	require.ErrorIs(t, mapError(err, "cancel"), store.ErrConflict)
	_, err = conn.ExecContext(ctx, "hermod.CancelMessage", sql.Named("ID", int64(987654)))
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

	// Dropping the trigger invalidates the plans the sessions cached: the
	// store's statements still work. (Babelfish can fail the first run of a
	// re-planned UPDATE ... OUTPUT INTO with "missing FROM-clause entry for
	// table """, seen in the engine's tests though not every time: the store
	// runs the transaction again, see isRetryable.)
	_, err = s.db.ExecContext(ctx, `DROP TRIGGER hermod.TR_Messages_Audit;`)
	require.NoError(t, err)
	more := storetest.InsertN(t, s, 2)
	res, err = s.MessageRoute(ctx, store.RouteParams{Channels: []int64{ch.ID}, Limit: 10})
	require.NoError(t, err)
	require.Equal(t, 2, res.Queued)
	require.Len(t, storetest.Claim(t, s, ch.ID, "node1", 10), 2)
	n, err = s.MessageMarkSent(ctx, []store.SentParams{{ID: more[0], Owner: "node1", Reference: "r1"}, {ID: ids[1], Owner: "node1", Reference: "r2"}})
	require.NoError(t, err)
	require.Equal(t, 2, n)
}

// TestSweepAppliesStrandedReports leaves a delivery report pending beside
// the part it belongs to, as a report and its send result written at the
// same moment can under read-committed snapshot (Azure SQL) or on
// Babelfish, and checks that the sweep applies it.
func TestSweepAppliesStrandedReports(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()

	ch := storetest.CreateChannel(t, s, "a")
	ids := storetest.InsertN(t, s, 1)
	_, err := s.MessageRoute(ctx, store.RouteParams{Channels: []int64{ch.ID}, Limit: 10})
	require.NoError(t, err)
	require.Len(t, storetest.Claim(t, s, ch.ID, "node1", 10), 1)
	n, err := s.MessageMarkSent(ctx, []store.SentParams{{ID: ids[0], Owner: "node1", Reference: "ref-1"}})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, err = s.db.ExecContext(ctx, `INSERT INTO hermod.PendingReports (ChannelID, Reference, Status, DoneTime, ReceivedTime)
VALUES (@p1, N'ref-1', N'DELIVERED', SYSUTCDATETIME(), SYSUTCDATETIME());`, int32(ch.ID))
	require.NoError(t, err)

	res, err := s.MessageSweep(ctx, store.SweepParams{NoReportAfter: time.Hour, PendingReportTTL: time.Hour, Limit: 100})
	require.NoError(t, err)
	require.Equal(t, []store.Change{{ID: ids[0], Status: store.StatusDelivered, ChannelID: ch.ID}}, res.Changes)
	m := storetest.Get(t, s, ids[0])
	require.Equal(t, store.StatusDelivered, m.Status)
	var pending int
	require.NoError(t, s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM hermod.PendingReports;`).Scan(&pending))
	require.Zero(t, pending)
}
