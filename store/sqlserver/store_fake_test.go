package sqlserver

import (
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
	"testing"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/store"
)

func TestMessageInsertMapsResults(t *testing.T) {
	t.Parallel()

	// Messages 0 and 2 are new (IDs 10 and 12), message 1 matched an
	// existing ClientReference (ID 5).
	s, srv := newFakeStore(t, func(int, string, []any) fakeAnswer {
		return fakeAnswer{sets: []fakeSet{ids(10, 12), ordIDs(1, 5)}}
	})
	res, err := s.MessageInsert(t.Context(), []store.NewMessage{
		{ToAddress: "+1"}, {ToAddress: "+2", ClientReference: "dup"}, {ToAddress: "+3"},
	})
	require.NoError(t, err)
	require.Equal(t, []store.InsertResult{{ID: 10}, {ID: 5, Existing: true}, {ID: 12}}, res)
	calls, events := srv.snapshot()
	require.Equal(t, []string{"BEGIN", "EXEC", "COMMIT"}, events, "one statement in one transaction")
	require.Len(t, calls[0].args, 4*len(insertColumns), "three messages padded to four")
}

func TestMessageInsertChunksInOneTransaction(t *testing.T) {
	t.Parallel()

	next := int64(0)
	s, srv := newFakeStore(t, func(_ int, _ string, args []any) fakeAnswer {
		n := 0 // the rows that are not padding (ToAddress NULL)
		for i := 0; i < len(args); i += len(insertColumns) {
			if _, ok := args[i].(string); ok {
				n++
			}
		}
		var out []int64
		for range n {
			next++
			out = append(out, next)
		}
		return fakeAnswer{sets: []fakeSet{ids(out...), ordIDs()}}
	})
	msgs := make([]store.NewMessage, 250)
	for i := range msgs {
		msgs[i].ToAddress = fmt.Sprintf("+%d", i)
	}
	res, err := s.MessageInsert(t.Context(), msgs)
	require.NoError(t, err)
	require.Len(t, res, 250)
	for i, r := range res {
		require.Equal(t, int64(i+1), r.ID)
	}
	calls, events := srv.snapshot()
	require.Equal(t, []string{"BEGIN", "EXEC", "EXEC", "EXEC", "EXEC", "COMMIT"}, events, "chunks of 64")
	for _, c := range calls {
		require.LessOrEqual(t, len(c.args), maxParams)
	}
}

func TestMessageInsertRetriesARacedClientReference(t *testing.T) {
	t.Parallel()

	s, srv := newFakeStore(t, func(n int, _ string, _ []any) fakeAnswer {
		if n == 0 {
			return fakeAnswer{err: mssql.Error{Number: 2601, Message: "Cannot insert duplicate key row in object 'hermod.Messages' with unique index 'UX_Messages_ClientReference'."}}
		}
		return fakeAnswer{sets: []fakeSet{ids(), ordIDs(0, 77)}}
	})
	res, err := s.MessageInsert(t.Context(), []store.NewMessage{{ToAddress: "+1", ClientReference: "race"}})
	require.NoError(t, err)
	require.Equal(t, []store.InsertResult{{ID: 77, Existing: true}}, res)
	_, events := srv.snapshot()
	require.Equal(t, []string{"BEGIN", "EXEC", "ROLLBACK", "BEGIN", "EXEC", "COMMIT"}, events)
}

func TestMessageInsertGivesUpAfterThreeConflicts(t *testing.T) {
	t.Parallel()

	s, _ := newFakeStore(t, func(int, string, []any) fakeAnswer {
		return fakeAnswer{err: mssql.Error{Number: 2601, Message: "Cannot insert duplicate key row in object 'hermod.Messages' with unique index 'UX_Messages_ClientReference'."}}
	})
	_, err := s.MessageInsert(t.Context(), []store.NewMessage{{ToAddress: "+1", ClientReference: "race"}})
	require.ErrorIs(t, err, store.ErrConflict)
}

func TestMessageInsertCountMismatch(t *testing.T) {
	t.Parallel()

	s, _ := newFakeStore(t, func(int, string, []any) fakeAnswer {
		return fakeAnswer{sets: []fakeSet{ids(1), ordIDs()}}
	})
	_, err := s.MessageInsert(t.Context(), []store.NewMessage{{ToAddress: "+1"}, {ToAddress: "+2"}})
	require.ErrorContains(t, err, "trigger")
}

