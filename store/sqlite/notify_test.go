package sqlite_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/store"
	"github.com/hermod-sms/hermod/store/sqlite"
	"github.com/hermod-sms/hermod/store/storetest"
)

// requireSignal waits up to within for a wake-up on ch and returns how long
// it took.
func requireSignal(t *testing.T, ch <-chan struct{}, within time.Duration, msg string) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case _, ok := <-ch:
		require.True(t, ok, "%s: the channel was closed instead", msg)
		return time.Since(start)
	case <-time.After(within):
		t.Fatalf("%s: no wake-up within %s", msg, within)
		return 0
	}
}

// requireQuiet fails when ch receives a wake-up within d.
func requireQuiet(t *testing.T, ch <-chan struct{}, d time.Duration, msg string) {
	t.Helper()
	select {
	case _, ok := <-ch:
		require.True(t, ok, "%s: the channel was closed", msg)
		t.Fatalf("%s: unexpected wake-up", msg)
	case <-time.After(d):
	}
}

// requireClosed waits for ch to be closed, draining a pending wake-up.
func requireClosed(t *testing.T, ch <-chan struct{}, msg string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatalf("%s: the channel was not closed", msg)
		}
	}
}

func TestNotificationsExternalInsert(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	db := openExternal(t, s.Path())
	require.NoError(t, db.Ping())
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch := s.Notifications(ctx)

	// Nothing changes, nothing wakes: no initial value, no ticking.
	requireQuiet(t, ch, 150*time.Millisecond, "idle database")

	// Another connection commits an INSERT, as the sqlite3 shell would.
	for i := range 3 {
		_, err := db.Exec(`INSERT INTO Messages (ToAddress, Body) VALUES ('+31612345678', 'from the shell')`)
		require.NoError(t, err)
		took := requireSignal(t, ch, time.Second, "external insert")
		t.Logf("insert %d: woken after %s", i, took)
		// One commit is one wake-up, then quiet again.
		requireQuiet(t, ch, 100*time.Millisecond, "after the wake-up")
	}

	// A burst of commits is debounced into few wake-ups, not one each: at
	// most one per 10ms of the burst, and one more after it.
	_, err := db.Exec(`PRAGMA synchronous = OFF`) // a quick burst
	require.NoError(t, err)
	start := time.Now()
	for range 50 {
		_, err := db.Exec(`INSERT INTO Messages (ToAddress) VALUES ('+1')`)
		require.NoError(t, err)
	}
	burst := time.Since(start)
	requireSignal(t, ch, time.Second, "burst")
	n := 1
	for drained := false; !drained; {
		select {
		case <-ch:
			n++
		case <-time.After(100 * time.Millisecond):
			drained = true
		}
	}
	t.Logf("50 commits in %s: %d wake-ups", burst, n)
	require.LessOrEqual(t, n, int(burst/(10*time.Millisecond))+2, "wake-ups for 50 commits in %s", burst)

	cancel()
	requireClosed(t, ch, "after ctx ended")
}

// The sqlite3 shell in its own process: the case the watcher is for.
func TestNotificationsOtherProcess(t *testing.T) {
	t.Parallel()
	shell, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Skip("the sqlite3 shell is not installed")
	}
	s := newTestStore(t)
	ch := s.Notifications(t.Context())
	requireQuiet(t, ch, 50*time.Millisecond, "idle database")
	out, err := exec.CommandContext(t.Context(), shell, s.Path(),
		`INSERT INTO Messages (ToAddress, Body) VALUES ('+31612345678', 'from the shell')`).CombinedOutput()
	require.NoError(t, err, "sqlite3: %s", out)
	took := requireSignal(t, ch, time.Second, "insert by the sqlite3 shell")
	t.Logf("woken %s after the shell exited", took)
	var n int
	require.NoError(t, openExternal(t, s.Path()).QueryRow(`SELECT COUNT(*) FROM Messages WHERE Body = 'from the shell'`).Scan(&n))
	require.Equal(t, 1, n)
}

