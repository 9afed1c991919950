package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/store"
)

func (r *runner) testStore(t *testing.T) {
	t.Run("BackendAndPing", func(t *testing.T) {
		b := r.setup(t)
		require.Contains(t, []string{"sqlite", "postgres", "sqlserver"}, b.s.Backend())
		require.NoError(t, b.s.Ping(b.ctx))
	})
	t.Run("MigratedToLatest", func(t *testing.T) {
		b := r.setup(t)
		m, ok := b.s.(store.Migrator)
		require.True(t, ok, "every store implements store.Migrator")
		current, latest, dirty, err := m.MigrateStatus(b.ctx)
		require.NoError(t, err)
		require.False(t, dirty)
		require.NotZero(t, latest)
		require.Equal(t, latest, current)
	})
}

func (r *runner) testMessageInsert(t *testing.T) {
	t.Run("MinimalDefaults", func(t *testing.T) {
		b := r.setup(t)
		res, err := b.s.MessageInsert(b.ctx, []store.NewMessage{{ToAddress: "+31612345678", Body: "hello"}})
		require.NoError(t, err)
		require.Len(t, res, 1)
		require.NotZero(t, res[0].ID)
		require.False(t, res[0].Existing)

		m := Get(t, b.s, res[0].ID)
		require.Equal(t, res[0].ID, m.ID)
		require.Equal(t, store.DirectionOut, m.Direction)
		require.Equal(t, store.StatusScheduled, m.Status)
		require.Equal(t, store.TriggerPending, m.TriggerStatus)
		require.Zero(t, m.ChannelID)
		require.Equal(t, "+31612345678", m.ToAddress)
		require.Equal(t, "", m.FromAddress)
		require.Equal(t, -1, m.FromTON)
		require.Equal(t, -1, m.FromNPI)
		require.Equal(t, "hello", m.Body)
		require.Equal(t, -1, m.DataCoding)
		require.Zero(t, m.Priority)
		require.True(t, m.RequestDeliveryReport)
		require.True(t, m.ScheduledTime.IsZero())
		require.True(t, m.ValidUntil.IsZero())
		require.Equal(t, "", m.Reference)
		require.Zero(t, m.TotalParts)
		require.Zero(t, m.Attempts)
		require.True(t, m.NextAttemptTime.IsZero())
		require.Equal(t, "", m.LeaseOwner)
		require.True(t, m.LeaseExpires.IsZero())
		requireRecent(t, m.CreatedTime, "CreatedTime")
		requireRecent(t, m.LastUpdate, "LastUpdate")
		require.True(t, m.SentTime.IsZero())
		require.True(t, m.DeliveredTime.IsZero())
		require.True(t, m.ReceivedTime.IsZero())
		require.Equal(t, "", m.ErrorCode)
		require.Equal(t, "", m.StatusDetails)
		require.Equal(t, "", m.BatchID)
		require.Equal(t, "", m.CampaignID)
		require.Equal(t, "", m.ClientReference)
		require.Equal(t, "", m.CustomField1)
		require.Equal(t, "", m.CustomField2)
		TraceStatuses(t, m.Trace) // well formed, possibly empty
	})

	t.Run("StatusCallback", func(t *testing.T) {
		b := r.setup(t)
		url := "https://app.example/dlr?id=%I&status=%d&to=%p"
		res, err := b.s.MessageInsert(b.ctx, []store.NewMessage{
			{ToAddress: "+31612345678", Body: "with mask", StatusCallback: url, StatusCallbackMask: 1 | 2 | 16},
			{ToAddress: "+31612345679", Body: "every final status", StatusCallback: url},
			{ToAddress: "+31612345670", Body: "none"},
		})
		require.NoError(t, err)
		require.Len(t, res, 3)

		m := Get(t, b.s, res[0].ID)
		require.Equal(t, url, m.StatusCallback)
		require.Equal(t, 19, m.StatusCallbackMask)
		m = Get(t, b.s, res[1].ID)
		require.Equal(t, url, m.StatusCallback)
		require.Zero(t, m.StatusCallbackMask)
		m = Get(t, b.s, res[2].ID)
		require.Empty(t, m.StatusCallback)
		require.Zero(t, m.StatusCallbackMask)

		list, err := b.s.MessageList(b.ctx, store.MessageFilter{Ascending: true})
		require.NoError(t, err)
		require.Len(t, list, 3)
		require.Equal(t, url, list[0].StatusCallback)
		require.Equal(t, 19, list[0].StatusCallbackMask)
	})

	t.Run("EveryField", func(t *testing.T) {
		b := r.setup(t)
		ch := CreateChannel(t, b.s, "every")
		sched := time.Now().UTC().Add(time.Hour).Truncate(time.Millisecond)
		valid := sched.Add(24 * time.Hour)
		ids := Insert(t, b.s, store.NewMessage{
			ToAddress: "+31600000001", FromAddress: "Hermod", FromTON: intp(5), FromNPI: intp(0),
			Body: "héllo ✓", DataCoding: intp(8), ChannelID: ch.ID, Priority: 7,
			ScheduledTime: sched, ValidUntil: valid, NoDeliveryReport: true,
			BatchID: "b1", CampaignID: "c1", ClientReference: "cr1", CustomField1: "x", CustomField2: "y",
		})
		m := Get(t, b.s, ids[0])
		require.Equal(t, "+31600000001", m.ToAddress)
		require.Equal(t, "Hermod", m.FromAddress)
		require.Equal(t, 5, m.FromTON)
		require.Equal(t, 0, m.FromNPI)
		require.Equal(t, "héllo ✓", m.Body)
		require.Equal(t, 8, m.DataCoding)
		require.Equal(t, ch.ID, m.ChannelID)
		require.Equal(t, 7, m.Priority)
		require.True(t, sched.Equal(m.ScheduledTime), "ScheduledTime %s, want %s", m.ScheduledTime, sched)
		require.True(t, valid.Equal(m.ValidUntil), "ValidUntil %s, want %s", m.ValidUntil, valid)
		require.False(t, m.RequestDeliveryReport)
		require.Equal(t, "b1", m.BatchID)
		require.Equal(t, "c1", m.CampaignID)
		require.Equal(t, "cr1", m.ClientReference)
		require.Equal(t, "x", m.CustomField1)
		require.Equal(t, "y", m.CustomField2)
		require.Equal(t, store.StatusScheduled, m.Status)
	})

	t.Run("EmptyBatch", func(t *testing.T) {
		b := r.setup(t)
		res, err := b.s.MessageInsert(b.ctx, nil)
		require.NoError(t, err)
		require.Empty(t, res)
	})

	t.Run("ToAddressRequired", func(t *testing.T) {
		b := r.setup(t)
		_, err := b.s.MessageInsert(b.ctx, []store.NewMessage{{ToAddress: "+31600000001"}, {ToAddress: "", Body: "no recipient"}})
		require.ErrorIs(t, err, store.ErrInvalid)
		require.Contains(t, err.Error(), "ToAddress")
		counts, err := b.s.MessageCountByStatus(b.ctx, "")
		require.NoError(t, err)
		require.Empty(t, counts, "a failed batch inserts nothing")
	})

	t.Run("BatchKeepsOrder", func(t *testing.T) {
		b := r.setup(t)
		ids := InsertN(t, b.s, 300)
		seen := map[int64]bool{}
		for i, id := range ids {
			require.False(t, seen[id])
			seen[id] = true
			if i > 0 {
				require.Greater(t, id, ids[i-1], "IDs grow in batch order")
			}
		}
		require.Equal(t, fmt.Sprintf("+3161234%04d", 299), Get(t, b.s, ids[299]).ToAddress)
	})

	t.Run("ClientReferenceSequential", func(t *testing.T) {
		b := r.setup(t)
		res, err := b.s.MessageInsert(b.ctx, []store.NewMessage{
			{ToAddress: "+1", ClientReference: "order-1"},
			{ToAddress: "+2", ClientReference: "order-2"},
			{ToAddress: "+3", ClientReference: "order-1"}, // same batch
		})
		require.NoError(t, err)
		require.False(t, res[0].Existing)
		require.False(t, res[1].Existing)
		require.True(t, res[2].Existing)
		require.Equal(t, res[0].ID, res[2].ID)
		require.NotEqual(t, res[0].ID, res[1].ID)

		again, err := b.s.MessageInsert(b.ctx, []store.NewMessage{{ToAddress: "+9", ClientReference: "order-2"}, {ToAddress: "+9"}})
		require.NoError(t, err)
		require.True(t, again[0].Existing)
		require.Equal(t, res[1].ID, again[0].ID)
		require.False(t, again[1].Existing)
		require.Equal(t, "+2", Get(t, b.s, res[1].ID).ToAddress, "the existing message is unchanged")

		counts, err := b.s.MessageCountByStatus(b.ctx, "")
		require.NoError(t, err)
		require.Equal(t, 3, counts[store.StatusScheduled])
	})

	t.Run("ClientReferenceConcurrent", func(t *testing.T) {
		b := r.setup(t)
		const n = 8
		var (
			wg      sync.WaitGroup
			results [n]store.InsertResult
			errs    [n]error
		)
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				res, err := b.s.MessageInsert(b.ctx, []store.NewMessage{{ToAddress: fmt.Sprintf("+%d", i), ClientReference: "race"}})
				errs[i] = err
				if err == nil {
					results[i] = res[0]
				}
			})
		}
		close(start)
		wg.Wait()
		fresh := 0
		for i := range n {
			require.NoError(t, errs[i])
			require.Equal(t, results[0].ID, results[i].ID)
			if !results[i].Existing {
				fresh++
			}
		}
		require.Equal(t, 1, fresh, "exactly one insert creates the row")
		counts, err := b.s.MessageCountByStatus(b.ctx, "")
		require.NoError(t, err)
		require.Equal(t, map[string]int{store.StatusScheduled: 1}, counts)
	})
}

