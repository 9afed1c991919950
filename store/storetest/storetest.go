// Package storetest is the conformance suite that every store.Store backend
// passes, in the manner of River's riverdrivertest: one set of tests, no SQL,
// run by each backend's own test package against a fresh database per test.
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			return openFreshStore(t) // migrated, empty, closed by t.Cleanup
//		})
//	}
//
// "Now" is the database's clock, so the suite makes time pass with zero or
// negative durations (an already expired lease, a retry delay of 0) instead
// of sleeping. The few tests that need an absolute instant in the past
// (ValidUntil) read the database's clock from a row's CreatedTime first and
// wait about two seconds.
package storetest

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/store"
)

// Run runs every conformance test against stores made by newStore. Each
// subtest runs in parallel and calls newStore for a store of its own: an
// empty, migrated database that the returned store owns. newStore registers
// the store's cleanup (Close, dropping the database) with t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	r := &runner{newStore: newStore}
	t.Run("Store", r.testStore)
	t.Run("MessageInsert", r.testMessageInsert)
	t.Run("MessageGet", r.testMessageGet)
	t.Run("MessageList", r.testMessageList)
	t.Run("MessageCancel", r.testMessageCancel)
	t.Run("MessageReprocess", r.testMessageReprocess)
	t.Run("MessageCountByStatus", r.testMessageCountByStatus)
	t.Run("MessageRoute", r.testMessageRoute)
	t.Run("MessageClaim", r.testMessageClaim)
	t.Run("MessageMarkSent", r.testMessageMarkSent)
	t.Run("MessageMarkRetry", r.testMessageMarkRetry)
	t.Run("MessageMarkFailed", r.testMessageMarkFailed)
	t.Run("MessageReportApply", r.testMessageReportApply)
	t.Run("MessageRescue", r.testMessageRescue)
	t.Run("MessageSweep", r.testMessageSweep)
	t.Run("MessageReceive", r.testMessageReceive)
	t.Run("Lifecycle", r.testLifecycle)
	t.Run("Channel", r.testChannel)
	t.Run("Node", r.testNode)
	t.Run("Leader", r.testLeader)
	t.Run("Option", r.testOption)
	t.Run("APIKey", r.testAPIKey)
}

type runner struct {
	newStore func(t *testing.T) store.Store
}

// bundle is what one test works with.
type bundle struct {
	ctx context.Context
	s   store.Store
}

// setup marks t parallel and gives it a fresh store.
func (r *runner) setup(t *testing.T) *bundle {
	t.Helper()
	t.Parallel()
	return &bundle{ctx: t.Context(), s: r.newStore(t)}
}

// Helpers that other backends' tests may use.

// Insert inserts msgs in one call and returns their IDs.
func Insert(t testing.TB, s store.Store, msgs ...store.NewMessage) []int64 {
	t.Helper()
	res, err := s.MessageInsert(t.Context(), msgs)
	require.NoError(t, err)
	require.Len(t, res, len(msgs))
	ids := make([]int64, len(res))
	for i, r := range res {
		ids[i] = r.ID
	}
	return ids
}

// InsertN inserts n minimal messages to numbered recipients and returns
// their IDs.
func InsertN(t testing.TB, s store.Store, n int) []int64 {
	t.Helper()
	msgs := make([]store.NewMessage, n)
	for i := range msgs {
		msgs[i] = store.NewMessage{ToAddress: fmt.Sprintf("+3161234%04d", i), Body: fmt.Sprintf("message %d", i)}
	}
	return Insert(t, s, msgs...)
}

// CreateChannel creates an enabled simulator channel.
func CreateChannel(t testing.TB, s store.Store, name string) *store.Channel {
	t.Helper()
	c, err := s.ChannelCreate(t.Context(), store.Channel{Name: name, Type: "simulator", Settings: "{}", Enabled: true})
	require.NoError(t, err)
	require.NotZero(t, c.ID)
	return c
}

// Get returns message id, failing the test if it cannot.
func Get(t testing.TB, s store.Store, id int64) *store.Message {
	t.Helper()
	m, err := s.MessageGet(t.Context(), id)
	require.NoError(t, err)
	return m
}

// Queue creates a channel (when channelID is 0), inserts n messages and
// routes them all to it; it returns the channel's ID and the message IDs.
// It routes every due message, so call it before inserting messages that
// must stay SCHEDULED.
func Queue(t testing.TB, s store.Store, channelID int64, n int) (int64, []int64) {
	t.Helper()
	if channelID == 0 {
		channelID = CreateChannel(t, s, fmt.Sprintf("queue%d", time.Now().UnixNano())).ID
	}
	ids := InsertN(t, s, n)
	res, err := s.MessageRoute(t.Context(), store.RouteParams{Channels: []int64{channelID}, Limit: n + 10})
	require.NoError(t, err)
	require.Equal(t, n, res.Queued)
	return channelID, ids
}

