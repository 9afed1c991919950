package smpp

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hermod-sms/hermod/channels"
	"github.com/hermod-sms/hermod/channels/smpp/internal/pdu"
)

// errNoBind is returned when no session is bound for longer than bindWait.
var errNoBind = errors.New("no SMPP bind available")

type partState uint8

const (
	partUnsent partState = iota
	partInFlight
	partAccepted
	partDone // failed or skipped
)

type sendPart struct {
	msg        int
	num, total int
	p          *pdu.PDU
	state      partState
	tries      int // resubmissions after a lost response
	sends      int // times written to a connection
	ref        string
}

type sendEvent struct {
	part int
	resp *pdu.PDU
	err  error
}

// sendState is one Send call's bookkeeping.
type sendState struct {
	c       *Channel
	msgs    []channels.Message
	results []channels.Result
	notes   [][]string
	failed  []bool
	parts   []*sendPart
	retry   []int // parts to submit again, in their original order
	next    int   // first part never submitted
	flying  int
	events  chan sendEvent
}

// Send submits msgs in order and returns one Result per message. Each part
// gets its own sequence number; parts of one message go out one after the
// other. A throttled part pauses the whole channel and is submitted again
// before any later part. A part whose response was lost with its
// connection is submitted again (up to partRetries) once a bind is back,
// and the message's Note says it may arrive twice.
func (c *Channel) Send(ctx context.Context, msgs []channels.Message) []channels.Result {
	st := &sendState{c: c, msgs: msgs, results: make([]channels.Result, len(msgs)), notes: make([][]string, len(msgs)), failed: make([]bool, len(msgs))}
	for i, m := range msgs {
		st.results[i].ID = m.ID
		if c.ReceiveOnly() {
			st.results[i].Err = channels.Permanent(errors.New("smpp: the channel has only receiver binds and cannot send (set bindType to transceiver or transmitter)"))
			st.failed[i] = true
			continue
		}
		ps, err := c.buildParts(m)
		if err != nil {
			st.results[i].Err = err
			st.results[i].ErrorCode = "ENCODING"
			st.failed[i] = true
			continue
		}
		for j, p := range ps {
			st.parts = append(st.parts, &sendPart{msg: i, num: j + 1, total: len(ps), p: p})
		}
	}
	st.events = make(chan sendEvent, len(st.parts)+1)
	st.run(ctx)
	return st.finish()
}

func (st *sendState) drain() {
	for {
		select {
		case ev := <-st.events:
			st.handle(ev)
		default:
			return
		}
	}
}

// pick returns the next part to submit: throttled or lost parts first, in
// their original order, then parts never sent. -1: nothing to submit now.
func (st *sendState) pick() int {
	for len(st.retry) > 0 {
		i := st.retry[0]
		st.retry = st.retry[1:]
		if st.failed[st.parts[i].msg] {
			st.parts[i].state = partDone
			continue
		}
		return i
	}
	for st.next < len(st.parts) {
		i := st.next
		st.next++
		if st.failed[st.parts[i].msg] {
			st.parts[i].state = partDone
			continue
		}
		return i
	}
	return -1
}

func (st *sendState) work() bool {
	return len(st.retry) > 0 || st.next < len(st.parts)
}

func (st *sendState) run(ctx context.Context) {
	c := st.c
	for {
		st.drain()
		if !st.work() {
			if st.flying == 0 {
				return
			}
			select {
			case ev := <-st.events:
				st.handle(ev)
			case <-ctx.Done():
				st.abort(ctx.Err())
				return
			}
			continue
		}
		s, cn, err := c.acquireSlot(ctx)
		if err != nil {
			st.abort(err)
			return
		}
		st.drain() // a throttled part that came back while waiting goes first
		i := st.pick()
		if i < 0 {
			s.release(cn)
			continue
		}
		if err := c.bucket.take(ctx); err != nil {
			s.release(cn)
			st.retry = append([]int{i}, st.retry...)
			st.abort(err)
			return
		}
		sp := st.parts[i]
		if sp.sends > 0 {
			c.stats.resubmits.Add(1)
		}
		sp.state = partInFlight
		sp.sends++
		st.flying++
		c.stats.submits.Add(1)
		q := *sp.p // a fresh copy: each submission gets its own sequence number
		cn.send(&q, time.Duration(c.set.ResponseTimeout), func(resp *pdu.PDU, err error) {
			s.release(cn)
			st.events <- sendEvent{part: i, resp: resp, err: err}
		})
	}
}

