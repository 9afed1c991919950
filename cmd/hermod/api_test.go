package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/api"
	"github.com/hermod-sms/hermod/api/client"
	"github.com/hermod-sms/hermod/store"
	"github.com/hermod-sms/hermod/store/storetest/testdb"
)

var apiURLPattern = regexp.MustCompile(`, API (https?://\S+) \(needs a key`)

// apiURL is the API's base URL from a server's announcement.
func (s *server) apiURL(t *testing.T) string {
	t.Helper()
	m := apiURLPattern.FindStringSubmatch(s.out.String())
	require.NotNil(t, m, "the announcement names the API: %q", s.out.String())
	return m[1]
}

// call makes one HTTP request and returns the status and body.
func call(t *testing.T, method, url, key, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestRunServesAPI is issue 4 as a user tries it: `hermod run` serves the
// API, nothing answers without a key, a key from `hermod apikey create`
// sends a message that is delivered, `hermod --server` sends and shows
// through the API, and a revoked key is refused.
func TestRunServesAPI(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	// A short key cache, so that a revocation from this process is seen
	// at once; also shows that api settings are read from the file.
	require.NoError(t, os.WriteFile(filepath.Join(e.dir, "hermod.yaml"), []byte("api:\n  keyCacheTTL: 50ms\n"), 0o600))
	srv := e.start()
	line := srv.out.String()
	require.Equal(t, 1, strings.Count(line, "\n"), "hermod run prints one line: %q", line)
	require.Contains(t, line, "hermod apikey create NAME --scopes send,read")
	base := srv.apiURL(t)
	require.True(t, strings.HasPrefix(base, "http://127.0.0.1:"), base)

	// Without a key nothing answers, and nothing is written.
	status, _ := call(t, "GET", base+"/api/v1/messages", "", "")
	require.Equal(t, http.StatusUnauthorized, status)
	status, body := call(t, "POST", base+"/api/v1/messages", "", `{"ToAddress":"+31612345678","Body":"no key"}`)
	require.Equal(t, http.StatusUnauthorized, status)
	require.Contains(t, body, "hermod apikey create")
	status, _ = call(t, "GET", base+"/api/v1/channels", "wrong", "")
	require.Equal(t, http.StatusUnauthorized, status)
	status, _ = call(t, "GET", base+"/healthz", "", "")
	require.Equal(t, http.StatusOK, status, "liveness needs no key")
	requireNothingWithoutKey(t, base)
	r := e.run("messages", "list")
	require.Equal(t, 0, r.code, r.stderr)
	require.NotContains(t, r.stdout, "no key")

	// A key is printed once, alone on standard output.
	r = e.run("apikey", "create", "web", "--scopes", "send,read")
	require.Equal(t, 0, r.code, r.stderr)
	key := strings.TrimSpace(r.stdout)
	require.Regexp(t, `^hmd_[a-z2-7]+_[a-z2-7]+$`, key)
	require.Contains(t, r.stderr, "shown only this once")
	require.NotContains(t, r.stderr, key)
	list := e.mustRun("apikey", "list")
	require.Regexp(t, `web\s+hmd_[a-z2-7]+\s+read,send\s+any\s+default`, list)
	jsonList := e.mustRun("apikey", "list", "--json")
	for _, out := range []string{list, jsonList} {
		require.NotContains(t, out, key)
		require.NotContains(t, out, api.HashKey(key), "the hash is never shown")
	}
	readKey := strings.TrimSpace(e.mustRun("apikey", "create", "reporting", "--scopes", "read"))

	// POST with the key: the message is delivered by the running engine.
	status, body = call(t, "POST", base+"/api/v1/messages", key, `{"ToAddress":"+31612345678","Body":"over http"}`)
	require.Equal(t, http.StatusCreated, status, body)
	var sent client.SendResult
	require.NoError(t, json.Unmarshal([]byte(body), &sent))
	require.Positive(t, sent.ID)
	c := client.New(base, key)
	require.Eventually(t, func() bool {
		m, err := c.Message(t.Context(), sent.ID)
		require.NoError(t, err)
		return m.Status == store.StatusDelivered
	}, 30*time.Second, 20*time.Millisecond, "server log: %s", srv.errOut.String())
	status, _ = call(t, "POST", base+"/api/v1/messages", readKey, `{"ToAddress":"+31612345678","Body":"read only"}`)
	require.Equal(t, http.StatusForbidden, status)

	// The command line through the server.
	e.env["HERMOD_SERVER"] = base
	e.env["HERMOD_API_KEY"] = key
	// No database is touched: a database that cannot be opened proves it.
	e.env["HERMOD_DB"] = "sqlite://no/such/dir/hermod.db"
	id := strings.TrimSpace(e.mustRun("send", "--to", "+31687654321", "--body", "via the server", "--client-ref", "cli-1"))
	r = e.run("send", "--to", "+31687654321", "--body", "via the server", "--client-ref", "cli-1")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, id, strings.TrimSpace(r.stdout))
	require.Contains(t, r.stderr, "already existed")
	var show string
	require.Eventually(t, func() bool {
		show = e.mustRun("messages", "show", id)
		return regexp.MustCompile(`\nStatus:\s+DELIVERED\n`).MatchString(show)
	}, 30*time.Second, 50*time.Millisecond, "server log: %s", srv.errOut.String())
	for _, want := range []string{`"via the server"`, "+31687654321", "cli-1", "simulator (ID 1)", "Parts (1):", "Trace:"} {
		require.Contains(t, show, want)
	}
	var shown struct {
		Message store.Message
		Parts   []store.Part
	}
	require.NoError(t, json.Unmarshal([]byte(e.mustRun("messages", "show", "--json", id)), &shown))
	require.Equal(t, "via the server", shown.Message.Body)
	require.Equal(t, -1, shown.Message.DataCoding, "NULL columns read through the API are -1 as from the database")
	list = e.mustRun("messages", "list", "--status", "delivered")
	require.Contains(t, list, "via the server")
	require.Contains(t, list, "over http")
	require.Regexp(t, `simulator\s+simulator\s+true`, e.mustRun("channels", "list"))
	requireOneLineError(t, e.run("messages", "show", "99999"), 1, "message 99999 does not exist")
	requireOneLineError(t, e.run("channels", "disable", "simulator"), 1, "may not do this (403)", "admin")
	requireOneLineError(t, e.run("migrate", "status", "--server", base), 2, "not through --server")

	// A refused or missing key is one clear line, without the key.
	e.env["HERMOD_API_KEY"] = readKey
	requireOneLineError(t, e.run("send", "--to", "+31687654321", "--body", "x"), 1, "send the message", "403", "lacks the send scope")
	e.env["HERMOD_API_KEY"] = "hmd_aaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	r = e.run("messages", "list")
	requireOneLineError(t, r, 1, "refused the API key (401)", "HERMOD_API_KEY")
	require.NotContains(t, r.stderr, "hmd_aaaaaaaa_bbbb")
	delete(e.env, "HERMOD_API_KEY")
	requireOneLineError(t, e.run("channels", "list"), 2, "needs an API key", "HERMOD_API_KEY", "hermod apikey create")
	delete(e.env, "HERMOD_SERVER")
	delete(e.env, "HERMOD_DB")

	// Revoked on the database, the key is refused by the running server.
	require.Contains(t, e.mustRun("apikey", "revoke", "web"), "API key web revoked")
	require.Eventually(t, func() bool {
		status, _ := call(t, "GET", base+"/api/v1/messages", key, "")
		return status == http.StatusUnauthorized
	}, 5*time.Second, 20*time.Millisecond)
	status, body = call(t, "POST", base+"/api/v1/messages", key, `{"ToAddress":"+31612345678","Body":"after revoke"}`)
	require.Equal(t, http.StatusUnauthorized, status)
	require.Contains(t, body, "revoked")
	require.Regexp(t, `web\s+hmd_\S+\s+read,send\s+any\s+default\s+\S+ \S+\s+\d{4}-`, e.mustRun("apikey", "list"), "the revocation time is listed")
	requireOneLineError(t, e.run("apikey", "revoke", "nobody"), 1, `there is no API key "nobody"`)
	requireOneLineError(t, e.run("apikey", "create", "web"), 1, `an API key named "web" exists already`)
	requireOneLineError(t, e.run("apikey", "create", "x", "--scopes", "everything"), 2, `scope "everything"`)
	requireOneLineError(t, e.run("apikey", "create", "x", "--allow-ip", "10.0.0.0/33"), 2, `allowed IP "10.0.0.0/33"`)
	require.NotContains(t, e.mustRun("messages", "list"), "after revoke")

	// The API stops with the engine.
	require.Equal(t, 0, srv.stop(t), "stderr: %s", srv.errOut.String())
	_, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), time.Second)
	require.Error(t, err, "nothing listens after the stop")
}

