package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
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

// Environment of the helper child process: the test binary re-executed.
const (
	childModeEnv    = "HERMOD_ENGINE_TEST_CHILD" // "engine" or "stubborn"
	childDBEnv      = "HERMOD_ENGINE_TEST_DB"
	childSchemaEnv  = "HERMOD_ENGINE_TEST_SCHEMA"
	childChannelEnv = "HERMOD_ENGINE_TEST_CHANNEL"
	childNodeEnv    = "HERMOD_ENGINE_TEST_NODE"
	childParentEnv  = "HERMOD_ENGINE_TEST_PARENT"
	childCrashEnv   = "HERMOD_ENGINE_TEST_CRASH_FILE" // crash at the first start: exit 3
)

// TestMain runs the helper child process when the test binary is started
// by a test's ChildCommand, and the tests otherwise.
func TestMain(m *testing.M) {
	if mode := os.Getenv(childModeEnv); mode != "" {
		os.Exit(runTestChild(mode))
	}
	os.Exit(m.Run())
}

// runTestChild is the child process: "engine" runs an engine for one
// channel, as `hermod channel run NAME` does, until its standard input
// ends or SIGTERM; "stubborn" ignores both and waits to be killed.
func runTestChild(mode string) int {
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	switch mode {
	case "stubborn":
		signal.Ignore(syscall.SIGTERM, os.Interrupt)
		log.Warn("stubborn child ready", "node", os.Getenv(childNodeEnv))
		time.Sleep(time.Hour)
		return 0
	case "engine":
	default:
		fmt.Fprintf(os.Stderr, "unknown %s %q\n", childModeEnv, mode)
		return 2
	}
	// Stop at end of input or on SIGTERM, whichever comes first; the
	// signal stays handled until the process exits.
	ctx := context.Background()
	stop, endOfInput := context.WithCancel(ctx)
	defer endOfInput()
	stop, unregister := signal.NotifyContext(stop, syscall.SIGTERM)
	defer unregister()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		endOfInput()
	}()
	if f := os.Getenv(childCrashEnv); f != "" {
		if _, err := os.Stat(f); errors.Is(err, os.ErrNotExist) {
			_ = os.WriteFile(f, []byte("crashed"), 0o600)
			fmt.Fprintln(os.Stderr, "panic: simulated driver crash")
			return 3
		}
	}
	var s store.Store
	var err error
	s, err = open.Open(ctx, os.Getenv(childDBEnv), open.Options{Schema: os.Getenv(childSchemaEnv), NoMigrate: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open store:", err)
		return 1
	}
	defer s.Close()
	cfg := testConfig(s, nil)
	stretch(&cfg, patience(s))
	cfg.Logger = log
	cfg.Node = os.Getenv(childNodeEnv)
	cfg.ParentNode = os.Getenv(childParentEnv)
	cfg.OnlyChannels = []string{os.Getenv(childChannelEnv)}
	e, err := New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	if err := e.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	<-stop.Done()
	stopCtx, c := context.WithTimeout(ctx, 5*time.Second*patience(s))
	defer c()
	if err := e.Stop(stopCtx); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// childDB is a database a helper child process can open too.
type childDB struct {
	store store.Store
	env   []string // how the child finds it
}

// childBackends runs f once per backend (see backends) on a database that
// the child process opens too.
func childBackends(t *testing.T, f func(t *testing.T, db childDB)) {
	testdb.Run(t, func(t *testing.T, backend string) {
		t.Parallel()
		f(t, newChildDB(t, backend))
	})
}

// newChildDB opens a store on a fresh database of backend.
func newChildDB(t *testing.T, backend string) childDB {
	t.Helper()
	db := testdb.New(t, backend)
	s := teststore.OpenDB(t, db, open.Options{})
	return childDB{store: s, env: []string{childDBEnv + "=" + db.URL, childSchemaEnv + "=" + db.Schema}}
}

func newChildSQLite(t *testing.T) childDB { return newChildDB(t, testdb.SQLite) }

// testChildCommand re-executes the test binary as the helper child.
func testChildCommand(t *testing.T, mode string, env ...string) func(ChildProcess) (*exec.Cmd, error) {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	return func(p ChildProcess) (*exec.Cmd, error) {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(),
			childModeEnv+"="+mode,
			childChannelEnv+"="+p.Channel,
			childNodeEnv+"="+p.Node,
			childParentEnv+"="+p.ParentNode)
		cmd.Env = append(cmd.Env, env...)
		return cmd, nil
	}
}

