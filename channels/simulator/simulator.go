package simulator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hermod-sms/hermod/channels"
	"github.com/hermod-sms/hermod/channels/sms"
)

// Type is the channel type name the simulator registers under.
const Type = "simulator"

func init() { channels.Register(Type, New) }

// Error codes the simulator gives.
const (
	CodeThrottled   = "SIM_THROTTLED"   // temporary refusal (failRate)
	CodeRejected    = "SIM_REJECTED"    // permanent refusal (permanentFailRate)
	CodeUndelivered = "SIM_UNDELIVERED" // a report saying not delivered (undeliveredRate)
)

// Duration is a time.Duration that decodes from JSON as a string ("50ms")
// or a number of milliseconds.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w (use a form like \"50ms\" or \"2s\")", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var ms float64
	if err := json.Unmarshal(b, &ms); err != nil {
		return fmt.Errorf("duration %s: want a string like \"50ms\" or a number of milliseconds", b)
	}
	*d = Duration(ms * float64(time.Millisecond))
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// Settings configure a simulator channel. The zero value of a field takes
// the default documented in the package comment.
type Settings struct {
	Latency           Duration `json:"latency"`
	FailRate          float64  `json:"failRate"`
	PermanentFailRate float64  `json:"permanentFailRate"`
	UndeliveredRate   float64  `json:"undeliveredRate"`
	NoReportRate      float64  `json:"noReportRate"`
	ReportDelay       Duration `json:"reportDelay"`
	Parts             int      `json:"parts"`
	IncomingEvery     Duration `json:"incomingEvery"`
	Log               string   `json:"log"`
	BatchSize         int      `json:"batchSize"`
	Concurrency       int      `json:"concurrency"`
	Seed              uint64   `json:"seed"`
}

// DefaultSettings returns the settings an empty JSON object gives.
func DefaultSettings() Settings {
	return Settings{
		ReportDelay: Duration(50 * time.Millisecond),
		BatchSize:   50,
		Concurrency: 2,
	}
}

func (s *Settings) validate() error {
	rates := []struct {
		name string
		v    float64
	}{
		{"failRate", s.FailRate},
		{"permanentFailRate", s.PermanentFailRate},
		{"undeliveredRate", s.UndeliveredRate},
		{"noReportRate", s.NoReportRate},
	}
	for _, r := range rates {
		if r.v < 0 || r.v > 1 {
			return fmt.Errorf("settings: %s is %v: want a share between 0 and 1", r.name, r.v)
		}
	}
	if s.FailRate+s.PermanentFailRate > 1 {
		return fmt.Errorf("settings: failRate + permanentFailRate is %v: want at most 1", s.FailRate+s.PermanentFailRate)
	}
	for _, d := range []struct {
		name string
		v    Duration
	}{{"latency", s.Latency}, {"reportDelay", s.ReportDelay}, {"incomingEvery", s.IncomingEvery}} {
		if d.v < 0 {
			return fmt.Errorf("settings: %s is %s: want zero or a positive duration", d.name, time.Duration(d.v))
		}
	}
	if s.Parts < 0 || s.Parts > 255 {
		return fmt.Errorf("settings: parts is %d: want 0 (by body length) to 255", s.Parts)
	}
	if s.BatchSize < 0 || s.BatchSize > 1000 {
		return fmt.Errorf("settings: batchSize is %d: want 1 to 1000 (0 for the default 50)", s.BatchSize)
	}
	if s.Concurrency < 0 || s.Concurrency > 256 {
		return fmt.Errorf("settings: concurrency is %d: want 1 to 256 (0 for the default 2)", s.Concurrency)
	}
	if s.BatchSize == 0 {
		s.BatchSize = 50
	}
	if s.Concurrency == 0 {
		s.Concurrency = 2
	}
	return nil
}

// Channel is a running simulator. It implements channels.Channel and
// channels.Limits.
type Channel struct {
	cfg      channels.Config
	settings Settings
	log      *slog.Logger

	prefix  string // makes references unique per instance
	counter atomic.Uint64

	randMu sync.Mutex
	rand   *mathrand.Rand

	logMu   sync.Mutex
	logFile *os.File

	reports *reportQueue

	mu      sync.Mutex
	host    channels.Host
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started bool
}

// New builds a simulator channel from its configuration. It is the
// channels.Factory registered for type "simulator".
func New(cfg channels.Config) (channels.Channel, error) {
	s := DefaultSettings()
	if err := channels.DecodeSettings(cfg.Settings, &s); err != nil {
		return nil, err
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("simulator: random reference prefix: %w", err)
	}
	seed1, seed2 := s.Seed, s.Seed^0x9e3779b97f4a7c15
	if s.Seed == 0 {
		seed1, seed2 = mathrand.Uint64(), mathrand.Uint64()
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Channel{
		cfg:      cfg,
		settings: s,
		log:      logger,
		prefix:   hex.EncodeToString(b[:]),
		rand:     mathrand.New(mathrand.NewPCG(seed1, seed2)),
	}, nil
}

// Settings returns the channel's effective settings.
func (c *Channel) Settings() Settings { return c.settings }

// BatchSize implements channels.Limits.
func (c *Channel) BatchSize() int { return c.settings.BatchSize }

// Concurrency implements channels.Limits.
func (c *Channel) Concurrency() int { return c.settings.Concurrency }

// Start opens the log file and starts the report scheduler and, when
// incomingEvery is set, the incoming generator.
func (c *Channel) Start(ctx context.Context, host channels.Host) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return errors.New("simulator: already started")
	}
	if c.settings.Log != "" {
		f, err := os.OpenFile(c.settings.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("simulator: open log file (setting \"log\"): %w", err)
		}
		c.logFile = f
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.host = host
	c.cancel = cancel
	c.started = true
	c.reports = newReportQueue(host, c.log)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.reports.run(runCtx)
	}()
	if c.settings.IncomingEvery > 0 {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.generateIncoming(runCtx)
		}()
	}
	host.SetStatus("running", "simulator")
	return nil
}

