// Package smpp is Hermod's SMPP 3.4 client channel (type "smpp").
//
// A channel opens one or more binds to an SMSC, each its own session with
// its own sequence numbers and window of outstanding submit_sm. It splits
// and encodes messages itself (package channels/sms), gives every part its
// own sequence number, matches delivery receipts to parts by the provider's
// message id normalized one way for responses and reports, and answers
// deliver_sm only after the Host has committed what it carried.
//
// The session layer is Hermod's own on top of a small PDU codec
// (internal/pdu): gosmpp v0.3.1 answers deliver_sm before the application
// has stored it and shares sequence numbers between the parts of a split
// message, both of which this channel must not do. gosmpp's pdu package is
// used in the tests as an independent decoder of what Hermod writes.
//
// The test SMSC in smsctest drives the integration tests.
package smpp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hermod-sms/hermod/channels"
	"github.com/hermod-sms/hermod/channels/smpp/internal/pdu"
)

func init() { channels.Register("smpp", New) }

// Channel is an SMPP client channel.
type Channel struct {
	cfg     channels.Config
	set     Settings
	classes map[uint32]bool // command_status -> temporary (overrides)
	ids     idNormalizer
	log     *slog.Logger
	refs    *refCounters
	bucket  *tokenBucket

	host     channels.Host
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	sessions []*session
	started  atomic.Bool

	slots notifier // a window slot was freed or a session bound

	pauseMu     sync.Mutex
	pausedUntil time.Time
	pauseLen    time.Duration

	reports     chan inboundItem
	incoming    chan inboundItem
	asm         *reassembler
	deferLogged atomic.Int64 // when enqueue last logged (Unix nanoseconds)

	statusMu sync.Mutex

	stats counters
}

// reportQueue and incomingQueue are how many delivery reports and incoming
// messages may wait for their commit; beyond that they are deferred (see
// enqueue).
const (
	reportQueue   = 8192
	incomingQueue = 1024
)

// New builds an SMPP channel from its configuration; it is the factory
// registered as channel type "smpp".
func New(cfg channels.Config) (channels.Channel, error) {
	return newChannel(cfg)
}

func newChannel(cfg channels.Config) (*Channel, error) {
	set, err := ParseSettings(cfg.Settings)
	if err != nil {
		return nil, err
	}
	classes, _ := parseErrorClasses(set.ErrorClasses)
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	c := &Channel{
		cfg:      cfg,
		set:      set,
		classes:  classes,
		ids:      idNormalizer{caseFold: set.caseFold(), stripZeros: set.stripZeros()},
		log:      log,
		refs:     newRefCounters(),
		bucket:   newTokenBucket(set.Throughput),
		reports:  make(chan inboundItem, reportQueue),
		incoming: make(chan inboundItem, incomingQueue),
		pauseLen: time.Duration(set.ThrottlePause),
	}
	c.asm = newReassembler(c)
	kind := set.BindType
	n := 0
	for range set.Binds {
		n++
		c.sessions = append(c.sessions, newSession(c, n, kind))
	}
	for range set.ReceiverBinds {
		n++
		c.sessions = append(c.sessions, newSession(c, n, "receiver"))
	}
	return c, nil
}

// Settings returns the channel's settings with defaults applied.
func (c *Channel) Settings() Settings { return c.set }

// BatchSize implements channels.Limits.
func (c *Channel) BatchSize() int { return c.set.BatchSize }

// Concurrency implements channels.Limits.
func (c *Channel) Concurrency() int { return c.set.Concurrency }

// ReceiveOnly implements channels.Receiver: a channel of receiver binds
// does not send.
func (c *Channel) ReceiveOnly() bool { return c.set.BindType == "receiver" }

