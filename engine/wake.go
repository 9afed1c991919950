package engine

import (
	"context"
	"sync"
	"time"
)

// broadcast wakes every goroutine waiting on it. Each fire closes the
// current channel and makes a new one, so a waiter that took the channel
// before the fire always sees it.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func newBroadcast() *broadcast { return &broadcast{ch: make(chan struct{})} }

// C returns the channel closed by the next fire.
func (b *broadcast) C() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

// fire wakes every current waiter.
func (b *broadcast) fire() {
	b.mu.Lock()
	close(b.ch)
	b.ch = make(chan struct{})
	b.mu.Unlock()
}

// poller is adaptive polling for one loop: the wait is PollMin while the
// loop finds work and doubles up to PollMax while it finds none.
type poller struct {
	min, max time.Duration
	cur      time.Duration
}

func newPoller(min, max time.Duration) *poller { return &poller{min: min, max: max, cur: min} }

// next returns how long to wait after a round that found work or not.
func (p *poller) next(found bool) time.Duration {
	if found {
		p.cur = p.min
		return p.cur
	}
	d := p.cur
	p.cur = min(2*p.cur, p.max)
	return d
}

// waitWake waits for d, a fire of any of wakes, or the end of ctx or of
// stopping. It reports whether the loop should go on.
func waitWake(ctx context.Context, stopping <-chan struct{}, d time.Duration, wakes ...<-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	var w0, w1, w2 <-chan struct{}
	switch len(wakes) {
	case 3:
		w2 = wakes[2]
		fallthrough
	case 2:
		w1 = wakes[1]
		fallthrough
	case 1:
		w0 = wakes[0]
	}
	select {
	case <-ctx.Done():
		return false
	case <-stopping:
		return false
	case <-t.C:
	case <-w0:
	case <-w1:
	case <-w2:
	}
	return true
}
