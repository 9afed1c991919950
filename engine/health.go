package engine

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/hermod-sms/hermod/store"
)

// Kinds of Problem.
const (
	// ProblemUnavailable: the database does not answer (an outage).
	ProblemUnavailable = "unavailable"
	// ProblemStatement: the database answers, but a statement fails
	// (store.ErrStatement): its SQL, the data or the schema is wrong.
	ProblemStatement = "statement"
)

// Problem is a database operation of this engine that fails now.
type Problem struct {
	// Operation is the store call, such as "MessageClaim"; "" for an
	// outage, which is the database's, not one call's.
	Operation string
	// Channel is the channel whose call fails; "" for the node's own
	// services (routing, sweeping, ...) and for an outage.
	Channel string
	// Kind is ProblemUnavailable or ProblemStatement.
	Kind string
	// Error is the last error, with the fix when the store knows it.
	Error string
	// Since is when the first call failed.
	Since time.Time
	// FailedCalls counts the calls that failed since then.
	FailedCalls int
}

// Problems returns the database operations of this engine that fail now:
// the outage first, if the database does not answer, then every operation
// whose statement fails, by operation and channel. Empty when all is well.
func (e *Engine) Problems() []Problem { return e.health.problems() }

// health tracks whether the database answers, across every service of an
// engine, so that an outage is logged once when it starts (Warn "database
// unavailable") and once when it ends (Info "database reachable again",
// with its duration), however many calls fail in between. A statement
// that fails on a database that answers (store.ErrStatement) is no outage:
// it is logged once per operation and channel when it starts failing
// (Error "database statement failed") and once when that operation works
// again (Info "database statement works again").
type health struct {
	log     *slog.Logger
	timeout time.Duration // bounds every call

	mu      sync.Mutex
	outage  *incident // nil while the database answers
	failing map[operation]*incident
}

// operation is a store call, of a channel or of the node.
type operation struct{ name, channel string }

// incident is a run of failed calls.
type incident struct {
	since     time.Time
	failures  int
	lastError string
}

func newHealth(log *slog.Logger, timeout time.Duration) *health {
	return &health{log: log, timeout: timeout, failing: map[operation]*incident{}}
}

// unavailable records a call that failed because the database did not
// answer. Errors caused by the caller's own context ending (a stop) are
// not outages and are ignored; ctx is the context the call ran under.
func (h *health) unavailable(ctx context.Context, op operation, err error) {
	if ctx.Err() != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.outage == nil {
		h.outage = &incident{since: time.Now()}
		h.log.Warn("database unavailable", op.attrs("error", err)...)
	}
	h.outage.add(err)
}

// statementFailed records a call whose statement failed on a database that
// answered.
func (h *health) statementFailed(op operation, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	in := h.failing[op]
	if in == nil {
		in = &incident{since: time.Now()}
		h.failing[op] = in
		h.log.Error("database statement failed", op.attrs("error", err)...)
	}
	in.add(err)
}

func (in *incident) add(err error) {
	in.failures++
	in.lastError = err.Error()
}

// answered records a call, begun at start, that the database answered;
// worked says whether op succeeded. A call that began before an incident
// was noticed proves nothing about the database now, so it does not end
// the incident.
func (h *health) answered(start time.Time, op operation, worked bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.outage != nil && !start.Before(h.outage.since) {
		h.log.Info("database reachable again",
			"outage", time.Since(h.outage.since).Round(time.Millisecond).String(),
			"failed_calls", h.outage.failures,
			"last_error", h.outage.lastError)
		h.outage = nil
	}
	if in := h.failing[op]; worked && in != nil && !start.Before(in.since) {
		h.log.Info("database statement works again", op.attrs(
			"failing_for", time.Since(in.since).Round(time.Millisecond).String(),
			"failed_calls", in.failures,
			"last_error", in.lastError)...)
		delete(h.failing, op)
	}
}

// attrs are the log attributes naming op, then more.
func (op operation) attrs(more ...any) []any {
	a := []any{"operation", op.name}
	if op.channel != "" {
		a = append(a, "channel", op.channel)
	}
	return append(a, more...)
}

// isDown reports whether the database does not answer.
func (h *health) isDown() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.outage != nil
}

func (h *health) problems() []Problem {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Problem
	if h.outage != nil {
		out = append(out, h.outage.problem(operation{}, ProblemUnavailable))
	}
	failing := make([]Problem, 0, len(h.failing))
	for op, in := range h.failing {
		failing = append(failing, in.problem(op, ProblemStatement))
	}
	slices.SortFunc(failing, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Operation, b.Operation), cmp.Compare(a.Channel, b.Channel))
	})
	return append(out, failing...)
}

func (in *incident) problem(op operation, kind string) Problem {
	return Problem{Operation: op.name, Channel: op.channel, Kind: kind, Error: in.lastError, Since: in.since.UTC(), FailedCalls: in.failures}
}

// call runs a store call of the node's services; see callFor.
func (h *health) call(ctx context.Context, op string, f func(ctx context.Context) error) error {
	return h.callFor(ctx, op, "", f)
}

// callFor runs the store call op of a channel ("" for the node's services)
// under the store timeout, records its outcome, and returns its error. A
// call that outlives the timeout is an outage like any other failure: a
// silent partition must not hang a service. The caller backs off after
// any error, so that a statement that fails is not run in a tight loop.
func (h *health) callFor(ctx context.Context, op, channel string, f func(ctx context.Context) error) error {
	start := time.Now()
	callCtx, cancel := ctx, context.CancelFunc(func() {})
	if h.timeout > 0 {
		callCtx, cancel = context.WithTimeout(ctx, h.timeout)
	}
	err := f(callCtx)
	cancel()
	o := operation{name: op, channel: channel}
	switch {
	case err == nil:
		h.answered(start, o, true)
	case errors.Is(err, store.ErrInvalid), errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
		// The database answered and refused: a bug or bad data, not an
		// outage. The caller retries with backoff, so this is rate limited.
		h.answered(start, o, false)
		h.log.Error("store call refused", o.attrs("error", err)...)
	case errors.Is(err, store.ErrStatement):
		h.answered(start, o, false)
		h.statementFailed(o, err)
	default:
		h.unavailable(ctx, o, err)
	}
	return err
}