func TestMessageInsertValidates(t *testing.T) {
	t.Parallel()

	s, srv := newFakeStore(t, func(int, string, []any) fakeAnswer { return fakeAnswer{} })
	now := time.Now()
	for _, m := range []store.NewMessage{
		{ToAddress: " "},
		{ToAddress: "+1", ChannelID: -1},
		{ToAddress: "+1", ScheduledTime: now, ValidUntil: now.Add(-time.Minute)},
	} {
		_, err := s.MessageInsert(t.Context(), []store.NewMessage{{ToAddress: "+0"}, m})
		require.ErrorIs(t, err, store.ErrInvalid)
		require.ErrorContains(t, err, "message 1 of the batch")
	}
	calls, _ := srv.snapshot()
	require.Empty(t, calls, "nothing reaches the database")
}

func TestDeadlockVictimRunsAgain(t *testing.T) {
	t.Parallel()

	s, srv := newFakeStore(t, func(n int, _ string, _ []any) fakeAnswer {
		if n == 0 {
			return fakeAnswer{err: mssql.Error{Number: 1205, Message: "Transaction (Process ID 51) was deadlocked"}}
		}
		return fakeAnswer{sets: []fakeSet{changeSet(
			[]driver.Value{int64(1), "QUEUED", int64(1)}, []driver.Value{int64(2), "QUEUED", int64(1)}, []driver.Value{int64(3), "queued", int64(1)},
			[]driver.Value{int64(4), "NOCHANNEL", int64(99)}, []driver.Value{int64(5), "EXPIRED", nil}, []driver.Value{int64(6), "EXPIRED", int64(1)},
		)}}
	})
	res, err := s.MessageRoute(t.Context(), store.RouteParams{Channels: []int64{1}, Limit: 10})
	require.NoError(t, err)
	require.Equal(t, store.RouteResult{Queued: 3, NoChannel: 1, Expired: 2, Changes: []store.Change{
		{ID: 1, Status: store.StatusQueued, ChannelID: 1}, {ID: 2, Status: store.StatusQueued, ChannelID: 1}, {ID: 3, Status: store.StatusQueued, ChannelID: 1},
		{ID: 4, Status: store.StatusNoChannel, ChannelID: 99}, {ID: 5, Status: store.StatusExpired}, {ID: 6, Status: store.StatusExpired, ChannelID: 1},
	}}, res, "a status in lower case (Babelfish) is still the store's constant")
	_, events := srv.snapshot()
	require.Equal(t, []string{"BEGIN", "EXEC", "ROLLBACK", "BEGIN", "EXEC", "COMMIT"}, events)
}

func TestMessageCancelPaths(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		name    string
		changed int64
		status  []driver.Value // nil: no such message
		want    error
		msg     string
	}{
		{name: "cancelled", changed: 1},
		{name: "sent", changed: 0, status: []driver.Value{"SENT"}, want: store.ErrConflict, msg: "it is SENT"},
		{name: "missing", changed: 0, want: store.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newFakeStore(t, func(n int, q string, _ []any) fakeAnswer {
				if n == 0 {
					require.Equal(t, cancelSQL, q)
					return oneValue(tc.changed)
				}
				require.Equal(t, messageStatusSQL, q)
				if tc.status == nil {
					return fakeAnswer{sets: []fakeSet{{cols: []string{"Status"}}}}
				}
				return oneValue(tc.status...)
			})
			err := s.MessageCancel(t.Context(), 42)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.want)
			require.ErrorContains(t, err, tc.msg)
		})
	}
}

func TestMessageClaimArguments(t *testing.T) {
	t.Parallel()

	s, srv := newFakeStore(t, func(int, string, []any) fakeAnswer {
		return fakeAnswer{sets: []fakeSet{{cols: strings.Split(strings.Repeat("c,", 33)+"c", ",")}}}
	})
	_, err := s.MessageClaim(t.Context(), store.ClaimParams{ChannelID: 3, Limit: 50000, Owner: "node1", Lease: 90*time.Second + 250*time.Millisecond})
	require.NoError(t, err)
	calls, _ := srv.snapshot()
	require.Len(t, calls, 1)
	require.Equal(t, claimSQL, calls[0].query)
	require.Equal(t, []any{"node1", int32(90), int32(250), int32(3), int64(maxBatch)}, calls[0].args,
		"owner, lease seconds and milliseconds, channel as INT, limit capped far below 5,000")

	_, err = s.MessageClaim(t.Context(), store.ClaimParams{ChannelID: 3, Limit: 5})
	require.ErrorIs(t, err, store.ErrInvalid, "an owner is required")
	ms, err := s.MessageClaim(t.Context(), store.ClaimParams{ChannelID: 3, Owner: "n"})
	require.NoError(t, err)
	require.Empty(t, ms, "Limit 0 claims nothing")
}

