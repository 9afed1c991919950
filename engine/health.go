package engine

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/hermod-sms/hermod/store"
)

// health tracks whether the database answers, across every service of an
// engine, so that an outage is logged once when it starts (Warn "database
// unavailable") and once when it ends (Info "database reachable again",
// with its duration), however many calls fail in between.
type health struct {
	log     *slog.Logger
	timeout time.Duration // bounds every call

	mu        sync.Mutex
	down      bool
	since     time.Time
	failures  int
	lastError string
}

func newHealth(log *slog.Logger, timeout time.Duration) *health {
	return &health{log: log, timeout: timeout}
}

// failed records a failed store call. Errors caused by the caller's own
// context ending (a stop) are not outages and are ignored; ctx is the
// context the call ran under.
func (h *health) failed(ctx context.Context, op string, err error) {
	if err == nil || ctx.Err() != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failures++
	h.lastError = err.Error()
	if h.down {
		return
	}
	h.down = true
	h.since = time.Now()
	h.log.Warn("database unavailable", "operation", op, "error", err)
}

// ok records a successful store call that began at start. A call that
// began before the outage was noticed proves nothing about the database
// now, so it does not end the outage.
func (h *health) ok(start time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.down || start.Before(h.since) {
		return
	}
	h.down = false
	h.log.Info("database reachable again",
		"outage", time.Since(h.since).Round(time.Millisecond).String(),
		"failed_calls", h.failures,
		"last_error", h.lastError)
	h.failures = 0
	h.lastError = ""
}

// isDown reports whether the last store call failed.
func (h *health) isDown() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.down
}

// call runs a store call under the store timeout, records its outcome, and
// returns its error. A call that outlives the timeout is an outage like any
// other failure: a silent partition must not hang a service.
func (h *health) call(ctx context.Context, op string, f func(ctx context.Context) error) error {
	start := time.Now()
	callCtx, cancel := ctx, context.CancelFunc(func() {})
	if h.timeout > 0 {
		callCtx, cancel = context.WithTimeout(ctx, h.timeout)
	}
	err := f(callCtx)
	cancel()
	switch {
	case err == nil:
		h.ok(start)
	case errors.Is(err, store.ErrInvalid), errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
		// The database answered and refused: a bug or bad data, not an
		// outage. The caller retries with backoff, so this is rate limited.
		h.ok(start)
		h.log.Error("store call refused", "operation", op, "error", err)
	default:
		h.failed(ctx, op, err)
	}
	return err
}