// setupChild is setup with the child runner's test signals live.
func setupChild(t *testing.T, s store.Store, configure func(*Config)) *testBundle {
	t.Helper()
	b := setup(t, s, configure)
	b.engine.supervisor.exited.init()
	b.engine.supervisor.childExited.init()
	return b
}

// childProcOf returns the running child process of channel id.
func childProcOf(t *testing.T, e *Engine, id int64) *childProc {
	t.Helper()
	var p *childProc
	require.Eventually(t, func() bool {
		e.supervisor.mu.Lock()
		r, ok := e.supervisor.runners[id].(*childRunner)
		e.supervisor.mu.Unlock()
		if !ok {
			return false // not (yet) running as a child process
		}
		r.mu.Lock()
		p = r.proc
		r.mu.Unlock()
		return p != nil
	}, 10*time.Second*patience(e.store), 10*time.Millisecond)
	return p
}

// gone reports whether the process has exited and been waited for.
func (p *childProc) gone() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func TestChildProcessSendsAndStops(t *testing.T) {
	t.Parallel()
	childBackends(t, func(t *testing.T, db childDB) {
		s := db.store
		testdb.SkipOnBabelfish(t, s.Backend(), "a plan cache shared across sessions: every new session compiles each statement text (0.3 to 1.7 s under CI load), so this multi-process scenario misses its deadlines on the 2-core CI machine (docs/benchmarks.md, SQL Server (Babelfish))")
		logPath := filepath.Join(t.TempDir(), "sim.log")
		ch := createChannel(t, s, "sim", simulator.Type, map[string]any{"process": "child", "reportDelay": "5ms", "log": logPath})
		b := setupChild(t, s, func(c *Config) { c.ChildCommand = testChildCommand(t, "engine", db.env...) })
		events, unsubscribe := b.engine.Subscribe(1000)
		defer unsubscribe()
		b.start(t)
		name, err := b.engine.supervisor.started.wait(10 * time.Second * patience(s))
		require.NoError(t, err)
		require.Equal(t, "sim", name)
		p := childProcOf(t, b.engine, ch.ID)
		require.NotEqual(t, os.Getpid(), p.pid)
		require.True(t, strings.HasPrefix(p.node, b.engine.Node()+"/sim/"), p.node)

		ids := insertN(t, s, 20, 0)
		b.engine.Nudge()
		waitStatus(t, s, ids, store.StatusDelivered, 30*time.Second)

		// Each message was sent once, by the child: this engine claimed
		// and sent none of them.
		counts, err := simulator.ReadLog(logPath)
		require.NoError(t, err)
		require.Len(t, counts, len(ids))
		for _, id := range ids {
			require.Equal(t, 1, counts[id], "message %d sent once", id)
		}
		for len(events) > 0 {
			ev := <-events
			require.NotEqual(t, store.StatusSending, ev.Status, "the parent claimed message %d", ev.MessageID)
			require.NotEqual(t, store.StatusSent, ev.Status, "the parent sent message %d", ev.MessageID)
		}

		// The child publishes the channel's state, naming itself.
		require.Eventually(t, func() bool {
			c, err := s.ChannelGet(context.Background(), "sim")
			return err == nil && c.Status == channelRunning && c.StatusNode == p.node &&
				c.StatusDetails == fmt.Sprintf("simulator (child process pid %d of node %s)", p.pid, b.engine.Node())
		}, 10*time.Second*patience(s), 10*time.Millisecond)
		// Its log records arrive in the parent's log, with their level
		// and attributes, under the channel and the child's pid.
		require.Contains(t, b.logs.String(), fmt.Sprintf(`level=INFO msg="channel started" node=%s channel=sim child_pid=%d child_node=%s type=simulator`, b.engine.Node(), p.pid, p.node))
		m, err := s.MessageGet(context.Background(), ids[0])
		require.NoError(t, err)
		require.Contains(t, m.Trace, " by "+p.node+"#", "claimed by the child")

		// Stop ends the child cleanly.
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, b.engine.Stop(stopCtx))
		require.True(t, p.gone(), "the child process still runs after Stop")
		require.NoError(t, p.err, "the child did not exit cleanly")
		c, err := s.ChannelGet(context.Background(), "sim")
		require.NoError(t, err)
		require.Equal(t, channelStopped, c.Status)
		require.Equal(t, b.engine.Node(), c.StatusNode)
	})
}

