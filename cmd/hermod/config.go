package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// defaultDB is the database used when none is configured: a SQLite file in
// the working directory (the executable's directory for a service).
const defaultDB = "sqlite://hermod.db"

// defaultConfigFile is read when present and no other file is named.
const defaultConfigFile = "hermod.yaml"

// Config is every setting, as read from the configuration file (YAML, the
// keys below), then overridden by environment variables and flags.
// docs/configuration.md documents each one.
type Config struct {
	// DB is the database URL (see store/open).
	DB string `yaml:"db"`
	// NoMigrate turns off the automatic migration to the latest schema.
	NoMigrate bool `yaml:"noMigrate"`
	// Node names this process in Nodes and Channels.StatusNode; channels
	// pinned to a node run only where Node matches. "" generates
	// host-pid-random.
	Node string `yaml:"node"`
	// Log configures the log output (always standard error).
	Log LogConfig `yaml:"log"`
	// Postgres holds PostgreSQL-only settings.
	Postgres PostgresConfig `yaml:"postgres"`
	// Engine tunes the sending engine.
	Engine EngineConfig `yaml:"engine"`
	// API configures the HTTP API that `hermod run` serves.
	API APIConfig `yaml:"api"`
}

// defaultAPIListen is where `hermod run` serves the HTTP API unless told
// otherwise: the loopback interface only, so that a first start exposes
// nothing to the network.
const defaultAPIListen = "127.0.0.1:8080"

// APIConfig configures the HTTP API (package api). Zero values take the
// api package's defaults.
type APIConfig struct {
	// Listen is the address the API listens on, host:port ("127.0.0.1:8080",
	// ":8443", "[::1]:8080"); port 0 picks a free port. "" or "off" serves
	// no API.
	Listen string `yaml:"listen"`
	// TLS serves HTTPS when both files are set.
	TLS APITLSConfig `yaml:"tls"`
	// CORSOrigins are the origins browsers may call the API from
	// ("https://app.example.com"); "*" allows any. Empty: no CORS headers.
	CORSOrigins []string `yaml:"corsOrigins"`
	// TrustedProxies are the addresses or CIDR prefixes of reverse proxies
	// whose X-Forwarded-For names the client (for per-key IP allow-lists).
	TrustedProxies []string `yaml:"trustedProxies"`
	// RateLimit is the requests per second a key may make when it has no
	// limit of its own (100); -1 is unlimited.
	RateLimit int `yaml:"rateLimit"`
	// KeyCacheTTL is how long a checked key is trusted before it is read
	// again (5s): a key revoked by another process stops working within it.
	KeyCacheTTL time.Duration `yaml:"keyCacheTTL"`
}

// APITLSConfig names the PEM certificate and key files for HTTPS.
type APITLSConfig struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// apiDisabled reports whether listen turns the API off.
func apiDisabled(listen string) bool {
	l := strings.TrimSpace(listen)
	return l == "" || strings.EqualFold(l, "off")
}

// LogConfig configures logging.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text, json
	// File receives the log instead of standard error (appended; relative
	// paths resolve like the database's). A Windows service has no
	// standard error: set it there.
	File string `yaml:"file"`
}

// PostgresConfig holds PostgreSQL-only settings.
type PostgresConfig struct {
	// Schema holds Hermod's tables; "" is "hermod".
	Schema string `yaml:"schema"`
}

