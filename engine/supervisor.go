package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hermod-sms/hermod/channels"
	"github.com/hermod-sms/hermod/store"
)

// Channel states the engine writes to Channels.Status. A channel may write
// its own ("bound", "reconnecting") through Host.SetStatus.
const (
	channelStarting = "starting"
	channelRunning  = "running"
	channelError    = "error"
	channelStopped  = "stopped"
)

// supervisor reads the Channels table every ChannelRefresh, keeps the list
// of channels the router may route to, and runs the enabled channels this
// node may run: in this process (a runner each) or, for channels whose
// settings say "process": "child", in a child process (a childRunner each).
type supervisor struct {
	e       *Engine
	refresh chan struct{}
	status  *statusWriter

	// catalog is the last read of the Channels table (nil before the
	// first): read without locks by the router and Nudge.
	catalog atomic.Pointer[catalog]
	probes  map[int64]probe // only the supervisor's goroutine uses it

	mu         sync.Mutex
	runners    map[int64]channelRunner
	exiting    map[int64]chan struct{} // runners being stopped, by channel ID
	runnerWG   sync.WaitGroup
	runnersCtx context.Context

	loop
	refreshed testSignal[[]int64] // the routable channel IDs after each read
	started   testSignal[string]  // a channel started (its name)
	failed    testSignal[string]  // a channel failed and will be restarted (its name)
	exited    testSignal[string]  // a runner ended (its name)
	// childExited: a channel's child process exited by itself.
	childExited testSignal[childExit]
}

// channelRunner runs one channel, in this process (runner) or in a child
// process (childRunner).
type channelRunner interface {
	Start(ctx context.Context) error
	// Stop stops the channel within ctx's deadline and publishes its
	// final state.
	Stop(ctx context.Context)
	// sameConfig reports whether c would run the same way.
	sameConfig(c *store.Channel) bool
	name() string
}

// catalog is what the router needs from one read of Channels.
type catalog struct {
	routable []int64 // enabled channels that can send, by ID
	readAt   time.Time
}

// probe caches whether a channel's configuration can send, and where it
// runs.
type probe struct {
	typ, settings string
	canSend       bool
	process       string // ProcessInline or ProcessChild
	processErr    error  // the "process" setting is invalid
	reported      bool   // processErr was published as the channel's state
}

func newSupervisor(e *Engine) *supervisor {
	return &supervisor{
		e:       e,
		refresh: make(chan struct{}, 1),
		status:  newStatusWriter(e),
		runners: map[int64]channelRunner{},
		exiting: map[int64]chan struct{}{},
		probes:  map[int64]probe{},
	}
}

// routable returns the IDs of enabled channels that can send, and whether
// the Channels table has been read at all.
func (s *supervisor) routable() ([]int64, bool) {
	c := s.catalog.Load()
	if c == nil {
		return nil, false
	}
	return c.routable, true
}

// refreshIfOlder asks for a re-read of Channels if the last one is older
// than age.
func (s *supervisor) refreshIfOlder(age time.Duration) {
	if c := s.catalog.Load(); c == nil || time.Since(c.readAt) > age {
		s.requestRefresh()
	}
}

func (s *supervisor) requestRefresh() {
	select {
	case s.refresh <- struct{}{}:
	default:
	}
}

func (s *supervisor) Start(ctx context.Context) error {
	s.runnersCtx = ctx
	if err := s.status.Start(ctx); err != nil {
		return err
	}
	return s.loop.start(ctx, "channel supervisor", s.run)
}

// Stop stops every channel (each waits for its in-flight sends within
// ctx's deadline) and writes their final status.
func (s *supervisor) Stop(ctx context.Context) {
	s.loop.stop(ctx)
	s.mu.Lock()
	runners := make([]channelRunner, 0, len(s.runners))
	for _, r := range s.runners {
		runners = append(runners, r)
	}
	s.runners = map[int64]channelRunner{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.Stop(ctx)
		}()
	}
	wg.Wait()
	done := make(chan struct{})
	go func() { s.runnerWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	s.status.Stop(ctx)
}

func (s *supervisor) run(ctx context.Context) {
	e := s.e
	bo := e.dbBackoff()
	for {
		wait := e.cfg.ChannelRefresh
		var list []*store.Channel
		err := e.health.call(ctx, "ChannelList", func(ctx context.Context) (err error) {
			list, err = e.store.ChannelList(ctx)
			return err
		})
		if err != nil {
			wait = min(bo.next(), wait)
		} else {
			bo.reset()
			s.apply(ctx, list)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.refresh:
		case <-time.After(wait):
		}
	}
}

