package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/channels/simulator"
	"github.com/hermod-sms/hermod/store"
	"github.com/hermod-sms/hermod/store/storetest/testdb"
	"github.com/hermod-sms/hermod/store/storetest/teststore"
)

// backends runs f once per backend, as the subtests "sqlite", "postgres"
// and "sqlserver" (the latter two skip without HERMOD_TEST_POSTGRES and
// HERMOD_TEST_SQLSERVER, and fail without them when required).
func backends(t *testing.T, f func(t *testing.T, newStore func(t *testing.T) store.Store)) {
	testdb.Run(t, func(t *testing.T, backend string) {
		t.Parallel()
		f(t, func(t *testing.T) store.Store { return teststore.Open(t, backend) })
	})
}

// newSQLite opens a store on a fresh SQLite database.
func newSQLite(t *testing.T) store.Store { return teststore.Open(t, testdb.SQLite) }

// logBuffer captures logs for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) count(substr string) int { return strings.Count(l.String(), substr) }

// testConfig is a Config with fast timings for tests.
func testConfig(s store.Store, logs *logBuffer) Config {
	return Config{
		Store:             s,
		Logger:            slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Lease:             10 * time.Second,
		SendTimeout:       5 * time.Second,
		RetryBase:         time.Millisecond,
		RetryMax:          5 * time.Millisecond,
		PollMax:           20 * time.Millisecond,
		HeartbeatInterval: 100 * time.Millisecond,
		LeaderTTL:         300 * time.Millisecond,
		ChannelRefresh:    100 * time.Millisecond,
		RestartBackoff:    10 * time.Millisecond,
	}
}

type testBundle struct {
	store  store.Store
	engine *Engine
	logs   *logBuffer
}

// stretch multiplies the leases, timeouts and leaderships of cfg by p, the
// backend's patience: on a slow backend they stretch with the waits, so
// that a slow write is not taken for a dead node.
func stretch(cfg *Config, p time.Duration) {
	for _, d := range []*time.Duration{&cfg.Lease, &cfg.SendTimeout, &cfg.LeaderTTL, &cfg.HeartbeatInterval, &cfg.StoreTimeout, &cfg.NoReportAfter} {
		*d *= p
	}
}

// setup builds an engine with live test signals; configure adjusts the
// config. The engine is stopped when the test ends.
func setup(t *testing.T, s store.Store, configure func(*Config)) *testBundle {
	t.Helper()
	logs := &logBuffer{}
	cfg := testConfig(s, logs)
	if configure != nil {
		configure(&cfg)
	}
	p := patience(s)
	stretch(&cfg, p)
	e, err := New(cfg)
	require.NoError(t, err)
	e.dbRetryMax = 50 * time.Millisecond
	e.router.routed.init()
	e.rescuer.rescued.init()
	e.completer.flushed.init()
	e.elector.elected.init()
	e.supervisor.started.init()
	e.supervisor.failed.init()
	e.sweeper.swept.init()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second*p)
		defer cancel()
		_ = e.Stop(ctx)
		if t.Failed() {
			t.Logf("engine %s logs:\n%s", e.Node(), logs.String())
		}
	})
	return &testBundle{store: s, engine: e, logs: logs}
}

func (b *testBundle) start(t *testing.T) {
	t.Helper()
	require.NoError(t, b.engine.Start(context.Background()))
}

func createChannel(t *testing.T, s store.Store, name, typ string, settings any) *store.Channel {
	t.Helper()
	raw := []byte("{}")
	if settings != nil {
		var err error
		raw, err = json.Marshal(settings)
		require.NoError(t, err)
	}
	c, err := s.ChannelCreate(context.Background(), store.Channel{Name: name, Type: typ, Settings: string(raw), Enabled: true})
	require.NoError(t, err)
	return c
}

