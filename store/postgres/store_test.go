package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/store"
	"github.com/hermod-sms/hermod/store/postgres"
)

func createChannel(t *testing.T, s *postgres.Store, name string) *store.Channel {
	t.Helper()
	c, err := s.ChannelCreate(testContext(t), store.Channel{Name: name, Type: "simulator", Enabled: true})
	require.NoError(t, err)
	return c
}

func insert(t *testing.T, s *postgres.Store, msgs ...store.NewMessage) []int64 {
	t.Helper()
	res, err := s.MessageInsert(testContext(t), msgs)
	require.NoError(t, err)
	ids := make([]int64, len(res))
	for i, r := range res {
		ids[i] = r.ID
	}
	return ids
}

func get(t *testing.T, s *postgres.Store, id int64) *store.Message {
	t.Helper()
	m, err := s.MessageGet(testContext(t), id)
	require.NoError(t, err)
	return m
}

// traceStatuses returns the STATUS word of each Trace line, checking the
// line format.
func traceStatuses(t *testing.T, trace string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.SplitAfter(trace, "\n") {
		if line == "" {
			continue
		}
		require.True(t, strings.HasSuffix(line, "\n"), "trace line %q ends with a newline", line)
		_, err := time.Parse("2006-01-02 15:04:05.000", line[:23])
		require.NoError(t, err, "trace line %q starts with a timestamp", line)
		out = append(out, strings.Fields(line[24:])[0])
	}
	return out
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)

	_, err := postgres.Open(ctx, "postgres://hermod:s3cret-pw@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", postgres.Options{})
	require.Error(t, err)
	require.Contains(t, err.Error(), "127.0.0.1:1")
	require.NotContains(t, err.Error(), "s3cret-pw")

	_, err = postgres.Open(ctx, "postgres://h:s3cret-pw@127.0.0.1:1/db?sslmode=bogus", postgres.Options{})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cret-pw")

	_, err = postgres.Open(ctx, "postgres://127.0.0.1:1/db", postgres.Options{Schema: "Hermod; DROP"})
	require.ErrorIs(t, err, store.ErrInvalid)
}

func TestMigrations(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := testContext(t)

	current, latest, dirty, err := s.MigrateStatus(ctx)
	require.NoError(t, err)
	require.False(t, dirty)
	require.NotZero(t, latest)
	require.Equal(t, latest, current)

	// Applying again is a no-op, repeatable scripts included.
	require.NoError(t, s.MigrateUp(ctx))

	require.NoError(t, s.MigrateDown(ctx, 0))
	current, _, _, err = s.MigrateStatus(ctx)
	require.NoError(t, err)
	require.Zero(t, current)
	var objects int
	require.NoError(t, s.Pool().QueryRow(ctx, `
SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relname NOT LIKE 'schema_migrations%' AND c.relkind IN ('r', 'S', 'i'))
     + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1)`,
		s.Schema()).Scan(&objects))
	require.Zero(t, objects, "rolling everything back leaves only the migrations table")

	require.NoError(t, s.MigrateUp(ctx))
	insert(t, s, store.NewMessage{ToAddress: "+31600000001", Body: "back"})
}

func TestObjectsLiveInTheSchema(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := testContext(t)
	var n int
	require.NoError(t, s.Pool().QueryRow(ctx, `
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind = 'r'
  AND c.relname IN ('messages', 'messageparts', 'pendingreports', 'channels', 'options', 'nodes', 'leaders', 'apikeys', 'schema_migrations')`,
		s.Schema()).Scan(&n))
	require.Equal(t, 9, n)
}

func TestInsertClientReference(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := testContext(t)

	res, err := s.MessageInsert(ctx, []store.NewMessage{
		{ToAddress: "+31600000001", Body: "a", ClientReference: "k1"},
		{ToAddress: "+31600000002", Body: "b"},
		{ToAddress: "+31600000003", Body: "c", ClientReference: "k1"}, // same batch
	})
	require.NoError(t, err)
	require.False(t, res[0].Existing)
	require.False(t, res[1].Existing)
	require.True(t, res[2].Existing)
	require.Equal(t, res[0].ID, res[2].ID)
	require.NotEqual(t, res[0].ID, res[1].ID)

	again, err := s.MessageInsert(ctx, []store.NewMessage{{ToAddress: "+31600000009", Body: "z", ClientReference: "k1"}})
	require.NoError(t, err)
	require.True(t, again[0].Existing)
	require.Equal(t, res[0].ID, again[0].ID)

	// Racing inserts of one key make one row.
	var wg sync.WaitGroup
	ids := make([]int64, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.MessageInsert(ctx, []store.NewMessage{{ToAddress: "+31600000004", Body: "race", ClientReference: "race"}})
			if err == nil {
				ids[i] = r[0].ID
			}
		}()
	}
	wg.Wait()
	for _, id := range ids {
		require.Equal(t, ids[0], id)
	}
	require.NotZero(t, ids[0])
	counts, err := s.MessageCountByStatus(ctx, store.DirectionOut)
	require.NoError(t, err)
	require.Equal(t, 3, counts[store.StatusScheduled])
}

