package engine

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/hermod-sms/hermod/store"
)

// completerChunk is the most rows one MessageMark* call writes.
const completerChunk = 1000

// completerMaxPending is how many unwritten results make producers stop
// claiming until the completer catches up. Every unwritten result is a
// message that stays SENDING while its lease runs: a node that claims
// faster than it records lets its own leases expire, and the rescuer then
// sends those messages again. Two chunks keep one write in progress and
// the next one filling, and nothing more.
const completerMaxPending = 2 * completerChunk

// completer collects send results and writes them in batches: per tick one
// MessageMarkSent, one MessageMarkRetry and one MessageMarkFailed call (in
// chunks of completerChunk). A failed write is retried with backoff while
// new results keep coming; a result is never dropped. On Stop it flushes
// what is left within the deadline.
type completer struct {
	e *Engine

	mu      sync.Mutex
	sent    []store.SentParams
	retry   []store.RetryParams
	failed  []store.FailParams
	channel map[int64]int64 // message ID -> channel ID, for events
	wake    chan struct{}
	room    *broadcast // fired after every successful flush

	loop
	flushed testSignal[flushResult]
}

// flushResult counts what one flush wrote.
type flushResult struct {
	Sent, Retry, Failed int
}

func newCompleter(e *Engine) *completer {
	return &completer{e: e, channel: map[int64]int64{}, wake: make(chan struct{}, 1), room: newBroadcast()}
}

func (c *completer) Start(ctx context.Context) error { return c.loop.start(ctx, "completer", c.run) }

// Stop flushes what is pending, retrying until ctx's deadline, or for
// minFinalFlush if the deadline is nearer: results written now are
// messages that are not sent twice.
func (c *completer) Stop(ctx context.Context) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) < minFinalFlush {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), minFinalFlush)
		defer cancel()
	}
	c.loop.drain(ctx)
}

// minFinalFlush is the least time the completer's last flush gets.
const minFinalFlush = 2 * time.Second

// pending returns how many results wait to be written.
func (c *completer) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sent) + len(c.retry) + len(c.failed)
}

// waitRoom blocks while too many results wait, so that producers do not
// run far ahead of the database. It reports false when ctx or stop ended
// the wait.
func (c *completer) waitRoom(ctx context.Context, stopping <-chan struct{}) bool {
	for {
		room := c.room.C()
		if c.pending() < completerMaxPending {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-stopping:
			return false
		case <-room:
		}
	}
}

func (c *completer) addSent(channelID int64, p store.SentParams) {
	c.mu.Lock()
	c.sent = append(c.sent, p)
	c.channel[p.ID] = channelID
	c.mu.Unlock()
	c.poke()
}

func (c *completer) addRetry(channelID int64, p store.RetryParams) {
	c.mu.Lock()
	c.retry = append(c.retry, p)
	c.channel[p.ID] = channelID
	c.mu.Unlock()
	c.poke()
}

func (c *completer) addFailed(channelID int64, p store.FailParams) {
	c.mu.Lock()
	c.failed = append(c.failed, p)
	c.channel[p.ID] = channelID
	c.mu.Unlock()
	c.poke()
}

func (c *completer) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *completer) run(ctx context.Context) {
	e := c.e
	bo := e.dbBackoff()
	stopping := c.stopping()
	for {
		select {
		case <-ctx.Done():
			return // hard stop: nothing is flushed
		case <-stopping:
			c.flushAll(ctx, bo)
			return
		case <-c.wake:
		}
		// Gather results for one tick, then write them together.
		if !waitWake(ctx, nil, e.cfg.FlushInterval) {
			return
		}
		// Write until nothing is left: results that came in meanwhile go
		// in the next round at once.
		for c.pending() > 0 {
			if err := c.flush(ctx); err == nil {
				bo.reset()
				continue
			}
			select {
			case <-ctx.Done():
				return
			case <-stopping:
				// Keep retrying under Stop's deadline.
				c.flushAll(ctx, bo)
				return
			case <-time.After(bo.next()):
			}
		}
	}
}

// flushAll flushes until nothing is pending or ctx ends.
func (c *completer) flushAll(ctx context.Context, bo *backoff) {
	for c.pending() > 0 {
		if err := c.flush(ctx); err == nil {
			bo.reset()
			continue
		}
		if !sleep(ctx, bo.next()) {
			return
		}
	}
}

