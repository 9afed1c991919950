package engine

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/channels/simulator"
	"github.com/hermod-sms/hermod/store"
	"github.com/hermod-sms/hermod/store/postgres"
	"github.com/hermod-sms/hermod/store/sqlite"
	"github.com/hermod-sms/hermod/store/sqlserver"
	"github.com/hermod-sms/hermod/store/storetest/testdb"
)

// execSQL runs one of three statements on s's database, beside the store,
// as a DBA would: sqliteSQL on SQLite, postgresSQL (in the store's schema)
// on PostgreSQL, tsql on SQL Server.
func execSQL(t *testing.T, s store.Store, sqliteSQL, postgresSQL, tsql string) {
	t.Helper()
	switch st := s.(type) {
	case *sqlserver.Store:
		_, err := st.DB().ExecContext(context.Background(), tsql)
		require.NoError(t, err)
	case *sqlite.Store:
		db, err := sql.Open("sqlite", st.Path()+"?_pragma=busy_timeout(10000)")
		require.NoError(t, err)
		defer db.Close()
		_, err = db.ExecContext(context.Background(), sqliteSQL)
		require.NoError(t, err)
	case *postgres.Store:
		_, err := st.Pool().Exec(context.Background(), postgresSQL)
		require.NoError(t, err)
	default:
		t.Fatalf("no SQL for %T", s)
	}
}

// channelState reads a channel's Status and StatusDetails.
func channelState(t *testing.T, s store.Store, name string) (string, string) {
	t.Helper()
	c, err := s.ChannelGet(context.Background(), name)
	require.NoError(t, err)
	return c.Status, c.StatusDetails
}

// A trigger that makes every claim of a channel fail is a statement error,
// not an outage: logged once as an Error naming the operation, the channel
// and the trigger's message, shown in the channel's status and in
// Problems, retried with backoff, and over once the trigger is gone.
func TestStatementErrorIsNoOutage(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, newStore func(*testing.T) store.Store) {
		s := newStore(t)
		testdb.SkipOnBabelfish(t, s.Backend(), "a plan cache shared across sessions: every new session compiles each statement text (0.3 to 1.7 s under CI load), so this multi-process scenario misses its deadlines on the 2-core CI machine (docs/benchmarks.md, SQL Server (Babelfish)) (the statement errors themselves are tested on SQL Server in store/sqlserver and by the engine's other tests)")
		createChannel(t, s, "sim", simulator.Type, map[string]any{"reportDelay": "1ms"})
		b := setup(t, s, nil)
		b.start(t)
		require.Eventually(t, func() bool {
			st, _ := channelState(t, s, "sim")
			return st == channelRunning
		}, 10*time.Second*patience(s), 10*time.Millisecond)

		execSQL(t, s,
			`CREATE TRIGGER NoSending BEFORE UPDATE OF Status ON Messages WHEN NEW.Status = 'SENDING'
				BEGIN SELECT RAISE(ABORT, 'no sending today'); END`,
			`CREATE FUNCTION NoSending() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN IF NEW.Status = 'SENDING' THEN RAISE EXCEPTION 'no sending today'; END IF; RETURN NEW; END $$;
			CREATE TRIGGER NoSending BEFORE UPDATE ON Messages FOR EACH ROW EXECUTE FUNCTION NoSending()`,
			`CREATE TRIGGER hermod.NoSending ON hermod.Messages AFTER UPDATE AS
			BEGIN
				SET NOCOUNT ON;
				IF EXISTS (SELECT 1 FROM inserted WHERE Status = N'SENDING') THROW 50000, N'no sending today', 1;
			END;`)
		ids := insertN(t, s, 5, 0)
		b.engine.Nudge()

		var details string
		require.Eventually(t, func() bool {
			var st string
			st, details = channelState(t, s, "sim")
			return st == channelError
		}, 10*time.Second*patience(s), 10*time.Millisecond, "the channel shows the error")
		require.Contains(t, details, "MessageClaim fails")
		require.Contains(t, details, "no sending today")
		require.Contains(t, details, store.FixRaised)

		ps := b.engine.Problems()
		require.Len(t, ps, 1, "%+v", ps)
		require.Equal(t, "MessageClaim", ps[0].Operation)
		require.Equal(t, "sim", ps[0].Channel)
		require.Equal(t, ProblemStatement, ps[0].Kind)
		require.False(t, b.engine.health.isDown())

		// The claim is retried with backoff, not in a loop, and logged once.
		first := ps[0].FailedCalls
		time.Sleep(200 * time.Millisecond)
		calls := b.engine.Problems()[0].FailedCalls - first
		require.Less(t, calls, 2*defaultConcurrency*(200/10+1), "at most one claim per backoff step and worker")
		logs := b.logs.String()
		require.Equal(t, 1, strings.Count(logs, `level=ERROR msg="database statement failed"`), logs)
		require.Contains(t, logs, `operation=MessageClaim channel=sim error=`)
		require.NotContains(t, logs, "database unavailable")
		for _, id := range ids {
			m, err := s.MessageGet(context.Background(), id)
			require.NoError(t, err)
			require.Equal(t, store.StatusQueued, m.Status)
		}

		execSQL(t, s, `DROP TRIGGER NoSending`, `DROP TRIGGER NoSending ON Messages`, `DROP TRIGGER hermod.NoSending`)
		waitStatus(t, s, ids, store.StatusDelivered, 10*time.Second)
		require.Eventually(t, func() bool {
			st, _ := channelState(t, s, "sim")
			return st == channelRunning
		}, 10*time.Second*patience(s), 10*time.Millisecond, "the channel's own state is back")
		require.Empty(t, b.engine.Problems())
		logs = b.logs.String()
		require.Equal(t, 1, strings.Count(logs, `msg="database statement works again"`), logs)
		require.Contains(t, logs, `operation=MessageClaim channel=sim failing_for=`)
		require.NotContains(t, logs, "database unavailable")
	})
}