func TestChildProcessRestartedWithBackoffAfterCrash(t *testing.T) {
	t.Parallel()
	db := newChildSQLite(t)
	s := db.store
	crashFile := filepath.Join(t.TempDir(), "crashed")
	ch := createChannel(t, s, "sim", simulator.Type, map[string]any{"process": "child"})
	const restartBackoff = 400 * time.Millisecond
	b := setupChild(t, s, func(c *Config) {
		c.ChildCommand = testChildCommand(t, "engine", append(db.env, childCrashEnv+"="+crashFile)...)
		c.RestartBackoff = restartBackoff
	})
	b.start(t)
	_, err := b.engine.supervisor.started.wait(10 * time.Second * patience(s))
	require.NoError(t, err)
	exit, err := b.engine.supervisor.childExited.wait(10 * time.Second * patience(s))
	require.NoError(t, err)
	exitedAt := time.Now()
	require.Equal(t, "sim", exit.Channel)
	require.Equal(t, "exit code 3", exit.Exit)
	require.Eventually(t, func() bool {
		c, err := s.ChannelGet(context.Background(), "sim")
		return err == nil && c.Status == channelError && strings.Contains(c.StatusDetails, "exited (exit code 3); restarting in") &&
			strings.Contains(c.StatusDetails, "its last words: panic: simulated driver crash")
	}, 5*time.Second, 10*time.Millisecond)

	// Restarted after the backoff (jittered between half and all of it).
	_, err = b.engine.supervisor.started.wait(10 * time.Second * patience(s))
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(exitedAt), restartBackoff/2-50*time.Millisecond)
	p := childProcOf(t, b.engine, ch.ID)
	require.NotEqual(t, exit.PID, p.pid)
	ids := insertN(t, s, 5, 0)
	b.engine.Nudge()
	waitStatus(t, s, ids, store.StatusDelivered, 30*time.Second)
	require.Equal(t, 1, b.logs.count("channel child process exited; restarting it"))
	require.Equal(t, 1, b.logs.count("child process output"), "the crash's output is logged")
	require.Equal(t, 1, b.logs.count("share SQLite's single writer"), "warned once")
}

func TestChildProcessStoppedWhenChannelDisabled(t *testing.T) {
	t.Parallel()
	db := newChildSQLite(t)
	s := db.store
	ch := createChannel(t, s, "sim", simulator.Type, map[string]any{"process": "child"})
	b := setupChild(t, s, func(c *Config) { c.ChildCommand = testChildCommand(t, "engine", db.env...) })
	b.start(t)
	_, err := b.engine.supervisor.started.wait(10 * time.Second * patience(s))
	require.NoError(t, err)
	p := childProcOf(t, b.engine, ch.ID)
	// Once the child runs the channel, it handles SIGTERM.
	require.Eventually(t, func() bool {
		c, err := s.ChannelGet(context.Background(), "sim")
		return err == nil && c.Status == channelRunning && c.StatusNode == p.node
	}, 10*time.Second*patience(s), 10*time.Millisecond)

	ch.Enabled = false
	require.NoError(t, s.ChannelUpdate(context.Background(), *ch))
	name, err := b.engine.supervisor.exited.wait(10 * time.Second * patience(s))
	require.NoError(t, err)
	require.Equal(t, "sim", name)
	require.True(t, p.gone(), "the child process still runs after its channel was disabled")
	require.NoError(t, p.err, "the child did not stop cleanly")
	require.Eventually(t, func() bool {
		c, err := s.ChannelGet(context.Background(), "sim")
		return err == nil && c.Status == channelStopped && c.StatusNode == b.engine.Node()
	}, 5*time.Second, 10*time.Millisecond)
	_, err = b.engine.supervisor.childExited.wait(200 * time.Millisecond)
	require.Error(t, err, "a stopped child counts as an exit to restart from")

	// Enabled again: a new child.
	ch.Enabled = true
	require.NoError(t, s.ChannelUpdate(context.Background(), *ch))
	_, err = b.engine.supervisor.started.wait(10 * time.Second * patience(s))
	require.NoError(t, err)
	require.NotEqual(t, p.pid, childProcOf(t, b.engine, ch.ID).pid)
}