func (r *runner) testMessageGet(t *testing.T) {
	t.Run("NotFound", func(t *testing.T) {
		b := r.setup(t)
		_, err := b.s.MessageGet(b.ctx, 987654)
		require.ErrorIs(t, err, store.ErrNotFound)
	})
	t.Run("PartsOfUnsentMessage", func(t *testing.T) {
		b := r.setup(t)
		ids := InsertN(t, b.s, 1)
		parts, err := b.s.MessageParts(b.ctx, ids[0])
		require.NoError(t, err)
		require.Empty(t, parts)
	})
}

func (r *runner) testMessageList(t *testing.T) {
	t.Run("Filters", func(t *testing.T) {
		b := r.setup(t)
		ch := CreateChannel(t, b.s, "list")
		ids := Insert(t, b.s,
			store.NewMessage{ToAddress: "+100", BatchID: "b1"},
			store.NewMessage{ToAddress: "+200", BatchID: "b1", CampaignID: "c1"},
			store.NewMessage{ToAddress: "+300", CampaignID: "c1", ChannelID: ch.ID},
			store.NewMessage{ToAddress: "+100", ScheduledTime: time.Now().Add(time.Hour)},
		)
		in, err := b.s.MessageReceive(b.ctx, []store.Incoming{{ChannelID: ch.ID, FromAddress: "+100", ToAddress: "+999", Body: "in"}})
		require.NoError(t, err)
		_, err = b.s.MessageRoute(b.ctx, store.RouteParams{Limit: 10}) // no channels: +100/+200 NOCHANNEL, +300 QUEUED
		require.NoError(t, err)

		list := func(f store.MessageFilter) []int64 {
			t.Helper()
			ms, err := b.s.MessageList(b.ctx, f)
			require.NoError(t, err)
			return IDs(ms)
		}
		all := []int64{in[0], ids[3], ids[2], ids[1], ids[0]}
		require.Equal(t, all, list(store.MessageFilter{}), "newest first by default")
		require.Equal(t, []int64{ids[0], ids[1], ids[2], ids[3], in[0]}, list(store.MessageFilter{Ascending: true}))
		require.Equal(t, []int64{ids[1], ids[0]}, list(store.MessageFilter{Status: []string{store.StatusNoChannel}}))
		require.Equal(t, []int64{ids[3], ids[2]}, list(store.MessageFilter{Status: []string{store.StatusQueued, store.StatusScheduled}}))
		require.Equal(t, []int64{in[0]}, list(store.MessageFilter{Direction: store.DirectionIn}))
		require.Equal(t, []int64{ids[3], ids[2], ids[1], ids[0]}, list(store.MessageFilter{Direction: store.DirectionOut}))
		require.Equal(t, []int64{in[0], ids[2]}, list(store.MessageFilter{ChannelID: ch.ID}))
		require.Equal(t, []int64{in[0], ids[3], ids[0]}, list(store.MessageFilter{Address: "+100"}), "Address matches To or From")
		require.Equal(t, []int64{ids[1], ids[0]}, list(store.MessageFilter{BatchID: "b1"}))
		require.Equal(t, []int64{ids[2], ids[1]}, list(store.MessageFilter{CampaignID: "c1"}))
		require.Equal(t, []int64{ids[1]}, list(store.MessageFilter{BatchID: "b1", CampaignID: "c1"}), "filters combine with AND")
		require.Equal(t, []int64{in[0], ids[3]}, list(store.MessageFilter{Limit: 2}))
		require.Equal(t, []int64{ids[1], ids[0]}, list(store.MessageFilter{AfterID: ids[2]}))
		require.Equal(t, []int64{ids[3], in[0]}, list(store.MessageFilter{AfterID: ids[2], Ascending: true}))
		require.Empty(t, list(store.MessageFilter{BatchID: "none"}))

		hour := time.Hour
		now := time.Now()
		require.Len(t, list(store.MessageFilter{Since: now.Add(-hour)}), 5)
		require.Empty(t, list(store.MessageFilter{Since: now.Add(hour)}))
		require.Len(t, list(store.MessageFilter{Until: now.Add(hour)}), 5)
		require.Empty(t, list(store.MessageFilter{Until: now.Add(-hour)}))
	})

	t.Run("SinceUntilBoundaries", func(t *testing.T) {
		b := r.setup(t)
		ids := InsertN(t, b.s, 1)
		created := Get(t, b.s, ids[0]).CreatedTime
		ms, err := b.s.MessageList(b.ctx, store.MessageFilter{Since: created})
		require.NoError(t, err)
		require.Equal(t, ids, IDs(ms), "Since is inclusive")
		ms, err = b.s.MessageList(b.ctx, store.MessageFilter{Until: created})
		require.NoError(t, err)
		require.Empty(t, ms, "Until is exclusive")
		ms, err = b.s.MessageList(b.ctx, store.MessageFilter{Until: created.Add(time.Millisecond)})
		require.NoError(t, err)
		require.Equal(t, ids, IDs(ms))
	})

	t.Run("CursorPages", func(t *testing.T) {
		b := r.setup(t)
		ids := InsertN(t, b.s, 25)
		for _, asc := range []bool{false, true} {
			var got []int64
			after := int64(0)
			for page := 0; ; page++ {
				require.Less(t, page, 10)
				ms, err := b.s.MessageList(b.ctx, store.MessageFilter{Ascending: asc, AfterID: after, Limit: 10})
				require.NoError(t, err)
				if len(ms) == 0 {
					break
				}
				require.LessOrEqual(t, len(ms), 10)
				got = append(got, IDs(ms)...)
				after = ms[len(ms)-1].ID
			}
			want := append([]int64(nil), ids...)
			if !asc {
				for i, j := 0, len(want)-1; i < j; i, j = i+1, j-1 {
					want[i], want[j] = want[j], want[i]
				}
			}
			require.Equal(t, want, got, "ascending=%v", asc)
		}
	})

	t.Run("DefaultLimit", func(t *testing.T) {
		b := r.setup(t)
		InsertN(t, b.s, 120)
		ms, err := b.s.MessageList(b.ctx, store.MessageFilter{})
		require.NoError(t, err)
		require.Len(t, ms, 100)
	})
}