// allowed reports whether this node may run c.
func (s *supervisor) allowed(c *store.Channel) bool {
	e := s.e
	if !c.Enabled || e.cfg.NoChannels {
		return false
	}
	if len(e.cfg.OnlyChannels) > 0 && !slices.Contains(e.cfg.OnlyChannels, c.Name) {
		return false
	}
	return c.Node == "" || c.Node == e.node || (e.host != "" && c.Node == e.host) ||
		(e.cfg.ParentNode != "" && c.Node == e.cfg.ParentNode)
}

// probeTimeout bounds a channel constructor called to probe its settings.
const probeTimeout = 5 * time.Second

// canSend reports whether c's configuration builds a channel that sends
// (not receive-only). The result is cached until Type or Settings change.
// Building a channel only validates its settings: constructors connect to
// nothing (channels.Channel.Start does). A constructor that panics or
// hangs counts as invalid settings.
func (s *supervisor) canSend(c *store.Channel) bool {
	return s.probe(c).canSend
}

// probe returns c's cached probe, probing it first if its Type or Settings
// changed.
func (s *supervisor) probe(c *store.Channel) probe {
	if p, ok := s.probes[c.ID]; ok && p.typ == c.Type && p.settings == c.Settings {
		return p
	}
	process, _, perr := SplitChannelSettings(c.Settings)
	if perr != nil {
		s.e.log.Error("channel configuration is invalid; messages are not routed to it", "channel", c.Name, "type", c.Type, "error", perr)
		p := probe{typ: c.Type, settings: c.Settings, process: ProcessInline, processErr: perr}
		s.probes[c.ID] = p
		return p
	}
	type answer struct {
		can bool
		err error
	}
	done := make(chan answer, 1)
	go func() {
		var a answer
		a.err = safeCall(s.e.log, "constructor of channel "+c.Name, func() error {
			ch, err := channels.New(c.Type, channelConfig(c, s.e.log))
			if err != nil {
				return err
			}
			a.can = true
			if r, ok := ch.(channels.Receiver); ok && r.ReceiveOnly() {
				a.can = false
			}
			return nil
		})
		done <- a
	}()
	var a answer
	select {
	case a = <-done:
	case <-time.After(probeTimeout):
		a.err = fmt.Errorf("the constructor did not return within %s", probeTimeout)
	}
	can, err := a.can, a.err
	if err != nil {
		s.e.log.Error("channel configuration is invalid; messages are not routed to it", "channel", c.Name, "type", c.Type, "error", err)
	}
	p := probe{typ: c.Type, settings: c.Settings, canSend: can, process: process}
	s.probes[c.ID] = p
	return p
}

// channelConfig is what c's constructor gets: its settings without the
// engine's own ProcessSetting.
func channelConfig(c *store.Channel, log *slog.Logger) channels.Config {
	settings := json.RawMessage(c.Settings)
	if _, rest, err := SplitChannelSettings(c.Settings); err == nil {
		settings = rest
	}
	return channels.Config{ID: c.ID, Name: c.Name, Settings: settings, Logger: log.With("channel", c.Name)}
}

// apply reconciles the running channels with the table.
func (s *supervisor) apply(ctx context.Context, list []*store.Channel) {
	ids := make([]int64, 0, len(list))
	seen := make(map[int64]bool, len(list))
	for _, c := range list {
		seen[c.ID] = true
		if c.Enabled && s.canSend(c) {
			ids = append(ids, c.ID)
		}
	}
	for id := range s.probes {
		if !seen[id] {
			delete(s.probes, id)
		}
	}
	old := s.catalog.Load()
	changed := old == nil || !slices.Equal(ids, old.routable)
	s.catalog.Store(&catalog{routable: ids, readAt: time.Now()})

	s.mu.Lock()
	defer s.mu.Unlock()

	byID := make(map[int64]*store.Channel, len(list))
	for _, c := range list {
		byID[c.ID] = c
	}
	// Stop runners of removed, disabled, moved or changed channels.
	for id, r := range s.runners {
		c, ok := byID[id]
		if ok && s.allowed(c) && r.sameConfig(c) {
			continue
		}
		delete(s.runners, id)
		done := make(chan struct{})
		s.exiting[id] = done
		s.e.log.Info("stopping channel", "channel", r.name(), "reason", stopReason(c, ok, s.allowed))
		go func() {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), defaultStopTimeout)
			defer cancel()
			r.Stop(stopCtx)
			if !ok {
				// A deleted channel has no row to write a status to.
				s.status.forget(id)
			}
			close(done)
			s.mu.Lock()
			delete(s.exiting, id)
			s.mu.Unlock()
			s.requestRefresh() // start its successor, if any
		}()
	}
	// Start runners of channels that should run here.
	for _, c := range list {
		if !s.allowed(c) {
			continue
		}
		if _, running := s.runners[c.ID]; running {
			continue
		}
		if _, exiting := s.exiting[c.ID]; exiting {
			continue // started by the refresh its stop requests
		}
		p := s.probe(c)
		if p.processErr != nil {
			if !p.reported {
				p.reported = true
				s.probes[c.ID] = p
				s.status.set(store.ChannelStatusParams{ID: c.ID, Node: s.e.node, Status: channelError, Details: truncate(p.processErr.Error(), 1000)})
			}
			continue
		}
		var r channelRunner
		if p.process == ProcessChild && len(s.e.cfg.OnlyChannels) == 0 {
			r = newChildRunner(s, c)
		} else {
			// Inline, or this engine is the child (or a dedicated
			// `hermod channel run`) for the channel.
			r = newRunner(s, c)
		}
		if err := r.Start(s.runnersCtx); err != nil {
			s.e.log.Error("channel not started", "channel", c.Name, "error", err)
			continue
		}
		s.runners[c.ID] = r
	}
	s.refreshed.signal(ids)
	if changed {
		s.e.routerWake.fire()
	}
}