// EngineConfig tunes the engine. Zero values take the engine's defaults
// (documented in docs/configuration.md and on engine.Config).
type EngineConfig struct {
	// NoChannels runs no channel on this node: it routes, rescues, sweeps
	// and elects only (a maintenance or API-only node).
	NoChannels        bool          `yaml:"noChannels"`
	ClaimBatch        int           `yaml:"claimBatch"`        // messages one claim takes (default 200, at most 1000)
	Lease             time.Duration `yaml:"lease"`             // how long a claim is held before another node may rescue it (5m)
	SendTimeout       time.Duration `yaml:"sendTimeout"`       // bound on one Send call (1m; shorter than lease)
	MaxAttempts       int           `yaml:"maxAttempts"`       // attempts before a message is FAILED (5)
	RetryBase         time.Duration `yaml:"retryBase"`         // first retry delay, doubled per attempt (5s)
	RetryMax          time.Duration `yaml:"retryMax"`          // longest retry delay (10m)
	NoReportAfter     time.Duration `yaml:"noReportAfter"`     // SENT without a report this long becomes NOREPORT (24h)
	PollMin           time.Duration `yaml:"pollMin"`           // poll interval while there is work (5ms)
	PollMax           time.Duration `yaml:"pollMax"`           // poll interval when idle (250ms)
	FlushInterval     time.Duration `yaml:"flushInterval"`     // results are gathered this long, then written in one batch (10ms)
	HeartbeatInterval time.Duration `yaml:"heartbeatInterval"` // node heartbeat (5s)
	LeaderTTL         time.Duration `yaml:"leaderTTL"`         // leadership lease (15s)
	ChannelRefresh    time.Duration `yaml:"channelRefresh"`    // how often the Channels table is re-read (5s)
	RestartBackoff    time.Duration `yaml:"restartBackoff"`    // first wait before a failed channel restarts (1s)
	ShutdownTimeout   time.Duration `yaml:"shutdownTimeout"`   // how long a stop waits for sends in flight (10s)
	StoreTimeout      time.Duration `yaml:"storeTimeout"`      // bound on every database call of the engine (30s)
}

// defaults returns the built-in settings.
func defaults() Config {
	return Config{
		DB: defaultDB,
		// Level "" is "warn" interactively, so that `hermod run` prints
		// its one line and nothing else, and "info" under a service manager.
		Log: LogConfig{Level: "", Format: "text"},
		Engine: EngineConfig{
			ShutdownTimeout: 10 * time.Second,
		},
		API: APIConfig{Listen: defaultAPIListen},
	}
}

// configError is a configuration problem the user must fix; it exits with
// status 2.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

func configErrorf(format string, args ...any) error {
	return &configError{msg: fmt.Sprintf(format, args...)}
}

// loadConfigFile reads path into cfg. Unknown keys are errors so that a
// misspelt setting is not silently ignored.
func loadConfigFile(path string, cfg *Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return configErrorf("configuration file %s does not exist: create it or point --config / HERMOD_CONFIG at an existing file", path)
		}
		if errors.Is(err, fs.ErrPermission) {
			return configErrorf("configuration file %s cannot be read (permission denied): make it readable by the user running hermod", path)
		}
		return configErrorf("configuration file %s cannot be read: %v", path, err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		msg = strings.TrimPrefix(msg, "unmarshal errors:")
		msg = strings.Join(strings.Fields(strings.ReplaceAll(msg, "\n", "; ")), " ")
		msg = strings.TrimPrefix(msg, "; ")
		msg = strings.ReplaceAll(msg, "in type main.", "in ")
		return configErrorf("configuration file %s is invalid: %s (the settings are listed in docs/configuration.md)", path, msg)
	}
	return nil
}

// validate checks the settings that can be checked without a database.
func (c *Config) validate() error {
	switch strings.ToLower(c.Log.Level) {
	case "", "debug", "info", "warn", "warning", "error":
	default:
		return configErrorf("log level %q is not one of debug, info, warn, error: fix --log-level, HERMOD_LOG_LEVEL or log.level", c.Log.Level)
	}
	switch strings.ToLower(c.Log.Format) {
	case "text", "json":
	default:
		return configErrorf("log format %q is not text or json: fix --log-format, HERMOD_LOG_FORMAT or log.format", c.Log.Format)
	}
	e := c.Engine
	durations := map[string]time.Duration{
		"engine.lease": e.Lease, "engine.sendTimeout": e.SendTimeout, "engine.retryBase": e.RetryBase,
		"engine.retryMax": e.RetryMax, "engine.noReportAfter": e.NoReportAfter, "engine.pollMin": e.PollMin,
		"engine.pollMax": e.PollMax, "engine.flushInterval": e.FlushInterval, "engine.heartbeatInterval": e.HeartbeatInterval,
		"engine.leaderTTL": e.LeaderTTL, "engine.channelRefresh": e.ChannelRefresh, "engine.restartBackoff": e.RestartBackoff,
		"engine.shutdownTimeout": e.ShutdownTimeout, "engine.storeTimeout": e.StoreTimeout,
		"api.keyCacheTTL": c.API.KeyCacheTTL,
	}
	for _, name := range sortedKeys(durations) {
		if d := durations[name]; d < 0 {
			return configErrorf("%s is negative (%s): use a positive duration such as 30s or 5m", name, d)
		}
	}
	if e.ClaimBatch < 0 || e.ClaimBatch > 1000 {
		return configErrorf("engine.claimBatch is %d: use 1 to 1000 (0 takes the default)", e.ClaimBatch)
	}
	if e.MaxAttempts < 0 {
		return configErrorf("engine.maxAttempts is %d: use a positive number (0 takes the default)", e.MaxAttempts)
	}
	if e.PollMin > 0 && e.PollMax > 0 && e.PollMin > e.PollMax {
		return configErrorf("engine.pollMin (%s) is longer than engine.pollMax (%s): swap them", e.PollMin, e.PollMax)
	}
	return c.API.validate()
}

