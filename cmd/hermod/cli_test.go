package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/hermod-sms/hermod/store"
	"github.com/hermod-sms/hermod/store/storetest/testdb"
)

func TestVersion(t *testing.T) {
	t.Parallel()

	out := newTestEnv(t).mustRun("version")
	require.Regexp(t, `^hermod \S+ \(go1\.\d+.*, \w+/\w+\)\n$`, out)
}

// TestRunDeliversRawInsert is the README's promise: `hermod run` in an empty
// directory creates hermod.db with a simulator channel, and a row inserted
// with plain SQL, as the sqlite3 shell would, is delivered.
func TestRunDeliversRawInsert(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	srv := e.start()

	line := srv.out.String()
	require.Equal(t, 1, strings.Count(line, "\n"), "hermod run prints one line: %q", line)
	dbPath := filepath.Join(e.dir, "hermod.db")
	require.FileExists(t, dbPath)
	require.Contains(t, line, "sqlite://"+filepath.ToSlash(dbPath))
	require.Contains(t, line, "simulator (simulator, created)")

	db, err := sql.Open("sqlite", dbPath+"?_pragma=busy_timeout(10000)")
	require.NoError(t, err)
	defer db.Close()
	res, err := db.Exec("INSERT INTO Messages (ToAddress, Body) VALUES ('+31612345678', 'hello')")
	require.NoError(t, err)
	id, err := res.LastInsertId()
	require.NoError(t, err)

	var status string
	var sent, ref sql.NullString
	var trace string
	require.Eventually(t, func() bool {
		err := db.QueryRow("SELECT Status, SentTime, Reference, Trace FROM Messages WHERE ID = ?", id).Scan(&status, &sent, &ref, &trace)
		require.NoError(t, err)
		return status == store.StatusDelivered
	}, 30*time.Second, 20*time.Millisecond, "message stayed %s; server log: %s", status, srv.errOut.String())
	require.True(t, sent.Valid && sent.String != "", "SentTime is set")
	require.True(t, ref.Valid && ref.String != "", "Reference is set")
	require.Contains(t, trace, "SENT")
	require.Contains(t, trace, "DELIVERED")

	require.Equal(t, 0, srv.stop(t), "a stop is clean; stderr: %s", srv.errOut.String())

	// The CLI reads what the server wrote.
	out := e.mustRun("messages", "show", strconv.FormatInt(id, 10))
	require.Contains(t, out, "Status:")
	require.Contains(t, out, "DELIVERED")
	require.Contains(t, out, "Parts (1):")
	out = e.mustRun("channels", "list")
	require.Contains(t, out, "simulator")
}

func TestSendListShow(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)

	out := e.mustRun("send", "--to", "+31612345678", "--body", "hello there", "--from", "Hermod", "--priority", "3", "--client-ref", "order-42", "--at", "2h")
	id, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	require.NoError(t, err, "send prints the ID: %q", out)

	// The same client reference returns the same message.
	r := e.run("send", "--to", "+31612345678", "--body", "hello there", "--client-ref", "order-42")
	require.Equal(t, 0, r.code)
	require.Equal(t, strconv.FormatInt(id, 10), strings.TrimSpace(r.stdout))
	require.Contains(t, r.stderr, "already existed")

	show := e.mustRun("messages", "show", strconv.FormatInt(id, 10))
	for _, want := range []string{"ToAddress:", "+31612345678", "FromAddress:", "Hermod", `"hello there"`, "Priority:", "3", "SCHEDULED", "order-42", "Trace:"} {
		require.Contains(t, show, want)
	}

	var shown struct {
		Message store.Message
		Parts   []store.Part
	}
	require.NoError(t, json.Unmarshal([]byte(e.mustRun("messages", "show", "--json", strconv.FormatInt(id, 10))), &shown))
	require.Equal(t, id, shown.Message.ID)
	require.Equal(t, 3, shown.Message.Priority)
	require.WithinDuration(t, time.Now().Add(2*time.Hour), shown.Message.ScheduledTime, time.Minute)

	list := e.mustRun("messages", "list", "--status", "scheduled", "--address", "+31612345678")
	require.Contains(t, list, "hello there")
	require.Contains(t, list, "SCHEDULED")

	var msgs []store.Message
	require.NoError(t, json.Unmarshal([]byte(e.mustRun("messages", "list", "--json", "--status", "DELIVERED")), &msgs))
	require.Empty(t, msgs)
}

