package smpp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/channels"
	"github.com/hermod-sms/hermod/channels/smpp"
	"github.com/hermod-sms/hermod/channels/smpp/smsctest"
)

// fakeHost records what the channel hands to Hermod.
type fakeHost struct {
	mu         sync.Mutex
	reports    []channels.Report
	incoming   []channels.Incoming
	receiveErr error
	reportErr  error
	states     []string
	log        *slog.Logger
}

func newFakeHost(t testing.TB) *fakeHost {
	level := slog.LevelWarn
	if os.Getenv("HERMOD_TEST_VERBOSE") != "" {
		level = slog.LevelDebug
	}
	return &fakeHost{log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(string(b))
	return len(b), nil
}

func (h *fakeHost) Receive(_ context.Context, in []channels.Incoming) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.receiveErr != nil {
		return h.receiveErr
	}
	h.incoming = append(h.incoming, in...)
	return nil
}

func (h *fakeHost) Report(_ context.Context, r []channels.Report) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.reportErr != nil {
		return h.reportErr
	}
	h.reports = append(h.reports, r...)
	return nil
}

func (h *fakeHost) SetStatus(state, details string) {
	h.mu.Lock()
	h.states = append(h.states, state+": "+details)
	h.mu.Unlock()
}

func (h *fakeHost) Logger() *slog.Logger { return h.log }

func (h *fakeHost) Reports() []channels.Report {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]channels.Report(nil), h.reports...)
}

func (h *fakeHost) Incoming() []channels.Incoming {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]channels.Incoming(nil), h.incoming...)
}

type bundle struct {
	srv  *smsctest.Server
	host *fakeHost
	ch   *smpp.Channel
}

// setup starts a test SMSC and a channel bound to it. settings are merged
// over host/port and fast timeouts.
func setup(t testing.TB, cfg smsctest.Config, settings map[string]any) *bundle {
	t.Helper()
	srv, err := smsctest.Start(cfg)
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	return setupWith(t, srv, settings)
}

// setupWith binds a channel to srv.
func setupWith(t testing.TB, srv *smsctest.Server, settings map[string]any) *bundle {
	t.Helper()
	s := map[string]any{
		"host": srv.Host(), "port": srv.Port(), "systemId": "hermod", "password": "secret",
		"reconnectMin": "50ms", "reconnectMax": "500ms", "responseTimeout": "2s", "throttlePause": "100ms",
		"window": 50, "statsInterval": "-1s",
	}
	for k, v := range settings {
		s[k] = v
	}
	raw, err := json.Marshal(s)
	require.NoError(t, err)
	host := newFakeHost(t)
	ch, err := channels.New("smpp", channels.Config{ID: 1, Name: "smpp-test", Settings: raw, Logger: host.log})
	require.NoError(t, err)
	sc := ch.(*smpp.Channel)
	require.NoError(t, sc.Start(context.Background(), host))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, sc.Stop(ctx))
	})
	require.Eventually(t, func() bool { return sc.Stats().Bound == len(sessionsOf(s)) }, 5*time.Second, 10*time.Millisecond, "channel did not bind")
	return &bundle{srv: srv, host: host, ch: sc}
}

func sessionsOf(s map[string]any) []int {
	n := 1
	if b, ok := s["binds"].(int); ok {
		n = b
	}
	if b, ok := s["receiverBinds"].(int); ok {
		n += b
	}
	return make([]int, n)
}

func msg(id int64, to, body string) channels.Message {
	return channels.Message{ID: id, To: to, From: "Hermod", Body: body, DataCoding: -1, RequestDeliveryReport: true, Attempt: 1}
}

func mixedBody(i int) string {
	switch i % 4 {
	case 0:
		return fmt.Sprintf("short message %d", i)
	case 1: // GSM 7-bit with extension characters, 3+ parts
		s := fmt.Sprintf("long %d: ", i)
		for len(s) < 400 {
			s += "price {EUR} [10€] ~ok^ | "
		}
		return s
	case 2: // UCS-2 with emoji, 3+ parts
		s := fmt.Sprintf("ünïcödé %d ", i)
		for len([]rune(s)) < 150 {
			s += "😀 Привет 👍🏽 "
		}
		return s
	default:
		return fmt.Sprintf("Grüße aus Köln Nr. %d — ok", i)
	}
}