func TestMessageMarkSentDeduplicatesAndCounts(t *testing.T) {
	t.Parallel()

	s, srv := newFakeStore(t, func(int, string, []any) fakeAnswer { return oneValue(int64(2)) })
	n, err := s.MessageMarkSent(t.Context(), []store.SentParams{
		{ID: 1, Owner: "a", Reference: "old"},
		{ID: 2, Owner: "a", Reference: "x"},
		{ID: 1, Owner: "a", Reference: "new"},
	})
	require.NoError(t, err)
	require.Equal(t, 2, n)
	calls, _ := srv.snapshot()
	require.Len(t, calls, 1)
	require.Contains(t, calls[0].args, "new")
	require.NotContains(t, calls[0].args, "old", "the last word on a message wins")

	n, err = s.MessageMarkSent(t.Context(), nil)
	require.NoError(t, err)
	require.Zero(t, n)
}

// changeSet is a result set of (ID, Status, ChannelID) rows.
func changeSet(rows ...[]driver.Value) fakeSet {
	return fakeSet{cols: []string{"ID", "Status", "ChannelID"}, rows: rows}
}

func TestMessageMarkSentSettledReadsBothResultSets(t *testing.T) {
	t.Parallel()

	// Three chunks (128 messages each at most): each answers its count and
	// the messages its pending reports settled.
	s, srv := newFakeStore(t, func(n int, q string, _ []any) fakeAnswer {
		require.Contains(t, q, "FROM @settled")
		return fakeAnswer{sets: []fakeSet{
			{cols: []string{"N"}, rows: [][]driver.Value{{int64([]int{128, 128, 44}[n])}}},
			changeSet([]driver.Value{int64(10 + n), "DELIVERED", int64(2)}),
		}}
	})
	ps := make([]store.SentParams, 300)
	for i := range ps {
		ps[i] = store.SentParams{ID: int64(i + 1), Owner: "a", Reference: fmt.Sprint(i)}
	}
	res, err := s.MessageMarkSentSettled(t.Context(), ps)
	require.NoError(t, err)
	require.Equal(t, store.SentResult{Changed: 300, Settled: []store.Change{
		{ID: 10, Status: store.StatusDelivered, ChannelID: 2}, {ID: 11, Status: store.StatusDelivered, ChannelID: 2},
		{ID: 12, Status: store.StatusDelivered, ChannelID: 2},
	}}, res)
	_, events := srv.snapshot()
	require.Equal(t, []string{"BEGIN", "EXEC", "EXEC", "EXEC", "COMMIT"}, events)
}

func TestMessageReportApplySettled(t *testing.T) {
	t.Parallel()

	s, _ := newFakeStore(t, func(int, string, []any) fakeAnswer {
		return fakeAnswer{sets: []fakeSet{
			{cols: []string{"Matched", "Pending"}, rows: [][]driver.Value{{int64(2), int64(1)}}},
			changeSet([]driver.Value{int64(7), "DELIVERED", int64(1)}, []driver.Value{int64(8), "NOTDELIVERED", int64(1)}),
		}}
	})
	res, err := s.MessageReportApply(t.Context(), []store.ReportParams{
		{ChannelID: 1, Reference: "a", Status: store.PartDelivered},
		{ChannelID: 1, Reference: "b", Status: store.PartNotDelivered},
		{ChannelID: 1, Reference: "c", Status: store.PartDelivered},
	})
	require.NoError(t, err)
	require.Equal(t, store.ReportResult{Matched: 2, Pending: 1, Settled: []store.Change{
		{ID: 7, Status: store.StatusDelivered, ChannelID: 1}, {ID: 8, Status: store.StatusNotDelivered, ChannelID: 1},
	}}, res)
}

