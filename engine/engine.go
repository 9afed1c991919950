package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hermod-sms/hermod/store"
)

// Defaults of Config's fields.
const (
	DefaultClaimBatch        = 200
	DefaultLease             = 5 * time.Minute
	DefaultSendTimeout       = time.Minute
	DefaultMaxAttempts       = 5
	DefaultRetryBase         = 5 * time.Second
	DefaultRetryMax          = 10 * time.Minute
	DefaultNoReportAfter     = 24 * time.Hour
	DefaultPollMin           = 5 * time.Millisecond
	DefaultPollMax           = 250 * time.Millisecond
	DefaultFlushInterval     = 10 * time.Millisecond
	DefaultHeartbeatInterval = 5 * time.Second
	DefaultLeaderTTL         = 15 * time.Second
	DefaultChannelRefresh    = 5 * time.Second
	DefaultRestartBackoff    = time.Second
	DefaultStoreTimeout      = 30 * time.Second
	defaultStopTimeout       = 10 * time.Second
	maxClaimBatch            = 1000 // SQL Server escalates locks at 5,000
	routeBatch               = 1000
	leaderName               = "default"
	// maxNodeName leaves room in LeaseOwner (128 characters) for the
	// "#claim" suffix of each claim's lease.
	maxNodeName = 100
)

