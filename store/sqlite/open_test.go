package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/store"
	"github.com/hermod-sms/hermod/store/sqlite"
	"github.com/hermod-sms/hermod/store/storetest"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		url, path string
	}{
		{"sqlite://hermod.db", "hermod.db"},
		{"sqlite://data/hermod.db", "data/hermod.db"},
		{"sqlite:///var/lib/hermod/hermod.db", "/var/lib/hermod/hermod.db"},
		{"hermod.db", "hermod.db"},
		{"/tmp/x/hermod.db", "/tmp/x/hermod.db"},
		{`C:\hermod\hermod.db`, `C:\hermod\hermod.db`},
	} {
		got, err := sqlite.ParseURL(tt.url)
		require.NoError(t, err, tt.url)
		require.Equal(t, tt.path, got, tt.url)
	}
	for _, url := range []string{"", "sqlite://", "postgres://localhost/db", ":memory:", "file:x.db", "sqlite://x.db?_pragma=foo"} {
		_, err := sqlite.ParseURL(url)
		require.ErrorIs(t, err, store.ErrInvalid, url)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()

	missing := filepath.Join(dir, "no", "such", "dir", "hermod.db")
	_, err := sqlite.Open(ctx, missing, sqlite.Options{})
	require.Error(t, err)
	require.Contains(t, err.Error(), missing)
	require.Contains(t, err.Error(), "does not exist")

	_, err = sqlite.Open(ctx, "sqlite://"+dir, sqlite.Options{})
	require.Error(t, err)
	require.Contains(t, err.Error(), "is a directory")

	garbage := filepath.Join(dir, "garbage.db")
	require.NoError(t, os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 100)), 0o600))
	_, err = sqlite.Open(ctx, garbage, sqlite.Options{})
	require.Error(t, err)
	require.Contains(t, err.Error(), garbage)

	if os.Geteuid() != 0 { // root ignores permissions
		ro := filepath.Join(dir, "readonly")
		require.NoError(t, os.Mkdir(ro, 0o500))
		_, err = sqlite.Open(ctx, filepath.Join(ro, "hermod.db"), sqlite.Options{})
		require.Error(t, err)
		require.Contains(t, err.Error(), filepath.Join(ro, "hermod.db"))
	}
}

func TestOpenPragmas(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	db := openExternal(t, s.Path())
	var mode string
	require.NoError(t, db.QueryRow(`PRAGMA journal_mode`).Scan(&mode))
	require.Equal(t, "wal", mode, "the store leaves the file in WAL mode")
	require.Equal(t, "sqlite", s.Backend())
	require.NoError(t, s.Ping(t.Context()))
}

func TestMigrations(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "m.db")

	s, err := sqlite.Open(ctx, "sqlite://"+path, sqlite.Options{NoMigrate: true})
	require.NoError(t, err)
	defer s.Close()
	current, latest, dirty, err := s.MigrateStatus(ctx)
	require.NoError(t, err)
	require.Zero(t, current)
	require.NotZero(t, latest)
	require.False(t, dirty)
	_, err = s.MessageInsert(ctx, []store.NewMessage{{ToAddress: "+1"}})
	require.Error(t, err, "no schema yet")

	require.NoError(t, s.MigrateUp(ctx))
	require.NoError(t, s.MigrateUp(ctx), "up to date is not an error")
	current, latest, dirty, err = s.MigrateStatus(ctx)
	require.NoError(t, err)
	require.Equal(t, latest, current)
	require.False(t, dirty)
	storetest.InsertN(t, s, 3)

	require.NoError(t, s.MigrateDown(ctx, 0))
	current, _, _, err = s.MigrateStatus(ctx)
	require.NoError(t, err)
	require.Zero(t, current)
	_, err = s.MessageGet(ctx, 1)
	require.Error(t, err, "the tables are gone")

	require.NoError(t, s.MigrateUp(ctx))
	ids := storetest.InsertN(t, s, 1)
	require.Equal(t, int64(1), ids[0], "a fresh schema starts again")
}

// openExternal opens the file the way another program would (the sqlite3
// shell, an application inserting messages).
func openExternal(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	require.NoError(t, err)
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func TestExternalWriter(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	db := openExternal(t, s.Path())
	ch := storetest.CreateChannel(t, s, "sim")

	// The minimum insert an application does.
	res, err := db.Exec(`INSERT INTO Messages (ToAddress, Body) VALUES ('+31612345678', 'from the shell')`)
	require.NoError(t, err)
	id, err := res.LastInsertId()
	require.NoError(t, err)

	m := storetest.Get(t, s, id)
	require.Equal(t, store.StatusScheduled, m.Status)
	require.WithinDuration(t, time.Now(), m.CreatedTime, time.Minute)
	rr, err := s.MessageRoute(t.Context(), store.RouteParams{Channels: []int64{ch.ID}, Limit: 10})
	require.NoError(t, err)
	require.Equal(t, 1, rr.Queued)

	// A time written by hand without milliseconds is understood.
	_, err = db.Exec(`INSERT INTO Messages (ToAddress, ScheduledTime) VALUES ('+1', '2030-01-02 03:04:05')`)
	require.NoError(t, err)
	var later int64
	require.NoError(t, db.QueryRow(`SELECT MAX(ID) FROM Messages`).Scan(&later))
	require.Equal(t, time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), storetest.Get(t, s, later).ScheduledTime)

	// An UPDATE that does not set LastUpdate still moves it.
	before := storetest.Get(t, s, id).LastUpdate
	time.Sleep(5 * time.Millisecond)
	_, err = db.Exec(`UPDATE Messages SET CustomField1 = 'x' WHERE ID = ?`, id)
	require.NoError(t, err)
	require.True(t, storetest.Get(t, s, id).LastUpdate.After(before))

	// The schema's rules hold for everyone and say what is wrong.
	_, err = db.Exec(`INSERT INTO Messages (ToAddress) VALUES ('')`)
	require.ErrorContains(t, err, "CK_Messages_ToAddress")
	_, err = db.Exec(`UPDATE Messages SET Status = 'LOST' WHERE ID = ?`, id)
	require.ErrorContains(t, err, "CK_Messages_Status")
}

