package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/hermod-sms/hermod/channels"
	"github.com/hermod-sms/hermod/store"
)

// defaultConcurrency is how many Send calls run at once on a channel that
// does not implement channels.Limits.
const defaultConcurrency = 2

// producer claims a channel's QUEUED messages and sends them: Concurrency
// workers, each claiming up to BatchSize messages under a lease (one
// committed statement) and calling Send outside any transaction. Results
// go to the completer.
type producer struct {
	r       *runner
	e       *Engine
	inst    channels.Channel
	batch   int
	workers int

	failed   chan error // the channel panicked or hung; the runner restarts it
	stopping chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup

	sendCtx     context.Context
	cancelSends context.CancelFunc
}

func newProducer(r *runner, inst channels.Channel) *producer {
	p := &producer{
		r:        r,
		e:        r.e,
		inst:     inst,
		batch:    r.e.cfg.ClaimBatch,
		workers:  defaultConcurrency,
		failed:   make(chan error, 1),
		stopping: make(chan struct{}),
	}
	if l, ok := inst.(channels.Limits); ok {
		var b, c int
		_ = safeCall(r.log, "Limits of channel "+r.cfg.Name, func() error {
			b, c = l.BatchSize(), l.Concurrency()
			return nil
		})
		if b > 0 {
			p.batch = min(b, maxClaimBatch)
		}
		if c > 0 {
			p.workers = min(c, 256)
		}
	}
	return p
}

// start runs the workers. ctx ending is a hard stop.
func (p *producer) start(ctx context.Context) {
	p.sendCtx, p.cancelSends = context.WithCancel(ctx)
	for range p.workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.work(ctx)
		}()
	}
}

// stop stops claiming and waits for in-flight sends up to ctx's deadline;
// then it cancels what is still sending.
func (p *producer) stop(ctx context.Context) {
	p.stopOnce.Do(func() { close(p.stopping) })
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		p.cancelSends()
		// A channel that honours its context returns at once; give the
		// results a moment to reach the completer.
		select {
		case <-done:
		case <-time.After(100 * time.Millisecond):
		}
	}
	p.cancelSends()
}

func (p *producer) fail(err error) {
	select {
	case p.failed <- err:
	default:
	}
}

func (p *producer) work(ctx context.Context) {
	e := p.e
	poll := newPoller(e.cfg.PollMin, e.cfg.PollMax)
	bo := e.dbBackoff()
	params := store.ClaimParams{ChannelID: p.r.cfg.ID, Limit: p.batch, Owner: e.node, Lease: e.cfg.Lease}
	for {
		wake := e.producerWake.C()
		select {
		case <-ctx.Done():
			return
		case <-p.stopping:
			return
		default:
		}
		if !e.completer.waitRoom(ctx, p.stopping) {
			return
		}
		// The claim runs under the hard-stop context only: once it has
		// committed, the messages are sent even if Stop comes meanwhile.
		// Each claim holds its own lease owner, "node#n": a result of an
		// older attempt (rescued meanwhile and claimed again, even by this
		// node) no longer matches and cannot overwrite the newer attempt.
		params.Owner = e.node + "#" + strconv.FormatUint(e.claims.Add(1), 36)
		var msgs []*store.Message
		err := e.health.callFor(ctx, "MessageClaim", p.r.cfg.Name, func(ctx context.Context) (err error) {
			msgs, err = e.store.MessageClaim(ctx, params)
			return err
		})
		if err != nil {
			if errors.Is(err, store.ErrStatement) {
				p.r.storeFailed("MessageClaim", err)
			}
			if !waitWake(ctx, p.stopping, bo.next()) {
				return
			}
			continue
		}
		p.r.storeWorks("MessageClaim")
		bo.reset()
		if len(msgs) == 0 {
			if !waitWake(ctx, p.stopping, poll.next(false), wake) {
				return
			}
			continue
		}
		poll.next(true)
		if e.events.active() {
			now := time.Now().UTC()
			evs := make([]Event, len(msgs))
			for i, m := range msgs {
				evs[i] = Event{MessageID: m.ID, Status: store.StatusSending, ChannelID: p.r.cfg.ID, Time: now}
			}
			e.events.publish(evs...)
		}
		if err := p.send(msgs); err != nil {
			p.fail(err)
			return
		}
		if len(msgs) < p.batch && !waitWake(ctx, p.stopping, e.cfg.PollMin, wake) {
			return
		}
	}
}

// sendOutcome is what one guarded Send call gave.
type sendOutcome struct {
	results []channels.Result
	err     error // a panic or a hang: the channel must be restarted
}

