package engine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/channels"
	"github.com/hermod-sms/hermod/channels/simulator"
	"github.com/hermod-sms/hermod/store"
)

// scriptChannel is a channel type for tests whose Send is a function the
// test chooses, found by the "key" setting.
type scriptChannel struct {
	send  func(ctx context.Context, msgs []channels.Message) []channels.Result
	start func() error
}

var scripts sync.Map // key -> *scriptChannel

const scriptType = "enginetest"

func init() {
	channels.Register(scriptType, func(cfg channels.Config) (channels.Channel, error) {
		var s struct {
			Key string `json:"key"`
		}
		if err := channels.DecodeSettings(cfg.Settings, &s); err != nil {
			return nil, err
		}
		v, ok := scripts.Load(s.Key)
		if !ok {
			return nil, fmt.Errorf("no script %q", s.Key)
		}
		return v.(*scriptChannel), nil
	})
}

func (c *scriptChannel) Start(ctx context.Context, host channels.Host) error {
	if c.start != nil {
		return c.start()
	}
	return nil
}

func (c *scriptChannel) Send(ctx context.Context, msgs []channels.Message) []channels.Result {
	return c.send(ctx, msgs)
}

func (c *scriptChannel) Stop(ctx context.Context) error { return nil }

// acceptAll answers every message as sent.
func acceptAll(msgs []channels.Message) []channels.Result {
	out := make([]channels.Result, len(msgs))
	for i, m := range msgs {
		out[i] = channels.Result{ID: m.ID, Reference: fmt.Sprintf("ref-%d-%d", m.ID, m.Attempt)}
	}
	return out
}

func newScript(t *testing.T, c *scriptChannel) string {
	key := t.Name()
	scripts.Store(key, c)
	t.Cleanup(func() { scripts.Delete(key) })
	return key
}

func TestPanickingChannelIsRestartedOthersUnaffected(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, newStore func(*testing.T) store.Store) {
		s := newStore(t)
		var calls atomic.Int32
		key := newScript(t, &scriptChannel{send: func(ctx context.Context, msgs []channels.Message) []channels.Result {
			if calls.Add(1) <= 2 {
				panic("driver bug")
			}
			return acceptAll(msgs)
		}})
		bad := createChannel(t, s, "panicky", scriptType, map[string]any{"key": key})
		good := createChannel(t, s, "sim1", simulator.Type, map[string]any{"reportDelay": "1ms"})
		b := setup(t, s, nil)
		b.start(t)

		badIDs := insertN(t, s, 5, bad.ID)
		goodIDs := insertN(t, s, 50, good.ID)
		b.engine.Nudge()

		waitStatus(t, s, goodIDs, store.StatusDelivered, 30*time.Second)
		waitStatus(t, s, badIDs, store.StatusSent, 30*time.Second)

		// The panicking channel failed twice and was started three times.
		var failed, started int
		for {
			name, err := b.engine.supervisor.failed.wait(10 * time.Millisecond)
			if err != nil {
				break
			}
			if name == "panicky" {
				failed++
			}
		}
		for {
			name, err := b.engine.supervisor.started.wait(10 * time.Millisecond)
			if err != nil {
				break
			}
			if name == "panicky" {
				started++
			}
		}
		// Two panics; both workers of one instance may panic before it
		// is restarted, so one or two restarts.
		require.GreaterOrEqual(t, failed, 1)
		require.Equal(t, failed+1, started)
		require.Contains(t, b.logs.String(), "driver bug")
		for _, id := range badIDs {
			m, err := s.MessageGet(context.Background(), id)
			require.NoError(t, err)
			require.Contains(t, m.Trace, "outcome unknown: panic in Send of channel panicky: driver bug")
		}
	})
}

