package engine

import (
	"fmt"
	"time"
)

// testSignal lets a test wait for something a service did ("rescued",
// "routed", "flushed") instead of sleeping. Outside tests it is never
// initialized and signalling costs one nil check.
type testSignal[T any] struct {
	ch chan T
}

// init makes the signal live. Call it before the service starts.
func (s *testSignal[T]) init() { s.ch = make(chan T, 1000) }

// signal records v if the signal is live; it never blocks.
func (s *testSignal[T]) signal(v T) {
	if s.ch == nil {
		return
	}
	select {
	case s.ch <- v:
	default:
	}
}

// wait returns the next value, or an error after timeout.
func (s *testSignal[T]) wait(timeout time.Duration) (T, error) {
	var zero T
	if s.ch == nil {
		return zero, fmt.Errorf("test signal not initialized")
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case v := <-s.ch:
		return v, nil
	case <-t.C:
		return zero, fmt.Errorf("no signal within %s", timeout)
	}
}
