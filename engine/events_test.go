package engine

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/channels/simulator"
	"github.com/hermod-sms/hermod/store"
)

// eventLog collects a subscription's events by message.
type eventLog struct {
	events   <-chan Event
	byID     map[int64][]Event
	patience time.Duration // see patience
}

func subscribe(t *testing.T, e *Engine) *eventLog {
	t.Helper()
	events, unsubscribe := e.Subscribe(1000)
	t.Cleanup(unsubscribe)
	return &eventLog{events: events, byID: map[int64][]Event{}, patience: patience(e.store)}
}

// statuses returns the statuses published for one message, in order.
func (l *eventLog) statuses(id int64) []string {
	var out []string
	for _, ev := range l.byID[id] {
		out = append(out, ev.Status)
	}
	return out
}

// waitFor reads events until message id's last event has status, and
// fails the test after timeout (times the backend's patience).
func (l *eventLog) waitFor(t *testing.T, id int64, status string, timeout time.Duration) {
	t.Helper()
	timeout *= l.patience
	deadline := time.After(timeout)
	for {
		if evs := l.byID[id]; len(evs) > 0 && evs[len(evs)-1].Status == status {
			return
		}
		select {
		case ev, ok := <-l.events:
			require.True(t, ok, "the event stream ended")
			require.False(t, ev.Time.IsZero())
			l.byID[ev.MessageID] = append(l.byID[ev.MessageID], ev)
		case <-deadline:
			t.Fatalf("no %s event for message %d within %s; its events: %v", status, id, timeout, l.statuses(id))
		}
	}
}

// requireChannel checks that every event of message id names channelID.
func (l *eventLog) requireChannel(t *testing.T, id, channelID int64) {
	t.Helper()
	for _, ev := range l.byID[id] {
		require.Equal(t, channelID, ev.ChannelID, "%s event of message %d", ev.Status, id)
	}
}

func TestEventsFollowEachMessage(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, newStore func(*testing.T) store.Store) {
		s := newStore(t)
		ch := createChannel(t, s, "sim", simulator.Type, map[string]any{"reportDelay": "5ms"})
		ctx := context.Background()

		// A message whose sender died with it: its lease has expired, and
		// the rescuer returns it to the queue.
		rescued := insertN(t, s, 1, 0)[0]
		_, err := s.MessageRoute(ctx, store.RouteParams{Channels: []int64{ch.ID}})
		require.NoError(t, err)
		claimed, err := s.MessageClaim(ctx, store.ClaimParams{ChannelID: ch.ID, Limit: 10, Owner: "dead-node", Lease: -time.Second})
		require.NoError(t, err)
		require.Len(t, claimed, 1)

		b := setup(t, s, nil)
		log := subscribe(t, b.engine)
		b.start(t)

		ids := insert(t, s,
			store.NewMessage{ToAddress: "+31600000001", Body: "delivered"},
			store.NewMessage{ToAddress: "+31600000002", Body: "unroutable", ChannelID: ch.ID + 1000},
			store.NewMessage{ToAddress: "+31600000003", Body: "too late", ValidUntil: time.Now().Add(-time.Hour)},
		)
		delivered, unroutable, expired := ids[0], ids[1], ids[2]
		b.engine.Nudge()

		log.waitFor(t, delivered, store.StatusDelivered, 10*time.Second)
		requireLifecycle(t, log.statuses(delivered), store.StatusDelivered)
		log.requireChannel(t, delivered, ch.ID)

		log.waitFor(t, unroutable, store.StatusNoChannel, 10*time.Second)
		require.Equal(t, []string{store.StatusNoChannel}, log.statuses(unroutable))
		log.requireChannel(t, unroutable, ch.ID+1000)

		log.waitFor(t, expired, store.StatusExpired, 10*time.Second)
		require.Equal(t, []string{store.StatusExpired}, log.statuses(expired))
		log.requireChannel(t, expired, 0)

		log.waitFor(t, rescued, store.StatusDelivered, 10*time.Second)
		// The rescuer publishes after its write commits; a producer that
		// claims the row in between may publish SENDING first: events of
		// different services are not ordered among themselves.
		requireLifecycle(t, log.statuses(rescued), store.StatusDelivered)
		log.requireChannel(t, rescued, ch.ID)
	})
}

