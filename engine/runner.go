package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hermod-sms/hermod/channels"
	"github.com/hermod-sms/hermod/store"
)

// channelStartTimeout bounds Channel.Start, which should return quickly.
const channelStartTimeout = 30 * time.Second

// channelStopTimeout is the least time Channel.Stop gets, even when the
// engine's stop deadline has passed.
const channelStopTimeout = time.Second

// runner runs one channel: it builds and starts it, runs its producer,
// restarts it with backoff when it fails to start, panics or hangs, and
// stops it.
type runner struct {
	channelBase
	host *host

	ownStatus atomic.Bool // the channel set its own status since it started

	mu   sync.Mutex
	inst channels.Channel
	prod *producer
}

func newRunner(s *supervisor, c *store.Channel) *runner {
	r := &runner{channelBase: newChannelBase(s, c)}
	r.host = &host{r: r}
	return r
}

func (r *runner) Start(ctx context.Context) error {
	return r.startLoop(ctx, "channel "+r.cfg.Name, r.run)
}

// channelBase is what a runner and a childRunner share: the channel's row,
// its logger, the loop that runs it, and the status it publishes.
type channelBase struct {
	s   *supervisor
	e   *Engine
	cfg store.Channel // the row it was started from
	log *slog.Logger
	loop

	// broken holds the channel's store calls whose statement fails; while
	// there is one, the channel's state shows it (storeFailed) instead of
	// state. nBroken is its size, read without the lock.
	nBroken        atomic.Int32
	statusMu       sync.Mutex
	broken         map[string]bool
	state, details string // the last state the channel and its runner published
}

func newChannelBase(s *supervisor, c *store.Channel) channelBase {
	return channelBase{s: s, e: s.e, cfg: *c, log: s.e.log.With("channel", c.Name)}
}

func (b *channelBase) name() string { return b.cfg.Name }

// sameConfig reports whether c would run the same way as the row it was
// started from.
func (b *channelBase) sameConfig(c *store.Channel) bool {
	return c.Name == b.cfg.Name && c.Type == b.cfg.Type && c.Settings == b.cfg.Settings && c.Node == b.cfg.Node
}

// startLoop starts run in the loop, counted in the supervisor's runnerWG.
func (b *channelBase) startLoop(ctx context.Context, label string, run func(context.Context)) error {
	b.s.runnerWG.Add(1)
	err := b.loop.start(ctx, label, func(ctx context.Context) {
		defer b.s.runnerWG.Done()
		run(ctx)
	})
	if err != nil {
		b.s.runnerWG.Done()
	}
	return err
}

// setStatus publishes the channel's state on this node. While a statement
// of the channel's store calls fails, that error stays shown instead of a
// state that is not an error: the state is published when the call works
// again.
func (b *channelBase) setStatus(state, details string) {
	b.statusMu.Lock()
	defer b.statusMu.Unlock()
	b.state, b.details = state, details
	if len(b.broken) > 0 && state != channelError && state != channelStopped {
		return
	}
	b.publishStatus(state, details)
}

func (b *channelBase) publishStatus(state, details string) {
	b.s.status.set(store.ChannelStatusParams{ID: b.cfg.ID, Node: b.e.node, Status: state, Details: truncate(details, 1000)})
}

// storeFailed shows err, a statement error (store.ErrStatement) of the
// channel's store call op, as the channel's state "error": the channel
// runs, but cannot claim (or store) its messages until someone fixes the
// statement, the data or the schema.
func (b *channelBase) storeFailed(op string, err error) {
	b.statusMu.Lock()
	defer b.statusMu.Unlock()
	if b.broken[op] {
		return
	}
	if b.broken == nil {
		b.broken = map[string]bool{}
	}
	b.broken[op] = true
	b.nBroken.Store(int32(len(b.broken)))
	b.publishStatus(channelError, op+" fails: "+err.Error())
}

// storeWorks ends what storeFailed showed for op: once no call of the
// channel fails, its own state is published again.
func (b *channelBase) storeWorks(op string) {
	if b.nBroken.Load() == 0 {
		return
	}
	b.statusMu.Lock()
	defer b.statusMu.Unlock()
	if !b.broken[op] {
		return
	}
	delete(b.broken, op)
	b.nBroken.Store(int32(len(b.broken)))
	if len(b.broken) == 0 {
		b.publishStatus(b.state, b.details)
	}
}

// publishStopped publishes the final state after Stop and tells the supervisor.
func (b *channelBase) publishStopped() {
	b.setStatus(channelStopped, "")
	b.loop.cancelNow()
	b.s.exited.signal(b.cfg.Name)
}