func TestInsertInvalid(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := testContext(t)

	_, err := s.MessageInsert(ctx, []store.NewMessage{{ToAddress: "", Body: "x"}})
	require.ErrorIs(t, err, store.ErrInvalid)
	require.Contains(t, err.Error(), "ToAddress")

	_, err = s.MessageInsert(ctx, []store.NewMessage{{ToAddress: strings.Repeat("1", 65), Body: "x"}})
	require.ErrorIs(t, err, store.ErrInvalid)

	_, err = s.ChannelCreate(ctx, store.Channel{Name: "bad name!", Type: "simulator"})
	require.ErrorIs(t, err, store.ErrInvalid)
	require.Contains(t, err.Error(), "Name")

	createChannel(t, s, "dup")
	_, err = s.ChannelCreate(ctx, store.Channel{Name: "dup", Type: "simulator"})
	require.ErrorIs(t, err, store.ErrConflict)
}

func TestRoute(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := testContext(t)
	a, b := createChannel(t, s, "a"), createChannel(t, s, "b")

	ids := insert(t, s,
		store.NewMessage{ToAddress: "+31600000001"},
		store.NewMessage{ToAddress: "+31600000002"},
		store.NewMessage{ToAddress: "+31600000003", ChannelID: b.ID},
		store.NewMessage{ToAddress: "+31600000004", ChannelID: 9999},
		store.NewMessage{ToAddress: "+31600000005", ValidUntil: time.Now().Add(-time.Hour)},
		store.NewMessage{ToAddress: "+31600000006", ScheduledTime: time.Now().Add(time.Hour)},
		store.NewMessage{ToAddress: "+31600000007", ScheduledTime: time.Now().Add(-time.Minute)},
	)
	res, err := s.MessageRoute(ctx, store.RouteParams{Channels: []int64{a.ID, b.ID}})
	require.NoError(t, err)
	require.Equal(t, store.RouteResult{Queued: 4, NoChannel: 1, Expired: 1, Changes: res.Changes}, res)
	chans := []int64{a.ID, b.ID}
	require.ElementsMatch(t, []store.Change{
		{ID: ids[0], Status: store.StatusQueued, ChannelID: chans[ids[0]%2]},
		{ID: ids[1], Status: store.StatusQueued, ChannelID: chans[ids[1]%2]},
		{ID: ids[2], Status: store.StatusQueued, ChannelID: b.ID},
		{ID: ids[3], Status: store.StatusNoChannel, ChannelID: 9999},
		{ID: ids[4], Status: store.StatusExpired},
		{ID: ids[6], Status: store.StatusQueued, ChannelID: chans[ids[6]%2]},
	}, res.Changes)

	for _, i := range []int{0, 1, 6} {
		m := get(t, s, ids[i])
		require.Equal(t, store.StatusQueued, m.Status)
		require.Equal(t, chans[ids[i]%2], m.ChannelID, "round robin by ID")
		require.Equal(t, []string{"QUEUED"}, traceStatuses(t, m.Trace))
	}
	require.Equal(t, b.ID, get(t, s, ids[2]).ChannelID)
	m := get(t, s, ids[3])
	require.Equal(t, store.StatusNoChannel, m.Status)
	require.Contains(t, m.StatusDetails, "9999")
	require.Equal(t, store.StatusExpired, get(t, s, ids[4]).Status)
	require.Equal(t, store.StatusScheduled, get(t, s, ids[5]).Status)

	// No channels: unassigned messages have nowhere to go.
	id := insert(t, s, store.NewMessage{ToAddress: "+31600000008"})[0]
	res, err = s.MessageRoute(ctx, store.RouteParams{})
	require.NoError(t, err)
	require.Equal(t, 1, res.NoChannel)
	require.NotEmpty(t, get(t, s, id).StatusDetails)
}

func TestRouteLimitAndConcurrency(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := testContext(t)
	c := createChannel(t, s, "c")
	msgs := make([]store.NewMessage, 300)
	for i := range msgs {
		msgs[i] = store.NewMessage{ToAddress: fmt.Sprintf("+316%08d", i)}
	}
	insert(t, s, msgs...)

	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				r, err := s.MessageRoute(ctx, store.RouteParams{Channels: []int64{c.ID}, Limit: 50})
				if err != nil || r.Queued == 0 {
					return
				}
				mu.Lock()
				total += r.Queued
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 300, total)
}

