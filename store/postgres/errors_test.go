package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/store"
	"github.com/hermod-sms/hermod/store/postgres"
	"github.com/hermod-sms/hermod/store/storetest"
)

// exec runs DDL in the store's schema, as a DBA in psql would.
func exec(t *testing.T, s *postgres.Store, query string) {
	t.Helper()
	_, err := s.Pool().Exec(testContext(t), query)
	require.NoError(t, err)
}

// Statements broken under the store, by hand, fail with store.ErrStatement,
// the fix, and the server's error reachable.
func TestStatementErrors(t *testing.T) {
	t.Parallel()
	testURL(t)

	cases := []struct {
		name     string
		breakSQL string
		call     func(ctx context.Context, s *postgres.Store) error
		code     string
		fix      string
	}{
		{
			name:     "a renamed column",
			breakSQL: `ALTER TABLE Messages RENAME COLUMN LeaseOwner TO LeaseHolder`,
			call: func(ctx context.Context, s *postgres.Store) error {
				_, err := s.MessageClaim(ctx, store.ClaimParams{ChannelID: 1, Limit: 10, Owner: "n#1", Lease: time.Minute})
				return err
			},
			code: "42703",
			fix:  store.FixSchema,
		},
		{
			name:     "a dropped table",
			breakSQL: `DROP TABLE Options`,
			call: func(ctx context.Context, s *postgres.Store) error {
				_, err := s.OptionGet(ctx, "x")
				return err
			},
			code: "42P01",
			fix:  store.FixSchema,
		},
		{
			name: "a trigger that raises",
			breakSQL: `CREATE FUNCTION frozen() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'channels are frozen'; END $$;
				CREATE TRIGGER frozen BEFORE INSERT ON Channels FOR EACH ROW EXECUTE FUNCTION frozen()`,
			call: func(ctx context.Context, s *postgres.Store) error {
				_, err := s.ChannelCreate(ctx, store.Channel{Name: "sim", Type: "simulator"})
				return err
			},
			code: "P0001",
			fix:  store.FixRaised,
		},
		{
			name: "a trigger that divides by zero",
			breakSQL: `CREATE FUNCTION broken() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM 1/0; RETURN NEW; END $$;
				CREATE TRIGGER broken BEFORE INSERT ON Options FOR EACH ROW EXECUTE FUNCTION broken()`,
			call: func(ctx context.Context, s *postgres.Store) error {
				return s.OptionSet(ctx, "x", "y")
			},
			code: "22012",
			fix:  store.FixData,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newTestStore(t)
			ctx := testContext(t)
			exec(t, s, tc.breakSQL)
			err := tc.call(ctx, s)
			storetest.RequireStatement(t, err, tc.fix)
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr, "the server's error stays reachable")
			require.Equal(t, tc.code, pgErr.Code)
		})
	}

	t.Run("a row that does not scan", func(t *testing.T) {
		t.Parallel()
		s := newTestStore(t)
		ctx := testContext(t)
		exec(t, s, `ALTER TABLE Options ALTER COLUMN Value DROP NOT NULL`)
		exec(t, s, `INSERT INTO Options (Name, Value) VALUES ('x', NULL)`)
		_, err := s.OptionGet(ctx, "x")
		storetest.RequireStatement(t, err, store.FixData, "get option", "NULL")
	})

	t.Run("recovers when fixed", func(t *testing.T) {
		t.Parallel()
		s := newTestStore(t)
		ctx := testContext(t)
		exec(t, s, `ALTER TABLE Channels RENAME COLUMN Settings TO Config`)
		_, err := s.ChannelList(ctx)
		storetest.RequireStatement(t, err, store.FixSchema, "list channels", "settings")
		exec(t, s, `ALTER TABLE Channels RENAME COLUMN Config TO Settings`)
		_, err = s.ChannelList(ctx)
		require.NoError(t, err)
	})
}

// A connection the server ends (SQLSTATE 57P01, as in a shutdown) and a
// closed store are outages, not statement errors.
func TestOutageIsNoStatementError(t *testing.T) {
	t.Parallel()
	testURL(t)

	t.Run("connection terminated by the server", func(t *testing.T) {
		t.Parallel()
		s := newTestStore(t)
		exec(t, s, `CREATE FUNCTION hangup() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$;
			CREATE TRIGGER hangup BEFORE INSERT ON Options FOR EACH ROW EXECUTE FUNCTION hangup()`)
		err := s.OptionSet(testContext(t), "x", "y")
		storetest.RequireOutage(t, err)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		require.Equal(t, "57P01", pgErr.Code)
		exec(t, s, `DROP TRIGGER hangup ON Options`)
	})

	t.Run("closed store", func(t *testing.T) {
		t.Parallel()
		s := newTestStore(t)
		other, err := postgres.Open(testContext(t), testURL(t), postgres.Options{Schema: s.Schema(), NoMigrate: true})
		require.NoError(t, err)
		require.NoError(t, other.Close())
		_, err = other.ChannelList(testContext(t))
		storetest.RequireOutage(t, err)
	})
}