func TestEventsNotDelivered(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, newStore func(*testing.T) store.Store) {
		s := newStore(t)
		rejected := createChannel(t, s, "rejected", simulator.Type, map[string]any{"undeliveredRate": 1, "reportDelay": "1ms"})
		b := setup(t, s, nil)
		log := subscribe(t, b.engine)
		b.start(t)

		id := insertN(t, s, 1, rejected.ID)[0]
		b.engine.Nudge()

		log.waitFor(t, id, store.StatusNotDelivered, 10*time.Second)
		requireLifecycle(t, log.statuses(id), store.StatusNotDelivered)
		log.requireChannel(t, id, rejected.ID)
	})
}

func TestEventsNoReport(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, newStore func(*testing.T) store.Store) {
		s := newStore(t)
		silent := createChannel(t, s, "silent", simulator.Type, map[string]any{"noReportRate": 1})
		b := setup(t, s, func(c *Config) { c.NoReportAfter = 100 * time.Millisecond })
		b.engine.sweeper.interval = 20 * time.Millisecond
		log := subscribe(t, b.engine)
		b.start(t)

		id := insertN(t, s, 1, silent.ID)[0]
		b.engine.Nudge()

		log.waitFor(t, id, store.StatusNoReport, 10*time.Second)
		requireLifecycle(t, log.statuses(id), store.StatusNoReport) // the leader's sweep publishes NOREPORT
		log.requireChannel(t, id, silent.ID)
	})
}

// A delivery report that comes before the submit response waits in
// PendingReports; writing the send result settles the message in the same
// transaction, and both transitions are published, SENT first.
func TestEventsEarlyReportSettledBySendResult(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, newStore func(*testing.T) store.Store) {
		s := newStore(t)
		ctx := context.Background()
		ch := createChannel(t, s, "provider", simulator.Type, nil)
		// Claimed as a channel would, before the engine runs: its router
		// must not route the message first.
		id := insertN(t, s, 1, 0)[0]
		_, err := s.MessageRoute(ctx, store.RouteParams{Channels: []int64{ch.ID}})
		require.NoError(t, err)
		claimed, err := s.MessageClaim(ctx, store.ClaimParams{ChannelID: ch.ID, Limit: 1, Owner: "owner", Lease: time.Hour})
		require.NoError(t, err)
		require.Len(t, claimed, 1)

		b := setup(t, s, func(c *Config) { c.NoChannels = true })
		log := subscribe(t, b.engine)
		b.start(t)

		require.NoError(t, b.engine.reports.apply(ctx, []store.ReportParams{{ChannelID: ch.ID, Reference: "early", Status: store.PartDelivered}}))
		b.engine.completer.addSent(ch.ID, store.SentParams{ID: id, Owner: "owner", Reference: "early"})

		log.waitFor(t, id, store.StatusDelivered, 10*time.Second)
		require.Equal(t, []string{store.StatusSent, store.StatusDelivered}, log.statuses(id))
		log.requireChannel(t, id, ch.ID)
		m, err := s.MessageGet(ctx, id)
		require.NoError(t, err)
		require.Equal(t, store.StatusDelivered, m.Status)
	})
}

// requireLifecycle checks one message's events: QUEUED (routed or rescued)
// and SENDING, then SENT and the final status. The first two come from different
// services (the router or rescuer publishes after its write commits, and a
// producer that claims the row in between may publish SENDING first), so
// their order is not fixed.
func requireLifecycle(t *testing.T, got []string, final string) {
	t.Helper()
	require.Len(t, got, 4, "%v", got)
	require.ElementsMatch(t, []string{store.StatusQueued, store.StatusSending}, got[:2], "%v", got)
	require.Equal(t, []string{store.StatusSent, final}, got[2:], "%v", got)
}
