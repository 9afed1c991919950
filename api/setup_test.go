package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/channels"
	"github.com/hermod-sms/hermod/store"
	"github.com/hermod-sms/hermod/store/storetest/testdb"
	"github.com/hermod-sms/hermod/store/storetest/teststore"
)

// testChannelType is a channel type registered for these tests: its
// settings accept two optional fields (one a secret), so that a wrong
// setting is an error.
const testChannelType = "apitest"

type testChannel struct{}

func (testChannel) Start(context.Context, channels.Host) error { return nil }
func (testChannel) Send(_ context.Context, msgs []channels.Message) []channels.Result {
	return make([]channels.Result, len(msgs))
}
func (testChannel) Stop(context.Context) error { return nil }

func init() {
	channels.Register(testChannelType, func(cfg channels.Config) (channels.Channel, error) {
		var s struct{ Greeting, Password string }
		if err := channels.DecodeSettings(cfg.Settings, &s); err != nil {
			return nil, err
		}
		return testChannel{}, nil
	})
}

// testBundle is a live server on a fresh store with one key per scope.
type testBundle struct {
	srv                   *httptest.Server
	api                   *Server
	store                 store.Store
	admin, sender, reader string
	events                *Broadcaster
}

type setupOpts struct {
	backend string // testdb.SQLite (""), testdb.Postgres or testdb.SQLServer
	cfg     func(*Config)
	handler func(http.Handler) http.Handler // wraps the server's handler
}

// openSQLite opens a store on a fresh SQLite database.
func openSQLite(t testing.TB) store.Store { return teststore.Open(t, testdb.SQLite) }

func setup(t testing.TB, opts ...setupOpts) *testBundle {
	t.Helper()
	var o setupOpts
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.backend == "" {
		o.backend = testdb.SQLite
	}
	st := teststore.Open(t, o.backend)
	events := NewBroadcaster()
	cfg := Config{
		Store:       st,
		Events:      events,
		Logger:      slog.New(slog.DiscardHandler),
		KeyCacheTTL: -1,
		RateLimit:   -1,
		Version:     "test",
	}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	api, err := NewServer(cfg)
	require.NoError(t, err)
	var h http.Handler = api
	if o.handler != nil {
		h = o.handler(api)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	b := &testBundle{srv: srv, api: api, store: st, events: events}
	b.admin = b.key(t, "admin", ScopeAdmin)
	b.sender = b.key(t, "sender", ScopeSend)
	b.reader = b.key(t, "reader", ScopeRead)
	return b
}

func (b *testBundle) key(t testing.TB, name string, scopes ...string) string {
	t.Helper()
	_, key, err := CreateKey(context.Background(), b.store, name, scopes, KeyOptions{})
	require.NoError(t, err)
	return key
}

// do sends a request and returns the status and the body.
func (b *testBundle) do(t testing.TB, method, path, key string, body any, hdr ...string) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(v)
	case []byte:
		rd = bytes.NewReader(v)
	default:
		j, err := json.Marshal(v)
		require.NoError(t, err)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, b.srv.URL+path, rd)
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, out, resp.Header
}

// count returns how many messages the store holds.
func (b *testBundle) count(t testing.TB) int {
	t.Helper()
	msgs, err := b.store.MessageList(context.Background(), store.MessageFilter{Limit: 10000})
	require.NoError(t, err)
	return len(msgs)
}

func decode[T any](t testing.TB, body []byte) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(body, &v), "body: %s", body)
	return v
}

// waitFor polls cond; only for asynchronous effects such as SSE delivery.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(errors.New("condition not met within 5s"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