func TestHangingSendCountsAsUnknownOutcome(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	var calls atomic.Int32
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	key := newScript(t, &scriptChannel{send: func(ctx context.Context, msgs []channels.Message) []channels.Result {
		if calls.Add(1) == 1 {
			<-release // ignores ctx: a hung driver
		}
		return acceptAll(msgs)
	}})
	ch := createChannel(t, s, "hangs", scriptType, map[string]any{"key": key})
	b := setup(t, s, func(c *Config) { c.SendTimeout = 100 * time.Millisecond })
	b.start(t)
	ids := insertN(t, s, 3, ch.ID)
	b.engine.Nudge()
	waitStatus(t, s, ids, store.StatusSent, 30*time.Second)
	m, err := s.MessageGet(context.Background(), ids[0])
	require.NoError(t, err)
	require.Equal(t, 2, m.Attempts)
	require.Contains(t, m.Trace, "outcome unknown: Send did not return within")
}

func TestChannelFailingToStartIsRetried(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	var starts atomic.Int32
	key := newScript(t, &scriptChannel{
		start: func() error {
			if starts.Add(1) < 3 {
				return errors.New("provider unreachable")
			}
			return nil
		},
		send: func(ctx context.Context, msgs []channels.Message) []channels.Result { return acceptAll(msgs) },
	})
	ch := createChannel(t, s, "late", scriptType, map[string]any{"key": key})
	b := setup(t, s, nil)
	b.start(t)
	name, err := b.engine.supervisor.started.wait(10 * time.Second * patience(s))
	require.NoError(t, err)
	require.Equal(t, "late", name)
	require.EqualValues(t, 3, starts.Load())
	ids := insertN(t, s, 2, ch.ID)
	b.engine.Nudge()
	waitStatus(t, s, ids, store.StatusSent, 10*time.Second)
	require.Equal(t, 2, b.logs.count("channel failed to start; retrying"))
}

func TestChannelDisabledIsStopped(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	ch := createChannel(t, s, "sim1", simulator.Type, nil)
	b := setup(t, s, nil)
	b.engine.supervisor.exited.init()
	b.start(t)
	_, err := b.engine.supervisor.started.wait(10 * time.Second * patience(s))
	require.NoError(t, err)
	ch.Enabled = false
	require.NoError(t, s.ChannelUpdate(context.Background(), *ch))
	name, err := b.engine.supervisor.exited.wait(10 * time.Second * patience(s))
	require.NoError(t, err)
	require.Equal(t, "sim1", name)
	require.Eventually(t, func() bool {
		c, err := s.ChannelGet(context.Background(), "sim1")
		return err == nil && c.Status == channelStopped
	}, 5*time.Second, 10*time.Millisecond)
}

func TestLeaseRescueAfterNodeDies(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, newStore func(*testing.T) store.Store) {
		s := newStore(t)
		var hang atomic.Bool
		hang.Store(true)
		claimed := make(chan int, 100)
		logPath := filepath.Join(t.TempDir(), "sent.log")
		_ = logPath
		key := newScript(t, &scriptChannel{send: func(ctx context.Context, msgs []channels.Message) []channels.Result {
			if hang.Load() {
				claimed <- len(msgs)
				<-ctx.Done() // the node dies with the messages in flight
				out := make([]channels.Result, len(msgs))
				for i, m := range msgs {
					out[i] = channels.Result{ID: m.ID, Err: ctx.Err()}
				}
				return out
			}
			return acceptAll(msgs)
		}})
		ch := createChannel(t, s, "blackhole", scriptType, map[string]any{"key": key})

		// Node A claims under a short lease and dies.
		a := setup(t, s, func(c *Config) {
			c.Node = "node-a"
			c.Lease = 500 * time.Millisecond
			c.SendTimeout = 400 * time.Millisecond
		})
		ctxA, killA := context.WithCancel(context.Background())
		require.NoError(t, a.engine.Start(ctxA))
		ids := insertN(t, s, 10, ch.ID)
		a.engine.Nudge()
		n := 0
		for n < len(ids) {
			select {
			case k := <-claimed:
				n += k
			case <-time.After(10 * time.Second * patience(s)):
				t.Fatalf("node A claimed %d of %d messages", n, len(ids))
			}
		}
		killA()
		require.Equal(t, map[string]int{store.StatusSending: len(ids)}, statusCounts(t, s, ids))

		// Node B rescues them once the lease expired and sends them.
		hang.Store(false)
		b := setup(t, s, func(c *Config) { c.Node = "node-b" })
		b.start(t)
		rescued := 0
		for rescued < len(ids) {
			k, err := b.engine.rescuer.rescued.wait(10 * time.Second * patience(s))
			require.NoError(t, err)
			rescued += k
		}
		waitStatus(t, s, ids, store.StatusSent, 10*time.Second)
		m, err := s.MessageGet(context.Background(), ids[0])
		require.NoError(t, err)
		require.Equal(t, 2, m.Attempts)
		require.Contains(t, m.Trace, "node-a")
		require.Contains(t, m.Trace, "node-b")
	})
}