// requireNothingWithoutKey calls every operation of the server's own
// OpenAPI document that declares a security requirement, without a key,
// and requires 401 of each; Kannel's sendsms (authenticated by its query)
// without credentials gets Kannel's 403.
func requireNothingWithoutKey(t *testing.T, base string) {
	t.Helper()
	status, body := call(t, "GET", base+"/api/openapi.json", "", "")
	require.Equal(t, http.StatusOK, status)
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &doc))
	fill := strings.NewReplacer("{id}", "1", "{name}", "simulator", "{channel}", "simulator")
	n := 0
	for path, ops := range doc.Paths {
		for method, raw := range ops {
			var op struct {
				Security *[]json.RawMessage `json:"security"`
			}
			if json.Unmarshal(raw, &op) != nil || !slices.Contains([]string{"get", "post", "patch", "delete", "put"}, method) {
				continue
			}
			if op.Security != nil && len(*op.Security) == 0 && path != "/cgi-bin/sendsms" {
				continue // declared public: health, the document, Auron's version
			}
			body := ""
			if method != "get" && method != "delete" {
				body = `{"ToAddress":"+31612345678","Body":"no key"}`
			}
			url := base + fill.Replace(path)
			if path == "/cgi-bin/sendsms" {
				url += "?to=%2B31612345678&text=no+key"
			}
			want := http.StatusUnauthorized
			if path == "/cgi-bin/sendsms" {
				want = http.StatusForbidden // what Kannel itself answers
			}
			status, _ := call(t, strings.ToUpper(method), url, "", body)
			require.Equal(t, want, status, "%s %s without a key", strings.ToUpper(method), path)
			n++
		}
	}
	require.Greater(t, n, 20, "the document lists the protected operations")
}

