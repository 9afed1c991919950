package engine

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/store"
)

// A call that hangs (a silent network partition: no reset, no answer) is
// cut off by the store timeout and counts as an outage, logged once.
func TestHealthTimeoutIsAnOutage(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	h := newHealth(slog.New(slog.NewTextHandler(&buf, nil)), 20*time.Millisecond)

	hang := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	for range 3 {
		err := h.call(context.Background(), "MessageClaim", hang)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	}
	require.True(t, h.isDown())
	require.Equal(t, 1, strings.Count(buf.String(), "database unavailable"), buf.String())

	require.NoError(t, h.call(context.Background(), "MessageClaim", func(context.Context) error { return nil }))
	require.False(t, h.isDown())
	require.Equal(t, 1, strings.Count(buf.String(), "database reachable again"), buf.String())
}

// A call stopped by the caller's own context (a shutdown) is no outage.
func TestHealthCallerCancelIsNoOutage(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	h := newHealth(slog.New(slog.NewTextHandler(&buf, nil)), time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := h.call(ctx, "MessageClaim", func(ctx context.Context) error { return errors.Join(ctx.Err()) })
	require.Error(t, err)
	require.False(t, h.isDown())
	require.Empty(t, buf.String())
}

// A statement that fails on a database that answers is no outage: it is
// logged as an Error once per operation and channel, listed in problems,
// and logged again when that operation works.
func TestHealthStatementErrorIsNoOutage(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	h := newHealth(slog.New(slog.NewTextHandler(&buf, nil)), time.Minute)
	ctx := context.Background()
	broken := store.Statement(errors.New(`claim messages: column "leaseowner" does not exist`), store.FixSchema)
	fail := func(context.Context) error { return broken }
	works := func(context.Context) error { return nil }

	for range 3 {
		require.ErrorIs(t, h.callFor(ctx, "MessageClaim", "sim", fail), store.ErrStatement)
		require.ErrorIs(t, h.callFor(ctx, "MessageClaim", "smpp", fail), store.ErrStatement)
		require.ErrorIs(t, h.call(ctx, "MessageRoute", fail), store.ErrStatement)
	}
	require.False(t, h.isDown())
	logs := buf.String()
	require.NotContains(t, logs, "database unavailable")
	require.Equal(t, 3, strings.Count(logs, `level=ERROR msg="database statement failed"`), logs)
	require.Contains(t, logs, `operation=MessageClaim channel=sim error=`)
	require.Contains(t, logs, store.FixSchema)

	ps := h.problems()
	require.Len(t, ps, 3)
	require.Equal(t, []string{"MessageClaim/sim", "MessageClaim/smpp", "MessageRoute/"},
		[]string{ps[0].Operation + "/" + ps[0].Channel, ps[1].Operation + "/" + ps[1].Channel, ps[2].Operation + "/" + ps[2].Channel})
	for _, p := range ps {
		require.Equal(t, ProblemStatement, p.Kind)
		require.Equal(t, 3, p.FailedCalls)
		require.Equal(t, broken.Error(), p.Error)
	}

	// Another operation that works ends nothing; the same one does, once.
	require.NoError(t, h.call(ctx, "MessageRescue", works))
	require.Len(t, h.problems(), 3)
	require.NoError(t, h.callFor(ctx, "MessageClaim", "sim", works))
	require.NoError(t, h.callFor(ctx, "MessageClaim", "sim", works))
	require.Equal(t, 1, strings.Count(buf.String(), `msg="database statement works again" operation=MessageClaim channel=sim`), buf.String())
	require.Len(t, h.problems(), 2)

	// An outage meanwhile is an outage, listed first.
	require.Error(t, h.call(ctx, "MessageRoute", func(context.Context) error { return errors.New("connection refused") }))
	require.True(t, h.isDown())
	require.Equal(t, 1, strings.Count(buf.String(), "database unavailable"))
	ps = h.problems()
	require.Len(t, ps, 3)
	require.Equal(t, ProblemUnavailable, ps[0].Kind)
}