// flush writes one chunk of each kind. On error the unwritten results stay
// pending, in order.
func (c *completer) flush(ctx context.Context) error {
	e := c.e
	c.mu.Lock()
	sent := c.sent[:min(len(c.sent), completerChunk)]
	retry := c.retry[:min(len(c.retry), completerChunk)]
	failed := c.failed[:min(len(c.failed), completerChunk)]
	c.mu.Unlock()

	began := time.Now()
	var res flushResult
	var err error
	if res.Sent, err = writeResults(c, ctx, "MessageMarkSent", &c.sent, sent, store.StatusSent, sentID, c.markSent); err != nil {
		return err
	}
	if res.Retry, err = writeResults(c, ctx, "MessageMarkRetry", &c.retry, retry, store.StatusQueued, retryID, c.markRetry); err != nil {
		return err
	}
	if res.Failed, err = writeResults(c, ctx, "MessageMarkFailed", &c.failed, failed, store.StatusFailed, failID, c.markFailed); err != nil {
		return err
	}
	c.room.fire()
	c.flushed.signal(res)
	e.log.Debug("send results written", "sent", res.Sent, "retry", res.Retry, "failed", res.Failed, "took", time.Since(began).Round(time.Microsecond).String())
	return nil
}

func sentID(p store.SentParams) int64   { return p.ID }
func retryID(p store.RetryParams) int64 { return p.ID }
func failID(p store.FailParams) int64   { return p.ID }

// writeResults writes batch, the front of the pending list, through write
// (operation op), then publishes its events and drops it from pending. It
// returns how many results it wrote. write returns how many messages it
// changed and the changes beyond status (reports settled by it).
//
// Each kind's events go out as soon as its statement committed, so that a
// later kind's failure does not hold them back, and a delivery report
// applied meanwhile rarely overtakes SENT.
func writeResults[T any](c *completer, ctx context.Context, op string, pending *[]T, batch []T, status string, id func(T) int64,
	write func(context.Context, []T) (int, []store.Change, error)) (int, error) {
	if len(batch) == 0 {
		return 0, nil
	}
	var changed int
	var extra []store.Change
	err := c.e.health.call(ctx, op, func(ctx context.Context) (err error) {
		changed, extra, err = write(ctx, batch)
		return err
	})
	if err != nil {
		return 0, err
	}
	c.warnLost(strings.ToLower(strings.TrimPrefix(op, "MessageMark")), len(batch), changed)

	c.mu.Lock()
	var events []Event
	if c.e.events.active() {
		now := time.Now().UTC()
		events = make([]Event, 0, len(batch)+len(extra))
		for _, p := range batch {
			events = append(events, Event{MessageID: id(p), Status: status, ChannelID: c.channel[id(p)], Time: now})
		}
		for _, ch := range extra {
			events = append(events, Event{MessageID: ch.ID, Status: ch.Status, ChannelID: ch.ChannelID, Time: now})
		}
	}
	for _, p := range batch {
		delete(c.channel, id(p))
	}
	*pending = compact(*pending, len(batch))
	c.mu.Unlock()

	if len(events) > 0 {
		c.e.events.publish(events...)
	}
	return len(batch), nil
}

// markSent writes sent results through store.SentSettler when the store
// implements it, so that the messages early delivery reports settled are
// published too; otherwise through MessageMarkSent.
func (c *completer) markSent(ctx context.Context, sent []store.SentParams) (int, []store.Change, error) {
	if ss, ok := c.e.store.(store.SentSettler); ok {
		res, err := ss.MessageMarkSentSettled(ctx, sent)
		return res.Changed, res.Settled, err
	}
	n, err := c.e.store.MessageMarkSent(ctx, sent)
	return n, nil, err
}

func (c *completer) markRetry(ctx context.Context, retry []store.RetryParams) (int, []store.Change, error) {
	n, err := c.e.store.MessageMarkRetry(ctx, retry)
	return n, nil, err
}

func (c *completer) markFailed(ctx context.Context, failed []store.FailParams) (int, []store.Change, error) {
	n, err := c.e.store.MessageMarkFailed(ctx, failed)
	return n, nil, err
}

// warnLost logs results the store skipped because their message was no
// longer SENDING under this node: its lease expired before the result was
// written, the rescuer returned it to the queue, and it is (or was) sent
// again. A few after an outage are expected; a steady stream means results
// are written slower than leases allow (raise Lease, or find what slows
// the database).
func (c *completer) warnLost(kind string, written, changed int) {
	if changed >= written {
		return
	}
	c.e.log.Warn("send results arrived after their lease expired: the rescuer had already returned those messages to the queue, so they may be sent twice",
		"result", kind, "results", written, "lost", written-changed, "lease", c.e.cfg.Lease.String())
}

// compact drops the first n elements, releasing the backing array when
// the slice empties.
func compact[T any](s []T, n int) []T {
	if n == 0 {
		return s
	}
	if n >= len(s) {
		return nil
	}
	return append(s[:0:0], s[n:]...)
}