// TestRemoteAdmin drives the admin commands through the API with an admin
// key: channels and API keys.
func TestRemoteAdmin(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	srv := e.start()
	admin := strings.TrimSpace(e.mustRun("apikey", "create", "ops", "--scopes", "admin", "--rate", "1000", "--allow-ip", "127.0.0.1,::1"))
	require.Regexp(t, `ops\s+\S+\s+admin\s+127\.0\.0\.1,::1\s+1000/s`, e.mustRun("apikey", "list"))
	e.env["HERMOD_SERVER"] = srv.apiURL(t)
	e.env["HERMOD_API_KEY"] = admin

	require.Contains(t, e.mustRun("channels", "add", "sim2", "--type", "simulator", "--disabled"), "channel sim2 added")
	require.Regexp(t, `sim2\s+simulator\s+false`, e.mustRun("channels", "list"))
	require.Contains(t, e.mustRun("channels", "enable", "sim2"), "channel sim2 enabled")
	require.Regexp(t, `sim2\s+simulator\s+true`, e.mustRun("channels", "list"))
	requireOneLineError(t, e.run("channels", "add", "sim2", "--type", "simulator"), 1, `channel "sim2" already exists`)
	require.Contains(t, e.mustRun("channels", "delete", "sim2"), "channel sim2 deleted")
	requireOneLineError(t, e.run("channels", "enable", "sim2"), 1, `channel "sim2" does not exist`)

	r := e.run("apikey", "create", "app")
	require.Equal(t, 0, r.code, r.stderr)
	appKey := strings.TrimSpace(r.stdout)
	require.Contains(t, e.mustRun("apikey", "list"), "app")
	require.NotContains(t, e.mustRun("apikey", "list", "--json"), appKey)
	require.Contains(t, e.mustRun("apikey", "revoke", "app"), "API key app revoked")
	status, _ := call(t, "GET", e.env["HERMOD_SERVER"]+"/api/v1/messages", appKey, "")
	require.Equal(t, http.StatusUnauthorized, status, "revoked through the API: refused at once")
	requireOneLineError(t, e.run("apikey", "revoke", "nobody"), 1, `there is no API key "nobody"`)
}