// Claim claims up to limit messages of a channel for owner with a one
// hour lease.
func Claim(t testing.TB, s store.Store, channelID int64, owner string, limit int) []*store.Message {
	t.Helper()
	ms, err := s.MessageClaim(t.Context(), store.ClaimParams{ChannelID: channelID, Limit: limit, Owner: owner, Lease: time.Hour})
	require.NoError(t, err)
	return ms
}

// Send queues one message on a new channel, claims it as owner and marks
// it sent with the given part references; it returns the channel's ID and
// the message's ID.
func Send(t testing.TB, s store.Store, owner string, refs ...string) (int64, int64) {
	t.Helper()
	ch, ids := Queue(t, s, 0, 1)
	ms := Claim(t, s, ch, owner, 1)
	require.Len(t, ms, 1)
	parts := make([]store.Part, len(refs))
	for i, ref := range refs {
		parts[i] = store.Part{PartNumber: i + 1, Reference: ref}
	}
	ref := ""
	if len(refs) > 0 {
		ref = refs[0]
	}
	n, err := s.MessageMarkSent(t.Context(), []store.SentParams{{ID: ids[0], Owner: owner, Reference: ref, Parts: parts}})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	return ch, ids[0]
}

// IDs returns the IDs of ms in their order.
func IDs(ms []*store.Message) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// DBNow reads the database's clock: the CreatedTime of a message it inserts
// for the purpose (to "+0", status CANCELLED so that it stays out of the
// way).
func DBNow(t testing.TB, s store.Store) time.Time {
	t.Helper()
	ids := Insert(t, s, store.NewMessage{ToAddress: "+0", Body: "clock probe"})
	require.NoError(t, s.MessageCancel(t.Context(), ids[0]))
	return Get(t, s, ids[0]).CreatedTime
}

var traceLine = regexp.MustCompile(`^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} ([A-Z]+)( .*)?$`)

// TraceStatuses checks that every line of a Messages.Trace has the form
// "2006-01-02 15:04:05.000 STATUS text" and returns the statuses in order.
func TraceStatuses(t testing.TB, trace string) []string {
	t.Helper()
	if trace == "" {
		return nil
	}
	require.True(t, strings.HasSuffix(trace, "\n"), "a Trace ends with a newline: %q", trace)
	var out []string
	for _, line := range strings.Split(strings.TrimSuffix(trace, "\n"), "\n") {
		m := traceLine.FindStringSubmatch(line)
		require.NotNil(t, m, "Trace line %q is not \"2006-01-02 15:04:05.000 STATUS text\"", line)
		out = append(out, m[1])
	}
	return out
}

// RequireTraceEndsWith checks that the last lines of a message's Trace are
// for these statuses, in this order.
func RequireTraceEndsWith(t testing.TB, m *store.Message, statuses ...string) {
	t.Helper()
	got := TraceStatuses(t, m.Trace)
	require.GreaterOrEqual(t, len(got), len(statuses), "Trace %q", m.Trace)
	require.Equal(t, statuses, got[len(got)-len(statuses):], "Trace %q", m.Trace)
}

// requireRecent checks that a database time is set and within a minute of
// this machine's clock (backends may run elsewhere).
func requireRecent(t testing.TB, tm time.Time, what string) {
	t.Helper()
	require.False(t, tm.IsZero(), "%s is not set", what)
	require.Equal(t, time.UTC, tm.Location(), "%s is UTC", what)
	require.WithinDuration(t, time.Now(), tm, time.Minute, "%s", what)
}

// RequireChanges checks that got names exactly the transitions in want,
// in any order (store.Change lists are unordered).
func RequireChanges(t testing.TB, want, got []store.Change, msgAndArgs ...any) {
	t.Helper()
	require.ElementsMatch(t, want, got, msgAndArgs...)
}

// changes builds the store.Change of each id with one status and channel.
func changes(status string, channelID int64, ids ...int64) []store.Change {
	out := make([]store.Change, len(ids))
	for i, id := range ids {
		out[i] = store.Change{ID: id, Status: status, ChannelID: channelID}
	}
	return out
}

func intp(v int) *int { return &v }

// RequireStatement checks that err is a statement error (store.ErrStatement)
// and no other store error, and that its text holds fix and contains.
func RequireStatement(t testing.TB, err error, fix string, contains ...string) {
	t.Helper()
	require.ErrorIs(t, err, store.ErrStatement)
	for _, other := range []error{store.ErrInvalid, store.ErrConflict, store.ErrNotFound} {
		require.NotErrorIs(t, err, other)
	}
	require.Contains(t, err.Error(), fix)
	for _, c := range contains {
		require.Contains(t, err.Error(), c)
	}
}

// RequireOutage checks that err is an error and none of the store errors:
// the database did not answer.
func RequireOutage(t testing.TB, err error) {
	t.Helper()
	require.Error(t, err)
	for _, sentinel := range []error{store.ErrStatement, store.ErrInvalid, store.ErrConflict, store.ErrNotFound} {
		require.NotErrorIs(t, err, sentinel)
	}
}