func TestClaim(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := testContext(t)
	c := createChannel(t, s, "c")
	ids := insert(t, s,
		store.NewMessage{ToAddress: "+31600000001", ChannelID: c.ID},
		store.NewMessage{ToAddress: "+31600000002", ChannelID: c.ID, Priority: 5},
		store.NewMessage{ToAddress: "+31600000003", ChannelID: c.ID},
	)
	_, err := s.MessageRoute(ctx, store.RouteParams{Channels: []int64{c.ID}})
	require.NoError(t, err)

	got, err := s.MessageClaim(ctx, store.ClaimParams{ChannelID: c.ID, Limit: 2, Owner: "n1", Lease: time.Minute})
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, ids[1], got[0].ID, "highest priority first")
	require.Equal(t, ids[0], got[1].ID)
	for _, m := range got {
		require.Equal(t, store.StatusSending, m.Status)
		require.Equal(t, 1, m.Attempts)
		require.Equal(t, "n1", m.LeaseOwner)
		require.WithinDuration(t, m.LastUpdate.Add(time.Minute), m.LeaseExpires, time.Second)
	}

	// Retry with a delay: not claimable until it passes.
	n, err := s.MessageMarkRetry(ctx, []store.RetryParams{{ID: ids[1], Owner: "n1", Delay: time.Hour, ErrorCode: "X", Error: "busy"}})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	// A wrong owner changes nothing.
	n, err = s.MessageMarkFailed(ctx, []store.FailParams{{ID: ids[0], Owner: "other", Error: "no"}})
	require.NoError(t, err)
	require.Zero(t, n)

	got, err = s.MessageClaim(ctx, store.ClaimParams{ChannelID: c.ID, Limit: 10, Owner: "n2", Lease: time.Minute})
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, ids[2], got[0].ID)

	m := get(t, s, ids[1])
	require.Equal(t, store.StatusQueued, m.Status)
	require.Equal(t, "busy", m.StatusDetails)
	require.Equal(t, "X", m.ErrorCode)
	require.Equal(t, []string{"QUEUED", "SENDING", "QUEUED"}, traceStatuses(t, m.Trace))
}