// Start starts every bind in the background and returns at once.
func (c *Channel) Start(ctx context.Context, host channels.Host) error {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("smpp: channel already started")
	}
	if host.Logger() != nil {
		c.log = host.Logger()
	}
	c.host = host
	ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	c.publishStatus()
	for _, s := range c.sessions {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			s.run(ctx)
		}()
	}
	c.wg.Add(3)
	go func() { defer c.wg.Done(); c.inboundLoop(ctx, c.reports, c.commitReports) }()
	go func() { defer c.wg.Done(); c.inboundLoop(ctx, c.incoming, c.commitIncoming) }()
	go func() { defer c.wg.Done(); c.statsLoop(ctx) }()
	return nil
}

// Stop unbinds every session and waits for the background work to end, at
// most until ctx is done. Parts of incoming messages held for reassembly
// were not acknowledged, so the SMSC delivers them again later.
func (c *Channel) Stop(ctx context.Context) error {
	if c.cancel == nil {
		return nil
	}
	c.cancel()
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
		c.asm.stop()
		c.host.SetStatus("stopped", "")
		return nil
	case <-ctx.Done():
		return fmt.Errorf("smpp: stop: sessions did not close in time: %w", ctx.Err())
	}
}

// classify says whether status is temporary, honouring the channel's
// errorClasses overrides.
func (c *Channel) classify(status uint32) bool {
	if t, ok := c.classes[status]; ok {
		return t
	}
	return pdu.Status(status).Temporary
}

// publishStatus sends the state of every bind to the Host: "bound" when
// all are bound, "reconnecting" when some are not, with one line per bind.
func (c *Channel) publishStatus() {
	if c.host == nil {
		return
	}
	c.statusMu.Lock()
	defer c.statusMu.Unlock()
	bound := 0
	var lines []string
	for _, s := range c.sessions {
		state, detail := s.status()
		if state == "bound" {
			bound++
		}
		line := fmt.Sprintf("bind %d (%s): %s", s.n, s.kind, state)
		if detail != "" {
			line += ": " + detail
		}
		lines = append(lines, line)
	}
	state := "bound"
	switch {
	case bound == 0:
		state = "reconnecting"
		for _, s := range c.sessions {
			if st, _ := s.status(); st == "error" {
				state = "error"
			}
		}
	case bound < len(c.sessions):
		state = "degraded"
	}
	c.host.SetStatus(state, strings.Join(lines, "; "))
}

// pause stops all submits of the channel for a while after the SMSC
// throttled us; repeated throttling doubles the pause up to reconnectMax.
func (c *Channel) pause() {
	c.pauseMu.Lock()
	defer c.pauseMu.Unlock()
	now := time.Now()
	if now.Before(c.pausedUntil) {
		return // one pause per throttling burst
	}
	if now.Sub(c.pausedUntil) > 2*c.pauseLen {
		c.pauseLen = time.Duration(c.set.ThrottlePause)
	} else {
		c.pauseLen = min(2*c.pauseLen, time.Duration(c.set.ReconnectMax))
	}
	c.pausedUntil = now.Add(c.pauseLen)
	c.stats.pauses.Add(1)
	c.log.Warn("smpp: SMSC throttles: pausing all submits", "pause", c.pauseLen)
}

