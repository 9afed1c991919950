package engine

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/channels"
	"github.com/hermod-sms/hermod/channels/simulator"
	"github.com/hermod-sms/hermod/store"
)

func TestStopWaitsForInFlightSends(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, newStore func(*testing.T) store.Store) {
		s := newStore(t)
		inSend := make(chan struct{}, 100)
		key := newScript(t, &scriptChannel{send: func(ctx context.Context, msgs []channels.Message) []channels.Result {
			inSend <- struct{}{}
			time.Sleep(200 * time.Millisecond) // a provider that takes its time
			return acceptAll(msgs)
		}})
		ch := createChannel(t, s, "slow", scriptType, map[string]any{"key": key})
		b := setup(t, s, nil)
		b.start(t)
		ids := insertN(t, s, 20, ch.ID)
		b.engine.Nudge()
		select {
		case <-inSend:
		case <-time.After(10 * time.Second * patience(s)):
			t.Fatal("nothing was sent")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second*patience(s))
		defer cancel()
		start := time.Now()
		require.NoError(t, b.engine.Stop(ctx))
		if patience(s) == 1 {
			// Promptly: it waits for what is in flight, not for the queue.
			// (On SQL Server, Babelfish's first write in a session takes
			// seconds: Stop's own deadline above is the bound there.)
			require.Less(t, time.Since(start), 3*time.Second)
		}

		// What was claimed was sent and written; the rest is still QUEUED.
		counts := statusCounts(t, s, ids)
		require.Zero(t, counts[store.StatusSending], counts)
		require.Positive(t, counts[store.StatusSent], counts)
		require.Equal(t, len(ids), counts[store.StatusSent]+counts[store.StatusQueued], counts)

		nodes, err := s.NodeList(context.Background())
		require.NoError(t, err)
		require.Empty(t, nodes)
		c, err := s.ChannelGet(context.Background(), "slow")
		require.NoError(t, err)
		require.Equal(t, channelStopped, c.Status)
	})
}

func TestNoReportAfter(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	createChannel(t, s, "silent", simulator.Type, map[string]any{"noReportRate": 1})
	b := setup(t, s, func(c *Config) { c.NoReportAfter = 100 * time.Millisecond })
	b.engine.sweeper.interval = 20 * time.Millisecond
	b.start(t)
	ids := insertN(t, s, 3, 0)
	b.engine.Nudge()
	waitStatus(t, s, ids, store.StatusNoReport, 10*time.Second)
}

func TestPinnedChannelRunsOnlyOnItsNode(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	c, err := s.ChannelCreate(context.Background(), store.Channel{Name: "modem", Type: simulator.Type, Settings: "{}", Enabled: true, Node: "node-b"})
	require.NoError(t, err)
	a := setup(t, s, func(c *Config) { c.Node = "node-a" })
	a.engine.supervisor.refreshed.init()
	a.start(t)
	ids := insertN(t, s, 2, 0)
	a.engine.Nudge()
	// Node A routes to the pinned channel but does not run it.
	waitStatus(t, s, ids, store.StatusQueued, 10*time.Second)
	routable, err := a.engine.supervisor.refreshed.wait(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, []int64{c.ID}, routable)
	_, err = a.engine.supervisor.started.wait(100 * time.Millisecond)
	require.Error(t, err, "node A must not start a channel pinned to node B")

	b := setup(t, s, func(c *Config) { c.Node = "node-b"; c.OnlyChannels = []string{"modem"} })
	b.start(t)
	waitStatus(t, s, ids, store.StatusDelivered, 10*time.Second)
}

func TestIncomingAndReportsStored(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	createChannel(t, s, "sim1", simulator.Type, map[string]any{"incomingEvery": "5ms", "reportDelay": "1ms"})
	b := setup(t, s, nil)
	b.engine.reports.applied.init()
	events, unsubscribe := b.engine.Subscribe(100)
	defer unsubscribe()
	b.start(t)
	var received atomic.Int64
	deadline := time.After(10 * time.Second * patience(s))
	for received.Load() < 3 {
		select {
		case ev := <-events:
			if ev.Status == store.StatusReceived {
				received.Add(1)
				m, err := s.MessageGet(context.Background(), ev.MessageID)
				require.NoError(t, err)
				require.Equal(t, store.DirectionIn, m.Direction)
				require.Contains(t, m.Body, "simulated incoming message")
			}
		case <-deadline:
			t.Fatal("no incoming messages")
		}
	}
	ids := insertN(t, s, 10, 0)
	b.engine.Nudge()
	waitStatus(t, s, ids, store.StatusDelivered, 10*time.Second)
	// Every report went through the batcher (some may have come before
	// their message was marked SENT and waited as pending).
	n := 0
	for n < len(ids) {
		res, err := b.engine.reports.applied.wait(time.Second)
		require.NoError(t, err)
		n += res.Matched + res.Pending
	}
}

func TestReportBatcherSharesOneWrite(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	b := setup(t, s, func(c *Config) { c.FlushInterval = 50 * time.Millisecond })
	b.engine.reports.applied.init()
	b.start(t)
	errs := make(chan error, 10)
	for range 10 {
		go func() {
			errs <- b.engine.reports.apply(context.Background(), []store.ReportParams{{ChannelID: 1, Reference: "nope", Status: store.PartDelivered}})
		}()
	}
	for range 10 {
		require.NoError(t, <-errs)
	}
	total := 0
	calls := 0
	for total < 10 {
		res, err := b.engine.reports.applied.wait(time.Second)
		require.NoError(t, err)
		total += res.Matched + res.Pending
		calls++
	}
	require.Less(t, calls, 10, "concurrent callers share writes")
}

// Regression: the completer wrote one chunk per wake-up and left the rest
// waiting for the next result, so a burst of more than one chunk stalled
// until the lease expired.
func TestCompleterWritesEveryChunkOfABurst(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	b := setup(t, s, nil)
	b.start(t)
	n := 2*completerChunk + 10
	for i := range n {
		b.engine.completer.addSent(1, store.SentParams{ID: int64(1_000_000 + i), Owner: b.engine.Node()})
	}
	written := 0
	for written < n {
		res, err := b.engine.completer.flushed.wait(10 * time.Second * patience(s))
		require.NoError(t, err)
		written += res.Sent
	}
	require.Zero(t, b.engine.completer.pending())
}

func TestStopReturnsInTimeWithAHungChannel(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	inSend := make(chan struct{}, 10)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	key := newScript(t, &scriptChannel{send: func(ctx context.Context, msgs []channels.Message) []channels.Result {
		inSend <- struct{}{}
		<-release // ignores ctx
		return acceptAll(msgs)
	}})
	ch := createChannel(t, s, "hung", scriptType, map[string]any{"key": key})
	b := setup(t, s, nil)
	b.start(t)
	ids := insertN(t, s, 3, ch.ID)
	b.engine.Nudge()
	select {
	case <-inSend:
	case <-time.After(10 * time.Second * patience(s)):
		t.Fatal("nothing was sent")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := b.engine.Stop(ctx)
	require.Less(t, time.Since(start), 3*time.Second)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	// The messages stay SENDING under the lease: another node rescues them.
	require.Equal(t, map[string]int{store.StatusSending: len(ids)}, statusCounts(t, s, ids))
}
