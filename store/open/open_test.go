package open_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/store/open"
	"github.com/hermod-sms/hermod/store/storetest/testdb"
)

func TestBackend(t *testing.T) {
	t.Parallel()

	for url, want := range map[string]string{
		"sqlite://hermod.db":                      "sqlite",
		"sqlite:///var/lib/hermod/hermod.db":      "sqlite",
		"hermod.db":                               "sqlite",
		"./data/messages.sqlite":                  "sqlite",
		`C:\hermod\hermod.db`:                     "sqlite",
		"postgres://u:p@localhost/db":             "postgres",
		"postgresql://localhost/db":               "postgres",
		"sqlserver://sa:pw@host?database=x":       "sqlserver",
		"azuresql://x.database.windows.net?db=sm": "sqlserver",
	} {
		got, err := open.Backend(url)
		require.NoError(t, err, url)
		require.Equal(t, want, got, url)
	}
}

func TestBackendUnsupported(t *testing.T) {
	t.Parallel()

	for _, url := range []string{"mysql://root:hunter22@localhost/db", "hermod.txt", "", "   "} {
		_, err := open.Backend(url)
		require.ErrorIs(t, err, open.ErrUnsupported, url)
		require.Contains(t, err.Error(), "postgres://")
		require.Contains(t, err.Error(), "sqlserver://")
		require.Contains(t, err.Error(), "sqlite://")
		require.NotContains(t, err.Error(), "hunter22")
	}
	_, err := open.Backend("mysql://root:hunter22@localhost/db")
	require.Contains(t, err.Error(), `scheme "mysql"`)
}

func TestRedact(t *testing.T) {
	t.Parallel()

	for in, want := range map[string]string{
		"postgres://postgres@127.0.0.1:5432/test?sslmode=disable": "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
		"postgres://bob:s3cret@db/x":                              "postgres://bob:xxxxx@db/x",
		"sqlserver://sa@host?database=x&password=s3cret":          "sqlserver://sa@host?database=x&password=xxxxx",
		"server=db;user id=sa;Password=s3cret;database=x":         "server=db;user id=sa;Password=xxxxx;database=x",
		"sqlite://hermod.db":                                      "sqlite://hermod.db",
	} {
		require.Equal(t, want, open.Redact(in), in)
	}
}

func TestScrub(t *testing.T) {
	t.Parallel()

	url := "postgres://bob:Sup3rSecret@db/x"
	err := open.Scrub(errors.New("cannot connect with password Sup3rSecret"), url)
	require.NotContains(t, err.Error(), "Sup3rSecret")
	require.Contains(t, err.Error(), "xxxxx")
	require.NoError(t, open.Scrub(nil, url))
}

func TestSQLitePath(t *testing.T) {
	t.Parallel()

	base := filepath.FromSlash("/srv/hermod")
	p, ok := open.SQLitePath("sqlite://hermod.db", base)
	require.True(t, ok)
	require.Equal(t, filepath.Join(base, "hermod.db"), p)

	p, ok = open.SQLitePath("data/x.db", "")
	require.True(t, ok)
	require.Equal(t, filepath.FromSlash("data/x.db"), p)

	_, ok = open.SQLitePath("postgres://localhost/x", base)
	require.False(t, ok)

	require.Equal(t, "sqlite://"+filepath.ToSlash(filepath.Join(base, "hermod.db")), open.SQLiteURL("hermod.db", base))
}

func TestOpenSQLite(t *testing.T) {
	t.Parallel()

	dir := t.TempDir()
	ctx := context.Background()
	s, err := open.Open(ctx, "hermod.db", open.Options{BaseDir: dir})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	require.Equal(t, "sqlite", s.Backend())
	_, err = os.Stat(filepath.Join(dir, "hermod.db"))
	require.NoError(t, err, "a relative path resolves against BaseDir")

	cur, latest, dirty, err := s.MigrateStatus(ctx)
	require.NoError(t, err)
	require.False(t, dirty)
	require.Equal(t, latest, cur, "Open migrates by default")
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	_, err := open.Open(ctx, "mysql://root:hunter22@localhost/db", open.Options{})
	require.ErrorIs(t, err, open.ErrUnsupported)
	require.NotContains(t, err.Error(), "hunter22")

	_, err = open.Open(ctx, "sqlite://"+filepath.ToSlash(filepath.Join(t.TempDir(), "missing", "x.db")), open.Options{})
	require.Error(t, err)
	require.Contains(t, err.Error(), "does not exist")

	_, err = open.Open(ctx, "postgres://bob:Sup3rSecret@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", open.Options{})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "Sup3rSecret")
	require.True(t, strings.HasPrefix(err.Error(), "open postgres database"), err.Error())
}

// TestOpenServers opens (and migrates) a fresh PostgreSQL schema and a
// fresh SQL Server database by URL.
func TestOpenServers(t *testing.T) {
	t.Parallel()
	testdb.RunOn(t, testdb.Servers, func(t *testing.T, backend string) {
		t.Parallel()
		db := testdb.New(t, backend)
		ctx := t.Context()
		s, err := open.Open(ctx, db.URL, open.Options{Schema: db.Schema, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		require.Equal(t, backend, s.Backend())
		require.NoError(t, s.Ping(ctx))
		cur, latest, dirty, err := s.MigrateStatus(ctx)
		require.NoError(t, err)
		require.Equal(t, latest, cur)
		require.False(t, dirty)
	})
}