func (r *runner) testMessageCancel(t *testing.T) {
	t.Run("ScheduledAndQueued", func(t *testing.T) {
		b := r.setup(t)
		ids := InsertN(t, b.s, 1)
		require.NoError(t, b.s.MessageCancel(b.ctx, ids[0]))
		m := Get(t, b.s, ids[0])
		require.Equal(t, store.StatusCancelled, m.Status)
		RequireTraceEndsWith(t, m, store.StatusCancelled)

		_, queued := Queue(t, b.s, 0, 1)
		require.NoError(t, b.s.MessageCancel(b.ctx, queued[0]))
		require.Equal(t, store.StatusCancelled, Get(t, b.s, queued[0]).Status)
	})
	t.Run("OtherStatusConflict", func(t *testing.T) {
		b := r.setup(t)
		ch, ids := Queue(t, b.s, 0, 1)
		require.Len(t, Claim(t, b.s, ch, "node1", 1), 1)
		err := b.s.MessageCancel(b.ctx, ids[0])
		require.ErrorIs(t, err, store.ErrConflict)
		require.Equal(t, store.StatusSending, Get(t, b.s, ids[0]).Status)

		cancelled := InsertN(t, b.s, 1)
		require.NoError(t, b.s.MessageCancel(b.ctx, cancelled[0]))
		require.ErrorIs(t, b.s.MessageCancel(b.ctx, cancelled[0]), store.ErrConflict, "cancelling twice")
	})
	t.Run("NotFound", func(t *testing.T) {
		b := r.setup(t)
		require.ErrorIs(t, b.s.MessageCancel(b.ctx, 424242), store.ErrNotFound)
	})
}

