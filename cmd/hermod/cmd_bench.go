package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hermod-sms/hermod/channels/simulator"
	"github.com/hermod-sms/hermod/engine"
	"github.com/hermod-sms/hermod/store"
	"github.com/hermod-sms/hermod/store/open"
)

// benchOptions are the flags of hermod bench.
type benchOptions struct {
	n, batch, channels, idle   int
	sendBatch, sendConcurrency int
	reportDelay, latency       time.Duration
	timeout                    time.Duration
	keep                       bool
	cpuProfile                 string
}

func (a *app) cmdBench(ctx context.Context, args []string) error {
	const usage = "hermod bench [--db URL] [--n 100000] [--batch 1000] [--channels 1] [--send-batch 200] [--send-concurrency 4] [--report-delay 50ms] [--latency 0s] [--idle 20] [--cpuprofile FILE]"
	fs := a.newFlagSet("bench")
	var o benchOptions
	fs.IntVar(&o.n, "n", 100000, "messages to send in the throughput run")
	fs.IntVar(&o.batch, "batch", 1000, "messages per INSERT statement")
	fs.IntVar(&o.channels, "channels", 1, "simulator channels to spread the messages over")
	fs.DurationVar(&o.reportDelay, "report-delay", 50*time.Millisecond, "simulator: time from acceptance to the delivery report")
	fs.DurationVar(&o.latency, "latency", 0, "simulator: time one Send call takes")
	fs.IntVar(&o.sendBatch, "send-batch", 200, "simulator: messages per Send call (the claim size)")
	fs.IntVar(&o.sendConcurrency, "send-concurrency", 4, "simulator: Send calls at once per channel")
	fs.IntVar(&o.idle, "idle", 20, "single messages sent into an idle queue for the latency measurement (0 skips it)")
	fs.DurationVar(&o.timeout, "timeout", 15*time.Minute, "give up when the run takes longer")
	fs.BoolVar(&o.keep, "keep", false, "keep the scratch database (SQLite file or PostgreSQL schema) for inspection")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile (go tool pprof) of the whole run to FILE")
	if _, err := a.parse(fs, usage, args, 0, 0); err != nil {
		return err
	}
	switch {
	case o.n < 1:
		return usagef("--n must be at least 1")
	case o.batch < 1 || o.batch > 10000:
		return usagef("--batch %d is out of range: use 1 to 10000", o.batch)
	case o.channels < 1 || o.channels > 100:
		return usagef("--channels %d is out of range: use 1 to 100", o.channels)
	case o.sendBatch < 1 || o.sendBatch > 1000:
		return usagef("--send-batch %d is out of range: use 1 to 1000", o.sendBatch)
	case o.sendConcurrency < 1 || o.sendConcurrency > 64:
		return usagef("--send-concurrency %d is out of range: use 1 to 64", o.sendConcurrency)
	case o.idle < 0:
		return usagef("--idle must not be negative")
	}
	if err := a.load(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	return a.bench(ctx, o)
}

func (a *app) bench(ctx context.Context, o benchOptions) (err error) {
	scratch, err := os.MkdirTemp("", "hermod-bench-")
	if err != nil {
		return fmt.Errorf("create a scratch directory: %w", err)
	}
	defer func() {
		if !o.keep {
			os.RemoveAll(scratch)
		}
	}()
	if o.cpuProfile != "" {
		f, err := os.Create(resolve(a.dir, o.cpuProfile))
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	// The scratch database: a temporary SQLite file by default, a fresh
	// schema with a PostgreSQL URL, the given database otherwise.
	dbURL, schema, where := "sqlite://"+filepath.ToSlash(filepath.Join(scratch, "bench.db")), "", ""
	if a.dbExplicit {
		dbURL = a.cfg.DB
		backend, err := open.Backend(dbURL)
		if err != nil {
			return err
		}
		if backend == "postgres" {
			var b [4]byte
			_, _ = rand.Read(b[:])
			schema = "hermod_bench_" + hex.EncodeToString(b[:])
			where = ", fresh schema " + schema
		}
	}
	s, err := open.Open(ctx, dbURL, open.Options{Logger: a.logger, Schema: schema, BaseDir: a.dir})
	if err != nil {
		return fmt.Errorf("%w (check --db and that the database server is running)", err)
	}
	defer func() {
		if schema != "" && !o.keep {
			if d, ok := s.(interface {
				DropSchema(context.Context) error
			}); ok {
				if derr := d.DropSchema(context.WithoutCancel(ctx)); derr != nil {
					a.logger.Warn("could not drop the bench schema", "schema", schema, "error", derr)
				}
			} else {
				fmt.Fprintf(a.stdout, "note: drop the scratch schema with: DROP SCHEMA %s CASCADE;\n", schema)
			}
		}
		s.Close()
	}()
	durability := map[string]string{
		"sqlite":    "WAL, synchronous=FULL",
		"postgres":  "server defaults: fsync and synchronous_commit on",
		"sqlserver": "server defaults",
	}[s.Backend()]
	fmt.Fprintf(a.stdout, "hermod bench: %s %s%s (%s)\n", s.Backend(), displayURL(dbURL), where, durability)
	fmt.Fprintf(a.stdout, "%d messages in INSERTs of %d, %d simulator channel(s) (Send batches of %d, %d at once, latency %s, reports after %s), %s/%s, %d CPUs\n",
		o.n, o.batch, o.channels, o.sendBatch, o.sendConcurrency, o.latency, o.reportDelay, runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	fmt.Fprintln(a.stdout, "Messages are inserted the way an application inserts them (multi-row INSERTs through the store, no engine nudge):")
	fmt.Fprintln(a.stdout, "the engine finds them by polling (SQLite, SQL Server) or LISTEN/NOTIFY (PostgreSQL).")

	var logs []string
	for i := 1; i <= o.channels; i++ {
		logPath := filepath.Join(scratch, fmt.Sprintf("sends-%d.log", i))
		settings, _ := json.Marshal(map[string]any{
			"log": logPath, "reportDelay": o.reportDelay.String(), "latency": o.latency.String(),
			"batchSize": o.sendBatch, "concurrency": o.sendConcurrency,
		})
		if _, err := s.ChannelCreate(ctx, store.Channel{Name: fmt.Sprintf("bench%d", i), Type: "simulator", Settings: string(settings), Enabled: true}); err != nil {
			return fmt.Errorf("create simulator channel: %w", err)
		}
		logs = append(logs, logPath)
	}

	cfg := a.engineConfig(s, "")
	cfg.Node = "bench-" + a.cfg.Node
	eng, err := engine.New(cfg)
	if err != nil {
		return usagef("engine configuration: %v", err)
	}
	engCtx, hardStop := context.WithCancel(context.WithoutCancel(ctx))
	defer hardStop()
	if err := eng.Start(engCtx); err != nil {
		return fmt.Errorf("start the engine: %w", err)
	}
	defer func() {
		stopCtx, c := context.WithTimeout(context.Background(), 15*time.Second)
		defer c()
		if serr := eng.Stop(stopCtx); serr != nil && err == nil {
			err = fmt.Errorf("stop the engine: %w", serr)
		}
	}()

	// Throughput: insert everything, wait for every message to be DELIVERED.
	ids := make([]int64, 0, o.n)
	start := time.Now()
	for done := 0; done < o.n; {
		k := min(o.batch, o.n-done)
		batch := make([]store.NewMessage, k)
		for i := range batch {
			batch[i] = store.NewMessage{ToAddress: fmt.Sprintf("+3161%07d", (done+i)%10000000), Body: "hermod bench message " + strconv.Itoa(done+i)}
		}
		res, err := s.MessageInsert(ctx, batch)
		if err != nil {
			return fmt.Errorf("insert messages: %w", err)
		}
		for _, r := range res {
			ids = append(ids, r.ID)
		}
		done += k
	}
	inserted := time.Since(start)
	fmt.Fprintf(a.stdout, "inserted:           %d in %s (%.0f msg/s)\n", o.n, inserted.Round(time.Millisecond), float64(o.n)/inserted.Seconds())

	if err := waitDelivered(ctx, s, o.n, ids[len(ids)-1]); err != nil {
		return err
	}
	wall := time.Since(start)

	// Exact figures from the database's own clock: first CreatedTime to
	// the last commit (LastUpdate of the last message to become DELIVERED).
	var first, last time.Time
	lat := make([]time.Duration, 0, o.n)
	for after := int64(0); ; {
		page, err := s.MessageList(ctx, store.MessageFilter{Direction: store.DirectionOut, AfterID: after, Ascending: true, Limit: 10000})
		if err != nil {
			return fmt.Errorf("read the results: %w", err)
		}
		if len(page) == 0 {
			break
		}
		for _, m := range page {
			after = m.ID
			if first.IsZero() || m.CreatedTime.Before(first) {
				first = m.CreatedTime
			}
			if m.LastUpdate.After(last) {
				last = m.LastUpdate
			}
			if !m.SentTime.IsZero() {
				lat = append(lat, m.SentTime.Sub(m.CreatedTime))
			}
		}
	}
	span := last.Sub(first)
	fmt.Fprintf(a.stdout, "all DELIVERED:      after %s (wall clock from the first INSERT)\n", wall.Round(time.Millisecond))
	fmt.Fprintf(a.stdout, "throughput:         %.0f msg/s end to end (first INSERT to last DELIVERED commit, database clock: %s)\n",
		float64(o.n)/span.Seconds(), span.Round(time.Millisecond))
	slices.Sort(lat)
	fmt.Fprintf(a.stdout, "insert->SENT:       p50 %s  p90 %s  p99 %s  max %s (under full load)\n",
		pct(lat, 50), pct(lat, 90), pct(lat, 99), pct(lat, 100))

	// Idle-queue latency: one message at a time into a quiet queue.
	if o.idle > 0 {
		idle, err := idleLatency(ctx, s, o.idle)
		if err != nil {
			return err
		}
		for _, id := range idle.ids {
			ids = append(ids, id)
		}
		slices.Sort(idle.lat)
		fmt.Fprintf(a.stdout, "idle insert->SENT:  median %s  min %s  max %s (%d single messages into an idle queue)\n",
			pct(idle.lat, 50), pct(idle.lat, 0), pct(idle.lat, 100), len(idle.lat))
	}

	fmt.Fprintf(a.stdout, "peak memory:        %s\n", peakMemory())

	// Duplicates and losses, counted by the simulator itself.
	sends := map[int64]int{}
	for _, l := range logs {
		m, err := simulator.ReadLog(l)
		if err != nil {
			return fmt.Errorf("read the simulator's send log: %w", err)
		}
		for id, c := range m {
			sends[id] += c
		}
	}
	dups, lost := 0, 0
	for _, id := range ids {
		switch c := sends[id]; {
		case c == 0:
			lost++
		case c > 1:
			dups += c - 1
		}
	}
	fmt.Fprintf(a.stdout, "duplicates:         %d, losses: %d (of %d messages, from the simulator's send log)\n", dups, lost, len(ids))
	if o.keep {
		fmt.Fprintf(a.stdout, "kept: %s%s\n", scratch, where)
	}
	if dups > 0 || lost > 0 {
		return fmt.Errorf("%d duplicate and %d lost sends", dups, lost)
	}
	return nil
}

// benchStall is how long the bench waits without any progress before it
// calls the run stuck.
const benchStall = time.Minute

// waitDelivered waits until n outgoing messages are DELIVERED, failing fast
// when some end in another final status or nothing moves for a minute.
//
// Counting by status scans the table, which on SQLite runs in this very
// process and would slow the engine being measured; so the wait looks at
// the last inserted message (a primary key lookup) every 50ms and counts
// only every 2s, or when that message is final. The throughput figure
// comes from the database's timestamps, not from when this loop notices.
func waitDelivered(ctx context.Context, s store.Store, n int, lastID int64) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last map[string]int
	lastChange, lastCount := time.Now(), time.Time{}
	for {
		m, err := s.MessageGet(ctx, lastID)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("gave up waiting for DELIVERED (counts: %s): %w", fmtCounts(last), ctx.Err())
			}
			return fmt.Errorf("read message %d: %w", lastID, err)
		}
		final := m.Status != store.StatusScheduled && m.Status != store.StatusQueued &&
			m.Status != store.StatusSending && m.Status != store.StatusSent
		// Counting scans the whole table, so it runs at most once a second
		// once the newest message is final (every 2s before): the figures
		// come from the database clock (the last DeliveredTime), so a
		// coarser poll costs the measurement nothing and loads it less.
		if (final && time.Since(lastCount) > time.Second) || time.Since(lastCount) > 2*time.Second {
			lastCount = time.Now()
			counts, err := s.MessageCountByStatus(ctx, store.DirectionOut)
			if err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("gave up waiting for DELIVERED (counts: %s): %w", fmtCounts(last), ctx.Err())
				}
				return fmt.Errorf("count messages: %w", err)
			}
			if counts[store.StatusDelivered] >= n {
				return nil
			}
			for _, st := range []string{store.StatusFailed, store.StatusNoChannel, store.StatusNotDelivered, store.StatusNoReport, store.StatusExpired} {
				if counts[st] > 0 {
					return fmt.Errorf("%d message(s) ended %s instead of DELIVERED: inspect them with hermod bench --keep and hermod messages list --status %s", counts[st], st, st)
				}
			}
			if !maps.Equal(counts, last) {
				last, lastChange = counts, time.Now()
			} else if time.Since(lastChange) > benchStall {
				return fmt.Errorf("stalled: no message changed status for %s (counts: %s); the engine stopped making progress", benchStall, fmtCounts(counts))
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up waiting for DELIVERED (counts: %s): %w", fmtCounts(last), ctx.Err())
		case <-tick.C:
		}
	}
}

