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