// acquireSlot waits until the channel is not paused and a bound session
// has room in its window.
func (c *Channel) acquireSlot(ctx context.Context) (*session, *conn, error) {
	var unboundSince time.Time
	for {
		if err := c.waitUnpaused(ctx); err != nil {
			return nil, nil, err
		}
		wake := c.slots.wait()
		anyBound := false
		start := int(c.stats.submits.Load())
		for k := range c.sessions {
			s := c.sessions[(start+k)%len(c.sessions)]
			if cn := s.acquire(); cn != nil {
				if c.paused() {
					s.release(cn)
					anyBound = true
					break
				}
				return s, cn, nil
			}
			if st, _ := s.status(); st == "bound" {
				anyBound = true
			}
		}
		var timeout <-chan time.Time
		var timer *time.Timer
		if !anyBound {
			if unboundSince.IsZero() {
				unboundSince = time.Now()
			}
			left := time.Duration(c.set.BindWait) - time.Since(unboundSince)
			if left <= 0 {
				return nil, nil, fmt.Errorf("%w for %v", errNoBind, time.Duration(c.set.BindWait))
			}
			timer = time.NewTimer(left)
			timeout = timer.C
		} else {
			unboundSince = time.Time{}
		}
		select {
		case <-wake:
		case <-timeout:
		case <-ctx.Done():
			stopTimer(timer)
			return nil, nil, ctx.Err()
		}
		stopTimer(timer)
	}
}

func (st *sendState) insertRetry(i int) {
	at := sort.SearchInts(st.retry, i)
	st.retry = append(st.retry, 0)
	copy(st.retry[at+1:], st.retry[at:])
	st.retry[at] = i
}

func (st *sendState) fail(msg int, err error, code string) {
	if st.failed[msg] && st.results[msg].Err != nil {
		return // the first error says it
	}
	st.failed[msg] = true
	st.results[msg].Err = err
	st.results[msg].ErrorCode = code
}

func (st *sendState) handle(ev sendEvent) {
	c := st.c
	st.flying--
	sp := st.parts[ev.part]
	where := fmt.Sprintf("part %d of %d", sp.num, sp.total)
	if sp.total == 1 {
		where = "submit_sm"
	}
	switch {
	case errors.Is(ev.err, errNotWritten):
		sp.state = partUnsent
		sp.sends--
		st.insertRetry(ev.part)
	case errors.Is(ev.err, errConnLost):
		c.stats.lost.Add(1)
		if sp.tries < c.set.PartRetries && !st.failed[sp.msg] {
			sp.tries++
			st.notes[sp.msg] = append(st.notes[sp.msg], where+": no submit_sm_resp before the connection was lost: submitted again, may be delivered twice")
			st.insertRetry(ev.part)
			return
		}
		sp.state = partDone
		st.fail(sp.msg, fmt.Errorf("%s: no submit_sm_resp: may have been delivered (connection lost %d times)", where, sp.tries+1), "NORESPONSE")
	case ev.err != nil:
		if errors.Is(ev.err, errTimeout) {
			c.stats.timeouts.Add(1)
		}
		sp.state = partDone
		st.fail(sp.msg, fmt.Errorf("%s: no submit_sm_resp: may have been delivered (%w after %v)", where, ev.err, time.Duration(c.set.ResponseTimeout)), "NORESPONSE")
	default:
		status := ev.resp.Status
		c.stats.response(status)
		switch {
		case status == pdu.StatusOK:
			sp.state = partAccepted
			sp.ref = c.ids.normalize(ev.resp.MessageID, c.set.ResponseIDFormat)
			if sp.ref == "" {
				st.notes[sp.msg] = append(st.notes[sp.msg], where+": the SMSC returned no message_id: delivery reports cannot be matched")
			}
		case status == pdu.StatusThrottled || status == pdu.StatusMsgQFul:
			c.pause()
			sp.state = partUnsent
			st.insertRetry(ev.part)
			if len(st.notes[sp.msg]) < 3 {
				st.notes[sp.msg] = append(st.notes[sp.msg], where+": "+pdu.StatusText(status)+": submitted again after a pause")
			}
		default:
			sp.state = partDone
			info := pdu.Status(status)
			err := fmt.Errorf("%s: %s", where, pdu.StatusText(status))
			if !c.classify(status) {
				err = channels.Permanent(err)
			}
			st.fail(sp.msg, err, fmt.Sprintf("%s/0x%X", info.Name, status))
		}
	}
}

// abort ends a Send early: parts never written are temporary failures,
// parts in flight have an unknown outcome.
func (st *sendState) abort(cause error) {
	for _, sp := range st.parts {
		switch sp.state {
		case partUnsent:
			sp.state = partDone
			st.fail(sp.msg, fmt.Errorf("not sent: %w", cause), "NOTSENT")
		case partInFlight:
			st.fail(sp.msg, fmt.Errorf("part %d of %d: no submit_sm_resp: may have been delivered (%w)", sp.num, sp.total, cause), "NORESPONSE")
		}
	}
}

func (st *sendState) finish() []channels.Result {
	for _, sp := range st.parts {
		r := &st.results[sp.msg]
		if sp.state == partAccepted {
			r.Parts = append(r.Parts, channels.Part{Number: sp.num, Reference: sp.ref})
			if sp.num == 1 {
				r.Reference = sp.ref
			}
		}
	}
	for i := range st.results {
		if len(st.notes[i]) > 0 {
			st.results[i].Note = "smpp: " + strings.Join(st.notes[i], "; ")
		}
	}
	return st.results
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}