// fmtCounts prints status counts in a stable order.
func fmtCounts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

type idleResult struct {
	ids []int64
	lat []time.Duration
}

// idleLatency sends n messages one at a time, each after the queue has been
// quiet for a while, and measures insert->SENT on the database's clock.
func idleLatency(ctx context.Context, s store.Store, n int) (idleResult, error) {
	var r idleResult
	for i := range n {
		// Let the engine's poller back off to its idle interval.
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(time.Second + time.Duration(i%5)*113*time.Millisecond):
		}
		res, err := s.MessageInsert(ctx, []store.NewMessage{{ToAddress: "+31600000000", Body: "idle " + strconv.Itoa(i)}})
		if err != nil {
			return r, fmt.Errorf("insert: %w", err)
		}
		id := res[0].ID
		r.ids = append(r.ids, id)
		deadline := time.Now().Add(30 * time.Second)
		for {
			m, err := s.MessageGet(ctx, id)
			if err != nil {
				return r, fmt.Errorf("read message %d: %w", id, err)
			}
			if !m.SentTime.IsZero() {
				r.lat = append(r.lat, m.SentTime.Sub(m.CreatedTime))
				break
			}
			if time.Now().After(deadline) {
				return r, fmt.Errorf("message %d was not SENT within 30s of an idle insert (status %s)", id, m.Status)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return r, nil
}

// pct returns the p-th percentile of sorted durations.
func pct(sorted []time.Duration, p int) string {
	if len(sorted) == 0 {
		return "-"
	}
	i := (len(sorted) - 1) * p / 100
	return sorted[i].Round(time.Millisecond).String()
}

// peakMemory reports the process's peak resident set (VmHWM) where the
// system gives it, else the Go runtime's current total.
func peakMemory() string {
	if f, err := os.Open("/proc/self/status"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
				fields := strings.Fields(v)
				if kb, err := strconv.Atoi(fields[0]); err == nil {
					return fmt.Sprintf("%.0f MiB peak resident (VmHWM)", float64(kb)/1024)
				}
			}
		}
	}
	sample := []metrics.Sample{{Name: "/memory/classes/total:bytes"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() == metrics.KindUint64 {
		return fmt.Sprintf("%.0f MiB mapped by the Go runtime at the end (peak not available on %s)", float64(sample[0].Value.Uint64())/(1<<20), runtime.GOOS)
	}
	return errors.New("not available").Error()
}

// displayURL is a URL fit to print.
func displayURL(u string) string { return open.Redact(u) }