func (r *runner) testMessageReprocess(t *testing.T) {
	t.Run("ResendFailed", func(t *testing.T) {
		b := r.setup(t)
		ch, ids := Queue(t, b.s, 0, 1)
		require.Len(t, Claim(t, b.s, ch, "node1", 1), 1)
		n, err := b.s.MessageMarkFailed(b.ctx, []store.FailParams{{ID: ids[0], Owner: "node1", ErrorCode: "E1", Error: "rejected"}})
		require.NoError(t, err)
		require.Equal(t, 1, n)

		require.NoError(t, b.s.MessageReprocess(b.ctx, ids[0], true))
		m := Get(t, b.s, ids[0])
		require.Equal(t, store.StatusScheduled, m.Status)
		require.Equal(t, 1, m.Attempts, "Attempts are kept")
		require.Equal(t, "", m.StatusDetails)
		require.Equal(t, "", m.LeaseOwner)
		require.True(t, m.LeaseExpires.IsZero())
		require.True(t, m.NextAttemptTime.IsZero())
		RequireTraceEndsWith(t, m, store.StatusFailed, store.StatusScheduled)

		// It goes round again.
		res, err := b.s.MessageRoute(b.ctx, store.RouteParams{Channels: []int64{ch}, Limit: 10})
		require.NoError(t, err)
		require.Equal(t, 1, res.Queued)
		ms := Claim(t, b.s, ch, "node1", 1)
		require.Len(t, ms, 1)
		require.Equal(t, 2, ms[0].Attempts)
	})
	t.Run("ResendNoChannel", func(t *testing.T) {
		b := r.setup(t)
		ids := InsertN(t, b.s, 1)
		_, err := b.s.MessageRoute(b.ctx, store.RouteParams{Limit: 10})
		require.NoError(t, err)
		require.Equal(t, store.StatusNoChannel, Get(t, b.s, ids[0]).Status)
		require.NoError(t, b.s.MessageReprocess(b.ctx, ids[0], true))
		require.Equal(t, store.StatusScheduled, Get(t, b.s, ids[0]).Status)
	})
	t.Run("ResendConflict", func(t *testing.T) {
		b := r.setup(t)
		_, sent := Send(t, b.s, "node1", "ref1")
		require.ErrorIs(t, b.s.MessageReprocess(b.ctx, sent, true), store.ErrConflict, "SENT")
		ids := InsertN(t, b.s, 1)
		require.ErrorIs(t, b.s.MessageReprocess(b.ctx, ids[0], true), store.ErrConflict, "SCHEDULED")
		require.Equal(t, store.StatusScheduled, Get(t, b.s, ids[0]).Status)
		in, err := b.s.MessageReceive(b.ctx, []store.Incoming{{FromAddress: "+1", ToAddress: "+2", Body: "x"}})
		require.NoError(t, err)
		require.ErrorIs(t, b.s.MessageReprocess(b.ctx, in[0], true), store.ErrConflict, "RECEIVED")
		require.Equal(t, store.StatusReceived, Get(t, b.s, in[0]).Status)
	})
	t.Run("Triggers", func(t *testing.T) {
		b := r.setup(t)
		_, sent := Send(t, b.s, "node1", "ref1")
		require.NoError(t, b.s.MessageReprocess(b.ctx, sent, false))
		m := Get(t, b.s, sent)
		require.Equal(t, store.StatusSent, m.Status, "without resend the status stays")
		require.Equal(t, store.TriggerPending, m.TriggerStatus)
	})
	t.Run("NotFound", func(t *testing.T) {
		b := r.setup(t)
		require.ErrorIs(t, b.s.MessageReprocess(b.ctx, 31337, true), store.ErrNotFound)
		require.ErrorIs(t, b.s.MessageReprocess(b.ctx, 31337, false), store.ErrNotFound)
	})
}