// Config configures an Engine. Only Store is required; every zero field
// takes the default named beside it.
type Config struct {
	// Store is the database. Required.
	Store store.Store
	// Logger receives the engine's logs. Default slog.Default().
	Logger *slog.Logger
	// Node names this process in Nodes, leases and leadership; unique per
	// running process. Default "host-pid-random".
	Node string
	// Version is recorded in Nodes. Optional.
	Version string

	// OnlyChannels runs only the channels with these names (the child
	// process of `hermod channel run NAME`). Empty: every enabled channel
	// this node may run.
	OnlyChannels []string
	// NoChannels runs no channel at all: a maintenance or API-only node.
	// The node still routes, rescues, sweeps and elects.
	NoChannels bool

	// ChildCommand builds the command that runs one channel in a child
	// process, for channels whose Settings say "process": "child" (see
	// ProcessSetting). The command must run an engine with OnlyChannels
	// set to the channel, Node and ParentNode set from p, on the same
	// database (`hermod channel run NAME`), and stop cleanly when its
	// standard input reaches end of file. The engine sets the command's
	// Stdin, Stdout and Stderr (its output is copied into this engine's
	// log) and starts, watches, restarts and stops the process. Pass
	// secrets such as a database password in the command's environment,
	// never in its arguments, which every user can list. Nil: such
	// channels do not run here (their status says why).
	ChildCommand func(p ChildProcess) (*exec.Cmd, error)
	// ParentNode is the node name of the engine that started this process
	// through its ChildCommand (ChildProcess.ParentNode). Channels pinned
	// to the parent run here too, and the channel states this engine
	// publishes name the child process.
	ParentNode string

	// ClaimBatch is the most messages one claim takes, for channels that
	// do not say (channels.Limits). Default 200, at most 1000.
	ClaimBatch int
	// Lease is how long a claimed message stays SENDING before another
	// node may rescue it. Default 5m.
	Lease time.Duration
	// SendTimeout bounds one Channel.Send call; a call that outlives it is
	// an unknown outcome (the messages are retried) and the channel is
	// restarted. Default 1m; must be shorter than Lease.
	SendTimeout time.Duration
	// MaxAttempts is how many times a message is tried before it is
	// FAILED. Default 5.
	MaxAttempts int
	// RetryBase and RetryMax bound the exponential backoff between
	// attempts: RetryBase * 2^(attempt-1), at most RetryMax, with 20%
	// jitter. Default 5s and 10m.
	RetryBase time.Duration
	RetryMax  time.Duration
	// NoReportAfter: a SENT message that asked for a delivery report and
	// has had none for this long becomes NOREPORT. Default 24h. Delivery
	// reports that found no message are kept as long.
	NoReportAfter time.Duration
	// PollMin and PollMax bound adaptive polling: loops that find work
	// poll again after PollMin; idle loops back off to PollMax. Default
	// 5ms and 250ms.
	PollMin time.Duration
	PollMax time.Duration
	// FlushInterval is how long send results and delivery reports are
	// gathered before they are written in one batch. Default 10ms.
	FlushInterval time.Duration
	// HeartbeatInterval is how often the node refreshes its row in Nodes.
	// Nodes silent for 6 intervals are deleted by the leader. Default 5s.
	HeartbeatInterval time.Duration
	// LeaderTTL is the leadership lease; the leader renews it every
	// LeaderTTL/3. Default 15s.
	LeaderTTL time.Duration
	// ChannelRefresh is how often the Channels table is read again.
	// Default 5s.
	ChannelRefresh time.Duration
	// RestartBackoff is the first wait before a failed channel is started
	// again; it doubles per failure up to a minute. Default 1s.
	RestartBackoff time.Duration
	// StoreTimeout bounds every database call, so that a silent network
	// partition (no reset, no answer) is noticed as an outage instead of
	// hanging a service. Default 30s.
	StoreTimeout time.Duration
}

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	if cfg.Store == nil {
		return cfg, errors.New("engine: Config.Store is nil: open a store (store/sqlite, store/postgres, store/sqlserver) and pass it")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Node == "" {
		cfg.Node = defaultNodeName()
	}
	if len(cfg.Node) > maxNodeName {
		return cfg, fmt.Errorf("engine: Config.Node %q is %d characters long: at most %d", cfg.Node, len(cfg.Node), maxNodeName)
	}
	if cfg.NoChannels && len(cfg.OnlyChannels) > 0 {
		return cfg, errors.New("engine: Config.NoChannels and Config.OnlyChannels are both set: choose one")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if cfg.ClaimBatch == 0 {
		cfg.ClaimBatch = DefaultClaimBatch
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	def(&cfg.Lease, DefaultLease)
	def(&cfg.SendTimeout, min(DefaultSendTimeout, cfg.Lease/2))
	def(&cfg.RetryBase, DefaultRetryBase)
	def(&cfg.RetryMax, DefaultRetryMax)
	def(&cfg.NoReportAfter, DefaultNoReportAfter)
	def(&cfg.PollMin, DefaultPollMin)
	def(&cfg.PollMax, DefaultPollMax)
	def(&cfg.FlushInterval, DefaultFlushInterval)
	def(&cfg.HeartbeatInterval, DefaultHeartbeatInterval)
	def(&cfg.LeaderTTL, DefaultLeaderTTL)
	def(&cfg.ChannelRefresh, DefaultChannelRefresh)
	def(&cfg.RestartBackoff, DefaultRestartBackoff)
	def(&cfg.StoreTimeout, DefaultStoreTimeout)

	if cfg.ClaimBatch < 1 || cfg.ClaimBatch > maxClaimBatch {
		return cfg, fmt.Errorf("engine: Config.ClaimBatch is %d: want 1 to %d", cfg.ClaimBatch, maxClaimBatch)
	}
	if cfg.MaxAttempts < 1 {
		return cfg, fmt.Errorf("engine: Config.MaxAttempts is %d: want at least 1", cfg.MaxAttempts)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"Lease", cfg.Lease}, {"SendTimeout", cfg.SendTimeout}, {"RetryBase", cfg.RetryBase},
		{"RetryMax", cfg.RetryMax}, {"NoReportAfter", cfg.NoReportAfter}, {"PollMin", cfg.PollMin},
		{"PollMax", cfg.PollMax}, {"FlushInterval", cfg.FlushInterval},
		{"HeartbeatInterval", cfg.HeartbeatInterval}, {"LeaderTTL", cfg.LeaderTTL},
		{"ChannelRefresh", cfg.ChannelRefresh}, {"RestartBackoff", cfg.RestartBackoff},
		{"StoreTimeout", cfg.StoreTimeout},
	} {
		if d.v < 0 {
			return cfg, fmt.Errorf("engine: Config.%s is %s: want a positive duration (0 for the default)", d.name, d.v)
		}
	}
	if cfg.SendTimeout >= cfg.Lease {
		return cfg, fmt.Errorf("engine: Config.SendTimeout (%s) must be shorter than Config.Lease (%s), or a send could outlive its lease and be sent twice", cfg.SendTimeout, cfg.Lease)
	}
	if cfg.RetryMax < cfg.RetryBase {
		return cfg, fmt.Errorf("engine: Config.RetryMax (%s) is shorter than Config.RetryBase (%s)", cfg.RetryMax, cfg.RetryBase)
	}
	if cfg.PollMax < cfg.PollMin {
		return cfg, fmt.Errorf("engine: Config.PollMax (%s) is shorter than Config.PollMin (%s)", cfg.PollMax, cfg.PollMin)
	}
	if cfg.LeaderTTL < 3*time.Millisecond {
		return cfg, fmt.Errorf("engine: Config.LeaderTTL is %s: too short to renew", cfg.LeaderTTL)
	}
	return cfg, nil
}

func defaultNodeName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	name := host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
	if len(name) > 128 {
		name = name[len(name)-128:]
	}
	return name
}