func TestChannelsCommands(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)

	out := e.mustRun("channels", "add", "sim2", "--type", "simulator", "--settings", `{"latency":"5ms"}`, "--disabled")
	require.Contains(t, out, "channel sim2 added")
	list := e.mustRun("channels", "list")
	require.Regexp(t, `sim2\s+simulator\s+false`, list)

	e.mustRun("channels", "enable", "sim2")
	require.Regexp(t, `sim2\s+simulator\s+true`, e.mustRun("channels", "list"))
	e.mustRun("channels", "disable", "sim2")
	require.Regexp(t, `sim2\s+simulator\s+false`, e.mustRun("channels", "list"))

	r := e.run("channels", "add", "sim2", "--type", "simulator")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, `channel "sim2" already exists`)

	out = e.mustRun("send", "--to", "+1555", "--body", "x", "--channel", "sim2")
	require.NotEmpty(t, strings.TrimSpace(out))

	e.mustRun("channels", "delete", "sim2")
	r = e.run("channels", "enable", "sim2")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, `channel "sim2" does not exist`)
}

func TestMigrateCommands(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)

	out := e.mustRun("migrate", "status")
	require.Contains(t, out, "current version: 0")
	require.Contains(t, out, "pending")

	out = e.mustRun("migrate", "up")
	require.Contains(t, out, "schema version")
	require.Contains(t, e.mustRun("migrate", "status"), "up to date")

	e.mustRun("migrate", "down", "all")
	require.Contains(t, e.mustRun("migrate", "status"), "current version: 0")

	// --no-migrate leaves an empty database empty: the command says why.
	requireOneLineError(t, e.run("--no-migrate", "channels", "list"), 1, "is at version 0, this hermod needs", "hermod migrate up")
}

// TestPrecedence: flags beat the environment, which beats the file.
func TestPrecedence(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	require.NoError(t, os.WriteFile(filepath.Join(e.dir, "hermod.yaml"), []byte("db: sqlite://file.db\nlog:\n  level: warn\n"), 0o600))

	require.Contains(t, e.mustRun("migrate", "status"), "/file.db")
	e.env["HERMOD_DB"] = "sqlite://env.db"
	require.Contains(t, e.mustRun("migrate", "status"), "/env.db")
	require.Contains(t, e.mustRun("--db", "flag.db", "migrate", "status"), "/flag.db")
	require.Contains(t, e.mustRun("migrate", "status", "--db", "flag2.db"), "/flag2.db", "global flags also follow the command")

	e.env["HERMOD_CONFIG"] = filepath.Join(e.dir, "other.yaml")
	require.NoError(t, os.WriteFile(e.env["HERMOD_CONFIG"], []byte("db: sqlite://other.db\n"), 0o600))
	delete(e.env, "HERMOD_DB")
	require.Contains(t, e.mustRun("migrate", "status"), "/other.db")
}

// requireOneLineError checks the error contract: one line, the wanted
// text, the exit code, no stack trace, no password.
func requireOneLineError(t *testing.T, r result, code int, wants ...string) {
	t.Helper()
	require.Equal(t, code, r.code, "stderr: %s", r.stderr)
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	require.True(t, strings.HasPrefix(last, "hermod: "), "error line: %q", last)
	for _, w := range wants {
		require.Contains(t, last, w)
	}
	require.NotContains(t, r.stderr, "goroutine ")
	require.NotContains(t, r.stderr, "Sup3rSecret")
}