func TestClaimConcurrentDisjoint(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := testContext(t)
	c := createChannel(t, s, "c")
	msgs := make([]store.NewMessage, 400)
	for i := range msgs {
		msgs[i] = store.NewMessage{ToAddress: fmt.Sprintf("+316%08d", i), ChannelID: c.ID}
	}
	insert(t, s, msgs...)
	_, err := s.MessageRoute(ctx, store.RouteParams{Channels: []int64{c.ID}})
	require.NoError(t, err)

	var mu sync.Mutex
	seen := map[int64]string{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("n%d", w)
			for {
				got, err := s.MessageClaim(ctx, store.ClaimParams{ChannelID: c.ID, Limit: 25, Owner: owner, Lease: time.Minute})
				if err != nil || len(got) == 0 {
					return
				}
				mu.Lock()
				for _, m := range got {
					if prev, ok := seen[m.ID]; ok {
						t.Errorf("message %d claimed by %s and %s", m.ID, prev, owner)
					}
					seen[m.ID] = owner
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Len(t, seen, 400)
}

// sendOne inserts, routes and claims one message on c and returns it.
func sendOne(t *testing.T, s *postgres.Store, c *store.Channel) *store.Message {
	t.Helper()
	ctx := testContext(t)
	insert(t, s, store.NewMessage{ToAddress: "+31600000001", ChannelID: c.ID, Body: "long"})
	_, err := s.MessageRoute(ctx, store.RouteParams{Channels: []int64{c.ID}})
	require.NoError(t, err)
	got, err := s.MessageClaim(ctx, store.ClaimParams{ChannelID: c.ID, Limit: 1, Owner: "n1", Lease: time.Minute})
	require.NoError(t, err)
	require.Len(t, got, 1)
	return got[0]
}

func TestReportsMultiPart(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := testContext(t)
	c := createChannel(t, s, "c")
	m := sendOne(t, s, c)

	n, err := s.MessageMarkSent(ctx, []store.SentParams{{ID: m.ID, Owner: "n1", Reference: "r1",
		Parts: []store.Part{{PartNumber: 1, Reference: "r1"}, {PartNumber: 2, Reference: "r2"}, {PartNumber: 3, Reference: "r3"}}}})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	sent := get(t, s, m.ID)
	require.Equal(t, store.StatusSent, sent.Status)
	require.Equal(t, 3, sent.TotalParts)
	require.Equal(t, "r1", sent.Reference)
	require.Empty(t, sent.LeaseOwner)

	// Two parts delivered: still SENT.
	res, err := s.MessageReportApply(ctx, []store.ReportParams{
		{ChannelID: c.ID, Reference: "r1", Status: store.PartDelivered},
		{ChannelID: c.ID, Reference: "r3", Status: store.PartDelivered, DoneTime: time.Now().Add(-time.Second)},
	})
	require.NoError(t, err)
	require.Equal(t, store.ReportResult{Matched: 2}, res)
	require.Equal(t, store.StatusSent, get(t, s, m.ID).Status)

	// The last one, concurrently with a repeat of another: DELIVERED.
	var wg sync.WaitGroup
	for _, ref := range []string{"r2", "r1"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.MessageReportApply(ctx, []store.ReportParams{{ChannelID: c.ID, Reference: ref, Status: store.PartDelivered}})
			require.NoError(t, err)
		}()
	}
	wg.Wait()
	done := get(t, s, m.ID)
	require.Equal(t, store.StatusDelivered, done.Status)
	require.False(t, done.DeliveredTime.IsZero())
	require.Equal(t, []string{"QUEUED", "SENDING", "SENT", "DELIVERED"}, traceStatuses(t, done.Trace))
	parts, err := s.MessageParts(ctx, m.ID)
	require.NoError(t, err)
	require.Len(t, parts, 3)
	for _, p := range parts {
		require.Equal(t, store.PartDelivered, p.Status)
		require.Equal(t, c.ID, p.ChannelID)
	}
}

// TestReportsMultiPartConcurrent applies the reports of the two parts of
// many messages from two sessions at once, in opposite orders, mixed with
// single-part messages: every message must end DELIVERED, whichever
// transaction commits first.
func TestReportsMultiPartConcurrent(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := testContext(t)
	c := createChannel(t, s, "c")
	const n = 200
	msgs := make([]store.NewMessage, n)
	for i := range msgs {
		msgs[i] = store.NewMessage{ToAddress: "+31600000001", ChannelID: c.ID, Body: "two parts"}
	}
	insert(t, s, msgs...)
	_, err := s.MessageRoute(ctx, store.RouteParams{Channels: []int64{c.ID}})
	require.NoError(t, err)
	claimed, err := s.MessageClaim(ctx, store.ClaimParams{ChannelID: c.ID, Limit: n, Owner: "n1", Lease: time.Minute})
	require.NoError(t, err)
	require.Len(t, claimed, n)

	var sent []store.SentParams
	var first, second []store.ReportParams
	for i, m := range claimed {
		ref := fmt.Sprintf("m%d", m.ID)
		if i%3 == 0 { // a single-part message among the multi-part ones
			sent = append(sent, store.SentParams{ID: m.ID, Owner: "n1", Reference: ref})
			first = append(first, store.ReportParams{ChannelID: c.ID, Reference: ref, Status: store.PartDelivered})
			continue
		}
		sent = append(sent, store.SentParams{ID: m.ID, Owner: "n1", Reference: ref + "-1",
			Parts: []store.Part{{PartNumber: 1, Reference: ref + "-1"}, {PartNumber: 2, Reference: ref + "-2"}}})
		first = append(first, store.ReportParams{ChannelID: c.ID, Reference: ref + "-1", Status: store.PartDelivered})
		second = append(second, store.ReportParams{ChannelID: c.ID, Reference: ref + "-2", Status: store.PartDelivered})
	}
	k, err := s.MessageMarkSent(ctx, sent)
	require.NoError(t, err)
	require.Equal(t, n, k)
	slices.Reverse(second)

	// A third session locks the first part of each batch, so that both
	// batches start, wait for it, and then run side by side.
	tx, err := s.Pool().Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(context.WithoutCancel(ctx))
	var blocker int
	require.NoError(t, tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&blocker))
	_, err = tx.Exec(ctx, `SELECT 1 FROM MessageParts WHERE Reference IN ($1, $2) FOR UPDATE`, first[0].Reference, second[0].Reference)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for _, reports := range [][]store.ReportParams{first, second} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := s.MessageReportApply(ctx, reports)
			assert.NoError(t, err)
			assert.Equal(t, len(reports), res.Matched)
		}()
	}
	require.Eventually(t, func() bool {
		var waiting int
		err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, blocker).Scan(&waiting)
		return err == nil && waiting == 2
	}, 10*time.Second, 5*time.Millisecond, "both batches wait for the locked parts")
	require.NoError(t, tx.Rollback(ctx))
	wg.Wait()
	for _, m := range claimed {
		got := get(t, s, m.ID)
		require.Equal(t, store.StatusDelivered, got.Status, "message %d", m.ID)
		require.Equal(t, []string{"QUEUED", "SENDING", "SENT", "DELIVERED"}, traceStatuses(t, got.Trace))
	}
}