func TestLeaderElection(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, newStore func(*testing.T) store.Store) {
		s := newStore(t)
		a := setup(t, s, func(c *Config) { c.Node = "node-a"; c.LeaderTTL = time.Second })
		b := setup(t, s, func(c *Config) { c.Node = "node-b"; c.LeaderTTL = time.Second })
		a.start(t)
		b.start(t)

		// One of them is elected.
		select {
		case <-a.engine.elector.elected.ch:
		case <-b.engine.elector.elected.ch:
		case <-time.After(10 * time.Second * patience(s)):
			t.Fatal("nobody was elected")
		}
		// Through several renewals, never both lead. (On a loaded machine
		// a slow renewal may hand leadership over; that is allowed.)
		for range 3 {
			select {
			case <-a.engine.sweeper.swept.ch:
			case <-b.engine.sweeper.swept.ch:
			case <-time.After(10 * time.Second * patience(s)):
				t.Fatal("the leader does not sweep")
			}
			require.False(t, a.engine.IsLeader() && b.engine.IsLeader(), "two leaders")
		}
		var leader, other *testBundle
		require.Eventually(t, func() bool {
			name, err := s.LeaderGet(context.Background(), leaderName)
			require.NoError(t, err)
			switch {
			case name == a.engine.Node() && a.engine.IsLeader():
				leader, other = a, b
			case name == b.engine.Node() && b.engine.IsLeader():
				leader, other = b, a
			default:
				return false
			}
			return true
		}, 10*time.Second, 5*time.Millisecond)
		require.False(t, other.engine.IsLeader())
		for len(other.engine.elector.elected.ch) > 0 {
			<-other.engine.elector.elected.ch
		}

		// The leader stops; the other takes over.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second*patience(s))
		defer cancel()
		require.NoError(t, leader.engine.Stop(ctx))
		for {
			elected, err := other.engine.elector.elected.wait(10 * time.Second * patience(s))
			require.NoError(t, err)
			if elected {
				break
			}
		}
		require.True(t, other.engine.IsLeader())
		name, err := s.LeaderGet(context.Background(), leaderName)
		require.NoError(t, err)
		require.Equal(t, other.engine.Node(), name)

		// The stopped node deleted its row.
		nodes, err := s.NodeList(context.Background())
		require.NoError(t, err)
		for _, n := range nodes {
			require.NotEqual(t, leader.engine.Node(), n.Name)
		}
	})
}

// flakyStore fails every call while down is set.
type flakyStore struct {
	store.Store
	down atomic.Bool
	// downAfterClaim makes the store go down right after the first
	// successful claim, so that send results wait for the database.
	downAfterClaim atomic.Bool
	wentDown       chan struct{}
	failures       atomic.Int64
}

var errDown = errors.New("connection refused (test outage)")

func (f *flakyStore) fail() error {
	if f.down.Load() {
		f.failures.Add(1)
		return errDown
	}
	return nil
}

func (f *flakyStore) MessageRoute(ctx context.Context, p store.RouteParams) (store.RouteResult, error) {
	if err := f.fail(); err != nil {
		return store.RouteResult{}, err
	}
	return f.Store.MessageRoute(ctx, p)
}

func (f *flakyStore) MessageClaim(ctx context.Context, p store.ClaimParams) ([]*store.Message, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	msgs, err := f.Store.MessageClaim(ctx, p)
	if len(msgs) > 0 && f.downAfterClaim.CompareAndSwap(true, false) {
		f.down.Store(true)
		close(f.wentDown)
	}
	return msgs, err
}

