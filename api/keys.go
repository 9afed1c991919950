package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/hermod-sms/hermod/store"
)

// Scopes an API key can hold.
const (
	ScopeSend  = "send"  // submit, cancel and reprocess messages
	ScopeRead  = "read"  // read messages, channels and events
	ScopeAdmin = "admin" // everything, including channels and API keys
)

// keyPrefix starts every Hermod API key.
const keyPrefix = "hmd_"

var keyEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// GenerateKey returns a new random API key of the form
// hmd_<prefix>_<secret> and the prefix part to store ("hmd_<prefix>").
// The key has 160 bits of entropy from crypto/rand.
func GenerateKey() (key, prefix string, err error) {
	var b [25]byte // 5 bytes of prefix, 20 of secret
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("generate API key: %w", err)
	}
	p := strings.ToLower(keyEncoding.EncodeToString(b[:5]))
	s := strings.ToLower(keyEncoding.EncodeToString(b[5:]))
	return keyPrefix + p + "_" + s, keyPrefix + p, nil
}

// HashKey returns the hex SHA-256 of key: what ApiKeys.Hash stores.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// KeyOptions are the optional settings of a new API key.
type KeyOptions struct {
	// AllowedIPs restricts the key to these addresses or CIDR prefixes
	// ("10.0.0.0/8", "2001:db8::1"). Empty: any address.
	AllowedIPs []string
	// RateLimit in requests per second; 0: the server's default.
	RateLimit int
}

// CreateKey makes a new API key with a name and scopes (ScopeSend,
// ScopeRead, ScopeAdmin), stores its hash and returns the stored row and
// the key itself. The key is not stored anywhere: show it to the user once.
// Invalid input wraps store.ErrInvalid; a duplicate name store.ErrConflict.
//
// This is what `hermod apikey create` calls.
func CreateKey(ctx context.Context, st store.Store, name string, scopes []string, opts KeyOptions) (*store.APIKey, string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 {
		return nil, "", fmt.Errorf("API key name %q: %w: give a name of 1 to 100 characters that says who uses the key", name, store.ErrInvalid)
	}
	sc, err := normalizeScopes(scopes)
	if err != nil {
		return nil, "", err
	}
	ips, err := normalizeIPs(opts.AllowedIPs)
	if err != nil {
		return nil, "", err
	}
	if opts.RateLimit < 0 {
		return nil, "", fmt.Errorf("API key rate limit %d: %w: give requests per second, or 0 for the server's default", opts.RateLimit, store.ErrInvalid)
	}
	key, prefix, err := GenerateKey()
	if err != nil {
		return nil, "", err
	}
	row, err := st.APIKeyCreate(ctx, store.APIKey{
		Name:       name,
		Prefix:     prefix,
		Hash:       HashKey(key),
		Scopes:     strings.Join(sc, ","),
		AllowedIPs: strings.Join(ips, ","),
		RateLimit:  opts.RateLimit,
	})
	if err != nil {
		return nil, "", fmt.Errorf("create API key %q: %w", name, err)
	}
	return row, key, nil
}

// RevokeKey revokes the key with this name or ID. This is what
// `hermod apikey revoke` calls; a running server refuses the key within its
// key cache lifetime (immediately when revoked through the API).
func RevokeKey(ctx context.Context, st store.Store, nameOrID string) error {
	if err := st.APIKeyRevoke(ctx, nameOrID); err != nil {
		return fmt.Errorf("revoke API key %q: %w", nameOrID, err)
	}
	return nil
}

func normalizeScopes(scopes []string) ([]string, error) {
	var out []string
	for _, s := range scopes {
		for _, part := range strings.Split(s, ",") {
			part = strings.ToLower(strings.TrimSpace(part))
			if part == "" {
				continue
			}
			switch part {
			case ScopeSend, ScopeRead, ScopeAdmin:
			default:
				return nil, fmt.Errorf("scope %q: %w: use send, read or admin", part, store.ErrInvalid)
			}
			if !slices.Contains(out, part) {
				out = append(out, part)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("scopes: %w: give at least one of send, read, admin", store.ErrInvalid)
	}
	slices.Sort(out)
	return out, nil
}

func normalizeIPs(ips []string) ([]string, error) {
	var out []string
	for _, s := range ips {
		for _, part := range strings.Split(s, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			if _, err := parseAllowed(part); err != nil {
				return nil, err
			}
			out = append(out, part)
		}
	}
	return out, nil
}

func parseAllowed(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("allowed IP %q: %w: give an address (192.0.2.7) or a CIDR prefix (10.0.0.0/8)", s, store.ErrInvalid)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("allowed IP %q: %w: give an address (192.0.2.7) or a CIDR prefix (10.0.0.0/8)", s, store.ErrInvalid)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// principal is an authenticated API key, as the server keeps it in memory.
type principal struct {
	id      int64
	name    string
	hash    string
	scopes  []string
	allowed []netip.Prefix
	rate    int
	revoked bool
}

func newPrincipal(k *store.APIKey) *principal {
	p := &principal{id: k.ID, name: k.Name, hash: k.Hash, rate: k.RateLimit, revoked: !k.RevokedTime.IsZero()}
	for _, s := range strings.Split(k.Scopes, ",") {
		if s = strings.TrimSpace(s); s != "" {
			p.scopes = append(p.scopes, s)
		}
	}
	for _, s := range strings.Split(k.AllowedIPs, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		// A row written by hand with a bad entry allows nothing for that
		// entry rather than everything.
		if pr, err := parseAllowed(s); err == nil {
			p.allowed = append(p.allowed, pr)
		} else {
			p.allowed = append(p.allowed, netip.Prefix{})
		}
	}
	return p
}

// has reports whether the key holds scope (admin holds every scope).
func (p *principal) has(scope string) bool {
	return slices.Contains(p.scopes, scope) || slices.Contains(p.scopes, ScopeAdmin)
}

func (p *principal) allows(ip netip.Addr) bool {
	if len(p.allowed) == 0 {
		return true
	}
	ip = ip.Unmap()
	for _, pr := range p.allowed {
		if pr.IsValid() && pr.Contains(ip) {
			return true
		}
	}
	return false
}

// sameHash compares hashes in constant time.
func sameHash(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