// An idle engine's polls, and write transactions that change nothing, must
// not wake it, or it would wake itself in a loop.
func TestNotificationsIdlePollsDoNotWake(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	c := storetest.CreateChannel(t, s, "sim")
	ch := s.Notifications(ctx)

	deadline := time.Now().Add(150 * time.Millisecond)
	for time.Now().Before(deadline) {
		_, err := s.MessageRoute(ctx, store.RouteParams{Channels: []int64{c.ID}, Limit: 100})
		require.NoError(t, err)
		msgs, err := s.MessageClaim(ctx, store.ClaimParams{ChannelID: c.ID, Limit: 100, Owner: "node", Lease: time.Minute})
		require.NoError(t, err)
		require.Empty(t, msgs)
		_, err = s.MessageRescue(ctx, 100)
		require.NoError(t, err)
		// A write transaction that matches no row.
		n, err := s.MessageMarkSent(ctx, []store.SentParams{{ID: 1 << 40, Owner: "node", Reference: "r"}})
		require.NoError(t, err)
		require.Zero(t, n)
		time.Sleep(2 * time.Millisecond)
	}
	requireQuiet(t, ch, 50*time.Millisecond, "empty polls")

	// The store's own commits are commits too.
	storetest.InsertN(t, s, 1)
	requireSignal(t, ch, time.Second, "the store's own insert")
}

func TestNotificationsClosedWithStore(t *testing.T) {
	t.Parallel()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "hermod.db"), sqlite.Options{})
	require.NoError(t, err)
	ch := s.Notifications(context.Background())
	require.NoError(t, s.Close())
	requireClosed(t, ch, "after Close")
	requireClosed(t, s.Notifications(context.Background()), "subscribed after Close")
}

func TestNotificationsOff(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "hermod.db")
	s, err := sqlite.Open(t.Context(), path, sqlite.Options{NotifyInterval: -1})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	ctx, cancel := context.WithCancel(t.Context())
	ch := s.Notifications(ctx)
	storetest.InsertN(t, s, 1)
	requireQuiet(t, ch, 100*time.Millisecond, "watching turned off")
	cancel()
	requireClosed(t, ch, "after ctx ended")
}

// The engine's polls of an idle queue read and take no write lock, so that
// they neither wait for nor hold up another program's write transaction.
func TestIdlePollsTakeNoWriteLock(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	c := storetest.CreateChannel(t, s, "sim")
	db := openExternal(t, s.Path())
	conn, err := db.Conn(t.Context())
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(t.Context(), `BEGIN IMMEDIATE`)
	require.NoError(t, err)
	// Not committed yet, so not there for the polls.
	_, err = conn.ExecContext(t.Context(), `INSERT INTO Messages (ToAddress, Body) VALUES ('+31612345678', 'held')`)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	start := time.Now()
	rr, err := s.MessageRoute(ctx, store.RouteParams{Channels: []int64{c.ID}, Limit: 10})
	require.NoError(t, err)
	require.Zero(t, rr)
	msgs, err := s.MessageClaim(ctx, store.ClaimParams{ChannelID: c.ID, Limit: 10, Owner: "node", Lease: time.Minute})
	require.NoError(t, err)
	require.Empty(t, msgs)
	n, err := s.MessageRescue(ctx, 10)
	require.NoError(t, err)
	require.Zero(t, n)
	sr, err := s.MessageSweep(ctx, store.SweepParams{NoReportAfter: time.Hour, PendingReportTTL: time.Hour, Limit: 10})
	require.NoError(t, err)
	require.Zero(t, sr)
	require.Less(t, time.Since(start), time.Second, "the idle polls waited for the write lock")

	_, err = conn.ExecContext(t.Context(), `COMMIT`)
	require.NoError(t, err)
	rr, err = s.MessageRoute(ctx, store.RouteParams{Channels: []int64{c.ID}, Limit: 10})
	require.NoError(t, err)
	require.Equal(t, 1, rr.Queued)
	msgs, err = s.MessageClaim(ctx, store.ClaimParams{ChannelID: c.ID, Limit: 10, Owner: "node", Lease: time.Minute})
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	require.Equal(t, "held", msgs[0].Body)
}
