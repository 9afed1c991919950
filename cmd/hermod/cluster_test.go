package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/channels/simulator"
	"github.com/hermod-sms/hermod/store"
	"github.com/hermod-sms/hermod/store/open"
	"github.com/hermod-sms/hermod/store/storetest/testdb"
	"github.com/hermod-sms/hermod/store/storetest/teststore"
)

// The resilience acceptance tests of issue 2 run the real hermod binary as
// separate processes against the database servers (PostgreSQL in
// HERMOD_TEST_POSTGRES, SQL Server in HERMOD_TEST_SQLSERVER):
// TestClusterKillNine (this file) and TestDatabaseOutage (outage_test.go).

// clusterBackends runs f once per database server (see testdb.RunOn).
func clusterBackends(t *testing.T, f func(t *testing.T, backend string)) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the multi-process tests use kill -9 and POSIX signals")
	}
	testdb.RunOn(t, testdb.Servers, func(t *testing.T, backend string) {
		t.Parallel()
		f(t, backend)
	})
}

// hermodBinary is the hermod binary the multi-process tests run, built
// once per test process.
var hermodBinary struct {
	once      sync.Once
	dir, path string
	out       []byte
	err       error
}

// buildHermod builds the hermod binary (once) into a temporary directory
// and returns its path.
func buildHermod(t *testing.T) string {
	t.Helper()
	b := &hermodBinary
	b.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			b.err = fmt.Errorf("the go command is needed to build hermod: put it on PATH: %w", err)
			return
		}
		if b.dir, b.err = os.MkdirTemp("", "hermod-test-bin-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "hermod")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		b.out, b.err = exec.CommandContext(ctx, goTool, "build", "-o", b.path, ".").CombinedOutput()
	})
	require.NoError(t, b.err, "go build ./cmd/hermod: %s", b.out)
	return b.path
}

// removeHermodBinary removes what buildHermod built, at the end of the test
// process.
func removeHermodBinary() {
	if hermodBinary.dir != "" {
		_ = os.RemoveAll(hermodBinary.dir)
	}
}

// clusterDB is a fresh database (a schema on PostgreSQL), dropped when the
// test ends, after every node process has been stopped.
type clusterDB struct {
	testdb.DB
	store store.Store
}

func newClusterDB(t *testing.T, backend string) *clusterDB {
	t.Helper()
	// Created first, so it is dropped after the node processes are stopped.
	db := testdb.New(t, backend)
	return &clusterDB{DB: db, store: teststore.OpenDB(t, db, open.Options{})}
}

// simulatorChannel creates an enabled simulator channel that logs every
// accepted message to logPath.
func (db *clusterDB) simulatorChannel(t *testing.T, name, logPath string, settings map[string]any) *store.Channel {
	t.Helper()
	all := map[string]any{"log": logPath}
	for k, v := range settings {
		all[k] = v
	}
	js, err := json.Marshal(all)
	require.NoError(t, err)
	c, err := db.store.ChannelCreate(context.Background(), store.Channel{Name: name, Type: simulator.Type, Settings: string(js), Enabled: true})
	require.NoError(t, err)
	return c
}

// insert inserts n messages the way an application does: multi-row
// INSERTs of batch rows, no nudge to the engine. It returns their IDs.
func (db *clusterDB) insert(ctx context.Context, n, batch int) ([]int64, error) {
	ids := make([]int64, 0, n)
	for done := 0; done < n; {
		k := min(batch, n-done)
		msgs := make([]store.NewMessage, k)
		for i := range msgs {
			msgs[i] = store.NewMessage{
				ToAddress: fmt.Sprintf("+3161%07d", done+i),
				Body:      "resilience test message " + strconv.Itoa(done+i),
			}
		}
		res, err := db.store.MessageInsert(ctx, msgs)
		if err != nil {
			return ids, fmt.Errorf("insert messages %d to %d: %w", done, done+k, err)
		}
		for _, r := range res {
			ids = append(ids, r.ID)
		}
		done += k
	}
	return ids, nil
}

