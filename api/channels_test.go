package api

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/api/client"
)

func TestChannels(t *testing.T) {
	t.Parallel()
	b := setup(t)
	code, body, hdr := b.do(t, "POST", "/api/v1/channels", b.admin, `{"Name":"sim","Type":"apitest","Settings":{"Greeting":"hi"}}`)
	require.Equal(t, 201, code, "%s", body)
	require.Equal(t, "/api/v1/channels/sim", hdr.Get("Location"))
	ch := decode[client.Channel](t, body)
	require.True(t, ch.Enabled)
	require.JSONEq(t, `{"Greeting":"hi"}`, string(ch.Settings))

	for _, tc := range []struct{ body, field string }{
		{`{"Name":"bad name","Type":"apitest"}`, "Name"},
		{`{"Name":"x","Type":"nosuchtype"}`, "Type"},
		{`{"Name":"x","Type":"apitest","Settings":{"Greting":"typo"}}`, "Settings"},
		{`{"Name":"x","Type":"apitest","Settings":[1]}`, "Settings"},
		{`{"Name":"x","Type":"apitest","Settings":{"process":"fork"}}`, "Settings"},
	} {
		code, body, _ = b.do(t, "POST", "/api/v1/channels", b.admin, tc.body)
		require.Equal(t, 400, code, "%s", body)
		require.Equal(t, tc.field, decode[client.Problem](t, body).Errors[0].Field, "%s", body)
	}
	code, _, _ = b.do(t, "POST", "/api/v1/channels", b.admin, `{"Name":"sim","Type":"apitest"}`)
	require.Equal(t, 409, code)

	// The engine's own key (where the channel runs) is accepted beside the
	// type's settings and kept.
	code, body, _ = b.do(t, "POST", "/api/v1/channels", b.admin, `{"Name":"kid","Type":"apitest","Settings":{"Greeting":"hi","process":"child"}}`)
	require.Equal(t, 201, code, "%s", body)
	require.JSONEq(t, `{"Greeting":"hi","process":"child"}`, string(decode[client.Channel](t, body).Settings))

	code, body, _ = b.do(t, "POST", "/api/v1/channels/sim/stop", b.admin, nil)
	require.Equal(t, 200, code, "%s", body)
	require.False(t, decode[client.Channel](t, body).Enabled)
	code, body, _ = b.do(t, "POST", "/api/v1/channels/sim/start", b.admin, nil)
	require.Equal(t, 200, code, "%s", body)
	require.True(t, decode[client.Channel](t, body).Enabled)

	code, body, _ = b.do(t, "PATCH", "/api/v1/channels/sim", b.admin, `{"Node":"box1"}`)
	require.Equal(t, 200, code, "%s", body)
	require.Equal(t, "box1", decode[client.Channel](t, body).Node)

	// A message can name the channel.
	code, body, _ = b.do(t, "POST", "/api/v1/messages", b.sender, `{"ToAddress":"+31612345678","Body":"x","Channel":"sim"}`)
	require.Equal(t, 201, code, "%s", body)
	m, err := b.store.MessageGet(context.Background(), decode[client.SendResult](t, body).ID)
	require.NoError(t, err)
	require.Equal(t, ch.ID, m.ChannelID)

	code, body, _ = b.do(t, "GET", "/api/v1/channels", b.reader, nil)
	require.Equal(t, 200, code)
	require.Len(t, decode[client.ChannelList](t, body).Channels, 2)

	// A read key sees a channel's secrets masked; the admin key sees them.
	code, body, _ = b.do(t, "PATCH", "/api/v1/channels/sim", b.admin, `{"Settings":{"Greeting":"hi","Password":"s3cret"}}`)
	require.Equal(t, 200, code, "%s", body)
	code, body, _ = b.do(t, "GET", "/api/v1/channels/sim", b.reader, nil)
	require.Equal(t, 200, code, "%s", body)
	require.NotContains(t, string(body), "s3cret")
	require.JSONEq(t, `{"Greeting":"hi","Password":"xxxxx"}`, string(decode[client.Channel](t, body).Settings))
	code, body, _ = b.do(t, "GET", "/api/v1/channels", b.reader, nil)
	require.Equal(t, 200, code, "%s", body)
	require.NotContains(t, string(body), "s3cret")
	code, body, _ = b.do(t, "GET", "/api/v1/channels/sim", b.admin, nil)
	require.Equal(t, 200, code, "%s", body)
	require.JSONEq(t, `{"Greeting":"hi","Password":"s3cret"}`, string(decode[client.Channel](t, body).Settings))

	code, _, _ = b.do(t, "DELETE", "/api/v1/channels/sim", b.admin, nil)
	require.Equal(t, 204, code)
	code, _, _ = b.do(t, "GET", "/api/v1/channels/sim", b.reader, nil)
	require.Equal(t, 404, code)
}

