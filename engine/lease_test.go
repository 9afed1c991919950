package engine

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/channels"
	"github.com/hermod-sms/hermod/store"
)

// slowSentStore makes every MessageMarkSent take at least delay, as a
// loaded database does.
type slowSentStore struct {
	store.Store
	delay time.Duration
}

func (s slowSentStore) MessageMarkSent(ctx context.Context, p []store.SentParams) (int, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return s.Store.MessageMarkSent(ctx, p)
}

// Regression: producers claimed up to 20,000 messages ahead of the
// completer. With a database that writes results slower than the channel
// sends, claimed rows waited in the completer's queue longer than their
// lease: the rescuer returned them to QUEUED while they were already sent,
// they were sent a second time, and the late MarkSent found them no longer
// SENDING. (Seen with the SMPP channel on a loaded PostgreSQL: messages
// sent twice, and rows cycling through SENDING for minutes.) Producers now
// stop claiming while two chunks of results are unwritten, so a claimed
// message waits for at most a few writes.
func TestSlowResultWritesDoNotExpireLeases(t *testing.T) {
	t.Parallel()
	const n = 10 * completerChunk
	s := slowSentStore{Store: newSQLite(t), delay: time.Second}
	var mu sync.Mutex
	sends := map[int64]int{}
	key := newScript(t, &scriptChannel{send: func(ctx context.Context, msgs []channels.Message) []channels.Result {
		mu.Lock()
		for _, m := range msgs {
			sends[m.ID]++
		}
		mu.Unlock()
		return acceptAll(msgs)
	}})
	ch := createChannel(t, s, "fast", scriptType, map[string]any{"key": key})
	ids := insertN(t, s, n, ch.ID)
	// Writing all n results takes 10 s; the lease is 6 s. A producer that
	// claims everything at once lets the last leases expire.
	b := setup(t, s, func(c *Config) {
		c.Lease = 6 * time.Second
		c.SendTimeout = 3 * time.Second
		c.ClaimBatch = 500
	})
	b.start(t)
	b.engine.Nudge()
	require.Eventually(t, func() bool {
		counts, err := s.MessageCountByStatus(context.Background(), store.DirectionOut)
		return err == nil && counts[store.StatusSent] == n
	}, 60*time.Second, 100*time.Millisecond, "every message SENT")

	require.NotContains(t, b.logs.String(), "rescued messages whose lease expired")
	require.NotContains(t, b.logs.String(), "send results arrived after their lease expired")
	mu.Lock()
	defer mu.Unlock()
	twice := 0
	for _, id := range ids {
		if sends[id] != 1 {
			twice++
		}
	}
	require.Zero(t, twice, "messages sent more or less than once")
	for _, id := range []int64{ids[0], ids[n/2], ids[n-1]} {
		m, err := s.MessageGet(context.Background(), id)
		require.NoError(t, err)
		require.Equal(t, 1, m.Attempts, "message %d:\n%s", id, m.Trace)
	}
}