// startFailed logs and publishes a failed start (or restart) and waits d.
// It reports false when ctx or stopping ended the wait.
func (b *channelBase) startFailed(ctx context.Context, stopping <-chan struct{}, msg string, d time.Duration, err error) bool {
	b.log.Error(msg, "retry_in", d.Round(time.Millisecond).String(), "error", err)
	b.setStatus(channelError, err.Error())
	b.s.failed.signal(b.cfg.Name)
	return waitWake(ctx, stopping, d)
}

// restartDelay is the wait before a restart of a channel that ran since
// startedAt: the backoff's next step, from its first again when the channel
// ran long enough to count as healthy.
func restartDelay(bo *backoff, startedAt time.Time) time.Duration {
	if time.Since(startedAt) > 2*bo.max {
		bo.reset()
	}
	return bo.next()
}

// stopGrace is how long a stop may wait: until ctx's deadline, and at least
// channelStopTimeout.
func stopGrace(ctx context.Context) time.Duration {
	grace := channelStopTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) > grace {
		grace = time.Until(d)
	}
	return grace
}

// Stop stops claiming, waits for in-flight sends up to ctx's deadline,
// then stops the channel.
func (r *runner) Stop(ctx context.Context) {
	r.loop.signal()
	r.loop.wait(ctx)
	r.mu.Lock()
	inst, prod := r.inst, r.prod
	r.inst, r.prod = nil, nil
	r.mu.Unlock()
	if prod != nil {
		prod.stop(ctx)
	}
	if inst != nil {
		r.stopChannel(ctx, inst)
	}
	r.publishStopped()
}

func (r *runner) run(ctx context.Context) {
	bo := &backoff{min: r.e.cfg.RestartBackoff, max: time.Minute}
	stopping := r.stopping()
	for {
		select {
		case <-ctx.Done():
			return
		case <-stopping:
			return
		default:
		}
		r.ownStatus.Store(false)
		r.setStatus(channelStarting, "")
		inst, err := r.startChannel(ctx, stopping)
		if err != nil {
			if errors.Is(err, errStopping) {
				return
			}
			if !r.startFailed(ctx, stopping, "channel failed to start; retrying", bo.next(), err) {
				return
			}
			continue
		}
		if !r.ownStatus.Load() {
			r.setStatus(channelRunning, "")
		}
		r.log.Info("channel started", "type", r.cfg.Type)
		startedAt := time.Now()

		var prod *producer
		var failed <-chan error
		if rc, ok := inst.(channels.Receiver); !ok || !safeBool(r.log, rc.ReceiveOnly) {
			prod = newProducer(r, inst)
			prod.start(ctx)
			failed = prod.failed
		}
		r.mu.Lock()
		r.inst, r.prod = inst, prod
		r.mu.Unlock()
		r.s.started.signal(r.cfg.Name)

		var failure error
		select {
		case <-ctx.Done():
			return // hard stop
		case <-stopping:
			return // Stop stops the producer and the channel
		case failure = <-failed:
		}

		// The channel panicked or hung: restart it.
		d := restartDelay(bo, startedAt)
		r.log.Error("channel failed; restarting it", "retry_in", d.Round(time.Millisecond).String(), "error", failure)
		r.setStatus(channelError, failure.Error())
		r.s.failed.signal(r.cfg.Name)
		r.mu.Lock()
		r.inst, r.prod = nil, nil
		r.mu.Unlock()
		stopCtx, cancel := context.WithTimeout(ctx, r.e.cfg.SendTimeout)
		prod.stop(stopCtx)
		r.stopChannel(stopCtx, inst)
		cancel()
		if !waitWake(ctx, stopping, d) {
			return
		}
	}
}