func (r *runner) testMessageCountByStatus(t *testing.T) {
	t.Run("ByDirection", func(t *testing.T) {
		b := r.setup(t)
		counts, err := b.s.MessageCountByStatus(b.ctx, "")
		require.NoError(t, err)
		require.Empty(t, counts)

		ids := InsertN(t, b.s, 3)
		require.NoError(t, b.s.MessageCancel(b.ctx, ids[0]))
		_, err = b.s.MessageReceive(b.ctx, []store.Incoming{{FromAddress: "+1", ToAddress: "+2"}, {FromAddress: "+1", ToAddress: "+2"}})
		require.NoError(t, err)

		counts, err = b.s.MessageCountByStatus(b.ctx, "")
		require.NoError(t, err)
		require.Equal(t, map[string]int{store.StatusScheduled: 2, store.StatusCancelled: 1, store.StatusReceived: 2}, counts)
		counts, err = b.s.MessageCountByStatus(b.ctx, store.DirectionOut)
		require.NoError(t, err)
		require.Equal(t, map[string]int{store.StatusScheduled: 2, store.StatusCancelled: 1}, counts)
		counts, err = b.s.MessageCountByStatus(b.ctx, store.DirectionIn)
		require.NoError(t, err)
		require.Equal(t, map[string]int{store.StatusReceived: 2}, counts)
	})
}