func TestErrors(t *testing.T) {
	t.Parallel()

	t.Run("InvalidConfig", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t)
		require.NoError(t, os.WriteFile(filepath.Join(e.dir, "hermod.yaml"), []byte("db: [unclosed\n"), 0o600))
		r := e.run("channels", "list")
		requireOneLineError(t, r, 2, "configuration file", "hermod.yaml is invalid", "line")
		require.Equal(t, 1, strings.Count(r.stderr, "\n"))
	})
	t.Run("UnknownSetting", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t)
		require.NoError(t, os.WriteFile(filepath.Join(e.dir, "hermod.yaml"), []byte("db: x.db\ndatabse: y\n"), 0o600))
		requireOneLineError(t, e.run("channels", "list"), 2, "is invalid", "line 2", "databse", "docs/configuration.md")
	})
	t.Run("MissingConfig", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t)
		requireOneLineError(t, e.run("--config", "nope.yaml", "channels", "list"), 2, "nope.yaml does not exist", "--config")
	})
	t.Run("UnreadableConfig", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t)
		requireOneLineError(t, e.run("--config", e.dir, "channels", "list"), 2, "cannot be read")
	})
	t.Run("BadLogLevel", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t)
		requireOneLineError(t, e.run("--log-level", "loud", "channels", "list"), 2, `log level "loud"`)
	})
	t.Run("UnknownScheme", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t)
		requireOneLineError(t, e.run("--db", "mysql://root:Sup3rSecret@db/sms", "channels", "list"), 2,
			`scheme "mysql"`, "postgres://", "sqlserver://", "sqlite://", "xxxxx")
	})
	t.Run("UnreachableDatabase", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t)
		e.env["HERMOD_DB"] = "postgres://bob:Sup3rSecret@127.0.0.1:1/sms?sslmode=disable&connect_timeout=3"
		requireOneLineError(t, e.run("channels", "list"), 1, "open postgres database", "bob:xxxxx@127.0.0.1:1", "check")
	})
	t.Run("MissingDirectory", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t)
		requireOneLineError(t, e.run("--db", "sqlite://no/such/dir/h.db", "channels", "list"), 1, "does not exist")
	})
	t.Run("UnknownChannelType", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t)
		requireOneLineError(t, e.run("channels", "add", "x", "--type", "carrier-pigeon"), 2, `unknown channel type "carrier-pigeon"`, "simulator")
	})
	t.Run("BadChannelSettings", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t)
		requireOneLineError(t, e.run("channels", "add", "x", "--type", "simulator", "--settings", `{"latncy":"1s"}`), 2, "latncy", "--settings")
		requireOneLineError(t, e.run("channels", "add", "x", "--type", "simulator", "--settings", `nope`), 2, "not a JSON object")
	})
	t.Run("UnknownCommand", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t)
		requireOneLineError(t, e.run("sned"), 2, `unknown command "sned"`)
		requireOneLineError(t, e.run("messages", "lsit"), 2, `unknown command "lsit" for hermod messages`)
		requireOneLineError(t, e.run("send", "--bogus"), 2, "flag provided but not defined: -bogus")
		requireOneLineError(t, e.run("send", "--body", "x"), 2, "--to is required")
		requireOneLineError(t, e.run("messages", "show", "abc"), 2, `"abc" is not a message ID`)
		requireOneLineError(t, e.run("send", "--to", "1", "--at", "tomorrowish"), 2, "--at", "not a time")
	})
	t.Run("MessageNotFound", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t)
		requireOneLineError(t, e.run("messages", "show", "424242"), 1, "message 424242 does not exist")
	})
}

func TestHelp(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)

	r := e.run("help")
	require.Equal(t, 0, r.code)
	require.Contains(t, r.stdout, "bench")
	r = e.run("send", "-h")
	require.Equal(t, 0, r.code)
	require.Contains(t, r.stdout, "-client-ref")
	r = e.run()
	require.Equal(t, 2, r.code)
}