// startChannel builds the channel and calls its Start, guarded against
// panics and hangs.
func (r *runner) startChannel(ctx context.Context, stopping <-chan struct{}) (channels.Channel, error) {
	var inst channels.Channel
	err := safeCall(r.log, "constructor of channel "+r.cfg.Name, func() (err error) {
		inst, err = channels.New(r.cfg.Type, channelConfig(&r.cfg, r.e.log))
		return err
	})
	if err != nil {
		return nil, err
	}
	startCtx, cancel := context.WithTimeout(ctx, channelStartTimeout)
	done := make(chan error, 1)
	var abandoned atomic.Bool
	go func() {
		defer cancel()
		err := safeCall(r.log, "Start of channel "+r.cfg.Name, func() error { return inst.Start(startCtx, r.host) })
		if err == nil && abandoned.Load() {
			// Too late: the runner gave up on it. Stop what started.
			stopCtx, c := context.WithTimeout(context.WithoutCancel(ctx), channelStopTimeout)
			r.stopChannel(stopCtx, inst)
			c()
		}
		done <- err
	}()
	timer := time.NewTimer(channelStartTimeout + time.Second)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			return nil, fmt.Errorf("start: %w", err)
		}
		return inst, nil
	case <-timer.C:
		abandoned.Store(true)
		return nil, fmt.Errorf("start did not return within %s", channelStartTimeout)
	case <-stopping:
		abandoned.Store(true)
		return nil, errStopping
	case <-ctx.Done():
		abandoned.Store(true)
		return nil, errStopping
	}
}

// stopChannel calls the channel's Stop, guarded against panics and hangs.
func (r *runner) stopChannel(ctx context.Context, inst channels.Channel) {
	deadline := stopGrace(ctx)
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deadline)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- safeCall(r.log, "Stop of channel "+r.cfg.Name, func() error { return inst.Stop(stopCtx) })
	}()
	select {
	case err := <-done:
		if err != nil {
			r.log.Warn("channel did not stop cleanly", "error", err)
		}
	case <-time.After(deadline + 100*time.Millisecond):
		r.log.Warn("channel Stop did not return in time; abandoned", "timeout", deadline)
	}
}

// safeBool calls f, treating a panic as false.
func safeBool(log *slog.Logger, f func() bool) bool {
	var v bool
	_ = safeCall(log, "channel method", func() error { v = f(); return nil })
	return v
}

// host is what a running channel calls back into.
type host struct{ r *runner }

var _ channels.Host = (*host)(nil)

// Receive stores incoming messages and returns after the commit.
func (h *host) Receive(ctx context.Context, in []channels.Incoming) error {
	if len(in) == 0 {
		return nil
	}
	e := h.r.e
	rows := make([]store.Incoming, len(in))
	for i, m := range in {
		rows[i] = store.Incoming{
			ChannelID:    h.r.cfg.ID,
			FromAddress:  m.From,
			FromTON:      m.FromTON,
			FromNPI:      m.FromNPI,
			ToAddress:    m.To,
			Body:         m.Body,
			DataCoding:   m.DataCoding,
			Reference:    m.Reference,
			TotalParts:   m.TotalParts,
			ReceivedTime: m.ReceivedTime,
		}
	}
	var ids []int64
	err := e.health.callFor(ctx, "MessageReceive", h.r.cfg.Name, func(ctx context.Context) (err error) {
		ids, err = e.store.MessageReceive(ctx, rows)
		return err
	})
	if errors.Is(err, store.ErrStatement) {
		h.r.storeFailed("MessageReceive", err)
	} else if err == nil {
		h.r.storeWorks("MessageReceive")
	}
	if err != nil {
		return fmt.Errorf("engine: %d incoming messages on channel %s not stored (do not acknowledge them): %w", len(in), h.r.cfg.Name, err)
	}
	if e.events.active() {
		now := time.Now().UTC()
		evs := make([]Event, len(ids))
		for i, id := range ids {
			evs[i] = Event{MessageID: id, Status: store.StatusReceived, ChannelID: h.r.cfg.ID, Time: now}
		}
		e.events.publish(evs...)
	}
	return nil
}

// Report applies delivery reports and returns after the commit; reports of
// concurrent callers share one write.
func (h *host) Report(ctx context.Context, reports []channels.Report) error {
	if len(reports) == 0 {
		return nil
	}
	p := make([]store.ReportParams, len(reports))
	for i, rep := range reports {
		status := store.PartDelivered
		if !rep.Delivered {
			status = store.PartNotDelivered
		}
		p[i] = store.ReportParams{
			ChannelID: h.r.cfg.ID,
			Reference: rep.Reference,
			Status:    status,
			ErrorCode: truncate(rep.ErrorCode, 64),
			DoneTime:  rep.DoneTime.UTC(),
		}
		if rep.DoneTime.IsZero() {
			p[i].DoneTime = time.Time{}
		}
	}
	return h.r.e.reports.apply(ctx, p)
}

// SetStatus publishes the channel's state.
func (h *host) SetStatus(state, details string) {
	h.r.ownStatus.Store(true)
	h.r.log.Info("channel status", "status", state, "details", details)
	h.r.setStatus(state, details)
}

// Logger is the channel's logger.
func (h *host) Logger() *slog.Logger { return h.r.log }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
