package smpp

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/channels"
	"github.com/hermod-sms/hermod/channels/smpp/internal/pdu"
	"github.com/hermod-sms/hermod/channels/smpp/smsctest"
)

// stuckHost is a Host whose database hangs until release is closed.
type stuckHost struct {
	release chan struct{}
	mu      sync.Mutex
	refs    map[string]int
}

func (h *stuckHost) Receive(ctx context.Context, in []channels.Incoming) error { return nil }

func (h *stuckHost) Report(ctx context.Context, reps []channels.Report) error {
	select {
	case <-h.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range reps {
		h.refs[r.Reference]++
	}
	return nil
}

func (h *stuckHost) SetStatus(state, details string) {}
func (h *stuckHost) Logger() *slog.Logger            { return slog.New(slog.DiscardHandler) }

func (h *stuckHost) reported() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.refs)
}

// Regression: a delivery receipt was handed to the report committer with a
// blocking send on the connection's read loop. With the database slow or
// down, the queue filled, the read loop stopped, and the submit_sm_resp
// behind the receipts sat unread until they timed out: every message in
// flight was reported as "no submit_sm_resp" and sent again. Now the read
// loop never waits for the database: receipts that find the queue full are
// answered ESME_RX_T_APPN and the SMSC delivers them again later.
func TestStuckDatabaseDoesNotStallSubmitResponses(t *testing.T) {
	t.Parallel()
	srv, err := smsctest.Start(smsctest.Config{Redeliver: 100 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	settings, _ := json.Marshal(map[string]any{
		"host": srv.Host(), "port": srv.Port(), "systemId": "hermod", "password": "secret",
		"window": 20, "responseTimeout": "2s", "statsInterval": "-1s",
	})
	c, err := newChannel(channels.Config{ID: 1, Name: "stuck", Settings: settings})
	require.NoError(t, err)
	c.reports = make(chan inboundItem, 10) // a small queue: the database is "far behind" at once
	host := &stuckHost{release: make(chan struct{}), refs: map[string]int{}}
	require.NoError(t, c.Start(context.Background(), host))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Stop(ctx)
	})
	require.Eventually(t, func() bool { return c.Stats().Bound == 1 }, 5*time.Second, 10*time.Millisecond)

	const n = 300
	msgs := make([]channels.Message, n)
	for i := range msgs {
		msgs[i] = channels.Message{ID: int64(i + 1), To: fmt.Sprintf("+4479%08d", i), From: "Hermod", Body: "hello", DataCoding: -1, RequestDeliveryReport: true, Attempt: 1}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	res := c.Send(ctx, msgs)
	took := time.Since(start)
	for _, r := range res {
		require.NoError(t, r.Err, "message %d", r.ID)
	}
	require.Less(t, took, 2*time.Second, "submit responses waited for the database")
	st := c.Stats()
	require.Zero(t, st.Timeouts)
	require.Positive(t, st.Deferred, "receipts beyond the queue were deferred")
	require.Positive(t, srv.Acked()[pdu.StatusRxTAppN])

	// The database recovers: every receipt arrives, the deferred ones
	// delivered again by the SMSC.
	close(host.release)
	require.Eventually(t, func() bool { return host.reported() == n }, 20*time.Second, 20*time.Millisecond)
}
