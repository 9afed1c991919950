package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/hermod-sms/hermod/store"
)

type principalKey struct{}

// keyCache keeps looked-up keys for a short while so that a request does
// not cost a database round trip for its key.
type keyCache struct {
	ttl     time.Duration
	mu      sync.Mutex
	entries map[string]cacheEntry
}

type cacheEntry struct {
	p       *principal
	expires time.Time
}

func (c *keyCache) get(hash string, now time.Time) *principal {
	if c.ttl <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[hash]
	if !ok || now.After(e.expires) {
		delete(c.entries, hash)
		return nil
	}
	return e.p
}

func (c *keyCache) put(p *principal, now time.Time) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) > 10000 {
		clear(c.entries)
	}
	c.entries[p.hash] = cacheEntry{p: p, expires: now.Add(c.ttl)}
}

// forget drops every cached key (after a revocation through the API).
func (c *keyCache) forget() {
	c.mu.Lock()
	clear(c.entries)
	c.mu.Unlock()
}

// keyFromRequest finds the API key: "Authorization: Bearer <key>", or the
// bare key in Authorization as Auron clients send it, or X-API-Key.
func keyFromRequest(r *http.Request) string {
	if h := strings.TrimSpace(r.Header.Get("Authorization")); h != "" {
		if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			return strings.TrimSpace(h[7:])
		}
		return h
	}
	return strings.TrimSpace(r.Header.Get("X-API-Key"))
}

// authenticate checks key for scope and the client's address and rate
// limit. It never logs the key.
func (s *Server) authenticate(ctx context.Context, r *http.Request, key, scope string) (*principal, *problem) {
	if key == "" {
		p := newProblem(http.StatusUnauthorized, problemUnauthorized, "no API key: send it as \"Authorization: Bearer hmd_...\" (create one with `hermod apikey create`)")
		return nil, p
	}
	if len(key) > 200 {
		return nil, newProblem(http.StatusUnauthorized, problemUnauthorized, "the API key is not valid: check that it was copied whole")
	}
	now := s.now()
	hash := HashKey(key)
	p := s.keys.get(hash, now)
	if p == nil {
		row, err := s.store.APIKeyByHash(ctx, hash)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, newProblem(http.StatusUnauthorized, problemUnauthorized, "the API key is not valid: check that it was copied whole, or create a new one with `hermod apikey create`")
		case err != nil:
			return nil, unavailable(err, "the API key could not be checked because the database did not answer; try again")
		}
		if !sameHash(row.Hash, hash) {
			return nil, newProblem(http.StatusUnauthorized, problemUnauthorized, "the API key is not valid")
		}
		p = newPrincipal(row)
		s.keys.put(p, now)
	}
	if p.revoked {
		return nil, newProblem(http.StatusUnauthorized, problemUnauthorized, "the API key "+p.name+" was revoked: create a new one with `hermod apikey create`")
	}
	if ip := s.clientIP(r); !p.allows(ip) {
		return nil, newProblem(http.StatusForbidden, problemForbidden, "the API key "+p.name+" may not be used from "+ip.String()+": add the address to the key's allowed IPs or call from an allowed address")
	}
	if !p.has(scope) {
		return nil, newProblem(http.StatusForbidden, problemForbidden, "the API key "+p.name+" lacks the "+scope+" scope: use a key created with --scopes "+scope)
	}
	rate := p.rate
	if rate == 0 {
		rate = s.cfg.RateLimit
	}
	if ok, wait := s.limit.allow(p.id, rate, now); !ok {
		pr := newProblem(http.StatusTooManyRequests, problemRateLimited, "the API key "+p.name+" is over its rate limit; wait for the time in Retry-After, send batches instead of single messages, or raise the key's rate limit")
		pr.retryAfter = max(wait, time.Second)
		return nil, pr
	}
	return p, nil
}

// requireScope wraps a handler: the request must carry a key with scope.
func (s *Server) requireScope(scope string, h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) *problem {
		p, prob := s.authenticate(r.Context(), r, keyFromRequest(r), scope)
		if prob != nil {
			return prob
		}
		return h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	}
}

// clientIP is the address the request came from. X-Forwarded-For is
// believed only when the peer is one of Config.TrustedProxies.
func (s *Server) clientIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	ip = ip.Unmap()
	if !s.trusted(ip) {
		return ip
	}
	// Walk X-Forwarded-For from the right: the first address that is not a
	// trusted proxy is the client.
	fwd := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(fwd) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(fwd[i]))
		if err != nil {
			return ip
		}
		a = a.Unmap()
		if !s.trusted(a) {
			return a
		}
		ip = a
	}
	return ip
}

func (s *Server) trusted(ip netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