func TestServiceConfig(t *testing.T) {
	t.Parallel()
	cwd, err := os.Getwd()
	require.NoError(t, err)

	a := newApp(nil, nil, func(string) string { return "" }, "")
	a.flagDB, a.flagConfig, a.flagLogLevel = "data/h.db", "conf/hermod.yaml", "debug"
	cfg, err := a.serviceConfig()
	require.NoError(t, err)
	require.Equal(t, "hermod", cfg.Name)
	require.Equal(t, []string{"service", "run",
		"--db", "sqlite://" + filepath.ToSlash(filepath.Join(cwd, "data/h.db")),
		"--config", filepath.Join(cwd, "conf/hermod.yaml"),
		"--log-level", "debug"}, cfg.Arguments)

	a = newApp(nil, nil, func(string) string { return "" }, "")
	a.flagDB = "postgres://u:p@h/db"
	cfg, err = a.serviceConfig()
	require.NoError(t, err)
	require.Equal(t, []string{"service", "run", "--db", "postgres://u:p@h/db"}, cfg.Arguments)
}

// TestSignalStopsRun runs the real binary (this test binary re-executed)
// and stops it with SIGTERM, as a service manager or Ctrl+C would.
func TestSignalStopsRun(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM on Windows")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "run")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HERMOD_TEST_RUN_MAIN=1")
	out, errOut := &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, errOut
	require.NoError(t, cmd.Start())
	require.Eventually(t, func() bool { return strings.Contains(out.String(), " running: ") },
		30*time.Second, 10*time.Millisecond, "stderr: %s", errOut.String())

	// The API is served too (on the free port TestMain asks for).
	base := (&server{out: out}).apiURL(t)
	status, _ := call(t, "GET", base+"/api/v1/messages", "", "")
	require.Equal(t, 401, status)

	start := time.Now()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), "exit after SIGTERM; stderr: %s", errOut.String())
	require.Less(t, time.Since(start), 10*time.Second)
	require.FileExists(t, filepath.Join(dir, "hermod.db"))
	_, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), time.Second)
	require.Error(t, err, "the API stopped with the process")
}

// TestServerSendShow runs the commands against PostgreSQL, in a schema of
// its own (HERMOD_POSTGRES_SCHEMA), and SQL Server, in a database of its own.
func TestServerSendShow(t *testing.T) {
	t.Parallel()
	testdb.RunOn(t, testdb.Servers, func(t *testing.T, backend string) {
		t.Parallel()
		e := newTestEnv(t)
		e.useDB(backend)

		e.mustRun("channels", "add", "sim", "--type", "simulator")
		out := e.mustRun("send", "--to", "+31612345678", "--body", "via "+backend, "--channel", "sim")
		id := strings.TrimSpace(out)
		show := e.mustRun("messages", "show", id)
		require.Contains(t, show, `"via `+backend+`"`)
		require.Contains(t, show, "sim (ID 1)")
		require.Contains(t, e.mustRun("migrate", "status"), "up to date")
		require.Contains(t, e.mustRun("messages", "list", "--channel", "sim"), "via "+backend)
	})
}

func TestChannelRun(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)

	requireOneLineError(t, e.run("channel", "run", "nope"), 1, `channel "nope" does not exist`)

	e.mustRun("channels", "add", "a", "--type", "simulator")
	e.mustRun("channels", "add", "b", "--type", "simulator")
	ctx, cancel := context.WithCancel(context.Background())
	out, errOut := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- newApp(out, errOut, e.getenv, e.dir).Main(ctx, []string{"channel", "run", "b"}) }()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), " running: ") }, 30*time.Second, 10*time.Millisecond, errOut.String())
	require.Contains(t, out.String(), "channels b (simulator)")
	require.NotContains(t, out.String(), "a (simulator)")
	cancel()
	require.Equal(t, 0, <-done, errOut.String())
}

// TestBenchSmoke runs a tiny benchmark end to end on SQLite.
func TestBenchSmoke(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)

	out := e.mustRun("bench", "--n", "300", "--batch", "100", "--idle", "1", "--report-delay", "1ms")
	for _, want := range []string{"hermod bench: sqlite", "no engine nudge", "throughput:", "insert->SENT:", "idle insert->SENT:", "peak memory:", "duplicates:         0, losses: 0 (of 301 messages"} {
		require.Contains(t, out, want)
	}
	requireOneLineError(t, e.run("bench", "--batch", "0"), 2, "--batch 0 is out of range")
}