// Event is one status transition this node performed on a message.
type Event struct {
	MessageID int64
	Status    string // a store.Status* value
	ChannelID int64
	Time      time.Time
}

// Engine runs Hermod's services against one store. Create it with New,
// run it with Start, and end it with Stop.
type Engine struct {
	cfg    Config
	store  store.Store
	log    *slog.Logger
	node   string
	host   string
	health *health
	events *eventHub
	claims atomic.Uint64 // numbers each claim's lease owner

	routerWake   *broadcast // fired by Nudge, notifications and channel changes
	producerWake *broadcast // fired when messages became QUEUED

	// Database retry backoff for every service.
	dbRetryMin, dbRetryMax time.Duration

	heartbeat  *heartbeat
	elector    *elector
	router     *router
	supervisor *supervisor
	completer  *completer
	reports    *reportBatcher
	rescuer    *rescuer
	sweeper    *sweeper

	mu       sync.Mutex
	started  bool
	stopped  bool
	cancel   context.CancelFunc
	services []service
}

// New validates cfg and builds an Engine. Nothing runs before Start.
func New(cfg Config) (*Engine, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	e := &Engine{
		cfg:          c,
		store:        c.Store,
		node:         c.Node,
		host:         host,
		routerWake:   newBroadcast(),
		producerWake: newBroadcast(),
		dbRetryMin:   50 * time.Millisecond,
		dbRetryMax:   5 * time.Second,
		events:       newEventHub(),
	}
	e.log = c.Logger.With("node", c.Node)
	e.health = newHealth(e.log, e.cfg.StoreTimeout)
	e.heartbeat = &heartbeat{e: e}
	e.elector = newElector(e)
	e.router = &router{e: e}
	e.completer = newCompleter(e)
	e.reports = newReportBatcher(e)
	e.supervisor = newSupervisor(e)
	e.rescuer = &rescuer{e: e}
	e.sweeper = &sweeper{e: e}
	return e, nil
}

// Node returns this engine's node name.
func (e *Engine) Node() string { return e.node }

// Start starts every service and returns. The engine runs until Stop, or
// until ctx is cancelled: cancelling ctx is a hard stop, as if the process
// died (nothing is flushed, leadership and the node row are left to
// expire), which is what tests of crash recovery want. Use Stop for a
// clean shutdown.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started {
		return errors.New("engine: already started; an Engine runs once")
	}
	e.started = true
	runCtx, cancel := context.WithCancel(ctx)
	e.cancel = cancel
	// Order matters for Stop, which stops them in reverse: channels stop
	// before the completer and the report batcher flush, which flush
	// before leadership and the node row go.
	e.services = []service{e.heartbeat, e.elector, e.completer, e.reports, e.supervisor, e.router, e.rescuer, e.sweeper}
	for _, s := range e.services {
		if err := s.Start(runCtx); err != nil {
			cancel()
			return err
		}
	}
	if n, ok := e.store.(store.Notifier); ok {
		go e.listen(runCtx, n)
	}
	go func() {
		<-runCtx.Done()
		e.events.close() // after a hard stop too, so that streams end
	}()
	e.log.Info("engine started", "backend", e.store.Backend(), "no_channels", e.cfg.NoChannels, "only_channels", e.cfg.OnlyChannels)
	return nil
}

// listen turns store notifications into wake-ups.
func (e *Engine) listen(ctx context.Context, n store.Notifier) {
	ch := n.Notifications(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ch:
			if !ok {
				return
			}
			e.routerWake.fire()
			e.producerWake.fire()
		}
	}
}