func TestAPISettings(t *testing.T) {
	t.Parallel()

	t.Run("Off", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t)
		e.env["HERMOD_API_LISTEN"] = "off"
		srv := e.start()
		require.NotContains(t, srv.out.String(), ", API ")
		require.Contains(t, srv.out.String(), "send by inserting into Messages;")
		requireOneLineError(t, e.run("serve"), 2, "api.listen is off")
		time.Sleep(100 * time.Millisecond)
		require.Equal(t, 0, srv.stop(t), "runs without an API until stopped; stderr: %s", srv.errOut.String())
	})
	t.Run("FlagBeatsEnvironment", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t)
		e.env["HERMOD_API_LISTEN"] = "off"
		srv := e.start("--api-listen", "127.0.0.1:0")
		status, _ := call(t, "GET", srv.apiURL(t)+"/readyz", "", "")
		require.Equal(t, http.StatusOK, status)
	})
	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t)
		requireOneLineError(t, e.run("run", "--api-listen", "8080"), 2, `api.listen "8080" is not host:port`)
		requireOneLineError(t, e.run("run", "--api-listen", "127.0.0.1:99999"), 2, "port")
		e.env["HERMOD_API_TLS_CERT"] = "cert.pem"
		requireOneLineError(t, e.run("run"), 2, "api.tls needs both cert and key")
		e.env["HERMOD_API_TLS_KEY"] = "key.pem"
		requireOneLineError(t, e.run("run"), 2, "api.tls", "do not load")
		delete(e.env, "HERMOD_API_TLS_CERT")
		delete(e.env, "HERMOD_API_TLS_KEY")
		e.env["HERMOD_API_CORS_ORIGINS"] = "app.example.com"
		requireOneLineError(t, e.run("run"), 2, `api.corsOrigins entry "app.example.com"`)
		delete(e.env, "HERMOD_API_CORS_ORIGINS")
		e.env["HERMOD_API_TRUSTED_PROXIES"] = "10.0.0.0/8,proxy"
		requireOneLineError(t, e.run("run"), 2, `api.trustedProxies entry "proxy"`)
		delete(e.env, "HERMOD_API_TRUSTED_PROXIES")
		require.NoError(t, os.WriteFile(filepath.Join(e.dir, "hermod.yaml"), []byte("engine:\n  storeTimeout: -1s\n"), 0o600))
		requireOneLineError(t, e.run("run"), 2, "engine.storeTimeout is negative")
		require.NoError(t, os.WriteFile(filepath.Join(e.dir, "hermod.yaml"), []byte("api:\n  rateLimit: -5\n"), 0o600))
		requireOneLineError(t, e.run("run"), 2, "api.rateLimit is -5")
	})
	t.Run("PortInUse", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		e := newTestEnv(t)
		requireOneLineError(t, e.run("run", "--api-listen", ln.Addr().String()), 1, "cannot listen on "+ln.Addr().String(), "--api-listen")
		_, err = os.Stat(filepath.Join(e.dir, "hermod.db"))
		require.ErrorIs(t, err, os.ErrNotExist, "nothing was started or created")
	})
	t.Run("ServerURL", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t)
		e.env["HERMOD_API_KEY"] = "hmd_x_y"
		requireOneLineError(t, e.run("--server", "localhost:8080", "channels", "list"), 2, "is not a URL of a hermod server")
		requireOneLineError(t, e.run("--server", "http://127.0.0.1:1", "channels", "list"), 1, "did not answer", "--server")
		requireOneLineError(t, e.run("--server", "http://127.0.0.1:1", "run"), 2, "--server does not apply")
	})
}

// TestServeTLS serves the API over HTTPS with a certificate file, on an
// API-only node (hermod serve), with CORS for one origin.
func TestServeTLS(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	certPEM, keyPEM := selfSigned(t)
	require.NoError(t, os.WriteFile(filepath.Join(e.dir, "cert.pem"), certPEM, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(e.dir, "key.pem"), keyPEM, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(e.dir, "hermod.yaml"), []byte(
		"api:\n  tls:\n    cert: cert.pem\n    key: key.pem\n  corsOrigins: [\"https://app.example.com\"]\n"), 0o600))

	ctx, cancel := context.WithCancel(context.Background())
	out, errOut := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- newApp(out, errOut, e.getenv, e.dir).Main(ctx, []string{"serve"}) }()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), " running: ") }, 30*time.Second, 10*time.Millisecond, errOut.String())
	require.Contains(t, out.String(), "channels none on this node (API only)")
	base := (&server{out: out}).apiURL(t)
	require.True(t, strings.HasPrefix(base, "https://127.0.0.1:"), base)

	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(certPEM))
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	req, err := http.NewRequestWithContext(t.Context(), "GET", base+"/api/v1/messages", nil)
	require.NoError(t, err)
	req.Header.Set("Origin", "https://app.example.com")
	resp, err := hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Equal(t, "https://app.example.com", resp.Header.Get("Access-Control-Allow-Origin"))

	key := strings.TrimSpace(e.mustRun("apikey", "create", "tls", "--scopes", "send,read"))
	c := client.New(base, key, client.WithHTTPClient(hc))
	res, err := c.Send(t.Context(), client.NewMessage{ToAddress: "+31612345678", Body: "over TLS"})
	require.NoError(t, err)
	m, err := c.Message(t.Context(), res.ID)
	require.NoError(t, err)
	require.Equal(t, "over TLS", m.Body)
	// No channel runs on an API-only node, and none was created.
	chs, err := c.Channels(t.Context())
	require.NoError(t, err)
	require.Empty(t, chs)

	cancel()
	select {
	case code := <-done:
		require.Equal(t, 0, code, errOut.String())
	case <-time.After(20 * time.Second):
		t.Fatal("hermod serve did not stop")
	}
}