// send calls Send on msgs, guarded against panics and hangs, and hands the
// results to the completer. It returns an error when the channel must be
// restarted.
func (p *producer) send(msgs []*store.Message) error {
	e := p.e
	cm := make([]channels.Message, len(msgs))
	for i, m := range msgs {
		cm[i] = channels.Message{
			ID:                    m.ID,
			To:                    m.ToAddress,
			From:                  m.FromAddress,
			FromTON:               m.FromTON,
			FromNPI:               m.FromNPI,
			Body:                  m.Body,
			DataCoding:            m.DataCoding,
			Priority:              m.Priority,
			RequestDeliveryReport: m.RequestDeliveryReport,
			ValidUntil:            m.ValidUntil,
			Attempt:               m.Attempts,
		}
	}
	ctx, cancel := context.WithTimeout(p.sendCtx, e.cfg.SendTimeout)
	defer cancel()
	done := make(chan sendOutcome, 1)
	go func() {
		var res []channels.Result
		err := safeCall(p.r.log, "Send of channel "+p.r.cfg.Name, func() error {
			res = p.inst.Send(ctx, cm)
			return nil
		})
		done <- sendOutcome{results: res, err: err}
	}()
	grace := min(max(e.cfg.SendTimeout/4, 100*time.Millisecond), 5*time.Second)
	timer := time.NewTimer(e.cfg.SendTimeout + grace)
	defer timer.Stop()
	var out sendOutcome
	select {
	case out = <-done:
	case <-timer.C:
		out.err = fmt.Errorf("Send did not return within %s", e.cfg.SendTimeout+grace)
	}
	p.complete(msgs, out)
	return out.err
}

// complete turns a Send's results into completer entries.
func (p *producer) complete(msgs []*store.Message, out sendOutcome) {
	e := p.e
	name := p.r.cfg.Name
	chID := p.r.cfg.ID
	byID := make(map[int64]*channels.Result, len(out.results))
	for i := range out.results {
		r := &out.results[i]
		if r.ID == 0 && i < len(msgs) {
			r.ID = msgs[i].ID // a channel that left ID out answers in order
		}
		byID[r.ID] = r
	}
	for _, m := range msgs {
		var (
			err  error
			code string
		)
		r, ok := byID[m.ID]
		switch {
		case out.err != nil:
			err = fmt.Errorf("outcome unknown: %w", out.err)
		case !ok:
			err = errors.New("the channel returned no result for this message: outcome unknown")
		default:
			err, code = r.Err, r.ErrorCode
		}
		if err == nil {
			parts := make([]store.Part, 0, len(r.Parts))
			for _, cp := range r.Parts {
				parts = append(parts, store.Part{PartNumber: cp.Number, Reference: truncate(cp.Reference, 100)})
			}
			if len(parts) == 0 {
				parts = append(parts, store.Part{PartNumber: 1, Reference: truncate(r.Reference, 100)})
			}
			note := fmt.Sprintf("sent via %s in %d %s (attempt %d)", name, len(parts), plural(len(parts), "part", "parts"), m.Attempts)
			if r.Note != "" {
				note += ": " + r.Note
			}
			e.completer.addSent(chID, store.SentParams{
				ID:        m.ID,
				Owner:     m.LeaseOwner,
				Reference: truncate(r.Reference, 100),
				Parts:     parts,
				Note:      truncate(note, 900),
			})
			continue
		}
		why := err.Error()
		if code != "" {
			why = code + ": " + why
		}
		switch {
		case out.err == nil && channels.IsPermanent(err):
			e.completer.addFailed(chID, store.FailParams{
				ID:        m.ID,
				Owner:     m.LeaseOwner,
				ErrorCode: truncate(code, 64),
				Error:     truncate(fmt.Sprintf("permanent error via %s (attempt %d): %s", name, m.Attempts, why), 900),
			})
		case m.Attempts >= e.cfg.MaxAttempts:
			e.completer.addFailed(chID, store.FailParams{
				ID:        m.ID,
				Owner:     m.LeaseOwner,
				ErrorCode: truncate(code, 64),
				Error:     truncate(fmt.Sprintf("gave up after %d attempts, the last via %s: %s", m.Attempts, name, why), 900),
			})
		default:
			delay := retryDelay(e.cfg.RetryBase, e.cfg.RetryMax, m.Attempts)
			e.completer.addRetry(chID, store.RetryParams{
				ID:        m.ID,
				Owner:     m.LeaseOwner,
				Delay:     delay,
				ErrorCode: truncate(code, 64),
				Error:     truncate(fmt.Sprintf("retry in %s after attempt %d via %s: %s", roundDelay(delay), m.Attempts, name, why), 900),
			})
		}
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// roundDelay rounds a delay for humans: milliseconds below a second,
// else whole seconds.
func roundDelay(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