// counts returns the number of outgoing messages per status.
func (db *clusterDB) counts(ctx context.Context) (map[string]int, error) {
	return db.store.MessageCountByStatus(ctx, store.DirectionOut)
}

// nodeProcess is one `hermod run` process.
type nodeProcess struct {
	name    string
	cmd     *exec.Cmd
	logPath string // standard error: the node's log
	out     *syncBuffer
	done    chan struct{}
	waitErr error
}

// nodeConfig is the YAML configuration file of a test node.
type nodeConfig struct {
	DB       string         `json:"db"`
	Node     string         `json:"node"`
	Log      map[string]any `json:"log"`
	Postgres map[string]any `json:"postgres,omitempty"`
	Engine   map[string]any `json:"engine"`
}

// startNode writes a configuration file for name and starts `hermod run`
// with it, waiting for the line announcing that it runs. The process is
// stopped (SIGINT, then SIGKILL) when the test ends, also on failure.
func startNode(t *testing.T, bin, dir, name, dbURL, schema string, engine map[string]any) *nodeProcess {
	t.Helper()
	nc := nodeConfig{
		DB:     dbURL,
		Node:   name,
		Log:    map[string]any{"level": "info", "format": "text"},
		Engine: engine,
	}
	if schema != "" {
		nc.Postgres = map[string]any{"schema": schema}
	}
	// JSON is YAML: the configuration file is written as JSON.
	cfg, err := json.Marshal(nc)
	require.NoError(t, err)
	cfgPath := filepath.Join(dir, name+".yaml")
	require.NoError(t, os.WriteFile(cfgPath, cfg, 0o600))
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	require.NoError(t, err)

	n := &nodeProcess{name: name, logPath: logPath, out: &syncBuffer{}, done: make(chan struct{})}
	n.cmd = exec.Command(bin, "run", "--config", cfgPath)
	n.cmd.Dir = dir
	n.cmd.Env = append(os.Environ(), "HERMOD_CONFIG=", "HERMOD_DB=", "HERMOD_NODE=", "HERMOD_POSTGRES_SCHEMA=", "HERMOD_LOG_LEVEL=")
	n.cmd.Stdout = n.out
	n.cmd.Stderr = logFile
	require.NoError(t, n.cmd.Start())
	go func() {
		n.waitErr = n.cmd.Wait()
		logFile.Close()
		close(n.done)
	}()
	t.Cleanup(func() {
		n.stop(t, 15*time.Second)
		if t.Failed() {
			t.Logf("log of node %s (last 40 lines):\n%s", name, tail(n.log(), 40))
		}
	})
	deadline := time.After(60 * time.Second)
	for !strings.Contains(n.out.String(), " running: ") {
		select {
		case <-n.done:
			t.Fatalf("node %s exited before it ran (%v); log:\n%s", name, n.waitErr, n.log())
		case <-deadline:
			t.Fatalf("node %s did not announce itself within 60s; log:\n%s", name, n.log())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return n
}

// running reports whether the process has not exited.
func (n *nodeProcess) running() bool {
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// kill9 kills the process with SIGKILL and waits for it to be gone.
func (n *nodeProcess) kill9(t *testing.T) {
	t.Helper()
	require.NoError(t, n.cmd.Process.Kill())
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("node %s still runs 10s after SIGKILL", n.name)
	}
}

// stop interrupts the process, as Ctrl+C does, and kills it when it has
// not exited within timeout. It returns false when it had to kill.
func (n *nodeProcess) stop(t *testing.T, timeout time.Duration) bool {
	if !n.running() {
		return true
	}
	_ = n.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-n.done:
		return true
	case <-time.After(timeout):
		t.Logf("node %s did not stop within %s of SIGINT: killed", n.name, timeout)
		_ = n.cmd.Process.Kill()
		<-n.done
		return false
	}
}

// log returns the node's log so far.
func (n *nodeProcess) log() string {
	b, _ := os.ReadFile(n.logPath)
	return string(b)
}

// logLines returns the node's log lines whose msg is msg.
func (n *nodeProcess) logLines(msg string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(n.log()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "msg="+strconv.Quote(msg)) || strings.Contains(sc.Text(), "msg="+msg+" ") {
			out = append(out, sc.Text())
		}
	}
	return out
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var messagesAttr = regexp.MustCompile(`\bmessages=(\d+)`)

// sumMessagesAttr adds up the messages=N attributes of log lines.
func sumMessagesAttr(lines []string) int {
	total := 0
	for _, l := range lines {
		if m := messagesAttr.FindStringSubmatch(l); m != nil {
			v, _ := strconv.Atoi(m[1])
			total += v
		}
	}
	return total
}

// waitSettled waits until no message is waiting or being sent and either
// every message is DELIVERED or the counts have not changed for quiet (the
// rest then waits for a delivery report that will not come). It fails the
// test on a final status other than SENT or DELIVERED, or at the deadline.
func waitSettled(t *testing.T, db *clusterDB, n int, quiet, timeout time.Duration, progress func(map[string]int)) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var (
		last      map[string]int
		lastStamp time.Time
	)
	for {
		counts, err := db.counts(ctx)
		require.NoError(t, err, "count messages (counts so far %v)", last)
		if progress != nil {
			progress(counts)
		}
		for _, st := range []string{store.StatusFailed, store.StatusNoChannel, store.StatusNotDelivered, store.StatusNoReport, store.StatusExpired, store.StatusCancelled} {
			require.Zero(t, counts[st], "messages ended %s: %v", st, counts)
		}
		if counts[store.StatusDelivered] == n {
			return counts
		}
		busy := counts[store.StatusScheduled] + counts[store.StatusQueued] + counts[store.StatusSending]
		if !mapsEqual(counts, last) {
			last, lastStamp = counts, time.Now()
		} else if busy == 0 && time.Since(lastStamp) >= quiet {
			return counts
		}
		select {
		case <-ctx.Done():
			t.Fatalf("not every message settled within %s: %v", timeout, counts)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// sendCheck is what the simulator's log says about a set of messages.
type sendCheck struct {
	sends      int     // lines in the log for these messages
	notSent    []int64 // messages with no line: never accepted by the channel
	duplicates []int64 // messages accepted more than once
	extraSends int     // sends beyond the first, over all duplicates
}

func checkSends(t *testing.T, logPath string, ids []int64) sendCheck {
	t.Helper()
	sends, err := simulator.ReadLog(logPath)
	require.NoError(t, err)
	var c sendCheck
	for _, id := range ids {
		k := sends[id]
		c.sends += k
		switch {
		case k == 0:
			c.notSent = append(c.notSent, id)
		case k > 1:
			c.duplicates = append(c.duplicates, id)
			c.extraSends += k - 1
		}
	}
	known := make(map[int64]bool, len(ids))
	for _, id := range ids {
		known[id] = true
	}
	for id := range sends {
		require.True(t, known[id], "the simulator logged a send of message %d, which the test did not insert", id)
	}
	return c
}

// TestClusterKillNine is issue 2's multi-node acceptance test: two
// `hermod run` processes share one PostgreSQL database and 100,000
// messages; one of them is killed with SIGKILL in the middle. The other
// rescues the dead node's leased messages once the lease expires. Nothing is
// lost; a message may be sent twice only if the dead node had sent it but
// not yet recorded it (at-least-once), and each such message says so in its
// Trace.
func TestClusterKillNine(t *testing.T) {
	t.Parallel()
	clusterBackends(t, testClusterKillNine)
}

func testClusterKillNine(t *testing.T, backend string) {
	testdb.SkipOnBabelfish(t, backend, "a plan cache shared across sessions: every new session compiles each statement text (0.3 to 1.7 s under CI load), so this multi-process scenario misses its deadlines on the 2-core CI machine (docs/benchmarks.md, SQL Server (Babelfish))")

	const (
		insertBatch = 1000
		batchSize   = 100 // the simulator's batch: messages per claim
		concurrency = 2   // the simulator's concurrency: claim workers per node
		lease       = 4 * time.Second
	)
	total := 100_000
	if backend == testdb.SQLServer {
		// Babelfish, this machine's T-SQL engine, runs tens of messages a
		// second beside the other tests (docs/benchmarks.md): the same
		// scenario at a hundredth of the volume.
		total = 1_000
	}
	bin := buildHermod(t)
	dir := t.TempDir()
	db := newClusterDB(t, backend)
	sendLog := filepath.Join(dir, "sends.log")
	db.simulatorChannel(t, "sim", sendLog, map[string]any{
		"reportDelay": "20ms", "batchSize": batchSize, "concurrency": concurrency,
	})
	engineCfg := map[string]any{"lease": lease.String(), "heartbeatInterval": "1s", "leaderTTL": "3s"}
	nodes := []*nodeProcess{
		startNode(t, bin, dir, "node-a", db.URL, db.Schema, engineCfg),
		startNode(t, bin, dir, "node-b", db.URL, db.Schema, engineCfg),
	}
	victim, survivor := nodes[0], nodes[1]

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	type insertResult struct {
		ids []int64
		err error
		dur time.Duration
	}
	inserted := make(chan insertResult, 1)
	go func() {
		ids, err := db.insert(ctx, total, insertBatch)
		inserted <- insertResult{ids, err, time.Since(start)}
	}()

	// Kill one node once 30% of the messages have been sent.
	var (
		killedAt   time.Duration
		killCounts map[string]int
	)
	for killedAt == 0 {
		counts, err := db.counts(ctx)
		require.NoError(t, err)
		if counts[store.StatusSent]+counts[store.StatusDelivered] >= total*3/10 {
			require.True(t, victim.running(), "node %s exited by itself; log:\n%s", victim.name, tail(victim.log(), 40))
			victim.kill9(t)
			killedAt, killCounts = time.Since(start), counts
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("30%% of the messages were not sent in time: %v", counts)
		case <-time.After(50 * time.Millisecond):
		}
	}
	// The dead node's leases: what it had claimed and not yet recorded as
	// sent. Nothing changes them until they expire.
	leased := map[int64]bool{}
	sending, err := db.store.MessageList(ctx, store.MessageFilter{Status: []string{store.StatusSending}, Direction: store.DirectionOut, Limit: 10000})
	require.NoError(t, err)
	for _, m := range sending {
		if leaseOf(m.LeaseOwner, victim.name) {
			leased[m.ID] = true
		}
	}
	t.Logf("killed %s (SIGKILL) after %s: %v; %d messages SENDING under its lease", victim.name, killedAt.Round(time.Millisecond), killCounts, len(leased))

	ins := <-inserted
	require.NoError(t, ins.err)
	require.Len(t, ins.ids, total)
	t.Logf("inserted %d messages in INSERTs of %d in %s (%.0f/s)", total, insertBatch, ins.dur.Round(time.Millisecond), float64(total)/ins.dur.Seconds())

	// Reports the dead node's simulator had scheduled but not yet handed
	// over died with it: those messages stay SENT. Wait until nothing
	// moves for a few report delays and leases.
	counts := waitSettled(t, db, total, 2*lease, 3*time.Minute, nil)
	elapsed := time.Since(start)
	require.True(t, survivor.running(), "the surviving node exited; log:\n%s", tail(survivor.log(), 40))

	// No message lost: every row is still there and DELIVERED or SENT.
	require.Equal(t, total, counts[store.StatusDelivered]+counts[store.StatusSent], "final statuses: %v", counts)

	sc := checkSends(t, sendLog, ins.ids)
	require.Empty(t, sc.notSent, "messages the simulator never accepted (lost): %d", len(sc.notSent))

	// Each duplicate send is a rescued message of the dead node, and says so.
	leaseExpired := "lease of " + victim.name + "#" // each claim's owner is "node#n"
	for _, id := range sc.duplicates {
		m, err := db.store.MessageGet(ctx, id)
		require.NoError(t, err)
		require.Contains(t, m.Trace, leaseExpired, "message %d was sent more than once without being rescued from %s:\n%s", id, victim.name, m.Trace)
		require.Contains(t, m.Trace, "by "+victim.name, "message %d", id)
	}
	// Only what the dead node held can have been sent twice: messages it
	// had sent whose results were not yet written. That is at most what
	// its workers were sending (workers x batch) plus the send results
	// its engine keeps unwritten before it stops claiming (two chunks of
	// 1,000: engine.completerMaxPending).
	rescued := sumMessagesAttr(survivor.logLines("rescued messages whose lease expired; they are sent again and may arrive twice"))
	const unwrittenResults = 2000
	bound := concurrency*batchSize + unwrittenResults
	// The leases were listed just after the kill; a claim statement the
	// dead node had sent may still have committed after that (PostgreSQL
	// finishes it): at most one claim per worker.
	lateClaim := concurrency * batchSize
	late := 0
	for _, id := range sc.duplicates {
		if !leased[id] {
			late++
		}
	}
	require.LessOrEqual(t, late, lateClaim, "%d messages were sent twice that %s had not leased when it was killed", late, victim.name)
	require.Equal(t, len(sc.duplicates), sc.extraSends, "a rescued message is sent at most twice")
	// A statement the dead node had sent before it died may still commit
	// (PostgreSQL finishes it), so some of its leased messages end SENT
	// without a rescue; but only its leases are rescued, never the
	// survivor's.
	require.Positive(t, rescued, "the dead node's leased messages are rescued")
	require.LessOrEqual(t, rescued, len(leased)+lateClaim, "only the dead node's leases are rescued")
	require.LessOrEqual(t, sc.extraSends, bound,
		"duplicate sends (%d) exceed the killed node's in-flight claims (%d workers x %d messages + %d unwritten results)", sc.extraSends, concurrency, batchSize, unwrittenResults)

	// Messages still SENT were sent by the dead node, whose simulator took
	// their pending delivery reports with it.
	stuck := 0
	if counts[store.StatusSent] > 0 {
		list, err := db.store.MessageList(ctx, store.MessageFilter{Status: []string{store.StatusSent}, Direction: store.DirectionOut, Limit: 10000})
		require.NoError(t, err)
		for _, m := range list {
			lines := strings.Split(strings.TrimSpace(m.Trace), "\n")
			var lastSending string
			for _, l := range lines {
				if strings.Contains(l, " SENDING ") {
					lastSending = l
				}
			}
			require.Contains(t, lastSending, " by "+victim.name+"#",
				"message %d is SENT without a delivery report, but the killed node did not send it last:\n%s", m.ID, m.Trace)
			stuck++
		}
	}
	t.Logf("all %d settled after %s: %.0f msg/s end to end with one node killed; %d DELIVERED, %d SENT whose report died with %s",
		total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), counts[store.StatusDelivered], stuck, victim.name)
	t.Logf("simulator log: %d sends of %d messages, %d sent twice (all of them leased by %s at the kill: %d; bound %d = %d workers x %d + %d unwritten results); %d rescued by %s",
		sc.sends, total, len(sc.duplicates), victim.name, len(leased), bound, concurrency, batchSize, unwrittenResults, rescued, survivor.name)
	if len(sc.duplicates) > 0 {
		t.Logf("duplicate IDs (first 10): %v", sc.duplicates[:min(10, len(sc.duplicates))])
	}
	if testing.Verbose() {
		for _, n := range nodes {
			t.Logf("log of %s:\n%s", n.name, n.log())
		}
	}
	require.True(t, survivor.stop(t, 15*time.Second), "the surviving node stops cleanly on SIGINT")
	require.NoError(t, survivor.waitErr, "exit status of %s; log:\n%s", survivor.name, tail(survivor.log(), 20))
}

// leaseOf reports whether a LeaseOwner belongs to node: the engine names each
// claim's owner "node#n".
func leaseOf(owner, node string) bool {
	return owner == node || strings.HasPrefix(owner, node+"#")
}