// validate checks the API settings; the TLS files are read when the API
// starts.
func (c *APIConfig) validate() error {
	if !apiDisabled(c.Listen) {
		host, port, err := net.SplitHostPort(strings.TrimSpace(c.Listen))
		if err != nil {
			return configErrorf("api.listen %q is not host:port (%v): use e.g. 127.0.0.1:8080, :8443 or off (fix --api-listen, HERMOD_API_LISTEN or api.listen)", c.Listen, err)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return configErrorf("api.listen %q has port %q: use a number from 0 to 65535 (fix --api-listen, HERMOD_API_LISTEN or api.listen)", c.Listen, port)
		}
		if strings.ContainsAny(host, "/ ") {
			return configErrorf("api.listen %q has host %q: use an address or host name such as 127.0.0.1, or none for every interface", c.Listen, host)
		}
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		return configErrorf("api.tls needs both cert and key (cert %q, key %q): set both PEM files for HTTPS, or neither for HTTP", c.TLS.Cert, c.TLS.Key)
	}
	for _, o := range c.CORSOrigins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return configErrorf("api.corsOrigins entry %q is not an origin: write scheme://host[:port] such as https://app.example.com, or * for any", o)
		}
	}
	if _, err := parsePrefixes(c.TrustedProxies); err != nil {
		return err
	}
	if c.RateLimit < -1 {
		return configErrorf("api.rateLimit is %d: use requests per second per key, 0 for the default (100) or -1 for no limit", c.RateLimit)
	}
	return nil
}

// parsePrefixes parses api.trustedProxies: addresses or CIDR prefixes.
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, configErrorf("api.trustedProxies entry %q is not a CIDR prefix (%v): write e.g. 10.0.0.0/8 or 192.0.2.7", s, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, configErrorf("api.trustedProxies entry %q is not an IP address: write e.g. 192.0.2.7 or 10.0.0.0/8", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// applyEnv overrides cfg with HERMOD_* environment variables.
func applyEnv(cfg *Config, getenv func(string) string) error {
	if v := getenv("HERMOD_DB"); v != "" {
		cfg.DB = v
	}
	if v := getenv("HERMOD_NODE"); v != "" {
		cfg.Node = v
	}
	if v := getenv("HERMOD_LOG_LEVEL"); v != "" {
		cfg.Log.Level = v
	}
	if v := getenv("HERMOD_LOG_FORMAT"); v != "" {
		cfg.Log.Format = v
	}
	if v := getenv("HERMOD_NO_MIGRATE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return configErrorf("HERMOD_NO_MIGRATE=%q is not a boolean: use true or false", v)
		}
		cfg.NoMigrate = b
	}
	if v := getenv("HERMOD_POSTGRES_SCHEMA"); v != "" {
		cfg.Postgres.Schema = v
	}
	if v := getenv("HERMOD_API_LISTEN"); v != "" {
		cfg.API.Listen = v
	}
	if v := getenv("HERMOD_API_TLS_CERT"); v != "" {
		cfg.API.TLS.Cert = v
	}
	if v := getenv("HERMOD_API_TLS_KEY"); v != "" {
		cfg.API.TLS.Key = v
	}
	if v := getenv("HERMOD_API_CORS_ORIGINS"); v != "" {
		cfg.API.CORSOrigins = splitList(v)
	}
	if v := getenv("HERMOD_API_TRUSTED_PROXIES"); v != "" {
		cfg.API.TrustedProxies = splitList(v)
	}
	return nil
}

// splitList splits a comma-separated value, dropping empty entries.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// resolve makes a relative path absolute against dir ("" leaves it).
func resolve(dir, path string) string {
	if dir == "" || path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}
