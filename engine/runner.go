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
	s    *supervisor
	e    *Engine
	cfg  store.Channel // the row it was started from
	log  *slog.Logger
	host *host

	ownStatus atomic.Bool // the channel set its own status since it started

	mu   sync.Mutex
	inst channels.Channel
	prod *producer
	loop
}

func newRunner(s *supervisor, c *store.Channel) *runner {
	r := &runner{s: s, e: s.e, cfg: *c, log: s.e.log.With("channel", c.Name)}
	r.host = &host{r: r}
	return r
}

// sameConfig reports whether c would run the same way as the runner's row.
func (r *runner) sameConfig(c *store.Channel) bool {
	return c.Name == r.cfg.Name && c.Type == r.cfg.Type && c.Settings == r.cfg.Settings && c.Node == r.cfg.Node
}

func (r *runner) Start(ctx context.Context) error {
	r.s.runnerWG.Add(1)
	err := r.loop.start(ctx, "channel "+r.cfg.Name, func(ctx context.Context) {
		defer r.s.runnerWG.Done()
		r.run(ctx)
	})
	if err != nil {
		r.s.runnerWG.Done()
	}
	return err
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
	r.setStatus(channelStopped, "")
	r.loop.cancelNow()
	r.s.exited.signal(r.cfg.Name)
}

func (r *runner) setStatus(state, details string) {
	if len(details) > 1000 {
		details = details[:1000]
	}
	r.s.status.set(store.ChannelStatusParams{ID: r.cfg.ID, Node: r.e.node, Status: state, Details: details})
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
			d := bo.next()
			r.log.Error("channel failed to start; retrying", "retry_in", d.Round(time.Millisecond).String(), "error", err)
			r.setStatus(channelError, err.Error())
			r.s.failed.signal(r.cfg.Name)
			if !waitWake(ctx, stopping, d) {
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
		d := bo.next()
		if time.Since(startedAt) > 2*bo.max {
			bo.reset()
			d = bo.next()
		}
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
	deadline := channelStopTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) > deadline {
		deadline = time.Until(d)
	}
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
	err := e.health.call(ctx, "MessageReceive", func(ctx context.Context) (err error) {
		ids, err = e.store.MessageReceive(ctx, rows)
		return err
	})
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