// waitUnpaused blocks while the channel is paused.
func (c *Channel) waitUnpaused(ctx context.Context) error {
	for {
		c.pauseMu.Lock()
		d := time.Until(c.pausedUntil)
		c.pauseMu.Unlock()
		if d <= 0 {
			return nil
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

func (c *Channel) paused() bool {
	c.pauseMu.Lock()
	defer c.pauseMu.Unlock()
	return time.Now().Before(c.pausedUntil)
}

// notifier wakes every waiter when something changed.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) broadcast() {
	n.mu.Lock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
	n.mu.Unlock()
}

// tokenBucket limits parts per second; a nil bucket does not limit. It
// allows a burst of a tenth of a second's worth.
type tokenBucket struct {
	mu        sync.Mutex
	interval  time.Duration
	tolerance time.Duration
	tat       time.Time
}

func newTokenBucket(rate float64) *tokenBucket {
	if rate <= 0 {
		return nil
	}
	iv := time.Duration(float64(time.Second) / rate)
	burst := max(1, int(rate/10))
	return &tokenBucket{interval: iv, tolerance: time.Duration(burst-1) * iv}
}

func (b *tokenBucket) take(ctx context.Context) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	now := time.Now()
	if b.tat.Before(now) {
		b.tat = now
	}
	wait := b.tat.Sub(now) - b.tolerance
	b.tat = b.tat.Add(b.interval)
	b.mu.Unlock()
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// counters are the channel's metrics.
type counters struct {
	submits, resubmits, timeouts, lost, pauses atomic.Int64
	reports, reportsUnmatched, incoming        atomic.Int64
	reconnects, malformed, deferred            atomic.Int64
	mu                                         sync.Mutex
	byStatus                                   map[uint32]int64
}

func (k *counters) response(status uint32) {
	k.mu.Lock()
	if k.byStatus == nil {
		k.byStatus = map[uint32]int64{}
	}
	k.byStatus[status]++
	k.mu.Unlock()
}

// Stats is a snapshot of a channel's counters.
type Stats struct {
	Submits    int64            // submit_sm written (resubmits included)
	Resubmits  int64            // parts submitted again after throttling, errors or lost responses
	Responses  map[string]int64 // submit_sm_resp by status name
	Timeouts   int64            // submit_sm without response in time
	Lost       int64            // submit_sm whose connection closed before the response
	Pauses     int64            // channel pauses for throttling
	Reports    int64            // delivery reports committed
	Incoming   int64            // incoming messages committed
	Deferred   int64            // deliver_sm/data_sm answered ESME_RX_T_APPN because the database was behind
	Reconnects int64            // connections lost or refused
	Malformed  int64            // malformed PDUs received
	Window     int              // submit_sm awaiting a response now, over all binds
	WindowSize int              // the sum of the binds' windows
	Bound      int              // binds bound now
}

// Stats returns the channel's counters.
func (c *Channel) Stats() Stats {
	st := Stats{
		Submits: c.stats.submits.Load(), Resubmits: c.stats.resubmits.Load(),
		Timeouts: c.stats.timeouts.Load(), Lost: c.stats.lost.Load(), Pauses: c.stats.pauses.Load(),
		Reports: c.stats.reports.Load(), Incoming: c.stats.incoming.Load(), Deferred: c.stats.deferred.Load(),
		Reconnects: c.stats.reconnects.Load(), Malformed: c.stats.malformed.Load(),
		Responses: map[string]int64{},
	}
	c.stats.mu.Lock()
	for code, n := range c.stats.byStatus {
		st.Responses[pdu.Status(code).Name] += n
	}
	c.stats.mu.Unlock()
	for _, s := range c.sessions {
		st.Window += s.inflight()
		if s.kind != "receiver" {
			st.WindowSize += c.set.Window
		}
		if state, _ := s.status(); state == "bound" {
			st.Bound++
		}
	}
	return st
}

func (c *Channel) statsLoop(ctx context.Context) {
	if c.set.StatsInterval < 0 {
		return
	}
	t := time.NewTicker(time.Duration(c.set.StatsInterval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			st := c.Stats()
			names := make([]string, 0, len(st.Responses))
			for n := range st.Responses {
				names = append(names, n)
			}
			sort.Strings(names)
			var resp []string
			for _, n := range names {
				resp = append(resp, fmt.Sprintf("%s=%d", n, st.Responses[n]))
			}
			c.log.Info("smpp: counters", "submits", st.Submits, "resubmits", st.Resubmits, "responses", strings.Join(resp, ","),
				"timeouts", st.Timeouts, "lost", st.Lost, "pauses", st.Pauses, "reports", st.Reports, "incoming", st.Incoming, "deferred", st.Deferred,
				"reconnects", st.Reconnects, "malformed", st.Malformed, "window", st.Window, "windowSize", st.WindowSize, "bound", st.Bound)
		}
	}
}
