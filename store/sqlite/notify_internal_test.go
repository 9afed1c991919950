package sqlite

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// syncBuffer is a bytes.Buffer safe for the watcher's goroutine and the
// test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// A watcher that cannot open its connection warns once, retries with
// backoff, and wakes once when it is back, since commits may have been
// missed meanwhile.
func TestNotificationsRecover(t *testing.T) {
	t.Parallel()
	// The directory does not exist yet, so the watcher's connection
	// cannot be opened until the test creates it.
	dir := filepath.Join(t.TempDir(), "later")
	var logs syncBuffer
	s := &Store{
		path:           filepath.Join(dir, "hermod.db"),
		logger:         slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		notifyInterval: 5 * time.Millisecond,
		closed:         make(chan struct{}),
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch := s.Notifications(ctx)

	// Wait for two failed retries (100ms, then 200ms later).
	require.Eventually(t, func() bool {
		return strings.Count(logs.String(), "still failing") >= 2
	}, 5*time.Second, 10*time.Millisecond)
	select {
	case <-ch:
		t.Fatal("woken while failing")
	default:
	}
	require.Equal(t, 1, strings.Count(logs.String(), "level=WARN"), "one warning per outage:\n%s", logs.String())
	require.Contains(t, logs.String(), s.path)

	require.NoError(t, os.Mkdir(dir, 0o700))
	select {
	case _, ok := <-ch:
		require.True(t, ok)
	case <-time.After(5 * time.Second):
		t.Fatalf("no wake-up after recovering:\n%s", logs.String())
	}
	require.Contains(t, logs.String(), "recovered")

	cancel()
	s.watchers.Wait()
	_, ok := <-ch
	require.False(t, ok, "closed after ctx ended")
}