func insert(t *testing.T, s store.Store, msgs ...store.NewMessage) []int64 {
	t.Helper()
	res, err := s.MessageInsert(context.Background(), msgs)
	require.NoError(t, err)
	ids := make([]int64, len(res))
	for i, r := range res {
		ids[i] = r.ID
	}
	return ids
}

func insertN(t *testing.T, s store.Store, n int, channelID int64) []int64 {
	t.Helper()
	msgs := make([]store.NewMessage, n)
	for i := range msgs {
		msgs[i] = store.NewMessage{ToAddress: fmt.Sprintf("+3161234%04d", i), Body: fmt.Sprintf("test message %d", i), ChannelID: channelID}
	}
	return insert(t, s, msgs...)
}

// patience is how many times longer a test waits on s's backend: on SQL
// Server six times. The T-SQL engine of this machine, Babelfish, compiles
// the first run of each statement text in each session, up to a second on
// a loaded machine, so what takes milliseconds elsewhere can take seconds.
func patience(s store.Store) time.Duration {
	if s.Backend() == "sqlserver" {
		return 6
	}
	return 1
}

// waitStatus waits until every message has status (for timeout times the
// backend's patience).
func waitStatus(t *testing.T, s store.Store, ids []int64, status string, timeout time.Duration) {
	t.Helper()
	timeout *= patience(s)
	var last map[string]int
	require.Eventually(t, func() bool {
		last = map[string]int{}
		for _, id := range ids {
			m, err := s.MessageGet(context.Background(), id)
			if err != nil {
				last["error: "+err.Error()]++
				continue
			}
			last[m.Status]++
		}
		return last[status] == len(ids)
	}, timeout, 10*time.Millisecond, "want every message %s", status)
	_ = last
}

func statusCounts(t *testing.T, s store.Store, ids []int64) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, id := range ids {
		m, err := s.MessageGet(context.Background(), id)
		require.NoError(t, err)
		out[m.Status]++
	}
	return out
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	_, err := New(Config{})
	require.ErrorContains(t, err, "Config.Store is nil")

	s := newSQLite(t)
	_, err = New(Config{Store: s, Lease: time.Second, SendTimeout: 2 * time.Second})
	require.ErrorContains(t, err, "SendTimeout")
	_, err = New(Config{Store: s, ClaimBatch: 5000})
	require.ErrorContains(t, err, "ClaimBatch")
	_, err = New(Config{Store: s, NoChannels: true, OnlyChannels: []string{"a"}})
	require.ErrorContains(t, err, "NoChannels")
	_, err = New(Config{Store: s, PollMin: time.Second, PollMax: time.Millisecond})
	require.ErrorContains(t, err, "PollMax")

	e, err := New(Config{Store: s})
	require.NoError(t, err)
	require.Equal(t, DefaultClaimBatch, e.cfg.ClaimBatch)
	require.Equal(t, DefaultLease, e.cfg.Lease)
	require.Equal(t, DefaultSendTimeout, e.cfg.SendTimeout)
	require.Equal(t, DefaultPollMax, e.cfg.PollMax)
	require.NotEmpty(t, e.Node())
}

