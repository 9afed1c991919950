package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hermod-sms/hermod/store"
)

// Group commit. A single-message POST costs one transaction, and a
// transaction costs one flush of the database's log to disk: with one
// commit per request the API answers only as many requests per second as
// the disk flushes. The inserter lets concurrent small requests share a
// transaction instead. Requests queue up; one goroutine takes everything
// queued, writes it with one store.MessageInsert, and answers each request
// once that insert has returned. While it writes, the next requests queue
// up, so the group grows with the load and never waits on a timer: a lone
// request is written at once.
const (
	// groupMaxCall is the largest request that is grouped; bigger batches
	// are one transaction on their own already.
	groupMaxCall = 100
	// groupMaxMessages bounds one group (one INSERT statement).
	groupMaxMessages = 1000
	// groupTimeout bounds one group's insert. The group does not use a
	// request's context: one client going away must not fail the others.
	groupTimeout = 30 * time.Second
)

// States of an insertCall.
const (
	callWaiting   int32 = iota // queued
	callTaken                  // in a group being written
	callAbandoned              // its request went away first: not written
)

// insertCall is one request's messages waiting in the inserter's queue.
type insertCall struct {
	msgs     []store.NewMessage
	state    atomic.Int32
	done     chan struct{} // closed when res or err is set
	res      []store.InsertResult
	err      error
	answered bool // done is closed; only the writing goroutine uses it
}

// answer hands the call its outcome.
func (c *insertCall) answer(res []store.InsertResult, err error) {
	c.res, c.err, c.answered = res, err, true
	close(c.done)
}

// inserter groups concurrent inserts into one store.MessageInsert.
type inserter struct {
	store store.Store
	log   *slog.Logger
	// inserted runs after a group was committed (the engine's Nudge).
	inserted func()

	mu      sync.Mutex
	queue   []*insertCall
	running bool // a goroutine is draining the queue
}

// insert stores msgs in a group with other concurrent calls and returns
// their results once the group is committed, or the error that failed it.
// The messages of one call are committed together, or not at all. If ctx
// ends while the call is still queued, nothing is written and ctx's error
// is returned; once its group is being written, the outcome is unknown to
// the caller (as with any request cut off during a commit).
func (ins *inserter) insert(ctx context.Context, msgs []store.NewMessage) ([]store.InsertResult, error) {
	c := &insertCall{msgs: msgs, done: make(chan struct{})}
	ins.mu.Lock()
	ins.queue = append(ins.queue, c)
	if !ins.running {
		ins.running = true
		go ins.drain()
	}
	ins.mu.Unlock()
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		if c.state.CompareAndSwap(callWaiting, callAbandoned) {
			return nil, fmt.Errorf("the request ended before its messages were written, nothing was stored: %w", ctx.Err())
		}
		return nil, fmt.Errorf("the request ended while its messages were being written; they may be stored: %w", ctx.Err())
	}
}

// drain writes groups until the queue is empty, then ends.
func (ins *inserter) drain() {
	for {
		ins.mu.Lock()
		group := ins.take()
		if len(group) == 0 {
			ins.running = false
			ins.mu.Unlock()
			return
		}
		ins.mu.Unlock()
		ins.write(group)
	}
}

// take removes the next group from the queue, in arrival order: at most
// groupMaxMessages messages (but at least one call), and never two calls
// that use the same ClientReference, so that the later one finds the
// earlier one committed and gets the same-content check. Calls left behind
// keep their place. The caller holds mu.
func (ins *inserter) take() []*insertCall {
	var (
		group []*insertCall
		refs  map[string]bool
		n     int
		rest  = ins.queue[:0]
	)
	for i, c := range ins.queue {
		if c.state.Load() == callAbandoned {
			continue
		}
		if len(group) > 0 && n+len(c.msgs) > groupMaxMessages {
			rest = append(rest, ins.queue[i:]...)
			break
		}
		if clashes(refs, c.msgs) {
			rest = append(rest, c)
			continue
		}
		if !c.state.CompareAndSwap(callWaiting, callTaken) {
			continue // abandoned just now
		}
		for j := range c.msgs {
			if ref := c.msgs[j].ClientReference; ref != "" {
				if refs == nil {
					refs = map[string]bool{}
				}
				refs[ref] = true
			}
		}
		group = append(group, c)
		n += len(c.msgs)
	}
	clear(ins.queue[len(rest):]) // drop references for the collector
	ins.queue = rest
	return group
}

// clashes reports whether a message of msgs has a ClientReference in refs.
func clashes(refs map[string]bool, msgs []store.NewMessage) bool {
	if len(refs) == 0 {
		return false
	}
	for i := range msgs {
		if ref := msgs[i].ClientReference; ref != "" && refs[ref] {
			return true
		}
	}
	return false
}

// write inserts a group with one store call and answers its calls. When
// the store refuses the group as invalid, which one message can cause,
// every call is written on its own so that one bad message fails only its
// own request. Any other error fails the whole group: the database is down
// or broken, and trying each call again would only pile on.
//
// A panic in the store fails the calls not yet answered instead of the
// process, as a panic in a handler would.
func (ins *inserter) write(group []*insertCall) {
	defer func() {
		if v := recover(); v != nil {
			ins.log.Error("api: inserting messages panicked", slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
			for _, c := range group {
				if !c.answered {
					c.answer(nil, fmt.Errorf("inserting the messages panicked: %v: %w", v, errStoreBroken))
				}
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	msgs := group[0].msgs
	if len(group) > 1 {
		msgs = make([]store.NewMessage, 0, groupMaxMessages)
		for _, c := range group {
			msgs = append(msgs, c.msgs...)
		}
	}
	res, err := insertChecked(ctx, ins.store, msgs)
	if err == nil {
		ins.inserted()
		for _, c := range group {
			c.answer(res[:len(c.msgs):len(c.msgs)], nil)
			res = res[len(c.msgs):]
		}
		return
	}
	if len(group) == 1 || !errors.Is(err, store.ErrInvalid) {
		for _, c := range group {
			c.answer(nil, err)
		}
		return
	}
	ins.log.Debug("api: a grouped insert was refused; inserting its requests one by one", slog.Int("requests", len(group)), slog.Any("error", err))
	var stored bool
	for _, c := range group {
		res, err := insertChecked(ctx, ins.store, c.msgs)
		c.answer(res, err)
		stored = stored || err == nil
	}
	if stored {
		ins.inserted()
	}
}

// insertChecked calls MessageInsert and checks that it returned one
// result per message.
func insertChecked(ctx context.Context, st store.Store, msgs []store.NewMessage) ([]store.InsertResult, error) {
	res, err := st.MessageInsert(ctx, msgs)
	if err != nil {
		return nil, err
	}
	if len(res) != len(msgs) {
		return nil, fmt.Errorf("the store returned %d results for %d messages: %w", len(res), len(msgs), errStoreBroken)
	}
	return res, nil
}

// errStoreBroken marks a store answer that breaks the store contract.
var errStoreBroken = errors.New("store contract broken")
