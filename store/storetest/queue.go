package storetest

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/store"
)

func (r *runner) testMessageRoute(t *testing.T) {
	t.Run("RoundRobin", func(t *testing.T) {
		b := r.setup(t)
		chans := []int64{CreateChannel(t, b.s, "a").ID, CreateChannel(t, b.s, "b").ID, CreateChannel(t, b.s, "c").ID}
		ids := InsertN(t, b.s, 30)
		res, err := b.s.MessageRoute(b.ctx, store.RouteParams{Channels: chans, Limit: 100})
		require.NoError(t, err)
		require.Equal(t, 30, res.Queued)
		require.Zero(t, res.NoChannel+res.Expired)
		var want []store.Change
		for _, id := range ids {
			want = append(want, store.Change{ID: id, Status: store.StatusQueued, ChannelID: chans[id%int64(len(chans))]})
		}
		RequireChanges(t, want, res.Changes, "every routed message with the channel it went to")
		per := map[int64]int{}
		for _, id := range ids {
			m := Get(t, b.s, id)
			require.Equal(t, store.StatusQueued, m.Status)
			require.Equal(t, chans[id%int64(len(chans))], m.ChannelID, "message %d goes to Channels[ID %% 3]", id)
			RequireTraceEndsWith(t, m, store.StatusQueued)
			per[m.ChannelID]++
		}
		require.Equal(t, map[int64]int{chans[0]: 10, chans[1]: 10, chans[2]: 10}, per)

		res, err = b.s.MessageRoute(b.ctx, store.RouteParams{Channels: chans, Limit: 100})
		require.NoError(t, err)
		require.Equal(t, store.RouteResult{}, res, "nothing left to route")
	})

	t.Run("ExplicitChannelKept", func(t *testing.T) {
		b := r.setup(t)
		a := CreateChannel(t, b.s, "a")
		disabled, err := b.s.ChannelCreate(b.ctx, store.Channel{Name: "off", Type: "simulator", Enabled: false})
		require.NoError(t, err)
		ids := Insert(t, b.s, store.NewMessage{ToAddress: "+1", ChannelID: disabled.ID}, store.NewMessage{ToAddress: "+2", ChannelID: a.ID})
		res, err := b.s.MessageRoute(b.ctx, store.RouteParams{Channels: []int64{a.ID}, Limit: 10})
		require.NoError(t, err)
		require.Equal(t, store.RouteResult{Queued: 2, Changes: res.Changes}, res)
		RequireChanges(t, []store.Change{{ID: ids[0], Status: store.StatusQueued, ChannelID: disabled.ID}, {ID: ids[1], Status: store.StatusQueued, ChannelID: a.ID}}, res.Changes)
		m := Get(t, b.s, ids[0])
		require.Equal(t, store.StatusQueued, m.Status)
		require.Equal(t, disabled.ID, m.ChannelID, "an explicit channel is kept even when it is not in Channels")
		require.Equal(t, a.ID, Get(t, b.s, ids[1]).ChannelID)
	})

	t.Run("UnknownChannel", func(t *testing.T) {
		b := r.setup(t)
		a := CreateChannel(t, b.s, "a")
		ids := Insert(t, b.s, store.NewMessage{ToAddress: "+1", ChannelID: a.ID + 1000})
		res, err := b.s.MessageRoute(b.ctx, store.RouteParams{Channels: []int64{a.ID}, Limit: 10})
		require.NoError(t, err)
		require.Equal(t, store.RouteResult{NoChannel: 1, Changes: res.Changes}, res)
		RequireChanges(t, changes(store.StatusNoChannel, a.ID+1000, ids[0]), res.Changes, "NOCHANNEL keeps the channel the message asked for")
		m := Get(t, b.s, ids[0])
		require.Equal(t, store.StatusNoChannel, m.Status)
		require.NotEmpty(t, m.StatusDetails, "StatusDetails says why")
		require.Equal(t, a.ID+1000, m.ChannelID)
		RequireTraceEndsWith(t, m, store.StatusNoChannel)
	})

	t.Run("NoChannels", func(t *testing.T) {
		b := r.setup(t)
		ids := InsertN(t, b.s, 3)
		res, err := b.s.MessageRoute(b.ctx, store.RouteParams{Limit: 10})
		require.NoError(t, err)
		require.Equal(t, store.RouteResult{NoChannel: 3, Changes: res.Changes}, res)
		RequireChanges(t, changes(store.StatusNoChannel, 0, ids...), res.Changes)
		for _, id := range ids {
			m := Get(t, b.s, id)
			require.Equal(t, store.StatusNoChannel, m.Status)
			require.NotEmpty(t, m.StatusDetails)
			require.Zero(t, m.ChannelID)
		}
	})

	t.Run("Scheduled", func(t *testing.T) {
		b := r.setup(t)
		a := CreateChannel(t, b.s, "a")
		ids := Insert(t, b.s,
			store.NewMessage{ToAddress: "+1", ScheduledTime: time.Now().Add(time.Hour)},
			store.NewMessage{ToAddress: "+2", ScheduledTime: time.Now().Add(-time.Hour)},
		)
		res, err := b.s.MessageRoute(b.ctx, store.RouteParams{Channels: []int64{a.ID}, Limit: 10})
		require.NoError(t, err)
		require.Equal(t, store.RouteResult{Queued: 1, Changes: res.Changes}, res)
		RequireChanges(t, changes(store.StatusQueued, a.ID, ids[1]), res.Changes, "a future ScheduledTime waits")
		require.Equal(t, store.StatusScheduled, Get(t, b.s, ids[0]).Status, "a future ScheduledTime waits")
		require.Equal(t, store.StatusQueued, Get(t, b.s, ids[1]).Status)
	})

	t.Run("Expired", func(t *testing.T) {
		b := r.setup(t)
		a := CreateChannel(t, b.s, "a")
		ids := Insert(t, b.s,
			store.NewMessage{ToAddress: "+1", ValidUntil: time.Now().Add(-time.Hour)},
			store.NewMessage{ToAddress: "+2", ValidUntil: time.Now().Add(time.Hour)},
		)
		res, err := b.s.MessageRoute(b.ctx, store.RouteParams{Channels: []int64{a.ID}, Limit: 10})
		require.NoError(t, err)
		require.Equal(t, store.RouteResult{Queued: 1, Expired: 1, Changes: res.Changes}, res)
		RequireChanges(t, []store.Change{{ID: ids[0], Status: store.StatusExpired}, {ID: ids[1], Status: store.StatusQueued, ChannelID: a.ID}}, res.Changes)
		m := Get(t, b.s, ids[0])
		require.Equal(t, store.StatusExpired, m.Status)
		RequireTraceEndsWith(t, m, store.StatusExpired)
		require.Equal(t, store.StatusQueued, Get(t, b.s, ids[1]).Status)
	})

	t.Run("Limit", func(t *testing.T) {
		b := r.setup(t)
		a := CreateChannel(t, b.s, "a")
		ids := InsertN(t, b.s, 10)
		res, err := b.s.MessageRoute(b.ctx, store.RouteParams{Channels: []int64{a.ID}, Limit: 4})
		require.NoError(t, err)
		require.Equal(t, 4, res.Queued)
		RequireChanges(t, changes(store.StatusQueued, a.ID, ids[:4]...), res.Changes)
		for i, id := range ids {
			want := store.StatusScheduled
			if i < 4 {
				want = store.StatusQueued
			}
			require.Equal(t, want, Get(t, b.s, id).Status, "the oldest are routed first")
		}
		res, err = b.s.MessageRoute(b.ctx, store.RouteParams{Channels: []int64{a.ID}, Limit: 100})
		require.NoError(t, err)
		require.Equal(t, 6, res.Queued)
		RequireChanges(t, changes(store.StatusQueued, a.ID, ids[4:]...), res.Changes)
	})

	t.Run("IgnoresOtherStatuses", func(t *testing.T) {
		b := r.setup(t)
		a := CreateChannel(t, b.s, "a")
		ids := InsertN(t, b.s, 1)
		require.NoError(t, b.s.MessageCancel(b.ctx, ids[0]))
		_, err := b.s.MessageReceive(b.ctx, []store.Incoming{{FromAddress: "+1", ToAddress: "+2"}})
		require.NoError(t, err)
		res, err := b.s.MessageRoute(b.ctx, store.RouteParams{Channels: []int64{a.ID}, Limit: 10})
		require.NoError(t, err)
		require.Equal(t, store.RouteResult{}, res)
	})
}