func (f *flakyStore) MessageMarkSent(ctx context.Context, p []store.SentParams) (int, error) {
	if err := f.fail(); err != nil {
		return 0, err
	}
	return f.Store.MessageMarkSent(ctx, p)
}

func (f *flakyStore) MessageMarkRetry(ctx context.Context, p []store.RetryParams) (int, error) {
	if err := f.fail(); err != nil {
		return 0, err
	}
	return f.Store.MessageMarkRetry(ctx, p)
}

func (f *flakyStore) MessageMarkFailed(ctx context.Context, p []store.FailParams) (int, error) {
	if err := f.fail(); err != nil {
		return 0, err
	}
	return f.Store.MessageMarkFailed(ctx, p)
}

func (f *flakyStore) MessageReportApply(ctx context.Context, p []store.ReportParams) (store.ReportResult, error) {
	if err := f.fail(); err != nil {
		return store.ReportResult{}, err
	}
	return f.Store.MessageReportApply(ctx, p)
}

func (f *flakyStore) MessageRescue(ctx context.Context, limit int) ([]store.Change, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.MessageRescue(ctx, limit)
}

func (f *flakyStore) MessageSweep(ctx context.Context, p store.SweepParams) (store.SweepResult, error) {
	if err := f.fail(); err != nil {
		return store.SweepResult{}, err
	}
	return f.Store.MessageSweep(ctx, p)
}

func (f *flakyStore) MessageReceive(ctx context.Context, in []store.Incoming) ([]int64, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.MessageReceive(ctx, in)
}

func (f *flakyStore) ChannelList(ctx context.Context) ([]*store.Channel, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.ChannelList(ctx)
}

func (f *flakyStore) ChannelSetStatus(ctx context.Context, p store.ChannelStatusParams) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.ChannelSetStatus(ctx, p)
}

func (f *flakyStore) NodeHeartbeat(ctx context.Context, p store.NodeParams) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.NodeHeartbeat(ctx, p)
}

func (f *flakyStore) NodeDeleteStale(ctx context.Context, d time.Duration) (int, error) {
	if err := f.fail(); err != nil {
		return 0, err
	}
	return f.Store.NodeDeleteStale(ctx, d)
}

func (f *flakyStore) LeaderElect(ctx context.Context, p store.LeaderParams) (bool, error) {
	if err := f.fail(); err != nil {
		return false, err
	}
	return f.Store.LeaderElect(ctx, p)
}

func TestDatabaseOutageIsSurvived(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, newStore func(*testing.T) store.Store) {
		s := newStore(t)
		logPath := filepath.Join(t.TempDir(), "sim.log")
		createChannel(t, s, "sim1", simulator.Type, map[string]any{"reportDelay": "1ms", "latency": "20ms", "log": logPath})
		flaky := &flakyStore{Store: s, wentDown: make(chan struct{})}
		flaky.downAfterClaim.Store(true)
		b := setup(t, flaky, nil)
		b.start(t)

		ids := insertN(t, s, 200, 0)
		b.engine.Nudge()
		select {
		case <-flaky.wentDown:
		case <-time.After(10 * time.Second * patience(s)):
			t.Fatal("nothing was claimed")
		}
		// Let every service hit the outage a few times.
		require.Eventually(t, func() bool { return flaky.failures.Load() > 50 }, 10*time.Second, time.Millisecond)
		require.True(t, b.engine.health.isDown())
		require.Positive(t, b.engine.completer.pending(), "send results wait for the database")
		flaky.down.Store(false)

		waitStatus(t, s, ids, store.StatusDelivered, 30*time.Second)
		counts, err := simulator.ReadLog(logPath)
		require.NoError(t, err)
		require.Len(t, counts, len(ids))
		for _, id := range ids {
			require.Equal(t, 1, counts[id], "message %d sent once", id)
		}
		logs := b.logs.String()
		require.Equal(t, 1, strings.Count(logs, `msg="database unavailable"`), logs)
		require.Equal(t, 1, strings.Count(logs, `msg="database reachable again"`), logs)
		require.Contains(t, logs, "outage=")
	})
}
