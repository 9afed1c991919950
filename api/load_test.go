package api

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/api/client"
)

// TestLoadLive drives a running Hermod server (hermod serve, or hermod run
// with the API) with POST /api/v1/messages and logs what it measured. It
// runs only when HERMOD_API_LOAD_URL is set:
//
//	HERMOD_API_LOAD_URL=http://127.0.0.1:8080 HERMOD_API_LOAD_KEY=hmd_... \
//	HERMOD_API_LOAD_RATE=500 HERMOD_API_LOAD_SECONDS=10 \
//	    go test ./api/ -run TestLoadLive -v
//
// HERMOD_API_LOAD_RATE is requests per second on a fixed schedule (an open
// loop; default 500); HERMOD_API_LOAD_CLIENTS instead keeps that many
// requests in flight (a closed loop); HERMOD_API_LOAD_BATCH is messages per
// POST (default 1); HERMOD_API_LOAD_SECONDS how long to send (default 10).
// The key needs the send scope and a rate limit above the rate. Every
// message is really stored: use a database (or channel) meant for tests.
//
// It fails only when a request is not accepted: the figures are reported,
// never asserted, since a test's timing depends on the machine. The targets
// are measured by the benchmarks (see bench_test.go).
func TestLoadLive(t *testing.T) {
	url := os.Getenv("HERMOD_API_LOAD_URL")
	if url == "" {
		t.Skip("HERMOD_API_LOAD_URL is not set: give the base URL of a running server, and HERMOD_API_LOAD_KEY a key with the send scope")
	}
	key := os.Getenv("HERMOD_API_LOAD_KEY")
	require.NotEmpty(t, key, "HERMOD_API_LOAD_KEY: give an API key with the send scope")
	env := func(name string, def int) int {
		v := os.Getenv(name)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "%s=%q: give a whole number", name, v)
		require.Positive(t, n, "%s: give a number above 0", name)
		return n
	}
	rate := env("HERMOD_API_LOAD_RATE", 500)
	clients := env("HERMOD_API_LOAD_CLIENTS", 0)
	size := env("HERMOD_API_LOAD_BATCH", 1)
	seconds := env("HERMOD_API_LOAD_SECONDS", 10)

	var body []byte
	if size == 1 {
		body, _ = json.Marshal(client.NewMessage{ToAddress: "+31612345678", Body: "Load check " + time.Now().UTC().Format(time.RFC3339)})
	} else {
		var batch client.Batch
		for j := range size {
			batch.Messages = append(batch.Messages, client.NewMessage{ToAddress: fmt.Sprintf("+3161%07d", j), Body: "Load check message body of a typical length"})
		}
		body, _ = json.Marshal(batch)
	}
	bodyOf := func(int) []byte { return body }

	var (
		r    loadResult
		mode string
	)
	if clients > 0 {
		lg := newRemoteLoadGen(t, 1<<31-1, url, key)
		lg.until = time.Now().Add(time.Duration(seconds) * time.Second)
		r = lg.closed(clients, bodyOf)
		mode = fmt.Sprintf("%d clients", clients)
	} else {
		r = newRemoteLoadGen(t, rate*seconds, url, key).open(rate, bodyOf)
		mode = fmt.Sprintf("%d requests/s", rate)
	}
	var figures []string
	for _, m := range r.metrics(size) {
		figures = append(figures, fmt.Sprintf("%.4g %s", m.value, m.unit))
	}
	t.Logf("%s, %d messages per POST, %d requests in %s: %s", mode, size, r.n, r.elapsed.Round(time.Millisecond), strings.Join(figures, ", "))
}