func TestWaitsForExternalLock(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	db := openExternal(t, s.Path())
	conn, err := db.Conn(t.Context())
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(t.Context(), `BEGIN IMMEDIATE`)
	require.NoError(t, err)
	_, err = conn.ExecContext(t.Context(), `INSERT INTO Options (Name, Value) VALUES ('held', 'yes')`)
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() {
		_, err := s.MessageInsert(context.Background(), []store.NewMessage{{ToAddress: "+1"}})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("the insert did not wait for the other writer: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	_, err = conn.ExecContext(t.Context(), `COMMIT`)
	require.NoError(t, err)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the insert did not proceed after the lock was released")
	}
	v, err := s.OptionGet(t.Context(), "held")
	require.NoError(t, err)
	require.Equal(t, "yes", v)
}

func TestErrorMessages(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	_, err := s.MessageInsert(ctx, []store.NewMessage{{ToAddress: ""}})
	require.ErrorIs(t, err, store.ErrInvalid)
	require.ErrorContains(t, err, "ToAddress is required: give the recipient's number")

	storetest.CreateChannel(t, s, "dup")
	_, err = s.ChannelCreate(ctx, store.Channel{Name: "dup", Type: "simulator"})
	require.ErrorIs(t, err, store.ErrConflict)
	require.ErrorContains(t, err, "a channel with this Name already exists")

	_, err = s.MessageInsert(ctx, []store.NewMessage{{ToAddress: "+1", ValidUntil: time.Now(), ScheduledTime: time.Now().Add(time.Hour)}})
	require.ErrorIs(t, err, store.ErrInvalid)
	require.ErrorContains(t, err, "ValidUntil")
}

func TestConcurrentFirstOpen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "race.db")
	const n = 4
	errs := make(chan error, n)
	for range n {
		go func() {
			s, err := sqlite.Open(context.Background(), path, sqlite.Options{})
			if err == nil {
				err = s.Close()
			}
			errs <- err
		}()
	}
	for range n {
		require.NoError(t, <-errs)
	}
	s := newTestStoreAt(t, path)
	current, latest, dirty, err := s.MigrateStatus(t.Context())
	require.NoError(t, err)
	require.False(t, dirty)
	require.Equal(t, latest, current)
}

// Two stores on one file stand for two processes (the service and a channel
// running as a child process): their claims never overlap and their writes
// wait for each other instead of failing with SQLITE_BUSY.
func TestTwoProcessesClaim(t *testing.T) {
	t.Parallel()
	a := newTestStore(t)
	b := newTestStoreAt(t, a.Path())
	ch, ids := storetest.Queue(t, a, 0, 300)

	type result struct {
		ids []int64
		err error
	}
	results := make(chan result, 4)
	for i, s := range []*sqlite.Store{a, b, a, b} {
		go func() {
			var r result
			owner := fmt.Sprintf("node%d", i)
			for {
				ms, err := s.MessageClaim(context.Background(), store.ClaimParams{ChannelID: ch, Limit: 9, Owner: owner, Lease: time.Minute})
				if err != nil {
					r.err = err
					break
				}
				if len(ms) == 0 {
					break
				}
				sent := make([]store.SentParams, len(ms))
				for j, m := range ms {
					sent[j] = store.SentParams{ID: m.ID, Owner: owner, Reference: fmt.Sprintf("r%d", m.ID)}
					r.ids = append(r.ids, m.ID)
				}
				if n, err := s.MessageMarkSent(context.Background(), sent); err != nil || n != len(ms) {
					r.err = fmt.Errorf("mark sent: %d of %d: %v", n, len(ms), err)
					break
				}
			}
			results <- r
		}()
	}
	seen := map[int64]bool{}
	for range 4 {
		r := <-results
		require.NoError(t, r.err)
		for _, id := range r.ids {
			require.False(t, seen[id], "message %d claimed twice", id)
			seen[id] = true
		}
	}
	require.Len(t, seen, len(ids))
	counts, err := b.MessageCountByStatus(t.Context(), store.DirectionOut)
	require.NoError(t, err)
	require.Equal(t, map[string]int{store.StatusSent: len(ids)}, counts)
}