// Stop stops the background work and closes the log file. Reports not
// yet sent are dropped, as a provider that goes away drops them.
func (c *Channel) Stop(ctx context.Context) error {
	c.mu.Lock()
	if !c.started {
		c.mu.Unlock()
		return nil
	}
	c.started = false
	cancel := c.cancel
	c.mu.Unlock()

	cancel()
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("simulator: stop: %w", ctx.Err())
	}
	c.logMu.Lock()
	if c.logFile != nil {
		if cerr := c.logFile.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("simulator: close log file: %w", cerr)
		}
		c.logFile = nil
	}
	c.logMu.Unlock()
	return err
}

// Send accepts or refuses each message as the settings say.
func (c *Channel) Send(ctx context.Context, msgs []channels.Message) []channels.Result {
	results := make([]channels.Result, len(msgs))
	if d := time.Duration(c.settings.Latency); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			for i, m := range msgs {
				results[i] = channels.Result{ID: m.ID, Err: fmt.Errorf("simulator: not sent: %w", ctx.Err())}
			}
			return results
		}
	}

	var (
		logLines []byte
		due      = time.Now().Add(time.Duration(c.settings.ReportDelay))
		pending  []channels.Report
	)
	c.randMu.Lock()
	for i, m := range msgs {
		results[i].ID = m.ID
		r := c.rand.Float64()
		switch {
		case r < c.settings.PermanentFailRate:
			results[i].Err = channels.Permanent(errors.New("simulator: rejected (permanentFailRate)"))
			results[i].ErrorCode = CodeRejected
			continue
		case r < c.settings.PermanentFailRate+c.settings.FailRate:
			results[i].Err = errors.New("simulator: throttled (failRate)")
			results[i].ErrorCode = CodeThrottled
			continue
		}
		n := c.settings.Parts
		if n == 0 {
			n = Parts(m.Body)
		}
		parts := make([]channels.Part, n)
		for p := range parts {
			parts[p] = channels.Part{Number: p + 1, Reference: c.prefix + "-" + strconv.FormatUint(c.counter.Add(1), 10)}
		}
		results[i].Reference = parts[0].Reference
		results[i].Parts = parts
		logLines = fmt.Appendf(logLines, "%d\t%d\t%s\n", m.ID, m.Attempt, parts[0].Reference)

		if !m.RequestDeliveryReport || c.rand.Float64() < c.settings.NoReportRate {
			continue
		}
		delivered := c.rand.Float64() >= c.settings.UndeliveredRate
		for _, p := range parts {
			rep := channels.Report{Reference: p.Reference, Delivered: true, State: "DELIVRD"}
			if !delivered {
				rep.Delivered, rep.State, rep.ErrorCode = false, "UNDELIV", CodeUndelivered
			}
			pending = append(pending, rep)
		}
	}
	c.randMu.Unlock()

	if len(logLines) > 0 {
		if err := c.appendLog(logLines); err != nil {
			// The messages were not recorded as sent: refuse them all as
			// temporary failures so that none is counted without a line.
			for i := range results {
				if results[i].Err == nil {
					results[i] = channels.Result{ID: results[i].ID, Err: err}
				}
			}
			return results
		}
	}
	if len(pending) > 0 {
		c.mu.Lock()
		q := c.reports
		c.mu.Unlock()
		if q != nil {
			q.add(due, pending)
		}
	}
	return results
}

func (c *Channel) appendLog(lines []byte) error {
	c.logMu.Lock()
	defer c.logMu.Unlock()
	if c.logFile == nil {
		return nil
	}
	if _, err := c.logFile.Write(lines); err != nil {
		return fmt.Errorf("simulator: write log file %s: %w", c.settings.Log, err)
	}
	return nil
}

func (c *Channel) generateIncoming(ctx context.Context) {
	t := time.NewTicker(time.Duration(c.settings.IncomingEvery))
	defer t.Stop()
	var n uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n++
		in := channels.Incoming{
			From:         "+15550000001",
			To:           "+15550000002",
			Body:         fmt.Sprintf("simulated incoming message %d", n),
			DataCoding:   0,
			Reference:    c.prefix + "-in-" + strconv.FormatUint(n, 10),
			TotalParts:   1,
			ReceivedTime: time.Now().UTC(),
		}
		if err := c.host.Receive(ctx, []channels.Incoming{in}); err != nil && ctx.Err() == nil {
			c.log.Warn("simulator: incoming message not stored", "error", err)
		}
	}
}

// Parts is the simulator's part count for a body: the segments a real
// provider would send (channels/sms.Count: GSM 7-bit 160 characters in
// one part, 153 per part beyond; UCS-2 70 and 67), at least 1.
func Parts(body string) int {
	return max(sms.Count(body).Segments, 1)
}