func TestEndToEndDelivered(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, newStore func(*testing.T) store.Store) {
		s := newStore(t)
		logPath := filepath.Join(t.TempDir(), "sim.log")
		ch := createChannel(t, s, "sim1", simulator.Type, map[string]any{"reportDelay": "5ms", "log": logPath})
		b := setup(t, s, nil)
		events, unsubscribe := b.engine.Subscribe(10000)
		defer unsubscribe()
		b.start(t)

		ids := insertN(t, s, 300, 0)
		long := insert(t, s, store.NewMessage{ToAddress: "+31600000000", Body: strings.Repeat("x", 200)})
		ids = append(ids, long...)
		b.engine.Nudge()

		waitStatus(t, s, ids, store.StatusDelivered, 30*time.Second)

		counts, err := simulator.ReadLog(logPath)
		require.NoError(t, err)
		require.Len(t, counts, len(ids))
		for _, id := range ids {
			require.Equal(t, 1, counts[id], "message %d sent once", id)
		}

		m, err := s.MessageGet(context.Background(), long[0])
		require.NoError(t, err)
		require.Equal(t, ch.ID, m.ChannelID)
		require.Equal(t, 2, m.TotalParts)
		require.Equal(t, 1, m.Attempts)
		require.Contains(t, m.Trace, "sent via sim1 in 2 parts (attempt 1)")
		parts, err := s.MessageParts(context.Background(), long[0])
		require.NoError(t, err)
		require.Len(t, parts, 2)
		for _, p := range parts {
			require.Equal(t, store.PartDelivered, p.Status)
		}

		// The engine published SENDING and SENT for every message.
		seen := map[string]int{}
		for len(events) > 0 {
			ev := <-events
			seen[ev.Status]++
			require.Equal(t, ch.ID, ev.ChannelID)
		}
		require.Equal(t, len(ids), seen[store.StatusSending])
		require.Equal(t, len(ids), seen[store.StatusSent])

		// The channel's status reached the table.
		require.Eventually(t, func() bool {
			c, err := s.ChannelGet(context.Background(), "sim1")
			return err == nil && c.Status == "running" && c.StatusNode == b.engine.Node()
		}, 5*time.Second, 10*time.Millisecond)
	})
}

func TestNoChannel(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, newStore func(*testing.T) store.Store) {
		s := newStore(t)
		b := setup(t, s, nil)
		b.start(t)
		ids := insertN(t, s, 3, 0)
		b.engine.Nudge()
		for {
			res, err := b.engine.router.routed.wait(10 * time.Second * patience(s))
			require.NoError(t, err)
			if res.NoChannel > 0 {
				break
			}
		}
		waitStatus(t, s, ids, store.StatusNoChannel, 5*time.Second)
		m, err := s.MessageGet(context.Background(), ids[0])
		require.NoError(t, err)
		require.NotEmpty(t, m.StatusDetails)
	})
}

func TestRetriesThenFailed(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, newStore func(*testing.T) store.Store) {
		s := newStore(t)
		createChannel(t, s, "flaky", simulator.Type, map[string]any{"failRate": 1})
		b := setup(t, s, func(c *Config) { c.MaxAttempts = 3 })
		b.start(t)
		ids := insertN(t, s, 5, 0)
		b.engine.Nudge()
		waitStatus(t, s, ids, store.StatusFailed, 30*time.Second)
		for _, id := range ids {
			m, err := s.MessageGet(context.Background(), id)
			require.NoError(t, err)
			require.Equal(t, 3, m.Attempts)
			require.Equal(t, simulator.CodeThrottled, m.ErrorCode)
			require.Contains(t, m.Trace, "after attempt 1 via flaky: SIM_THROTTLED")
			require.Contains(t, m.Trace, "after attempt 2 via flaky: SIM_THROTTLED")
			require.NotContains(t, m.Trace, "after attempt 3 via")
			require.Contains(t, m.StatusDetails, "gave up after 3 attempts")
		}
	})
}

func TestPermanentErrorFailsAtOnce(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, newStore func(*testing.T) store.Store) {
		s := newStore(t)
		createChannel(t, s, "rejecting", simulator.Type, map[string]any{"permanentFailRate": 1})
		b := setup(t, s, nil)
		b.start(t)
		ids := insertN(t, s, 5, 0)
		b.engine.Nudge()
		waitStatus(t, s, ids, store.StatusFailed, 30*time.Second)
		for _, id := range ids {
			m, err := s.MessageGet(context.Background(), id)
			require.NoError(t, err)
			require.Equal(t, 1, m.Attempts)
			require.Equal(t, simulator.CodeRejected, m.ErrorCode)
			require.Contains(t, m.StatusDetails, "permanent error via rejecting (attempt 1)")
		}
	})
}