func TestHealth(t *testing.T) {
	t.Parallel()
	b := setup(t)
	code, _, _ := b.do(t, "GET", "/healthz", "", nil)
	require.Equal(t, 200, code)
	code, body, _ := b.do(t, "GET", "/readyz", "", nil)
	require.Equal(t, 200, code, "%s", body)
	h := decode[client.Health](t, body)
	require.Equal(t, "sqlite", h.Backend)
	require.Equal(t, h.LatestSchemaVersion, h.SchemaVersion)
	require.NoError(t, b.store.Close())
	code, _, hdr := b.do(t, "GET", "/readyz", "", nil)
	require.Equal(t, 503, code)
	require.NotEmpty(t, hdr.Get("Retry-After"))
}

// A statement of the engine that fails leaves the node ready, degraded,
// with the problem in the body.
func TestReadyzDegraded(t *testing.T) {
	t.Parallel()
	var current atomic.Pointer[[]client.HealthProblem]
	current.Store(&[]client.HealthProblem{})
	b := setup(t, setupOpts{cfg: func(c *Config) {
		c.Problems = func() []client.HealthProblem { return *current.Load() }
	}})
	code, body, _ := b.do(t, "GET", "/readyz", "", nil)
	require.Equal(t, 200, code, "%s", body)
	require.Equal(t, "ok", decode[client.Health](t, body).Status)

	since := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	problems := []client.HealthProblem{{Operation: "MessageClaim", Channel: "sim", Kind: "statement",
		Error: "postgres: claim messages: ERROR: no sending today (SQLSTATE P0001): fix it (statement failed)", Since: since, FailedCalls: 7}}
	current.Store(&problems)
	code, body, _ = b.do(t, "GET", "/readyz", "", nil)
	require.Equal(t, 200, code, "%s", body)
	h := decode[client.Health](t, body)
	require.Equal(t, "degraded", h.Status)
	require.Equal(t, problems, h.Problems)
	require.Contains(t, string(body), `"Kind":"statement"`)
}

func TestEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	req, err := http.NewRequestWithContext(t.Context(), "GET", b.srv.URL+"/api/v1/events", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+b.reader)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	require.Equal(t, ": hermod events", <-lines)

	// An event from the engine's source and one from the API itself.
	waitFor(t, b.events.hasSubscribers)
	b.events.Publish(Event{MessageID: 42, Status: "SENT", ChannelID: 1, Time: time.Now()})
	code, body, _ := b.do(t, "POST", "/api/v1/messages", b.sender, oneMessage)
	require.Equal(t, 201, code)
	id := decode[client.SendResult](t, body).ID

	var data []string
	timeout := time.After(5 * time.Second)
	for len(data) < 2 {
		select {
		case l := <-lines:
			if strings.HasPrefix(l, "data: ") {
				data = append(data, strings.TrimPrefix(l, "data: "))
			}
		case <-timeout:
			t.Fatalf("events: got %v", data)
		}
	}
	got := strings.Join(data, "\n")
	require.Contains(t, got, `"MessageID":42,"Status":"SENT"`)
	require.Contains(t, got, fmt.Sprintf(`"MessageID":%d,"Status":"SCHEDULED"`, id))

	code, _, _ = b.do(t, "GET", "/api/v1/events?status=NOPE", b.reader, nil)
	require.Equal(t, 400, code)
}

func TestAdaptEvents(t *testing.T) {
	t.Parallel()
	type engineEvent struct {
		MessageID int64
		Status    string
		ChannelID int64
		Time      time.Time
	}
	src := make(chan engineEvent, 1)
	stopped := false
	es := AdaptEvents(func(int) (<-chan engineEvent, func()) { return src, func() { stopped = true } },
		func(e engineEvent) Event { return Event(e) })
	ch, stop := es.Subscribe(4)
	src <- engineEvent{MessageID: 7, Status: "SENT"}
	e := <-ch
	require.Equal(t, int64(7), e.MessageID)
	stop()
	require.True(t, stopped)
	for range ch {
	}
}

func TestMaskSecrets(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{`{"host":"h","password":"p","systemId":"s"}`, `{"host":"h","password":"xxxxx","systemId":"s"}`},
		{`{"password":""}`, `{"password":""}`},
		{`{"tls":{"clientSecret":"c"},"list":[{"apiKey":1}]}`, `{"tls":{"clientSecret":"xxxxx"},"list":[{"apiKey":"xxxxx"}]}`},
		{`{"process":"child","n":1.50}`, `{"process":"child","n":1.50}`},
	} {
		require.JSONEq(t, tc.want, string(maskSecrets(client.RawJSON(tc.in))), tc.in)
	}
	require.Nil(t, maskSecrets(client.RawJSON(`{"password":`)))
}
