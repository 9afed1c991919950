package api

import (
	"context"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/api/client"
	"github.com/hermod-sms/hermod/store/storetest/testdb"
)

const oneMessage = `{"ToAddress":"+31612345678","Body":"hello"}`

func TestAuthRefusesAndWritesNothing(t *testing.T) {
	t.Parallel()
	testdb.Run(t, func(t *testing.T, backend string) {
		t.Parallel()
		b := setup(t, setupOpts{backend: backend})
		revoked := b.key(t, "revoked", ScopeSend)
		require.NoError(t, RevokeKey(context.Background(), b.store, "revoked"))

		cases := []struct {
			name, key string
			status    int
		}{
			{"no key", "", 401},
			{"unknown key", "hmd_aaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", 401},
			{"revoked", revoked, 401},
			{"read-only", b.reader, 403},
		}
		for _, tc := range cases {
			code, body, hdr := b.do(t, "POST", "/api/v1/messages", tc.key, oneMessage)
			require.Equal(t, tc.status, code, "%s: %s", tc.name, body)
			require.Equal(t, "application/problem+json", hdr.Get("Content-Type"))
			require.NotContains(t, string(body), revoked)
		}
		// The Auron and Kannel doors are locked the same way.
		code, _, _ := b.do(t, "POST", "/any/messagedb/create", "", `{"message":[{"ToAddress":"+31612345678","Body":"x"}]}`, "Authorization", b.reader)
		require.Equal(t, 403, code)
		code, _, _ = b.do(t, "GET", "/cgi-bin/sendsms?username=revoked&password="+revoked+"&to=%2B31612345678&text=x", "", nil)
		require.Equal(t, 403, code)
		code, _, _ = b.do(t, "GET", "/cgi-bin/sendsms?username=other&password="+b.sender+"&to=%2B31612345678&text=x", "", nil)
		require.Equal(t, 403, code, "the username must be the key's name")
		require.Zero(t, b.count(t), "nothing is written without a valid send key")

		// Read and admin routes.
		code, _, _ = b.do(t, "GET", "/api/v1/messages", b.sender, nil)
		require.Equal(t, 403, code)
		code, _, _ = b.do(t, "POST", "/api/v1/channels", b.sender, `{"Name":"x","Type":"apitest"}`)
		require.Equal(t, 403, code)
		chans, err := b.store.ChannelList(context.Background())
		require.NoError(t, err)
		require.Empty(t, chans)

		// The admin key holds every scope; the bare key works too (Auron).
		code, body, _ := b.do(t, "POST", "/api/v1/messages", "", oneMessage, "Authorization", b.admin)
		require.Equal(t, 201, code, "%s", body)
	})
}

func TestRevokeThroughAPITakesEffectAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{cfg: func(c *Config) { c.KeyCacheTTL = time.Hour }})
	victim := b.key(t, "victim", ScopeSend)
	code, _, _ := b.do(t, "POST", "/api/v1/messages", victim, oneMessage)
	require.Equal(t, 201, code)
	code, _, _ = b.do(t, "POST", "/api/v1/apikeys/victim/revoke", b.admin, nil)
	require.Equal(t, 204, code)
	code, _, _ = b.do(t, "POST", "/api/v1/messages", victim, oneMessage)
	require.Equal(t, 401, code)
}