func TestReportNotDelivered(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := testContext(t)
	c := createChannel(t, s, "c")
	m := sendOne(t, s, c)
	_, err := s.MessageMarkSent(ctx, []store.SentParams{{ID: m.ID, Owner: "n1", Reference: "r1",
		Parts: []store.Part{{PartNumber: 1, Reference: "r1"}, {PartNumber: 2, Reference: "r2"}}}})
	require.NoError(t, err)
	res, err := s.MessageReportApply(ctx, []store.ReportParams{{ChannelID: c.ID, Reference: "r2", Status: store.PartNotDelivered, ErrorCode: "UNDELIV/001"}})
	require.NoError(t, err)
	require.Equal(t, []store.Change{{ID: m.ID, Status: store.StatusNotDelivered, ChannelID: c.ID}}, res.Settled, "a multi-part message settled by finishMultiPartSQL")
	got := get(t, s, m.ID)
	require.Equal(t, store.StatusNotDelivered, got.Status)
	require.Equal(t, "UNDELIV/001", got.ErrorCode)
}

func TestReportBeforeSubmitResponse(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := testContext(t)
	c := createChannel(t, s, "c")
	m := sendOne(t, s, c)

	res, err := s.MessageReportApply(ctx, []store.ReportParams{{ChannelID: c.ID, Reference: "early", Status: store.PartDelivered}})
	require.NoError(t, err)
	require.Equal(t, store.ReportResult{Pending: 1}, res)

	sr, err := s.MessageMarkSentSettled(ctx, []store.SentParams{{ID: m.ID, Owner: "n1", Reference: "early"}})
	require.NoError(t, err)
	require.Equal(t, store.SentResult{Changed: 1, Settled: []store.Change{{ID: m.ID, Status: store.StatusDelivered, ChannelID: c.ID}}}, sr)
	got := get(t, s, m.ID)
	require.Equal(t, store.StatusDelivered, got.Status)
	require.Equal(t, 1, got.TotalParts)
	require.False(t, got.SentTime.IsZero())
	require.False(t, got.DeliveredTime.IsZero())
	require.Equal(t, []string{"QUEUED", "SENDING", "SENT", "DELIVERED"}, traceStatuses(t, got.Trace))
	parts, err := s.MessageParts(ctx, m.ID)
	require.NoError(t, err)
	require.Len(t, parts, 1)
	require.Equal(t, store.PartDelivered, parts[0].Status)

	// Not delivered, single part: the error comes with it.
	m = sendOne(t, s, c)
	_, err = s.MessageReportApply(ctx, []store.ReportParams{{ChannelID: c.ID, Reference: "early2", Status: store.PartNotDelivered, ErrorCode: "0x0b"}})
	require.NoError(t, err)
	_, err = s.MessageMarkSent(ctx, []store.SentParams{{ID: m.ID, Owner: "n1", Reference: "early2"}})
	require.NoError(t, err)
	got = get(t, s, m.ID)
	require.Equal(t, store.StatusNotDelivered, got.Status)
	require.Equal(t, "0x0b", got.ErrorCode)
	require.Equal(t, "part 1 was not delivered", got.StatusDetails)
	require.True(t, got.DeliveredTime.IsZero())
	require.Equal(t, []string{"QUEUED", "SENDING", "SENT", "NOTDELIVERED"}, traceStatuses(t, got.Trace))

	// Every part of a multi-part message reported early: DELIVERED.
	m = sendOne(t, s, c)
	_, err = s.MessageReportApply(ctx, []store.ReportParams{
		{ChannelID: c.ID, Reference: "mp1", Status: store.PartDelivered},
		{ChannelID: c.ID, Reference: "mp2", Status: store.PartDelivered},
	})
	require.NoError(t, err)
	sr, err = s.MessageMarkSentSettled(ctx, []store.SentParams{{ID: m.ID, Owner: "n1", Reference: "mp1",
		Parts: []store.Part{{PartNumber: 1, Reference: "mp1"}, {PartNumber: 2, Reference: "mp2"}}}})
	require.NoError(t, err)
	require.Equal(t, store.SentResult{Changed: 1, Settled: []store.Change{{ID: m.ID, Status: store.StatusDelivered, ChannelID: c.ID}}}, sr)
	got = get(t, s, m.ID)
	require.Equal(t, store.StatusDelivered, got.Status)
	require.Equal(t, []string{"QUEUED", "SENDING", "SENT", "DELIVERED"}, traceStatuses(t, got.Trace))

	// One part of two reported early: SENT until the other comes.
	m = sendOne(t, s, c)
	_, err = s.MessageReportApply(ctx, []store.ReportParams{{ChannelID: c.ID, Reference: "half1", Status: store.PartDelivered}})
	require.NoError(t, err)
	sr, err = s.MessageMarkSentSettled(ctx, []store.SentParams{{ID: m.ID, Owner: "n1", Reference: "half1",
		Parts: []store.Part{{PartNumber: 1, Reference: "half1"}, {PartNumber: 2, Reference: "half2"}}}})
	require.NoError(t, err)
	require.Equal(t, store.SentResult{Changed: 1}, sr, "nothing settled yet")
	require.Equal(t, store.StatusSent, get(t, s, m.ID).Status)
	res, err = s.MessageReportApply(ctx, []store.ReportParams{{ChannelID: c.ID, Reference: "half2", Status: store.PartDelivered}})
	require.NoError(t, err)
	require.Equal(t, []store.Change{{ID: m.ID, Status: store.StatusDelivered, ChannelID: c.ID}}, res.Settled)
	require.Equal(t, store.StatusDelivered, get(t, s, m.ID).Status)

	var pending int
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM PendingReports`).Scan(&pending))
	require.Zero(t, pending)
}

func TestRescueAndSweep(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := testContext(t)
	c := createChannel(t, s, "c")
	insert(t, s, store.NewMessage{ToAddress: "+31600000001", ChannelID: c.ID})
	_, err := s.MessageRoute(ctx, store.RouteParams{Channels: []int64{c.ID}})
	require.NoError(t, err)
	got, err := s.MessageClaim(ctx, store.ClaimParams{ChannelID: c.ID, Limit: 1, Owner: "dead", Lease: time.Millisecond})
	require.NoError(t, err)
	require.Len(t, got, 1)
	time.Sleep(20 * time.Millisecond)

	rescued, err := s.MessageRescue(ctx, 10)
	require.NoError(t, err)
	require.Equal(t, []store.Change{{ID: got[0].ID, Status: store.StatusQueued, ChannelID: c.ID}}, rescued)
	m := get(t, s, got[0].ID)
	require.Equal(t, store.StatusQueued, m.Status)
	require.Contains(t, m.Trace, "lease of dead expired")

	got, err = s.MessageClaim(ctx, store.ClaimParams{ChannelID: c.ID, Limit: 1, Owner: "n1", Lease: time.Minute})
	require.NoError(t, err)
	require.Equal(t, 2, got[0].Attempts)
	_, err = s.MessageMarkSent(ctx, []store.SentParams{{ID: got[0].ID, Owner: "n1", Reference: "x"}})
	require.NoError(t, err)
	_, err = s.MessageReportApply(ctx, []store.ReportParams{{ChannelID: c.ID, Reference: "stale", Status: store.PartDelivered}})
	require.NoError(t, err)

	res, err := s.MessageSweep(ctx, store.SweepParams{NoReportAfter: time.Nanosecond, PendingReportTTL: time.Nanosecond})
	require.NoError(t, err)
	require.Equal(t, 1, res.NoReport)
	require.Equal(t, 1, res.PendingDeleted)
	require.Equal(t, []store.Change{{ID: got[0].ID, Status: store.StatusNoReport, ChannelID: c.ID}}, res.Changes)
	require.Equal(t, store.StatusNoReport, get(t, s, got[0].ID).Status)

	// A late report still delivers a NOREPORT message.
	_, err = s.MessageReportApply(ctx, []store.ReportParams{{ChannelID: c.ID, Reference: "x", Status: store.PartDelivered}})
	require.NoError(t, err)
	require.Equal(t, store.StatusDelivered, get(t, s, got[0].ID).Status)
}

func TestSweepAppliesRacedPendingReport(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := testContext(t)
	c := createChannel(t, s, "c")
	m := sendOne(t, s, c)
	_, err := s.MessageMarkSent(ctx, []store.SentParams{{ID: m.ID, Owner: "n1", Reference: "r"}})
	require.NoError(t, err)
	// As if the report had been stored while MarkSent was uncommitted.
	_, err = s.Pool().Exec(ctx, `INSERT INTO PendingReports (ChannelID, Reference, Status) VALUES ($1, 'r', 'DELIVERED')`, c.ID)
	require.NoError(t, err)
	res, err := s.MessageSweep(ctx, store.SweepParams{})
	require.NoError(t, err)
	require.Equal(t, []store.Change{
		{ID: m.ID, Status: store.StatusNoReport, ChannelID: c.ID},
		{ID: m.ID, Status: store.StatusDelivered, ChannelID: c.ID},
	}, res.Changes, "NoReportAfter 0 made it NOREPORT first; then the pending report settled it, and the sweep names both in that order")
	require.Equal(t, store.StatusDelivered, get(t, s, m.ID).Status)
}

func TestReceive(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := testContext(t)
	c := createChannel(t, s, "c")
	ids, err := s.MessageReceive(ctx, []store.Incoming{
		{ChannelID: c.ID, FromAddress: "+31611111111", ToAddress: "1234", Body: "one", FromTON: 1, FromNPI: 1},
		{ChannelID: c.ID, FromAddress: "+31622222222", ToAddress: "1234", Body: "two"},
	})
	require.NoError(t, err)
	require.Len(t, ids, 2)
	require.Equal(t, "one", get(t, s, ids[0]).Body)
	m := get(t, s, ids[1])
	require.Equal(t, "two", m.Body)
	require.Equal(t, store.DirectionIn, m.Direction)
	require.Equal(t, store.StatusReceived, m.Status)
	require.False(t, m.ReceivedTime.IsZero())
}

func TestCancelAndReprocess(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := testContext(t)
	id := insert(t, s, store.NewMessage{ToAddress: "+31600000001"})[0]
	require.NoError(t, s.MessageCancel(ctx, id))
	require.ErrorIs(t, s.MessageCancel(ctx, id), store.ErrConflict)
	require.ErrorIs(t, s.MessageCancel(ctx, 424242), store.ErrNotFound)
	require.ErrorIs(t, s.MessageReprocess(ctx, id, true), store.ErrConflict)

	_, err := s.MessageRoute(ctx, store.RouteParams{})
	require.NoError(t, err)
	id2 := insert(t, s, store.NewMessage{ToAddress: "+31600000002"})[0]
	_, err = s.MessageRoute(ctx, store.RouteParams{})
	require.NoError(t, err)
	require.Equal(t, store.StatusNoChannel, get(t, s, id2).Status)
	require.NoError(t, s.MessageReprocess(ctx, id2, true))
	m := get(t, s, id2)
	require.Equal(t, store.StatusScheduled, m.Status)
	require.Empty(t, m.StatusDetails)
}

func TestProcedures(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := testContext(t)
	createChannel(t, s, "smpp1")
	q := s.Pool()
	schema := s.Schema()

	// Called schema-qualified from a session whose search_path does not
	// name the schema.
	conn, err := q.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, `SET search_path = public`)
	require.NoError(t, err)
	defer conn.Exec(context.Background(), `SET search_path = `+schema)

	var id1, id2, id3 int64
	require.NoError(t, conn.QueryRow(ctx, `SELECT `+schema+`.SendMessage('+31612345678', 'hello')`).Scan(&id1))
	require.NoError(t, conn.QueryRow(ctx, `SELECT `+schema+`.SendMessage('+31612345678', 'hello', ClientReference => 'order-1', Channel => 'smpp1', Priority => 3)`).Scan(&id2))
	require.NoError(t, conn.QueryRow(ctx, `SELECT `+schema+`.SendMessage('+31612345678', 'again', ClientReference => 'order-1')`).Scan(&id3))
	require.NotEqual(t, id1, id2)
	require.Equal(t, id2, id3, "an existing ClientReference returns the existing ID")

	m := get(t, s, id2)
	require.Equal(t, "hello", m.Body)
	require.Equal(t, 3, m.Priority)
	require.NotZero(t, m.ChannelID)
	var rows int
	require.NoError(t, q.QueryRow(ctx, `SELECT count(*) FROM Messages WHERE ClientReference = 'order-1'`).Scan(&rows))
	require.Equal(t, 1, rows)

	_, err = conn.Exec(ctx, `SELECT `+schema+`.SendMessage('+31612345678', 'x', Channel => 'nope')`)
	require.ErrorContains(t, err, "nope")

	// Racing calls with one key make one row.
	var wg sync.WaitGroup
	ids := make([]int64, 6)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = q.QueryRow(ctx, `SELECT SendMessage('+31612345678', 'race', ClientReference => 'race-1')`).Scan(&ids[i])
		}()
	}
	wg.Wait()
	for _, id := range ids {
		require.Equal(t, ids[0], id)
	}

	var ok bool
	require.NoError(t, conn.QueryRow(ctx, `SELECT `+schema+`.CancelMessage($1)`, id1).Scan(&ok))
	require.True(t, ok)
	require.Equal(t, store.StatusCancelled, get(t, s, id1).Status)
	require.NoError(t, conn.QueryRow(ctx, `SELECT `+schema+`.CancelMessage($1)`, id1).Scan(&ok))
	require.False(t, ok)
	_, err = conn.Exec(ctx, `SELECT `+schema+`.CancelMessage(987654321)`)
	require.ErrorContains(t, err, "does not exist")
}

func TestNotifications(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	other := newTestStore(t)
	ctx, cancel := context.WithCancel(testContext(t))
	ch := s.Notifications(ctx)

	// The first value says "listening" (anything missed before is worth a look).
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no initial wake-up")
	}

	// Another schema's inserts do not wake this store.
	insert(t, other, store.NewMessage{ToAddress: "+31600000001"})
	select {
	case <-ch:
		t.Fatal("woken by another schema")
	case <-time.After(200 * time.Millisecond):
	}

	// The trigger fires for the stored procedure's insert as well.
	_, err := s.Pool().Exec(ctx, `SELECT SendMessage('+31612345678', 'wake')`)
	require.NoError(t, err)
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no wake-up after an insert")
	}

	cancel()
	select {
	case _, open := <-ch:
		for open {
			_, open = <-ch
		}
	case <-time.After(10 * time.Second):
		t.Fatal("channel not closed after ctx ended")
	}
}

func TestNotificationsClosedWithStore(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	ctx := testContext(t)
	s := newTestStore(t)
	s2, err := postgres.Open(ctx, url, postgres.Options{Schema: s.Schema(), NoMigrate: true})
	require.NoError(t, err)
	ch := s2.Notifications(ctx)
	require.NoError(t, s2.Close())
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, open := <-ch:
			if !open {
				return
			}
		case <-deadline:
			t.Fatal("channel not closed after Close")
		}
	}
}

func TestLeader(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := testContext(t)
	ok, err := s.LeaderElect(ctx, store.LeaderParams{Name: "default", Node: "a", TTL: time.Minute})
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = s.LeaderElect(ctx, store.LeaderParams{Name: "default", Node: "b", TTL: time.Minute})
	require.NoError(t, err)
	require.False(t, ok)
	leader, err := s.LeaderGet(ctx, "default")
	require.NoError(t, err)
	require.Equal(t, "a", leader)
	require.NoError(t, s.LeaderResign(ctx, store.LeaderParams{Name: "default", Node: "a"}))
	ok, err = s.LeaderElect(ctx, store.LeaderParams{Name: "default", Node: "b", TTL: time.Minute})
	require.NoError(t, err)
	require.True(t, ok)
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := testContext(t)
	k, err := s.APIKeyCreate(ctx, store.APIKey{Name: "ci", Prefix: "hk_abc", Hash: strings.Repeat("a", 64), Scopes: "send"})
	require.NoError(t, err)
	require.NotZero(t, k.ID)
	_, err = s.APIKeyCreate(ctx, store.APIKey{Name: "ci", Prefix: "hk_x", Hash: strings.Repeat("b", 64)})
	require.ErrorIs(t, err, store.ErrConflict)
	got, err := s.APIKeyByHash(ctx, strings.Repeat("a", 64))
	require.NoError(t, err)
	require.Equal(t, "ci", got.Name)
	require.NoError(t, s.APIKeyRevoke(ctx, fmt.Sprint(k.ID)))
	got, err = s.APIKeyByHash(ctx, strings.Repeat("a", 64))
	require.NoError(t, err)
	require.False(t, got.RevokedTime.IsZero())
	err = s.APIKeyRevoke(ctx, "nope")
	require.True(t, errors.Is(err, store.ErrNotFound))
}

func TestNotificationsReconnect(t *testing.T) {
	t.Parallel()
	app := fmt.Sprintf("hermod-listen-%d", time.Now().UnixNano())
	s := openTestStore(t, withParam(testURL(t), "application_name", app))
	ctx := testContext(t)
	ch := s.Notifications(ctx)
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no initial wake-up")
	}

	// Kill the listening connection: the listener reconnects and wakes
	// once, since notifications may have been missed meanwhile.
	var killed int
	require.Eventually(t, func() bool {
		err := s.Pool().QueryRow(ctx, `
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE application_name = $1 AND query = 'LISTEN hermod_messages'`, app).Scan(&killed)
		return err == nil && killed == 1
	}, 10*time.Second, 50*time.Millisecond)
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no wake-up after reconnecting")
	}

	insert(t, s, store.NewMessage{ToAddress: "+31600000001"})
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no wake-up after an insert on the new connection")
	}
}

func TestConcurrentOpenMigrates(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	ctx := testContext(t)
	schema := fmt.Sprintf("hermod_t_conc_%d", time.Now().UnixNano()%1_000_000_000)
	stores := make([]*postgres.Store, 3)
	errs := make([]error, len(stores))
	var wg sync.WaitGroup
	for i := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = postgres.Open(ctx, url, postgres.Options{Schema: schema})
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, s := range stores {
			if s != nil {
				s.Close()
			}
		}
	})
	for _, err := range errs {
		require.NoError(t, err)
	}
	t.Cleanup(func() {
		_, err := stores[0].Pool().Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		require.NoError(t, err)
	})
	current, latest, dirty, err := stores[1].MigrateStatus(ctx)
	require.NoError(t, err)
	require.False(t, dirty)
	require.Equal(t, latest, current)
}

func TestDropSchema(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := testContext(t)
	require.NoError(t, s.DropSchema(ctx))
	var n int
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, s.Schema()).Scan(&n))
	require.Zero(t, n)
	_, err := s.MessageGet(ctx, 1)
	require.Error(t, err)
}