func stopReason(c *store.Channel, exists bool, allowed func(*store.Channel) bool) string {
	switch {
	case !exists:
		return "deleted"
	case !c.Enabled:
		return "disabled"
	case !allowed(c):
		return "not allowed on this node"
	default:
		return "configuration changed"
	}
}

// statusWriter writes channel states to Channels asynchronously: the
// latest state per channel wins, writes are retried during outages, and
// Host.SetStatus never blocks a channel.
type statusWriter struct {
	e       *Engine
	mu      sync.Mutex
	pending map[int64]store.ChannelStatusParams
	wake    chan struct{}
	flushed chan struct{} // closed and replaced after each flush round
	loop
	written testSignal[store.ChannelStatusParams]
}

func newStatusWriter(e *Engine) *statusWriter {
	return &statusWriter{e: e, pending: map[int64]store.ChannelStatusParams{}, wake: make(chan struct{}, 1), flushed: make(chan struct{})}
}

func (w *statusWriter) Start(ctx context.Context) error {
	return w.loop.start(ctx, "channel status writer", w.run)
}

// Stop writes what is pending within ctx's deadline.
func (w *statusWriter) Stop(ctx context.Context) { w.loop.drain(ctx) }

func (w *statusWriter) set(p store.ChannelStatusParams) {
	if w.e.cfg.ParentNode != "" {
		// A child process says which it is, so that the Channels table
		// shows where the channel runs.
		me := fmt.Sprintf("child process pid %d of node %s", os.Getpid(), w.e.cfg.ParentNode)
		if p.Details == "" {
			p.Details = me
		} else {
			p.Details = truncate(p.Details, 1000-len(me)-3) + " (" + me + ")"
		}
	}
	w.mu.Lock()
	w.pending[p.ID] = p
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// waitWritten waits until no state of channel id is pending, so that a
// state written later by another process (a channel's child) is not
// overwritten by an older one from here. It gives up after timeout or when
// ctx or stopping ends, and reports whether the state was written.
func (w *statusWriter) waitWritten(ctx context.Context, stopping <-chan struct{}, id int64, timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		w.mu.Lock()
		_, pending := w.pending[id]
		flushed := w.flushed
		w.mu.Unlock()
		if !pending {
			return true
		}
		select {
		case <-flushed:
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		case <-stopping:
			return false
		}
	}
}

func (w *statusWriter) forget(id int64) {
	w.mu.Lock()
	delete(w.pending, id)
	w.mu.Unlock()
}

func (w *statusWriter) run(ctx context.Context) {
	bo := w.e.dbBackoff()
	stopping := w.stopping()
	for {
		final := false
		select {
		case <-ctx.Done():
			return
		case <-stopping:
			final = true
		case <-w.wake:
		}
		for {
			ok := w.flush(ctx)
			w.mu.Lock()
			close(w.flushed)
			w.flushed = make(chan struct{})
			w.mu.Unlock()
			if ok {
				bo.reset()
				break
			}
			if !sleep(ctx, bo.next()) {
				return
			}
		}
		if final {
			return
		}
	}
}

// flush writes every pending status; it reports whether all were written.
func (w *statusWriter) flush(ctx context.Context) bool {
	w.mu.Lock()
	todo := make([]store.ChannelStatusParams, 0, len(w.pending))
	for _, p := range w.pending {
		todo = append(todo, p)
	}
	w.mu.Unlock()
	for _, p := range todo {
		err := w.e.health.call(ctx, "ChannelSetStatus", func(ctx context.Context) error {
			err := w.e.store.ChannelSetStatus(ctx, p)
			if errors.Is(err, store.ErrNotFound) {
				return nil // the channel was deleted meanwhile
			}
			return err
		})
		if err != nil {
			return false
		}
		w.mu.Lock()
		if cur, ok := w.pending[p.ID]; ok && cur == p {
			delete(w.pending, p.ID)
		}
		w.mu.Unlock()
		w.written.signal(p)
	}
	return true
}
