package engine

import (
	"context"
	"os"
	"sync/atomic"
	"time"

	"github.com/hermod-sms/hermod/store"
)

// dbBackoff returns the backoff services use between failed store calls.
func (e *Engine) dbBackoff() *backoff { return &backoff{min: e.dbRetryMin, max: e.dbRetryMax} }

// heartbeat keeps this node's row in Nodes fresh and deletes it on Stop.
type heartbeat struct {
	e *Engine
	loop
	beat testSignal[struct{}]
}

func (h *heartbeat) Start(ctx context.Context) error {
	return h.loop.start(ctx, "heartbeat", h.run)
}

func (h *heartbeat) run(ctx context.Context) {
	e := h.e
	p := store.NodeParams{Name: e.node, Host: e.host, PID: os.Getpid(), Version: e.cfg.Version}
	bo := e.dbBackoff()
	for {
		wait := e.cfg.HeartbeatInterval
		err := e.health.call(ctx, "NodeHeartbeat", func(ctx context.Context) error { return e.store.NodeHeartbeat(ctx, p) })
		if err != nil {
			wait = min(bo.next(), e.cfg.HeartbeatInterval)
		} else {
			bo.reset()
			h.beat.signal(struct{}{})
		}
		if !waitWake(ctx, h.stopping(), wait) {
			return
		}
	}
}

// Stop ends the heartbeat and deletes the node row.
func (h *heartbeat) Stop(ctx context.Context) {
	h.loop.stop(ctx)
	e := h.e
	if err := e.health.call(ctx, "NodeDelete", func(ctx context.Context) error { return e.store.NodeDelete(ctx, e.node) }); err != nil {
		e.log.Warn("node row not deleted on stop; the leader deletes it when it goes stale", "error", err)
	}
}

// elector holds the leadership lease. Singleton work checks isLeader.
type elector struct {
	e       *Engine
	leading atomic.Bool
	// until is when the lease this node holds runs out by its own clock
	// (Unix nanoseconds): the start of the last successful LeaderElect
	// plus the TTL. Leadership is trusted only before it, so that a node
	// that stalls never leads alongside the one that took over.
	until   atomic.Int64
	changed *broadcast
	loop
	elected testSignal[bool] // every change of leadership
}

func newElector(e *Engine) *elector { return &elector{e: e, changed: newBroadcast()} }

func (l *elector) isLeader() bool {
	return l.leading.Load() && time.Now().UnixNano() < l.until.Load()
}

func (l *elector) Start(ctx context.Context) error {
	return l.loop.start(ctx, "elector", l.run)
}

func (l *elector) params() store.LeaderParams {
	return store.LeaderParams{Name: leaderName, Node: l.e.node, TTL: l.e.cfg.LeaderTTL}
}

func (l *elector) set(leading bool) {
	if l.leading.Swap(leading) == leading {
		return
	}
	if leading {
		l.e.log.Info("leadership gained")
	} else {
		l.e.log.Info("leadership lost")
	}
	l.elected.signal(leading)
	l.changed.fire()
}

func (l *elector) run(ctx context.Context) {
	e := l.e
	interval := e.cfg.LeaderTTL / 3
	bo := e.dbBackoff()
	for {
		wait := interval
		var leads bool
		start := time.Now()
		err := e.health.call(ctx, "LeaderElect", func(ctx context.Context) (err error) {
			leads, err = e.store.LeaderElect(ctx, l.params())
			return err
		})
		switch {
		case err != nil:
			// Without an answer the lease may run out: give leadership up
			// before it can, so that two nodes never both lead.
			if l.leading.Load() && time.Now().Add(interval).UnixNano() >= l.until.Load() {
				l.set(false)
			}
			wait = min(bo.next(), interval)
		default:
			bo.reset()
			if leads {
				l.until.Store(start.Add(e.cfg.LeaderTTL).UnixNano())
			}
			l.set(leads)
		}
		if !waitWake(ctx, l.stopping(), wait) {
			if ctx.Err() != nil {
				l.leading.Store(false) // hard stop: the lease is left to expire
			}
			return
		}
	}
}

// Stop ends the elector and resigns leadership if held.
func (l *elector) Stop(ctx context.Context) {
	l.loop.stop(ctx)
	if !l.leading.Load() {
		return
	}
	l.set(false)
	e := l.e
	if err := e.health.call(ctx, "LeaderResign", func(ctx context.Context) error { return e.store.LeaderResign(ctx, l.params()) }); err != nil {
		e.log.Warn("leadership not resigned on stop; it expires by itself", "ttl", e.cfg.LeaderTTL, "error", err)
	}
}

// router moves due SCHEDULED messages to QUEUED (or NOCHANNEL, EXPIRED).
// It runs on every node.
type router struct {
	e *Engine
	loop
	routed testSignal[store.RouteResult]
}

func (r *router) Start(ctx context.Context) error { return r.loop.start(ctx, "router", r.run) }

func (r *router) Stop(ctx context.Context) { r.loop.stop(ctx) }