func (r *runner) testMessageClaim(t *testing.T) {
	t.Run("PriorityThenID", func(t *testing.T) {
		b := r.setup(t)
		a := CreateChannel(t, b.s, "a")
		ids := Insert(t, b.s,
			store.NewMessage{ToAddress: "+1", Priority: 0},
			store.NewMessage{ToAddress: "+2", Priority: 5},
			store.NewMessage{ToAddress: "+3", Priority: 0},
			store.NewMessage{ToAddress: "+4", Priority: 5},
			store.NewMessage{ToAddress: "+5", Priority: 1},
		)
		_, err := b.s.MessageRoute(b.ctx, store.RouteParams{Channels: []int64{a.ID}, Limit: 10})
		require.NoError(t, err)

		ms, err := b.s.MessageClaim(b.ctx, store.ClaimParams{ChannelID: a.ID, Limit: 10, Owner: "node1", Lease: time.Minute})
		require.NoError(t, err)
		require.Equal(t, []int64{ids[1], ids[3], ids[4], ids[0], ids[2]}, IDs(ms))
		for _, m := range ms {
			require.Equal(t, store.StatusSending, m.Status)
			require.Equal(t, 1, m.Attempts)
			require.Equal(t, "node1", m.LeaseOwner)
			require.Equal(t, a.ID, m.ChannelID)
			require.WithinDuration(t, time.Now().Add(time.Minute), m.LeaseExpires, time.Minute)
			RequireTraceEndsWith(t, m, store.StatusSending)
			got := Get(t, b.s, m.ID)
			require.Equal(t, store.StatusSending, got.Status)
			require.Equal(t, "node1", got.LeaseOwner)
			require.True(t, m.LeaseExpires.Equal(got.LeaseExpires))
		}
	})

	t.Run("PriorityBeatsAge", func(t *testing.T) {
		b := r.setup(t)
		a := CreateChannel(t, b.s, "a")
		ids := Insert(t, b.s, store.NewMessage{ToAddress: "+1"}, store.NewMessage{ToAddress: "+2", Priority: 9})
		_, err := b.s.MessageRoute(b.ctx, store.RouteParams{Channels: []int64{a.ID}, Limit: 10})
		require.NoError(t, err)
		require.Equal(t, []int64{ids[1]}, IDs(Claim(t, b.s, a.ID, "node1", 1)))
	})

	t.Run("Limit", func(t *testing.T) {
		b := r.setup(t)
		ch, ids := Queue(t, b.s, 0, 5)
		require.Equal(t, ids[:2], IDs(Claim(t, b.s, ch, "node1", 2)))
		require.Equal(t, ids[2:], IDs(Claim(t, b.s, ch, "node1", 10)))
		require.Empty(t, Claim(t, b.s, ch, "node1", 10))
	})

	t.Run("OnlyItsChannel", func(t *testing.T) {
		b := r.setup(t)
		a := CreateChannel(t, b.s, "a")
		c := CreateChannel(t, b.s, "c")
		ids := Insert(t, b.s, store.NewMessage{ToAddress: "+1", ChannelID: a.ID}, store.NewMessage{ToAddress: "+2", ChannelID: c.ID})
		_, err := b.s.MessageRoute(b.ctx, store.RouteParams{Channels: []int64{a.ID, c.ID}, Limit: 10})
		require.NoError(t, err)
		require.Equal(t, []int64{ids[1]}, IDs(Claim(t, b.s, c.ID, "node1", 10)))
		require.Equal(t, []int64{ids[0]}, IDs(Claim(t, b.s, a.ID, "node1", 10)))
	})

	t.Run("OnlyQueued", func(t *testing.T) {
		b := r.setup(t)
		a := CreateChannel(t, b.s, "a")
		Insert(t, b.s, store.NewMessage{ToAddress: "+1", ChannelID: a.ID}) // SCHEDULED, not routed
		require.Empty(t, Claim(t, b.s, a.ID, "node1", 10))
	})

	t.Run("NotTwiceConcurrently", func(t *testing.T) {
		b := r.setup(t)
		ch, ids := Queue(t, b.s, 0, 200)
		const claimers = 4
		var (
			mu      sync.Mutex
			claimed []int64
			wg      sync.WaitGroup
			errs    = make(chan error, claimers)
		)
		for i := range claimers {
			wg.Go(func() {
				for {
					ms, err := b.s.MessageClaim(b.ctx, store.ClaimParams{ChannelID: ch, Limit: 7, Owner: fmt.Sprintf("node%d", i), Lease: time.Minute})
					if err != nil {
						errs <- err
						return
					}
					if len(ms) == 0 {
						return
					}
					mu.Lock()
					claimed = append(claimed, IDs(ms)...)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		seen := map[int64]bool{}
		for _, id := range claimed {
			require.False(t, seen[id], "message %d claimed twice", id)
			seen[id] = true
		}
		sort.Slice(claimed, func(i, j int) bool { return claimed[i] < claimed[j] })
		require.Equal(t, ids, claimed, "every message claimed exactly once")
	})

	t.Run("NextAttemptTimeInFuture", func(t *testing.T) {
		b := r.setup(t)
		ch, ids := Queue(t, b.s, 0, 1)
		require.Len(t, Claim(t, b.s, ch, "node1", 1), 1)
		n, err := b.s.MessageMarkRetry(b.ctx, []store.RetryParams{{ID: ids[0], Owner: "node1", Delay: time.Hour, Error: "throttled"}})
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.Empty(t, Claim(t, b.s, ch, "node1", 1), "not before NextAttemptTime")
	})

	t.Run("ValidUntilPassed", func(t *testing.T) {
		b := r.setup(t)
		a := CreateChannel(t, b.s, "a")
		now := DBNow(t, b.s)
		ids := Insert(t, b.s, store.NewMessage{ToAddress: "+1", ValidUntil: now.Add(shortValidity)})
		res, err := b.s.MessageRoute(b.ctx, store.RouteParams{Channels: []int64{a.ID}, Limit: 10})
		require.NoError(t, err)
		require.Equal(t, 1, res.Queued, "routed while still valid")
		waitUntil(t, b, now.Add(shortValidity))
		require.Empty(t, Claim(t, b.s, a.ID, "node1", 10), "an expired message is not claimed")
		require.Equal(t, store.StatusQueued, Get(t, b.s, ids[0]).Status)
	})

	t.Run("OwnerRequired", func(t *testing.T) {
		b := r.setup(t)
		ch, _ := Queue(t, b.s, 0, 1)
		_, err := b.s.MessageClaim(b.ctx, store.ClaimParams{ChannelID: ch, Limit: 1, Lease: time.Minute})
		require.ErrorIs(t, err, store.ErrInvalid)
	})
}

// waitUntil sleeps until the database clock has passed tm.
// shortValidity is the ValidUntil of messages that must still be valid
// when routed and expire soon after: long enough for an insert and a route
// on a loaded machine (the first statements of a Babelfish session take
// a second), short enough to wait for.
const shortValidity = 5 * time.Second

func waitUntil(t *testing.T, b *bundle, tm time.Time) {
	t.Helper()
	deadline := time.Now().Add(time.Until(tm) + 30*time.Second)
	for {
		require.True(t, time.Now().Before(deadline), "the database clock did not pass %s", tm)
		if DBNow(t, b.s).After(tm) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *runner) testMessageMarkSent(t *testing.T) {
	t.Run("Parts", func(t *testing.T) {
		b := r.setup(t)
		ch, ids := Queue(t, b.s, 0, 1)
		require.Len(t, Claim(t, b.s, ch, "node1", 1), 1)
		n, err := b.s.MessageMarkSent(b.ctx, []store.SentParams{{
			ID: ids[0], Owner: "node1", Reference: "r1", Note: "via test",
			Parts: []store.Part{{PartNumber: 1, Reference: "r1"}, {PartNumber: 2, Reference: "r2"}},
		}})
		require.NoError(t, err)
		require.Equal(t, 1, n)

		m := Get(t, b.s, ids[0])
		require.Equal(t, store.StatusSent, m.Status)
		require.Equal(t, "r1", m.Reference)
		require.Equal(t, 2, m.TotalParts)
		require.Equal(t, "", m.LeaseOwner)
		require.True(t, m.LeaseExpires.IsZero())
		requireRecent(t, m.SentTime, "SentTime")
		RequireTraceEndsWith(t, m, store.StatusSending, store.StatusSent)
		require.Contains(t, m.Trace, "via test")

		parts, err := b.s.MessageParts(b.ctx, ids[0])
		require.NoError(t, err)
		require.Len(t, parts, 2)
		for i, p := range parts {
			require.Equal(t, ids[0], p.MessageID)
			require.Equal(t, i+1, p.PartNumber)
			require.Equal(t, ch, p.ChannelID)
			require.Equal(t, fmt.Sprintf("r%d", i+1), p.Reference)
			require.Equal(t, store.PartSent, p.Status)
			requireRecent(t, p.SentTime, "part SentTime")
			require.True(t, p.DeliveredTime.IsZero())
		}
	})

	t.Run("WrongOwner", func(t *testing.T) {
		b := r.setup(t)
		ch, ids := Queue(t, b.s, 0, 1)
		require.Len(t, Claim(t, b.s, ch, "node1", 1), 1)
		n, err := b.s.MessageMarkSent(b.ctx, []store.SentParams{{ID: ids[0], Owner: "node2", Reference: "r1", Parts: []store.Part{{PartNumber: 1, Reference: "r1"}}}})
		require.NoError(t, err)
		require.Zero(t, n)
		m := Get(t, b.s, ids[0])
		require.Equal(t, store.StatusSending, m.Status)
		require.Equal(t, "node1", m.LeaseOwner)
		parts, err := b.s.MessageParts(b.ctx, ids[0])
		require.NoError(t, err)
		require.Empty(t, parts)
	})

	t.Run("NotSending", func(t *testing.T) {
		b := r.setup(t)
		_, ids := Queue(t, b.s, 0, 1)
		n, err := b.s.MessageMarkSent(b.ctx, []store.SentParams{{ID: ids[0], Owner: "node1", Reference: "r1"}})
		require.NoError(t, err)
		require.Zero(t, n)
		require.Equal(t, store.StatusQueued, Get(t, b.s, ids[0]).Status)
	})

	t.Run("Batch", func(t *testing.T) {
		b := r.setup(t)
		ch, ids := Queue(t, b.s, 0, 50)
		require.Len(t, Claim(t, b.s, ch, "node1", 50), 50)
		ps := make([]store.SentParams, 0, 51)
		for _, id := range ids {
			ref := fmt.Sprintf("ref-%d", id)
			ps = append(ps, store.SentParams{ID: id, Owner: "node1", Reference: ref, Parts: []store.Part{{PartNumber: 1, Reference: ref}}})
		}
		ps = append(ps, store.SentParams{ID: 999999, Owner: "node1", Reference: "missing"})
		n, err := b.s.MessageMarkSent(b.ctx, ps)
		require.NoError(t, err)
		require.Equal(t, 50, n, "the count is of rows changed")
		counts, err := b.s.MessageCountByStatus(b.ctx, store.DirectionOut)
		require.NoError(t, err)
		require.Equal(t, map[string]int{store.StatusSent: 50}, counts)
	})
}

// markSentSettled marks messages sent through store.SentSettler, which
// every backend implements, and checks that MessageMarkSent would have
// returned the same count.
func markSentSettled(t *testing.T, b *bundle, ps []store.SentParams) store.SentResult {
	t.Helper()
	ss, ok := b.s.(store.SentSettler)
	require.True(t, ok, "%T implements store.SentSettler", b.s)
	res, err := ss.MessageMarkSentSettled(b.ctx, ps)
	require.NoError(t, err)
	return res
}

func (r *runner) testMessageMarkRetry(t *testing.T) {
	t.Run("BackToQueued", func(t *testing.T) {
		b := r.setup(t)
		ch, ids := Queue(t, b.s, 0, 1)
		require.Len(t, Claim(t, b.s, ch, "node1", 1), 1)
		n, err := b.s.MessageMarkRetry(b.ctx, []store.RetryParams{{ID: ids[0], Owner: "node1", Delay: 0, ErrorCode: "0x58", Error: "throttled"}})
		require.NoError(t, err)
		require.Equal(t, 1, n)
		m := Get(t, b.s, ids[0])
		require.Equal(t, store.StatusQueued, m.Status)
		require.Equal(t, "0x58", m.ErrorCode)
		require.Contains(t, m.StatusDetails, "throttled")
		require.Equal(t, "", m.LeaseOwner)
		require.True(t, m.LeaseExpires.IsZero())
		requireRecent(t, m.NextAttemptTime, "NextAttemptTime")
		RequireTraceEndsWith(t, m, store.StatusSending, store.StatusQueued)

		ms := Claim(t, b.s, ch, "node1", 1)
		require.Len(t, ms, 1, "Delay 0 is claimable at once")
		require.Equal(t, 2, ms[0].Attempts)
	})
	t.Run("WrongOwner", func(t *testing.T) {
		b := r.setup(t)
		ch, ids := Queue(t, b.s, 0, 1)
		require.Len(t, Claim(t, b.s, ch, "node1", 1), 1)
		n, err := b.s.MessageMarkRetry(b.ctx, []store.RetryParams{{ID: ids[0], Owner: "node2", Error: "x"}})
		require.NoError(t, err)
		require.Zero(t, n)
		require.Equal(t, store.StatusSending, Get(t, b.s, ids[0]).Status)
	})
}

func (r *runner) testMessageMarkFailed(t *testing.T) {
	t.Run("Failed", func(t *testing.T) {
		b := r.setup(t)
		ch, ids := Queue(t, b.s, 0, 2)
		require.Len(t, Claim(t, b.s, ch, "node1", 2), 2)
		n, err := b.s.MessageMarkFailed(b.ctx, []store.FailParams{
			{ID: ids[0], Owner: "node1", ErrorCode: "0x0B", Error: "invalid destination\nsubmit_sm_resp status 0x0B"},
			{ID: ids[1], Owner: "node2", Error: "wrong owner"},
		})
		require.NoError(t, err)
		require.Equal(t, 1, n)
		m := Get(t, b.s, ids[0])
		require.Equal(t, store.StatusFailed, m.Status)
		require.Equal(t, "0x0B", m.ErrorCode)
		require.Contains(t, m.StatusDetails, "invalid destination")
		require.Equal(t, "", m.LeaseOwner)
		RequireTraceEndsWith(t, m, store.StatusSending, store.StatusFailed)
		require.Equal(t, store.StatusSending, Get(t, b.s, ids[1]).Status, "wrong owner changes nothing")
	})
}

func (r *runner) testMessageReportApply(t *testing.T) {
	t.Run("AllPartsDelivered", func(t *testing.T) {
		b := r.setup(t)
		ch, id := Send(t, b.s, "node1", "p1", "p2", "p3")
		done := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
		res, err := b.s.MessageReportApply(b.ctx, []store.ReportParams{
			{ChannelID: ch, Reference: "p1", Status: store.PartDelivered},
			{ChannelID: ch, Reference: "p3", Status: store.PartDelivered},
		})
		require.NoError(t, err)
		require.Equal(t, store.ReportResult{Matched: 2}, res, "nothing settled while one part is still out")
		require.Equal(t, store.StatusSent, Get(t, b.s, id).Status, "one part is still out")

		res, err = b.s.MessageReportApply(b.ctx, []store.ReportParams{{ChannelID: ch, Reference: "p2", Status: store.PartDelivered, DoneTime: done}})
		require.NoError(t, err)
		require.Equal(t, store.ReportResult{Matched: 1, Settled: changes(store.StatusDelivered, ch, id)}, res)
		m := Get(t, b.s, id)
		require.Equal(t, store.StatusDelivered, m.Status)
		requireRecent(t, m.DeliveredTime, "DeliveredTime")
		RequireTraceEndsWith(t, m, store.StatusSent, store.StatusDelivered)
		require.Equal(t, store.TriggerPending, m.TriggerStatus)

		parts, err := b.s.MessageParts(b.ctx, id)
		require.NoError(t, err)
		require.Len(t, parts, 3)
		for _, p := range parts {
			require.Equal(t, store.PartDelivered, p.Status)
			require.False(t, p.DeliveredTime.IsZero())
		}
		require.True(t, done.Equal(parts[1].DeliveredTime), "a part's DeliveredTime is the report's DoneTime: %s, want %s", parts[1].DeliveredTime, done)
	})

	t.Run("OnePartNotDelivered", func(t *testing.T) {
		b := r.setup(t)
		ch, id := Send(t, b.s, "node1", "p1", "p2")
		res, err := b.s.MessageReportApply(b.ctx, []store.ReportParams{{ChannelID: ch, Reference: "p1", Status: store.PartNotDelivered, ErrorCode: "0x0b"}})
		require.NoError(t, err)
		require.Equal(t, store.ReportResult{Matched: 1, Settled: changes(store.StatusNotDelivered, ch, id)}, res)
		m := Get(t, b.s, id)
		require.Equal(t, store.StatusNotDelivered, m.Status, "NOTDELIVERED as soon as one part is")
		require.Equal(t, "0x0b", m.ErrorCode)
		RequireTraceEndsWith(t, m, store.StatusSent, store.StatusNotDelivered)

		res, err = b.s.MessageReportApply(b.ctx, []store.ReportParams{{ChannelID: ch, Reference: "p2", Status: store.PartDelivered}})
		require.NoError(t, err)
		require.Empty(t, res.Settled, "a settled message settles once")
		require.Equal(t, store.StatusNotDelivered, Get(t, b.s, id).Status, "a later delivered part does not undo it")
		parts, err := b.s.MessageParts(b.ctx, id)
		require.NoError(t, err)
		require.Equal(t, store.PartNotDelivered, parts[0].Status)
		require.Equal(t, "0x0b", parts[0].ErrorCode)
		require.Equal(t, store.PartDelivered, parts[1].Status)
	})

	t.Run("BeforeMarkSent", func(t *testing.T) {
		b := r.setup(t)
		ch, ids := Queue(t, b.s, 0, 1)
		require.Len(t, Claim(t, b.s, ch, "node1", 1), 1)
		res, err := b.s.MessageReportApply(b.ctx, []store.ReportParams{{ChannelID: ch, Reference: "early", Status: store.PartDelivered}})
		require.NoError(t, err)
		require.Equal(t, store.ReportResult{Pending: 1}, res)
		require.Equal(t, store.StatusSending, Get(t, b.s, ids[0]).Status)

		sr := markSentSettled(t, b, []store.SentParams{{ID: ids[0], Owner: "node1", Reference: "early", Parts: []store.Part{{PartNumber: 1, Reference: "early"}}}})
		require.Equal(t, 1, sr.Changed)
		RequireChanges(t, changes(store.StatusDelivered, ch, ids[0]), sr.Settled, "MarkSent names what the pending report settled")
		m := Get(t, b.s, ids[0])
		require.Equal(t, store.StatusDelivered, m.Status, "the pending report is applied by MarkSent")
		RequireTraceEndsWith(t, m, store.StatusSent, store.StatusDelivered)

		// It was consumed: a sweep of every pending report finds none.
		sw, err := b.s.MessageSweep(b.ctx, store.SweepParams{NoReportAfter: time.Hour, PendingReportTTL: 0, Limit: 100})
		require.NoError(t, err)
		require.Zero(t, sw.PendingDeleted)
	})

	t.Run("BeforeMarkSentNotDelivered", func(t *testing.T) {
		b := r.setup(t)
		ch, ids := Queue(t, b.s, 0, 1)
		require.Len(t, Claim(t, b.s, ch, "node1", 1), 1)
		_, err := b.s.MessageReportApply(b.ctx, []store.ReportParams{{ChannelID: ch, Reference: "b2", Status: store.PartNotDelivered, ErrorCode: "0x22"}})
		require.NoError(t, err)
		sr := markSentSettled(t, b, []store.SentParams{{ID: ids[0], Owner: "node1", Reference: "b1",
			Parts: []store.Part{{PartNumber: 1, Reference: "b1"}, {PartNumber: 2, Reference: "b2"}}}})
		require.Equal(t, 1, sr.Changed)
		RequireChanges(t, changes(store.StatusNotDelivered, ch, ids[0]), sr.Settled)
		m := Get(t, b.s, ids[0])
		require.Equal(t, store.StatusNotDelivered, m.Status)
		require.Equal(t, "0x22", m.ErrorCode)
	})

	t.Run("MatchedPerChannel", func(t *testing.T) {
		b := r.setup(t)
		ch, id := Send(t, b.s, "node1", "same")
		other := CreateChannel(t, b.s, "other")
		res, err := b.s.MessageReportApply(b.ctx, []store.ReportParams{{ChannelID: other.ID, Reference: "same", Status: store.PartDelivered}})
		require.NoError(t, err)
		require.Equal(t, store.ReportResult{Pending: 1}, res, "a reference is only unique within its channel")
		require.Equal(t, store.StatusSent, Get(t, b.s, id).Status)
		res, err = b.s.MessageReportApply(b.ctx, []store.ReportParams{{ChannelID: ch, Reference: "same", Status: store.PartDelivered}})
		require.NoError(t, err)
		require.Equal(t, store.ReportResult{Matched: 1, Settled: changes(store.StatusDelivered, ch, id)}, res)
		require.Equal(t, store.StatusDelivered, Get(t, b.s, id).Status)
	})

	t.Run("DuplicateReport", func(t *testing.T) {
		b := r.setup(t)
		ch, id := Send(t, b.s, "node1", "dup")
		for i := range 2 {
			res, err := b.s.MessageReportApply(b.ctx, []store.ReportParams{{ChannelID: ch, Reference: "dup", Status: store.PartDelivered}})
			require.NoError(t, err)
			var settled []store.Change
			if i == 0 {
				settled = changes(store.StatusDelivered, ch, id)
			}
			require.Equal(t, store.ReportResult{Matched: 1, Settled: settled}, res, "report %d: only the first settles the message", i+1)
		}
		m := Get(t, b.s, id)
		require.Equal(t, store.StatusDelivered, m.Status)
		statuses := TraceStatuses(t, m.Trace)
		require.Equal(t, store.StatusDelivered, statuses[len(statuses)-1])
		require.NotEqual(t, store.StatusDelivered, statuses[len(statuses)-2], "a repeated report adds no second DELIVERED line")
	})

	t.Run("ResendAfterNotDelivered", func(t *testing.T) {
		b := r.setup(t)
		ch, id := Send(t, b.s, "node1", "old1", "old2")
		_, err := b.s.MessageReportApply(b.ctx, []store.ReportParams{{ChannelID: ch, Reference: "old1", Status: store.PartNotDelivered, ErrorCode: "0x45"}})
		require.NoError(t, err)
		require.Equal(t, store.StatusNotDelivered, Get(t, b.s, id).Status)

		require.NoError(t, b.s.MessageReprocess(b.ctx, id, true))
		res, err := b.s.MessageRoute(b.ctx, store.RouteParams{Channels: []int64{ch}, Limit: 10})
		require.NoError(t, err)
		require.Equal(t, 1, res.Queued)
		require.Len(t, Claim(t, b.s, ch, "node2", 1), 1)
		n, err := b.s.MessageMarkSent(b.ctx, []store.SentParams{{ID: id, Owner: "node2", Reference: "new1",
			Parts: []store.Part{{PartNumber: 1, Reference: "new1"}, {PartNumber: 2, Reference: "new2"}}}})
		require.NoError(t, err)
		require.Equal(t, 1, n)
		m := Get(t, b.s, id)
		require.Equal(t, store.StatusSent, m.Status, "the old undelivered part does not count against the new attempt")
		require.Equal(t, "new1", m.Reference)

		rr, err := b.s.MessageReportApply(b.ctx, []store.ReportParams{
			{ChannelID: ch, Reference: "new1", Status: store.PartDelivered},
			{ChannelID: ch, Reference: "new2", Status: store.PartDelivered},
		})
		require.NoError(t, err)
		require.Equal(t, store.ReportResult{Matched: 2, Settled: changes(store.StatusDelivered, ch, id)}, rr)
		m = Get(t, b.s, id)
		require.Equal(t, store.StatusDelivered, m.Status)
		require.Equal(t, "", m.ErrorCode, "the old error code is gone")
		parts, err := b.s.MessageParts(b.ctx, id)
		require.NoError(t, err)
		require.Len(t, parts, 2)
		require.Equal(t, "new1", parts[0].Reference)
		require.Equal(t, store.PartDelivered, parts[0].Status)
	})

	t.Run("InvalidStatus", func(t *testing.T) {
		b := r.setup(t)
		ch, _ := Send(t, b.s, "node1", "x")
		_, err := b.s.MessageReportApply(b.ctx, []store.ReportParams{{ChannelID: ch, Reference: "x", Status: "DELIVRD"}})
		require.ErrorIs(t, err, store.ErrInvalid)
	})
}

func (r *runner) testMessageRescue(t *testing.T) {
	t.Run("ExpiredLease", func(t *testing.T) {
		b := r.setup(t)
		ch, ids := Queue(t, b.s, 0, 2)
		ms, err := b.s.MessageClaim(b.ctx, store.ClaimParams{ChannelID: ch, Limit: 1, Owner: "deadnode", Lease: -time.Second})
		require.NoError(t, err)
		require.Len(t, ms, 1)
		require.Len(t, Claim(t, b.s, ch, "livenode", 1), 1) // an hour's lease

		rescued, err := b.s.MessageRescue(b.ctx, 100)
		require.NoError(t, err)
		require.Equal(t, changes(store.StatusQueued, ch, ids[0]), rescued)
		m := Get(t, b.s, ids[0])
		require.Equal(t, store.StatusQueued, m.Status)
		require.Equal(t, "", m.LeaseOwner)
		require.True(t, m.LeaseExpires.IsZero())
		RequireTraceEndsWith(t, m, store.StatusSending, store.StatusQueued)
		lines := strings.Split(strings.TrimSuffix(m.Trace, "\n"), "\n")
		require.Contains(t, lines[len(lines)-1], "deadnode", "the Trace names the owner whose lease expired")
		require.Equal(t, store.StatusSending, Get(t, b.s, ids[1]).Status, "a live lease is kept")

		// The dead node's late answer changes nothing.
		sent, err := b.s.MessageMarkSent(b.ctx, []store.SentParams{{ID: ids[0], Owner: "deadnode", Reference: "late"}})
		require.NoError(t, err)
		require.Zero(t, sent)

		again := Claim(t, b.s, ch, "livenode", 10)
		require.Equal(t, []int64{ids[0]}, IDs(again))
		require.Equal(t, 2, again[0].Attempts)

		rescued, err = b.s.MessageRescue(b.ctx, 100)
		require.NoError(t, err)
		require.Empty(t, rescued)
	})
	t.Run("Limit", func(t *testing.T) {
		b := r.setup(t)
		ch, ids := Queue(t, b.s, 0, 5)
		_, err := b.s.MessageClaim(b.ctx, store.ClaimParams{ChannelID: ch, Limit: 5, Owner: "deadnode", Lease: -time.Second})
		require.NoError(t, err)
		first, err := b.s.MessageRescue(b.ctx, 3)
		require.NoError(t, err)
		require.Len(t, first, 3)
		second, err := b.s.MessageRescue(b.ctx, 3)
		require.NoError(t, err)
		require.Len(t, second, 2)
		RequireChanges(t, changes(store.StatusQueued, ch, ids...), append(first, second...), "each message rescued once")
	})
}

func (r *runner) testMessageSweep(t *testing.T) {
	t.Run("NoReport", func(t *testing.T) {
		b := r.setup(t)
		ch := CreateChannel(t, b.s, "a")
		ids := Insert(t, b.s, store.NewMessage{ToAddress: "+1"}, store.NewMessage{ToAddress: "+2", NoDeliveryReport: true})
		_, err := b.s.MessageRoute(b.ctx, store.RouteParams{Channels: []int64{ch.ID}, Limit: 10})
		require.NoError(t, err)
		require.Len(t, Claim(t, b.s, ch.ID, "node1", 10), 2)
		_, err = b.s.MessageMarkSent(b.ctx, []store.SentParams{
			{ID: ids[0], Owner: "node1", Reference: "s1", Parts: []store.Part{{PartNumber: 1, Reference: "s1"}}},
			{ID: ids[1], Owner: "node1", Reference: "s2", Parts: []store.Part{{PartNumber: 1, Reference: "s2"}}},
		})
		require.NoError(t, err)

		res, err := b.s.MessageSweep(b.ctx, store.SweepParams{NoReportAfter: time.Hour, PendingReportTTL: time.Hour, Limit: 100})
		require.NoError(t, err)
		require.Equal(t, store.SweepResult{}, res, "not overdue yet")

		res, err = b.s.MessageSweep(b.ctx, store.SweepParams{NoReportAfter: 0, PendingReportTTL: time.Hour, Limit: 100})
		require.NoError(t, err)
		require.Equal(t, store.SweepResult{NoReport: 1, Changes: changes(store.StatusNoReport, ch.ID, ids[0])}, res)
		m := Get(t, b.s, ids[0])
		require.Equal(t, store.StatusNoReport, m.Status)
		RequireTraceEndsWith(t, m, store.StatusSent, store.StatusNoReport)
		require.Equal(t, store.StatusSent, Get(t, b.s, ids[1]).Status, "no report was asked for")
	})

	t.Run("PendingReports", func(t *testing.T) {
		b := r.setup(t)
		ch := CreateChannel(t, b.s, "a")
		res, err := b.s.MessageReportApply(b.ctx, []store.ReportParams{
			{ChannelID: ch.ID, Reference: "orphan1", Status: store.PartDelivered},
			{ChannelID: ch.ID, Reference: "orphan2", Status: store.PartNotDelivered},
		})
		require.NoError(t, err)
		require.Equal(t, 2, res.Pending)

		sw, err := b.s.MessageSweep(b.ctx, store.SweepParams{NoReportAfter: time.Hour, PendingReportTTL: time.Hour, Limit: 100})
		require.NoError(t, err)
		require.Zero(t, sw.PendingDeleted)
		sw, err = b.s.MessageSweep(b.ctx, store.SweepParams{NoReportAfter: time.Hour, PendingReportTTL: 0, Limit: 100})
		require.NoError(t, err)
		require.Equal(t, 2, sw.PendingDeleted)
	})

	t.Run("ExpiredQueued", func(t *testing.T) {
		b := r.setup(t)
		a := CreateChannel(t, b.s, "a")
		now := DBNow(t, b.s)
		ids := Insert(t, b.s, store.NewMessage{ToAddress: "+1", ValidUntil: now.Add(shortValidity)}, store.NewMessage{ToAddress: "+2"})
		_, err := b.s.MessageRoute(b.ctx, store.RouteParams{Channels: []int64{a.ID}, Limit: 10})
		require.NoError(t, err)
		waitUntil(t, b, now.Add(shortValidity))
		res, err := b.s.MessageSweep(b.ctx, store.SweepParams{NoReportAfter: time.Hour, PendingReportTTL: time.Hour, Limit: 100})
		require.NoError(t, err)
		require.Equal(t, store.SweepResult{Expired: 1, Changes: changes(store.StatusExpired, a.ID, ids[0])}, res)
		m := Get(t, b.s, ids[0])
		require.Equal(t, store.StatusExpired, m.Status)
		RequireTraceEndsWith(t, m, store.StatusQueued, store.StatusExpired)
		require.Equal(t, store.StatusQueued, Get(t, b.s, ids[1]).Status)
	})
}

func (r *runner) testMessageReceive(t *testing.T) {
	t.Run("Stored", func(t *testing.T) {
		b := r.setup(t)
		ch := CreateChannel(t, b.s, "modem")
		at := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
		ids, err := b.s.MessageReceive(b.ctx, []store.Incoming{
			{ChannelID: ch.ID, FromAddress: "+31611111111", FromTON: 1, FromNPI: 1, ToAddress: "+31622222222",
				Body: "STOP", DataCoding: 0, Reference: "in-1", TotalParts: 1, ReceivedTime: at},
			{ChannelID: ch.ID, FromAddress: "+31633333333", ToAddress: "+31622222222", Body: "héllo", DataCoding: 8},
		})
		require.NoError(t, err)
		require.Len(t, ids, 2)
		require.NotEqual(t, ids[0], ids[1])

		m := Get(t, b.s, ids[0])
		require.Equal(t, store.DirectionIn, m.Direction)
		require.Equal(t, store.StatusReceived, m.Status)
		require.Equal(t, store.TriggerPending, m.TriggerStatus)
		require.Equal(t, ch.ID, m.ChannelID)
		require.Equal(t, "+31611111111", m.FromAddress)
		require.Equal(t, 1, m.FromTON)
		require.Equal(t, 1, m.FromNPI)
		require.Equal(t, "+31622222222", m.ToAddress)
		require.Equal(t, "STOP", m.Body)
		require.Equal(t, 0, m.DataCoding)
		require.Equal(t, "in-1", m.Reference)
		require.Equal(t, 1, m.TotalParts)
		require.True(t, at.Equal(m.ReceivedTime), "ReceivedTime %s, want %s", m.ReceivedTime, at)
		RequireTraceEndsWith(t, m, store.StatusReceived)

		m = Get(t, b.s, ids[1])
		require.Equal(t, "héllo", m.Body)
		require.Equal(t, 8, m.DataCoding)
		requireRecent(t, m.ReceivedTime, "ReceivedTime defaults to now")

		// Incoming messages are never routed or claimed.
		res, err := b.s.MessageRoute(b.ctx, store.RouteParams{Channels: []int64{ch.ID}, Limit: 10})
		require.NoError(t, err)
		require.Equal(t, store.RouteResult{}, res)
		require.Empty(t, Claim(t, b.s, ch.ID, "node1", 10))
	})
	t.Run("Empty", func(t *testing.T) {
		b := r.setup(t)
		ids, err := b.s.MessageReceive(b.ctx, nil)
		require.NoError(t, err)
		require.Empty(t, ids)
	})
}

func (r *runner) testLifecycle(t *testing.T) {
	t.Run("InsertToDelivered", func(t *testing.T) {
		b := r.setup(t)
		a := CreateChannel(t, b.s, "a")
		ids := InsertN(t, b.s, 20)
		res, err := b.s.MessageRoute(b.ctx, store.RouteParams{Channels: []int64{a.ID}, Limit: 100})
		require.NoError(t, err)
		require.Equal(t, 20, res.Queued)
		ms := Claim(t, b.s, a.ID, "node1", 100)
		require.Len(t, ms, 20)
		var sent []store.SentParams
		var reports []store.ReportParams
		for _, m := range ms {
			ref := fmt.Sprintf("%x", m.ID)
			sent = append(sent, store.SentParams{ID: m.ID, Owner: "node1", Reference: ref, Parts: []store.Part{{PartNumber: 1, Reference: ref}}})
			reports = append(reports, store.ReportParams{ChannelID: a.ID, Reference: ref, Status: store.PartDelivered})
		}
		n, err := b.s.MessageMarkSent(b.ctx, sent)
		require.NoError(t, err)
		require.Equal(t, 20, n)
		rr, err := b.s.MessageReportApply(b.ctx, reports)
		require.NoError(t, err)
		require.Equal(t, 20, rr.Matched)
		require.Zero(t, rr.Pending)
		RequireChanges(t, changes(store.StatusDelivered, a.ID, ids...), rr.Settled)
		for _, id := range ids {
			m := Get(t, b.s, id)
			require.Equal(t, store.StatusDelivered, m.Status)
			require.Equal(t, 1, m.Attempts)
			RequireTraceEndsWith(t, m, store.StatusQueued, store.StatusSending, store.StatusSent, store.StatusDelivered)
			require.False(t, m.LastUpdate.Before(m.CreatedTime))
		}
		counts, err := b.s.MessageCountByStatus(b.ctx, store.DirectionOut)
		require.NoError(t, err)
		require.Equal(t, map[string]int{store.StatusDelivered: 20}, counts)
	})
}