// selfSigned returns a PEM certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "hermod test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(k)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// TestConfigDocumented: every key of the configuration file is in
// docs/configuration.md, so that a new setting cannot go undocumented.
func TestConfigDocumented(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	require.NoError(t, err)
	var keys []string
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			name := prefix + strings.Split(f.Tag.Get("yaml"), ",")[0]
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Time]() {
				walk(name+".", f.Type)
				continue
			}
			keys = append(keys, name)
		}
	}
	walk("", reflect.TypeFor[Config]())
	require.Contains(t, keys, "engine.storeTimeout")
	require.Contains(t, keys, "api.tls.cert")
	for _, k := range keys {
		require.Contains(t, string(doc), "`"+k+"`", "docs/configuration.md does not document %s", k)
	}
}

// TestRunStreamsEngineEvents: GET /api/v1/events carries the engine's
// state changes, published by the engine, not the API: a message's SENT and
// then its DELIVERED (from the delivery report).
func TestRunStreamsEngineEvents(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	srv := e.start()
	key := strings.TrimSpace(e.mustRun("apikey", "create", "dash", "--scopes", "send,read"))
	c := client.New(srv.apiURL(t), key)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	got := make(chan client.Event, 16)
	go func() {
		defer close(got)
		for ev, err := range c.Events(ctx, store.StatusSent, store.StatusDelivered) {
			if err != nil {
				return
			}
			got <- ev
		}
	}()
	// The stream is open once the server holds the subscription; send
	// until an event for one of the messages arrives.
	ids := map[int64]bool{}
	sent := map[int64]bool{}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case ev, ok := <-got:
			require.True(t, ok, "the event stream ended; server log: %s", srv.errOut.String())
			if !ids[ev.MessageID] {
				continue
			}
			require.Equal(t, int64(1), ev.ChannelID, "the simulator sent it")
			switch ev.Status {
			case store.StatusSent:
				sent[ev.MessageID] = true
			case store.StatusDelivered:
				require.True(t, sent[ev.MessageID], "DELIVERED before SENT for message %d", ev.MessageID)
				return
			}
		case <-tick.C:
			res, err := c.Send(ctx, client.NewMessage{ToAddress: "+31612345678", Body: "watched"})
			require.NoError(t, err)
			ids[res.ID] = true
		case <-ctx.Done():
			t.Fatalf("no SENT and DELIVERED events for the %d messages sent; server log: %s", len(ids), srv.errOut.String())
		}
	}
}

// TestServerAPI: the API served by hermod run on PostgreSQL, in a schema
// of its own, and on SQL Server, in a database of its own.
func TestServerAPI(t *testing.T) {
	t.Parallel()
	testdb.RunOn(t, testdb.Servers, func(t *testing.T, backend string) {
		t.Parallel()
		e := newTestEnv(t)
		e.useDB(backend)
		e.mustRun("channels", "add", "sim", "--type", "simulator")
		key := strings.TrimSpace(e.mustRun("apikey", "create", "app", "--scopes", "send,read"))
		srv := e.start()
		base := srv.apiURL(t)
		status, _ := call(t, "POST", base+"/api/v1/messages", "", `{"ToAddress":"+31612345678","Body":"no key"}`)
		require.Equal(t, http.StatusUnauthorized, status)

		e.env["HERMOD_SERVER"] = base
		e.env["HERMOD_API_KEY"] = key
		id := strings.TrimSpace(e.mustRun("send", "--to", "+31612345678", "--body", backend+" via the server", "--channel", "sim"))
		require.Eventually(t, func() bool {
			return regexp.MustCompile(`\nStatus:\s+DELIVERED\n`).MatchString(e.mustRun("messages", "show", id))
		}, 30*time.Second, 50*time.Millisecond, "server log: %s", srv.errOut.String())
		require.NotContains(t, e.mustRun("messages", "list"), "no key")
		require.Equal(t, 0, srv.stop(t), srv.errOut.String())
	})
}