func TestAPIKeysEndpoints(t *testing.T) {
	t.Parallel()
	b := setup(t)
	code, body, _ := b.do(t, "POST", "/api/v1/apikeys", b.admin, client.NewAPIKey{Name: "web", Scopes: []string{"send", "read"}, AllowedIPs: []string{"127.0.0.1"}})
	require.Equal(t, 201, code, "%s", body)
	created := decode[client.CreatedAPIKey](t, body)
	require.True(t, strings.HasPrefix(created.Key, created.Prefix+"_"), created.Key)
	require.Equal(t, []string{"read", "send"}, created.Scopes)

	code, body, _ = b.do(t, "GET", "/api/v1/apikeys", b.admin, nil)
	require.Equal(t, 200, code)
	require.NotContains(t, string(body), created.Key, "a listing never shows a key")
	require.Len(t, decode[client.APIKeyList](t, body).APIKeys, 4)

	code, body, _ = b.do(t, "POST", "/api/v1/apikeys", b.admin, client.NewAPIKey{Name: "bad", Scopes: []string{"root"}})
	require.Equal(t, 400, code, "%s", body)
	code, _, _ = b.do(t, "POST", "/api/v1/apikeys", b.admin, client.NewAPIKey{Name: "web", Scopes: []string{"send"}})
	require.Equal(t, 409, code)
	code, _, _ = b.do(t, "POST", "/api/v1/apikeys/nobody/revoke", b.admin, nil)
	require.Equal(t, 404, code)
}

func TestIPAllowList(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{cfg: func(c *Config) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} }})
	_, key, err := CreateKey(context.Background(), b.store, "office", []string{ScopeSend}, KeyOptions{AllowedIPs: []string{"192.0.2.0/24"}})
	require.NoError(t, err)
	code, body, _ := b.do(t, "POST", "/api/v1/messages", key, oneMessage)
	require.Equal(t, 403, code, "%s", body)
	require.Contains(t, string(body), "127.0.0.1")
	code, body, _ = b.do(t, "POST", "/api/v1/messages", key, oneMessage, "X-Forwarded-For", "192.0.2.9")
	require.Equal(t, 201, code, "%s", body)
	require.Equal(t, 1, b.count(t))

	_, _, err = CreateKey(context.Background(), b.store, "bad", []string{ScopeSend}, KeyOptions{AllowedIPs: []string{"not-an-ip"}})
	require.Error(t, err)
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, key, err := CreateKey(context.Background(), b.store, "slow", []string{ScopeRead}, KeyOptions{RateLimit: 1})
	require.NoError(t, err)
	var limited bool
	for range 5 {
		code, body, hdr := b.do(t, "GET", "/api/v1/channels", key, nil)
		if code == 429 {
			limited = true
			secs, err := strconv.Atoi(hdr.Get("Retry-After"))
			require.NoError(t, err)
			require.GreaterOrEqual(t, secs, 1)
			require.Contains(t, string(body), "rate limit")
			break
		}
		require.Equal(t, 200, code)
	}
	require.True(t, limited)
}

func TestBucket(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	bk := newBucket(10, 2, now)
	ok, _ := bk.take(now)
	require.True(t, ok)
	ok, _ = bk.take(now)
	require.True(t, ok)
	ok, wait := bk.take(now)
	require.False(t, ok)
	require.InDelta(t, 100*time.Millisecond, wait, float64(time.Millisecond))
	ok, _ = bk.take(now.Add(100 * time.Millisecond))
	require.True(t, ok)
}

func TestGenerateKey(t *testing.T) {
	t.Parallel()
	k1, p1, err := GenerateKey()
	require.NoError(t, err)
	k2, _, err := GenerateKey()
	require.NoError(t, err)
	require.NotEqual(t, k1, k2)
	require.Regexp(t, `^hmd_[a-z2-7]{8}_[a-z2-7]{32}$`, k1)
	require.True(t, strings.HasPrefix(k1, p1+"_"))
	require.Len(t, HashKey(k1), 64)
}

func TestCORS(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{cfg: func(c *Config) { c.CORSOrigins = []string{"https://app.example"} }})
	code, _, hdr := b.do(t, "OPTIONS", "/api/v1/messages", "", nil, "Origin", "https://app.example", "Access-Control-Request-Method", "POST")
	require.Equal(t, http.StatusNoContent, code)
	require.Equal(t, "https://app.example", hdr.Get("Access-Control-Allow-Origin"))
	require.Contains(t, hdr.Get("Access-Control-Allow-Headers"), "Authorization")
	_, _, hdr = b.do(t, "GET", "/healthz", "", nil, "Origin", "https://evil.example")
	require.Empty(t, hdr.Get("Access-Control-Allow-Origin"))
}