func (r *router) run(ctx context.Context) {
	e := r.e
	poll := newPoller(e.cfg.PollMin, e.cfg.PollMax)
	bo := e.dbBackoff()
	for {
		wake := e.routerWake.C()
		ids, loaded := e.supervisor.routable()
		if !loaded {
			// Routing before the Channels table was read would make every
			// message NOCHANNEL.
			if !waitWake(ctx, r.stopping(), e.cfg.PollMax, wake) {
				return
			}
			continue
		}
		var res store.RouteResult
		err := e.health.call(ctx, "MessageRoute", func(ctx context.Context) (err error) {
			res, err = e.store.MessageRoute(ctx, store.RouteParams{Channels: ids, Limit: routeBatch})
			return err
		})
		if err != nil {
			if !waitWake(ctx, r.stopping(), bo.next()) {
				return
			}
			continue
		}
		bo.reset()
		e.publishChanges(res.Changes)
		n := res.Queued + res.NoChannel + res.Expired
		if n > 0 {
			r.routed.signal(res)
			e.log.Debug("routed", "queued", res.Queued, "nochannel", res.NoChannel, "expired", res.Expired)
		}
		if res.Queued > 0 {
			e.producerWake.fire()
		}
		if n >= routeBatch {
			continue
		}
		if !waitWake(ctx, r.stopping(), poll.next(n > 0), wake) {
			return
		}
	}
}

// rescuer returns SENDING messages whose lease expired to QUEUED. Every
// node runs it; the store makes concurrent rescues safe.
type rescuer struct {
	e *Engine
	loop
	rescued testSignal[int]
}

const rescueBatch = 1000

func (r *rescuer) Start(ctx context.Context) error { return r.loop.start(ctx, "rescuer", r.run) }

func (r *rescuer) Stop(ctx context.Context) { r.loop.stop(ctx) }

// interval is how often leases are checked: a quarter of the lease, at
// least 10ms and at most 30s.
func (r *rescuer) interval() time.Duration {
	return min(max(r.e.cfg.Lease/4, 10*time.Millisecond), 30*time.Second)
}

func (r *rescuer) run(ctx context.Context) {
	e := r.e
	bo := e.dbBackoff()
	for {
		wait := r.interval()
		var rescued []store.Change
		err := e.health.call(ctx, "MessageRescue", func(ctx context.Context) (err error) {
			rescued, err = e.store.MessageRescue(ctx, rescueBatch)
			return err
		})
		if err != nil {
			wait = min(bo.next(), wait)
		} else {
			bo.reset()
			e.publishChanges(rescued)
			if n := len(rescued); n > 0 {
				e.log.Warn("rescued messages whose lease expired; they are sent again and may arrive twice", "messages", n)
				r.rescued.signal(n)
				e.producerWake.fire()
				if n >= rescueBatch {
					wait = 0
				}
			}
		}
		if !waitWake(ctx, r.stopping(), wait) {
			return
		}
	}
}

// sweeper does the leader's periodic work: NOREPORT, EXPIRED and stale
// pending reports (MessageSweep), and stale nodes (NodeDeleteStale).
type sweeper struct {
	e        *Engine
	interval time.Duration // default 1s
	loop
	swept testSignal[store.SweepResult]
}

const sweepBatch = 1000

func (s *sweeper) Start(ctx context.Context) error {
	if s.interval == 0 {
		s.interval = time.Second
	}
	return s.loop.start(ctx, "sweeper", s.run)
}

func (s *sweeper) Stop(ctx context.Context) { s.loop.stop(ctx) }

func (s *sweeper) run(ctx context.Context) {
	e := s.e
	bo := e.dbBackoff()
	for {
		wait := s.interval
		changed := e.elector.changed.C()
		if e.elector.isLeader() {
			var res store.SweepResult
			err := e.health.call(ctx, "MessageSweep", func(ctx context.Context) (err error) {
				res, err = e.store.MessageSweep(ctx, store.SweepParams{
					NoReportAfter:    e.cfg.NoReportAfter,
					PendingReportTTL: e.cfg.NoReportAfter,
					Limit:            sweepBatch,
				})
				return err
			})
			e.publishChanges(res.Changes) // none when the sweep failed
			if err == nil {
				err = e.health.call(ctx, "NodeDeleteStale", func(ctx context.Context) error {
					n, err := e.store.NodeDeleteStale(ctx, 6*e.cfg.HeartbeatInterval)
					if n > 0 {
						e.log.Info("deleted stale nodes", "nodes", n)
					}
					return err
				})
			}
			if err != nil {
				wait = min(bo.next(), wait)
			} else {
				bo.reset()
				s.swept.signal(res)
				if res.NoReport+res.Expired+res.PendingDeleted > 0 {
					e.log.Debug("swept", "noreport", res.NoReport, "expired", res.Expired, "pending_reports_deleted", res.PendingDeleted)
				}
				if res.NoReport >= sweepBatch || res.Expired >= sweepBatch || res.PendingDeleted >= sweepBatch {
					wait = 0
				}
			}
		}
		if !waitWake(ctx, s.stopping(), wait, changed) {
			return
		}
	}
}
