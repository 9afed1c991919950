package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/store/storetest/testdb"
)

// TestMain lets a test run the real main in a child process (the test
// binary itself), for what only a process can show: signals, exit codes.
func TestMain(m *testing.M) {
	// A channel's child process, started by a `hermod run` of a test
	// through os.Executable (this binary), is the real main too.
	if os.Getenv("HERMOD_TEST_RUN_MAIN") == "1" || os.Getenv(parentNodeEnv) != "" {
		main()
		return
	}
	// Servers started by tests, also in child processes, serve their API
	// on a free port instead of all wanting 127.0.0.1:8080.
	if os.Getenv("HERMOD_API_LISTEN") == "" {
		os.Setenv("HERMOD_API_LISTEN", "127.0.0.1:0")
	}
	code := m.Run()
	removeHermodBinary()
	os.Exit(code)
}

// syncBuffer is a bytes.Buffer safe for a command writing while the test
// reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// result is what one command printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

// testEnv is an isolated environment: its own directory and variables.
type testEnv struct {
	t   *testing.T
	dir string
	env map[string]string
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	// A free port for the API of every server a test starts.
	return &testEnv{t: t, dir: t.TempDir(), env: map[string]string{"HERMOD_API_LISTEN": "127.0.0.1:0"}}
}

func (e *testEnv) getenv(k string) string { return e.env[k] }

// useDB points e's commands at a fresh database of backend (a schema of
// its own on PostgreSQL, a database of its own on SQL Server), dropped when
// the test ends; without the backend's server the test is skipped (fails
// when required, see testdb). Call it before e.start, so that the server
// stops before the database is dropped.
func (e *testEnv) useDB(backend string) testdb.DB {
	e.t.Helper()
	db := testdb.New(e.t, backend)
	e.env["HERMOD_DB"] = db.URL
	if db.Schema != "" {
		e.env["HERMOD_POSTGRES_SCHEMA"] = db.Schema
	}
	return db
}

// run runs one command in-process and returns its output.
func (e *testEnv) run(args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut syncBuffer
	code := newApp(&out, &errOut, e.getenv, e.dir).Main(ctx, args)
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

// mustRun runs a command that must succeed.
func (e *testEnv) mustRun(args ...string) string {
	e.t.Helper()
	r := e.run(args...)
	require.Equal(e.t, 0, r.code, "hermod %s failed: %s", strings.Join(args, " "), r.stderr)
	return r.stdout
}

// server is a `hermod run` in the background.
type server struct {
	out, errOut *syncBuffer
	cancel      context.CancelFunc
	done        chan int
}

// start runs `hermod run` with args until the test stops it, and waits for
// its one announcement line.
func (e *testEnv) start(args ...string) *server {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{out: &syncBuffer{}, errOut: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() {
		s.done <- newApp(s.out, s.errOut, e.getenv, e.dir).Main(ctx, append([]string{"run"}, args...))
	}()
	e.t.Cleanup(func() { s.stop(e.t) })
	require.Eventually(e.t, func() bool { return strings.Contains(s.out.String(), " running: ") },
		30*time.Second, 10*time.Millisecond, "hermod run did not announce itself; stderr: %s", s.errOut.String())
	return s
}

// stop interrupts the server and returns its exit code.
func (s *server) stop(t *testing.T) int {
	s.cancel()
	select {
	case code, ok := <-s.done:
		if ok {
			close(s.done)
			return code
		}
		return 0
	case <-time.After(20 * time.Second):
		t.Fatal("hermod run did not stop within 20s of its context ending")
		return -1
	}
}
