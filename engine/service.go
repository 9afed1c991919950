package engine

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"time"
)

// service is the one shape every long-running piece of the engine has.
//
// Start launches the service's goroutines and returns at once. Cancelling
// the context given to Start is a hard stop, as a crash would be: the
// goroutines exit without flushing anything. Stop is the clean stop: it
// finishes or hands back in-flight work within ctx's deadline and returns
// when the goroutines have exited (or the deadline passed).
type service interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context)
}

// loop runs one goroutine for a service and implements the Start/Stop
// bookkeeping: stopping cancels the goroutine's context and waits for it.
type loop struct {
	mu      sync.Mutex
	cancel  context.CancelFunc
	done    chan struct{}
	stopped chan struct{} // closed by Stop before the context is cancelled
}

// start runs run in a goroutine with a context that ends on hard stop
// (parent cancelled) or on Stop. It is an error to start twice.
func (l *loop) start(ctx context.Context, name string, run func(ctx context.Context)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done != nil {
		return fmt.Errorf("engine: %s already started", name)
	}
	runCtx, cancel := context.WithCancel(ctx)
	l.cancel = cancel
	l.done = make(chan struct{})
	l.stopped = make(chan struct{})
	go func() {
		defer close(l.done)
		run(runCtx)
	}()
	return nil
}

// stopping returns a channel closed when Stop was called, so that a loop
// can run its clean-up work before its context is cancelled. It is nil
// before start.
func (l *loop) stopping() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stopped
}

// stop cancels the loop and waits for it up to ctx's deadline.
func (l *loop) stop(ctx context.Context) {
	l.mu.Lock()
	cancel, done := l.cancel, l.done
	l.mu.Unlock()
	if done == nil {
		return
	}
	cancel()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// signal closes the stopping channel without cancelling the loop, so that
// it can finish its work by itself.
func (l *loop) signal() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped == nil {
		return
	}
	select {
	case <-l.stopped:
	default:
		close(l.stopped)
	}
}

// wait waits for the loop's goroutine to exit, up to ctx's deadline, and
// reports whether it did.
func (l *loop) wait(ctx context.Context) bool {
	l.mu.Lock()
	done := l.done
	l.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// cancelNow cancels the loop's context.
func (l *loop) cancelNow() {
	l.mu.Lock()
	cancel := l.cancel
	l.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// drain signals the loop to stop, waits for it to exit by itself up to
// ctx's deadline, then cancels it and waits for it to go. Loops that flush
// on stop use it.
func (l *loop) drain(ctx context.Context) {
	l.signal()
	if !l.wait(ctx) {
		l.cancelNow()
		l.wait(context.Background())
	}
	l.cancelNow()
}

// sleep waits for d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// backoff is exponential backoff with full jitter between min and max.
type backoff struct {
	min, max time.Duration
	attempt  int
}

// next returns the next wait and advances.
func (b *backoff) next() time.Duration {
	d := b.min << min(b.attempt, 30)
	if d > b.max || d <= 0 {
		d = b.max
	}
	b.attempt++
	// Jitter in [d/2, d].
	return d/2 + rand.N(d/2+1)
}

func (b *backoff) reset() { b.attempt = 0 }

// retryDelay is the delay before attempt number attempt+1 of a message
// whose attempt number attempt failed: base * 2^(attempt-1), at most max,
// with up to 20% jitter either way.
func retryDelay(base, max time.Duration, attempt int) time.Duration {
	d := base << min(max0(attempt-1), 30)
	if d > max || d <= 0 {
		d = max
	}
	j := d / 5
	if j > 0 {
		d += rand.N(2*j+1) - j
	}
	return d
}

func max0(n int) int {
	if n < 0 {
		return 0
	}
	return n
}

// safeCall runs f, turning a panic into an error with the stack logged.
func safeCall(log *slog.Logger, what string, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("panic in "+what, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = &panicError{what: what, value: r}
		}
	}()
	return f()
}

// panicError is what a recovered panic becomes.
type panicError struct {
	what  string
	value any
}

func (e *panicError) Error() string { return fmt.Sprintf("panic in %s: %v", e.what, e.value) }