// A store closed under the engine is an outage, not a statement error.
func TestClosedStoreIsAnOutage(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, newStore func(*testing.T) store.Store) {
		s := newStore(t)
		createChannel(t, s, "sim", simulator.Type, nil)
		closed := reopen(t, s)
		require.NoError(t, closed.Close())
		b := setup(t, closed, nil)
		b.start(t)
		require.Eventually(t, b.engine.health.isDown, 10*time.Second, 10*time.Millisecond)
		ps := b.engine.Problems()
		require.NotEmpty(t, ps)
		require.Equal(t, ProblemUnavailable, ps[0].Kind)
		for _, p := range ps[1:] {
			require.NotEqual(t, ProblemStatement, p.Kind, "%+v", p)
		}
		logs := b.logs.String()
		require.Equal(t, 1, strings.Count(logs, `level=WARN msg="database unavailable"`), logs)
		require.NotContains(t, logs, "database statement failed")
	})
}

// reopen opens a second store on s's database.
func reopen(t *testing.T, s store.Store) store.Store {
	t.Helper()
	var (
		other store.Store
		err   error
	)
	switch st := s.(type) {
	case *sqlite.Store:
		other, err = sqlite.Open(context.Background(), st.Path(), sqlite.Options{NoMigrate: true})
	case *postgres.Store:
		other, err = postgres.Open(context.Background(), os.Getenv("HERMOD_TEST_POSTGRES"), postgres.Options{Schema: st.Schema(), NoMigrate: true})
	case *sqlserver.Store:
		var name string
		require.NoError(t, st.DB().QueryRowContext(context.Background(), `SELECT DB_NAME()`).Scan(&name))
		u, perr := url.Parse(os.Getenv("HERMOD_TEST_SQLSERVER"))
		require.NoError(t, perr)
		q := u.Query()
		q.Set("database", name)
		u.RawQuery = q.Encode()
		other, err = sqlserver.Open(context.Background(), u.String(), sqlserver.Options{NoMigrate: true})
	default:
		t.Fatalf("cannot reopen %T", s)
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = other.Close() })
	return other
}