func TestMessageSweepAndRescueChanges(t *testing.T) {
	t.Parallel()

	s, _ := newFakeStore(t, func(_ int, q string, _ []any) fakeAnswer {
		if q == rescueSQL {
			return fakeAnswer{sets: []fakeSet{changeSet([]driver.Value{int64(5), "QUEUED", int64(3)})}}
		}
		require.Equal(t, sweepSQL, q)
		return fakeAnswer{sets: []fakeSet{
			{cols: []string{"a", "b", "c"}, rows: [][]driver.Value{{int64(1), int64(1), int64(4)}}},
			changeSet([]driver.Value{int64(1), "NOREPORT", int64(3)}, []driver.Value{int64(2), "EXPIRED", int64(3)}),
		}}
	})
	res, err := s.MessageSweep(t.Context(), store.SweepParams{NoReportAfter: time.Hour, PendingReportTTL: time.Hour})
	require.NoError(t, err)
	require.Equal(t, store.SweepResult{NoReport: 1, Expired: 1, PendingDeleted: 4, Changes: []store.Change{
		{ID: 1, Status: store.StatusNoReport, ChannelID: 3}, {ID: 2, Status: store.StatusExpired, ChannelID: 3},
	}}, res)

	rescued, err := s.MessageRescue(t.Context(), 10)
	require.NoError(t, err)
	require.Equal(t, []store.Change{{ID: 5, Status: store.StatusQueued, ChannelID: 3}}, rescued)
}

func TestUnexpectedChangeStatusIsAnError(t *testing.T) {
	t.Parallel()

	s, _ := newFakeStore(t, func(int, string, []any) fakeAnswer {
		return fakeAnswer{sets: []fakeSet{changeSet([]driver.Value{int64(5), "SENDING", int64(3)})}}
	})
	_, err := s.MessageRescue(t.Context(), 10)
	require.ErrorContains(t, err, `unexpected status "SENDING"`)
}

func TestMessageReportApplyValidates(t *testing.T) {
	t.Parallel()

	s, srv := newFakeStore(t, func(int, string, []any) fakeAnswer { return oneValue(int64(1), nil) })
	for _, p := range []store.ReportParams{
		{ChannelID: 1, Reference: "", Status: store.PartDelivered},
		{ChannelID: 1, Reference: "r", Status: "DELIVRD"},
		{ChannelID: 0, Reference: "r", Status: store.PartDelivered},
	} {
		_, err := s.MessageReportApply(t.Context(), []store.ReportParams{p})
		require.ErrorIs(t, err, store.ErrInvalid)
	}
	calls, _ := srv.snapshot()
	require.Empty(t, calls)

	res, err := s.MessageReportApply(t.Context(), []store.ReportParams{{ChannelID: 1, Reference: "r", Status: store.PartDelivered}})
	require.NoError(t, err)
	require.Equal(t, store.ReportResult{Matched: 1}, res, "a NULL count is zero")
}

func TestLeaderElect(t *testing.T) {
	t.Parallel()

	leader := "a"
	s, srv := newFakeStore(t, func(n int, _ string, _ []any) fakeAnswer {
		if n == 0 {
			return fakeAnswer{err: mssql.Error{Number: 2627, Message: "Violation of PRIMARY KEY constraint 'PK_Leaders'."}}
		}
		return oneValue(leader)
	})
	ok, err := s.LeaderElect(t.Context(), store.LeaderParams{Name: "default", Node: "a", TTL: time.Minute})
	require.NoError(t, err)
	require.True(t, ok, "a lost insert race is retried")
	leader = "b"
	ok, err = s.LeaderElect(t.Context(), store.LeaderParams{Name: "default", Node: "a", TTL: time.Minute})
	require.NoError(t, err)
	require.False(t, ok)
	calls, _ := srv.snapshot()
	require.Len(t, calls, 3)
	require.Equal(t, []any{"default", "a", int32(60), int32(0)}, calls[2].args)
}

func TestAPIKeyRevokeArguments(t *testing.T) {
	t.Parallel()

	s, srv := newFakeStore(t, func(int, string, []any) fakeAnswer { return oneValue(int64(0)) })
	require.ErrorIs(t, s.APIKeyRevoke(t.Context(), "crm"), store.ErrNotFound)
	require.ErrorIs(t, s.APIKeyRevoke(t.Context(), "17"), store.ErrNotFound)
	calls, _ := srv.snapshot()
	require.Equal(t, []any{"crm", sql.NullInt64{}}, calls[0].args, "a name that is no number is not tried as an ID")
	require.Equal(t, []any{"17", int64(17)}, calls[1].args, "the name first, then the ID")
}