// Stop shuts the engine down cleanly and returns within ctx's deadline (10
// seconds if ctx has none): it stops claiming, waits for in-flight sends,
// stops the channels, flushes pending results and reports, resigns
// leadership and deletes its node row. Messages whose results could not be
// written are returned to the queue when their lease expires.
func (e *Engine) Stop(ctx context.Context) error {
	e.mu.Lock()
	if !e.started || e.stopped {
		e.mu.Unlock()
		return nil
	}
	e.stopped = true
	services := e.services
	e.mu.Unlock()

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStopTimeout)
		defer cancel()
	}
	for i := len(services) - 1; i >= 0; i-- {
		services[i].Stop(ctx)
	}
	e.cancel()
	lost := e.completer.pending()
	e.events.close()
	if lost > 0 {
		e.log.Error("engine stopped with unwritten send results; those messages are retried when their lease expires", "results", lost)
		return fmt.Errorf("engine: stop: %d send results not written to the database (they are retried after their lease of %s expires): %w", lost, e.cfg.Lease, context.Cause(ctx))
	}
	e.log.Info("engine stopped")
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("engine: stop did not finish in time: %w", err)
	}
	return nil
}

// Nudge wakes the router and the claim loops now. Call it after Hermod
// itself inserted messages. It never blocks.
func (e *Engine) Nudge() {
	e.supervisor.refreshIfOlder(time.Second)
	e.routerWake.fire()
	e.producerWake.fire()
}

// Subscribe returns a channel of the transitions this node performs, and a
// function that ends the subscription, each published after it was
// committed: QUEUED, NOCHANNEL and EXPIRED (routing), SENDING (claimed),
// SENT, QUEUED (a retry), FAILED, DELIVERED and NOTDELIVERED (delivery
// reports, also those that came before the submit response), QUEUED (a
// message rescued after its lease expired), NOREPORT and EXPIRED (the
// leader's sweep) and RECEIVED. Each is published as soon as the
// statement that made it committed. Events of one service come in the
// order of the transitions (transitions made by one statement, such as
// SENT and a DELIVERED from a report that came early, in that order);
// events of different services may swap when one follows the other within
// moments: a QUEUED from the router or rescuer can arrive after the
// SENDING of the producer that claimed the row at once. Order by Time, or
// read the row, when it matters.
// With several nodes sharing the database, each publishes only what it
// did. Events are dropped, not queued, when the channel's buffer is full;
// buffer < 1 means 1. The channel is closed when the engine stops.
func (e *Engine) Subscribe(buffer int) (<-chan Event, func()) {
	return e.events.subscribe(buffer)
}

// IsLeader reports whether this node holds leadership now.
func (e *Engine) IsLeader() bool { return e.elector.isLeader() }

// eventHub fans events out to subscribers without blocking.
type eventHub struct {
	mu     sync.Mutex
	subs   map[int]chan Event
	next   int
	closed bool
}

func newEventHub() *eventHub { return &eventHub{subs: map[int]chan Event{}} }

func (h *eventHub) subscribe(buffer int) (<-chan Event, func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := make(chan Event, max(buffer, 1))
	if h.closed {
		close(ch)
		return ch, func() {}
	}
	id := h.next
	h.next++
	h.subs[id] = ch
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			if c, ok := h.subs[id]; ok {
				delete(h.subs, id)
				close(c)
			}
		})
	}
}

func (h *eventHub) active() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs) > 0
}

// publishChanges publishes the transitions a store call returned, when
// anyone listens.
func (e *Engine) publishChanges(changes []store.Change) {
	if len(changes) == 0 || !e.events.active() {
		return
	}
	now := time.Now().UTC()
	evs := make([]Event, len(changes))
	for i, c := range changes {
		evs[i] = Event{MessageID: c.ID, Status: c.Status, ChannelID: c.ChannelID, Time: now}
	}
	e.events.publish(evs...)
}

func (h *eventHub) publish(events ...Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.subs {
		for _, ev := range events {
			select {
			case c <- ev:
			default:
			}
		}
	}
}

func (h *eventHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for id, c := range h.subs {
		delete(h.subs, id)
		close(c)
	}
}
