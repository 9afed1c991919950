package api

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/api/client"
	"github.com/hermod-sms/hermod/store"
)

// gatedInsertStore is a real store whose first MessageInsert waits for
// release before it writes, so that a test can hold a send mid-commit.
type gatedInsertStore struct {
	store.Store

	once    sync.Once
	entered chan struct{} // closed when the first insert started
	release chan struct{}
}

func (g *gatedInsertStore) MessageInsert(ctx context.Context, msgs []store.NewMessage) ([]store.InsertResult, error) {
	first := false
	g.once.Do(func() { first = true })
	if first {
		close(g.entered)
		<-g.release
	}
	return g.Store.MessageInsert(ctx, msgs)
}

// serveBundle is Serve running on a free port until stop is called.
type serveBundle struct {
	url  string
	stop context.CancelFunc
	done chan struct{} // closed when Serve returned
	err  error         // what Serve returned; read after done
}

// startServe runs Serve on a listener of its own, as hermod run does.
func startServe(t *testing.T, cfg ServeConfig, h http.Handler) *serveBundle {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	cfg.Listener = ln
	cfg.Logger = slog.New(slog.DiscardHandler)
	ctx, stop := context.WithCancel(context.Background())
	b := &serveBundle{url: "http://" + ln.Addr().String(), stop: stop, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		b.err = Serve(ctx, cfg, h)
	}()
	t.Cleanup(func() {
		stop()
		select {
		case <-b.done:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return within 10s of the test's end")
		}
	})
	return b
}

// wait returns Serve's result, failing the test if it takes longer than d.
func (b *serveBundle) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-b.done:
		return b.err
	case <-time.After(d):
		t.Fatalf("Serve did not return within %s", d)
		return nil
	}
}

// newTestClient is an HTTP client of its own, so that no test reuses
// another's connections.
func newTestClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// TestServeListener serves a listener bound by the caller: the address it
// reported is the address served, and Serve closes it when it returns.
func TestServeListener(t *testing.T) {
	t.Parallel()
	st := openSQLite(t)
	srv, err := NewServer(Config{Store: st, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	b := startServe(t, ServeConfig{}, srv)
	hc := newTestClient(t)

	resp, err := hc.Get(b.url + "/healthz")
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	b.stop()
	require.NoError(t, b.wait(t, 5*time.Second))
	_, err = net.DialTimeout("tcp", strings.TrimPrefix(b.url, "http://"), time.Second)
	require.Error(t, err, "the listener is closed once Serve returned")
}

// TestServeClosesListenerOnError: a configuration error before serving
// still closes the caller's listener, so that the port is not held.
func TestServeClosesListenerOnError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	err = Serve(t.Context(), ServeConfig{Listener: ln, CertFile: "cert.pem", Logger: slog.New(slog.DiscardHandler)}, http.NotFoundHandler())
	require.ErrorContains(t, err, "both a certificate file and a key file")
	_, err = ln.Accept()
	require.ErrorIs(t, err, net.ErrClosed)
}

// TestServeShutdownLetsRequestsFinish is the graceful shutdown: a send
// that is being committed when the shutdown begins is answered 201 (and
// is stored), an open event stream ends at once instead of holding the
// shutdown up, and Serve returns nil after the send was answered.
func TestServeShutdownLetsRequestsFinish(t *testing.T) {
	t.Parallel()
	gs := &gatedInsertStore{Store: openSQLite(t), entered: make(chan struct{}), release: make(chan struct{})}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(gs.release) }) }
	t.Cleanup(release)
	srv, err := NewServer(Config{Store: gs, Logger: slog.New(slog.DiscardHandler), KeyCacheTTL: -1, RateLimit: -1})
	require.NoError(t, err)
	_, key, err := CreateKey(t.Context(), gs, "shutdown", []string{ScopeAdmin}, KeyOptions{})
	require.NoError(t, err)
	b := startServe(t, ServeConfig{ShutdownTimeout: 10 * time.Second}, srv)
	hc := newTestClient(t)

	// An open event stream.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, b.url+"/api/v1/events", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	stream, err := hc.Do(req)
	require.NoError(t, err)
	defer stream.Body.Close()
	require.Equal(t, http.StatusOK, stream.StatusCode)
	rd := bufio.NewReader(stream.Body)
	first, err := rd.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, ": hermod events\n", first)

	// A send held mid-commit.
	type answer struct {
		status int
		body   string
		err    error
	}
	sent := make(chan answer, 1)
	go func() {
		req, err := http.NewRequest(http.MethodPost, b.url+"/api/v1/messages", strings.NewReader(`{"ToAddress":"+31612345678","Body":"in flight"}`))
		if err != nil {
			sent <- answer{err: err}
			return
		}
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			sent <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		sent <- answer{status: resp.StatusCode, body: string(body), err: err}
	}()
	select {
	case <-gs.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the send did not reach the store within 5s")
	}

	b.stop()

	// The stream ends promptly, with a comment saying why, while the send
	// is still being committed.
	rest := make(chan string, 1)
	go func() {
		tail, _ := io.ReadAll(rd)
		rest <- string(tail)
	}()
	select {
	case tail := <-rest:
		require.Contains(t, tail, "shutting down")
	case <-time.After(5 * time.Second):
		t.Fatal("the event stream did not end within 5s of the shutdown")
	}
	select {
	case <-b.done:
		t.Fatalf("Serve returned (%v) while a send was still in flight", b.err)
	default:
	}
	_, err = net.DialTimeout("tcp", strings.TrimPrefix(b.url, "http://"), time.Second)
	require.Error(t, err, "no new connections are accepted once the shutdown began")

	release()
	var a answer
	select {
	case a = <-sent:
	case <-time.After(5 * time.Second):
		t.Fatal("the send was not answered within 5s of its commit")
	}
	require.NoError(t, a.err)
	require.Equal(t, http.StatusCreated, a.status, "body: %s", a.body)
	res := decode[client.SendResult](t, []byte(a.body))
	require.NoError(t, b.wait(t, 5*time.Second))

	m, err := gs.MessageGet(t.Context(), res.ID)
	require.NoError(t, err)
	require.Equal(t, "in flight", m.Body)
}

// TestServeShutdownTimeout: a request that does not finish within the
// shutdown timeout is cut off, and Serve returns an error soon after the
// timeout instead of waiting for it.
func TestServeShutdownTimeout(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{})
	never := make(chan struct{})
	t.Cleanup(func() { close(never) })
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		select {
		case <-never:
		case <-r.Context().Done(): // the connection was closed
		}
	})
	const timeout = 200 * time.Millisecond
	b := startServe(t, ServeConfig{ShutdownTimeout: timeout}, h)
	hc := newTestClient(t)
	failed := make(chan error, 1)
	go func() {
		resp, err := hc.Get(b.url + "/slow")
		if err == nil {
			_ = resp.Body.Close()
		}
		failed <- err
	}()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the request did not reach the handler within 5s")
	}

	start := time.Now()
	b.stop()
	err := b.wait(t, 5*time.Second)
	took := time.Since(start)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "cut off")
	require.GreaterOrEqual(t, took, timeout, "Serve waited for the request up to the timeout")
	require.Less(t, took, 3*time.Second, "Serve returned soon after the timeout")
	select {
	case err := <-failed:
		require.Error(t, err, "the unfinished request's connection was closed")
		require.False(t, errors.Is(err, context.Canceled))
	case <-time.After(5 * time.Second):
		t.Fatal("the cut-off request was not ended within 5s")
	}
}