func TestChildProcessKilledWhenItIgnoresStop(t *testing.T) {
	t.Parallel()
	db := newChildSQLite(t)
	s := db.store
	ch := createChannel(t, s, "sim", simulator.Type, map[string]any{"process": "child"})
	b := setupChild(t, s, func(c *Config) { c.ChildCommand = testChildCommand(t, "stubborn", db.env...) })
	b.start(t)
	p := childProcOf(t, b.engine, ch.ID)
	require.Eventually(t, func() bool { return strings.Contains(b.logs.String(), "stubborn child ready") },
		10*time.Second, 10*time.Millisecond, "the child's log did not arrive")

	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_ = b.engine.Stop(ctx)
	require.Less(t, time.Since(start), 5*time.Second)
	require.True(t, p.gone(), "the child process still runs after Stop")
	require.Equal(t, "signal: killed", exitDescription(p.err))
	require.Contains(t, b.logs.String(), "channel child process did not stop in time; killing it")
}

func TestChildProcessWithoutChildCommand(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	ch := createChannel(t, s, "sim", simulator.Type, map[string]any{"process": "child"})
	b := setupChild(t, s, nil)
	b.start(t)
	name, err := b.engine.supervisor.failed.wait(10 * time.Second * patience(s))
	require.NoError(t, err)
	require.Equal(t, "sim", name)
	require.Eventually(t, func() bool {
		c, err := s.ChannelGet(context.Background(), "sim")
		return err == nil && c.Status == channelError && strings.Contains(c.StatusDetails, "ChildCommand is nil")
	}, 5*time.Second, 10*time.Millisecond)
	// Not run in this process instead: the message stays queued.
	ids := insertN(t, s, 1, ch.ID)
	b.engine.Nudge()
	waitStatus(t, s, ids, store.StatusQueued, 5*time.Second)
	time.Sleep(200 * time.Millisecond)
	require.Equal(t, map[string]int{store.StatusQueued: 1}, statusCounts(t, s, ids))
}

func TestInvalidProcessSetting(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	createChannel(t, s, "sim", simulator.Type, map[string]any{"process": "fork"})
	b := setupChild(t, s, nil)
	b.start(t)
	require.Eventually(t, func() bool {
		c, err := s.ChannelGet(context.Background(), "sim")
		return err == nil && c.Status == channelError && strings.Contains(c.StatusDetails, `"process" is "fork"`)
	}, 5*time.Second, 10*time.Millisecond)
	// Not routable: the message has no channel.
	ids := insertN(t, s, 1, 0)
	b.engine.Nudge()
	waitStatus(t, s, ids, store.StatusNoChannel, 5*time.Second)
}

func TestChildEngineRunsItsChannelInline(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	// Pinned to the parent: the child runs it all the same.
	c, err := s.ChannelCreate(context.Background(), store.Channel{Name: "sim", Type: simulator.Type, Settings: `{"process":"child"}`, Enabled: true, Node: "parent-node"})
	require.NoError(t, err)
	b := setupChild(t, s, func(cfg *Config) {
		cfg.OnlyChannels = []string{"sim"}
		cfg.ParentNode = "parent-node"
		cfg.Node = "parent-node/sim/0001"
	})
	b.start(t)
	_, err = b.engine.supervisor.started.wait(10 * time.Second * patience(s))
	require.NoError(t, err)
	b.engine.supervisor.mu.Lock()
	_, inline := b.engine.supervisor.runners[c.ID].(*runner)
	b.engine.supervisor.mu.Unlock()
	require.True(t, inline)
	ids := insertN(t, s, 3, c.ID)
	b.engine.Nudge()
	waitStatus(t, s, ids, store.StatusDelivered, 10*time.Second)
	require.Eventually(t, func() bool {
		c, err := s.ChannelGet(context.Background(), "sim")
		return err == nil && c.Status == channelRunning &&
			c.StatusDetails == fmt.Sprintf("simulator (child process pid %d of node parent-node)", os.Getpid())
	}, 5*time.Second, 10*time.Millisecond)
}

func TestSplitChannelSettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, process, rest, err string
	}{
		{in: ``, process: ProcessInline, rest: ``},
		{in: `{}`, process: ProcessInline, rest: `{}`},
		{in: `{"latency":"5ms"}`, process: ProcessInline, rest: `{"latency":"5ms"}`},
		{in: `{"process":"child","latency":"5ms"}`, process: ProcessChild, rest: `{"latency":"5ms"}`},
		{in: `{"process":"inline"}`, process: ProcessInline, rest: `{}`},
		{in: `{"process":" Child "}`, process: ProcessChild, rest: `{}`},
		{in: `{"\u0070rocess":"child"}`, process: ProcessChild, rest: `{}`},
		{in: `{"log":"process.log"}`, process: ProcessInline, rest: `{"log":"process.log"}`},
		{in: `[1,2]`, process: ProcessInline, rest: `[1,2]`},
		{in: `{"process":`, process: ProcessInline, rest: `{"process":`},
		{in: `{"process":"fork"}`, err: `"process" is "fork": set it to "inline"`},
		{in: `{"process":true}`, err: `"process" is true, not a string`},
	} {
		process, rest, err := SplitChannelSettings(tc.in)
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.process, process, tc.in)
		require.Equal(t, tc.rest, string(rest), tc.in)
	}
}

func TestDecodeLogRecord(t *testing.T) {
	t.Parallel()
	level, msg, attrs, ok := decodeLogRecord([]byte(`{"time":"2025-01-02T03:04:05Z","level":"WARN+2","msg":"bound","node":"n/sim/ab12","channel":"sim","id":12345678901,"nested":{"a":1}}`))
	require.True(t, ok)
	require.Equal(t, slog.LevelWarn+2, level)
	require.Equal(t, "bound", msg)
	require.Equal(t, []any{"child_node", "n/sim/ab12", "id", json.Number("12345678901"), "nested", map[string]any{"a": json.Number("1")}}, attrs)

	for _, bad := range []string{`{"level":"INFO"}`, `{"msg":"x"`, `{"msg":"x"} trailing`, `not json`, `[]`} {
		_, _, _, ok := decodeLogRecord([]byte(bad))
		require.False(t, ok, bad)
	}
}

func TestChildOutputForwarding(t *testing.T) {
	t.Parallel()
	logs := &logBuffer{}
	p := &childProc{log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	long := strings.Repeat("x", childOutputLine+100)
	p.forward(strings.NewReader("{\"level\":\"ERROR\",\"msg\":\"provider down\",\"code\":7}\r\nplain line\n\n" + long + "\nlast without newline"))
	out := logs.String()
	require.Contains(t, out, `level=ERROR msg="provider down" code=7`)
	require.Contains(t, out, `level=WARN msg="child process output" line="plain line"`)
	require.Contains(t, out, `line=`+strings.Repeat("x", childOutputLine)+"\n", "a long line is cut")
	require.Contains(t, out, `line="last without newline"`)
	require.Equal(t, 4, strings.Count(out, "\n"))
	require.Equal(t, "last without newline", p.last())
}

func TestChildNodeName(t *testing.T) {
	t.Parallel()
	n := childNodeName("host-1-ab", "sim")
	require.Regexp(t, `^host-1-ab/sim/[0-9a-f]{4}$`, n)
	long := childNodeName(strings.Repeat("p", 90), strings.Repeat("c", 64))
	require.Len(t, long, maxNodeName)
	require.True(t, strings.HasSuffix(long[:len(long)-5], "/"+strings.Repeat("c", 64)))
}
