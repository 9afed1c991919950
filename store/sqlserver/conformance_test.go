package sqlserver

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/procedures"
	"github.com/hermod-sms/hermod/store"
	"github.com/hermod-sms/hermod/store/storetest"
)

// testServerURL returns HERMOD_TEST_SQLSERVER, a sqlserver:// URL of a login
// that may create databases (e.g.
// sqlserver://sa:Passw0rd!@127.0.0.1:1433?database=master), or skips the
// test without it.
func testServerURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("HERMOD_TEST_SQLSERVER")
	if u == "" {
		t.Skip("HERMOD_TEST_SQLSERVER is not set: no SQL Server to test against (the T-SQL is still grammar-checked by sql/tsqlcheck)")
	}
	return u
}

// newTestStore opens a migrated store on a database of its own, hermod_t_
// plus a random suffix, for the length of the test. Stores are pooled, open:
// a fresh database costs seconds of migrations on Babelfish, and a fresh
// session a second of compiling the first run of each statement. At the
// end of a test its database is emptied (every table of hermod truncated,
// which also restarts the identities; the triggers and other schemas'
// tables a test made dropped) and the store handed to the next test; one
// that cannot be emptied (a test closed it) is dropped. TestMain drops the
// pool.
func newTestStore(t *testing.T) *Store {
	t.Helper()
	serverURL := testServerURL(t)
	ctx := context.Background()

	s, name, err := testDBs.take(ctx, serverURL)
	require.NoError(t, err, "create the test database (the login of HERMOD_TEST_SQLSERVER needs CREATE DATABASE)")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := emptyDatabase(ctx, s.db); err != nil {
			t.Logf("empty test database %s for the next test: %v; dropping it", name, err)
			s.Close()
			testDBs.drop(name)
			return
		}
		testDBs.put(s, name)
	})
	return s
}

// databaseURL is serverURL with the database name.
func databaseURL(serverURL, name string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Del("initial catalog")
	q.Set("database", name)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// emptyDatabase makes a used test database like a freshly migrated one:
// the tests' triggers and tables outside hermod dropped, every table of
// hermod but the version table truncated (which restarts IDENTITY at 1),
// the options but the procedures' checksum deleted; then the schema is
// brought up to date again (a test may have migrated it down).
func emptyDatabase(ctx context.Context, db *sql.DB) error {
	var drops []string
	rows, err := db.QueryContext(ctx, `SELECT N'DROP TRIGGER ' + QUOTENAME(SCHEMA_NAME(o.schema_id)) + N'.' + QUOTENAME(tr.name)
FROM sys.triggers AS tr JOIN sys.objects AS o ON o.object_id = tr.parent_id
UNION ALL
SELECT N'DROP TABLE ' + QUOTENAME(SCHEMA_NAME(tb.schema_id)) + N'.' + QUOTENAME(tb.name)
FROM sys.tables AS tb WHERE tb.schema_id <> SCHEMA_ID(N'hermod')
UNION ALL
SELECT N'TRUNCATE TABLE hermod.' + QUOTENAME(tb.name)
FROM sys.tables AS tb WHERE tb.schema_id = SCHEMA_ID(N'hermod') AND tb.name NOT IN (N'SchemaMigrations', N'Options');`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var q string
		if err := rows.Scan(&q); err != nil {
			rows.Close()
			return err
		}
		drops = append(drops, q)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	drops = append(drops, "IF OBJECT_ID(N'hermod.Options', N'U') IS NOT NULL DELETE FROM hermod.Options WHERE Name <> N'"+proceduresOption+"'")
	for _, q := range drops {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// testDBs is the pool of test databases.
var testDBs dbPool

type dbPool struct {
	mu       sync.Mutex // serialises CREATE DATABASE: Babelfish fails two at once ("tuple concurrently updated")
	free     []pooled
	all      map[string]*Store
	adminURL string
}

type pooled struct {
	s    *Store
	name string
}

// take returns a free store, or creates a database and opens one.
func (p *dbPool) take(ctx context.Context, serverURL string) (*Store, string, error) {
	p.mu.Lock()
	p.adminURL = serverURL
	if n := len(p.free); n > 0 {
		f := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		// A test may have migrated the schema down.
		if err := f.s.MigrateUp(ctx); err != nil {
			return nil, "", err
		}
		return f.s, f.name, nil
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		p.mu.Unlock()
		return nil, "", err
	}
	name := "hermod_t_" + hex.EncodeToString(rnd[:])
	err := p.exec(ctx, "CREATE DATABASE "+name+";")
	p.mu.Unlock()
	if err != nil {
		return nil, "", err
	}
	dbURL, err := databaseURL(serverURL, name)
	if err != nil {
		return nil, "", err
	}
	s, err := Open(ctx, dbURL, Options{})
	if err != nil {
		p.drop(name)
		return nil, "", err
	}
	p.mu.Lock()
	if p.all == nil {
		p.all = map[string]*Store{}
	}
	p.all[name] = s
	p.mu.Unlock()
	return s, name, nil
}

func (p *dbPool) put(s *Store, name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.free = append(p.free, pooled{s, name})
}

// drop drops one database.
func (p *dbPool) drop(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.all, name)
	_ = p.exec(context.Background(), "DROP DATABASE "+name+";")
}

// dropAll closes the stores and drops every database of the pool.
func (p *dbPool) dropAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, s := range p.all {
		s.Close()
		if err := p.exec(context.Background(), "DROP DATABASE "+name+";"); err != nil {
			fmt.Fprintf(os.Stderr, "drop test database %s: %v\n", name, err)
		}
	}
	p.all, p.free = nil, nil
}

// exec runs one statement on the server's admin database, again when a
// concurrent CREATE or DROP DATABASE by another test binary got in the way.
func (p *dbPool) exec(ctx context.Context, q string) error {
	cfg, err := parseURL(p.adminURL)
	if err != nil {
		return err
	}
	connector, err := newConnector(cfg)
	if err != nil {
		return err
	}
	admin := sql.OpenDB(connector)
	defer admin.Close()
	for attempt := 1; ; attempt++ {
		_, err = admin.ExecContext(ctx, q)
		if err == nil || attempt == 10 || !strings.Contains(err.Error(), "concurrently updated") {
			return err
		}
		time.Sleep(time.Duration(50+mrand.IntN(100*attempt)) * time.Millisecond)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	testDBs.dropAll()
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
}
