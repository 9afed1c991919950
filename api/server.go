package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hermod-sms/hermod/api/client"
	"github.com/hermod-sms/hermod/store"
)

// Defaults for Config's zero values.
const (
	DefaultRateLimit       = 100              // requests per second per key
	DefaultKeyCacheTTL     = 5 * time.Second  // how long a looked-up key is trusted
	DefaultMaxRequestBytes = 16 << 20         // 16 MiB
	DefaultMaxBatch        = 10000            // messages per POST
	DefaultMaxBodyLength   = 1600             // characters per message body
	eventHeartbeat         = 15 * time.Second // SSE comment to keep proxies from closing the stream
	maxChannelCacheTTL     = time.Second      // how long a channel name's ID is trusted
)

// Config configures the API server. Only Store is required.
type Config struct {
	// Store is the database.
	Store store.Store
	// Engine, when set, is nudged after messages are inserted or changed so
	// that it does not wait for its next poll.
	Engine Nudger
	// Events, when set, is streamed by GET /api/v1/events together with
	// the changes the API makes itself.
	Events EventSource
	// Problems, when set, returns the database operations of the engine
	// that fail now, for /readyz (engine.Engine.Problems, converted).
	Problems func() []client.HealthProblem
	// Logger; nil: slog.Default(). API keys are never logged.
	Logger *slog.Logger
	// Version is reported by the Auron version endpoint.
	Version string

	// RateLimit is the default requests per second per API key, for keys
	// whose own RateLimit is 0. 0: DefaultRateLimit; negative: unlimited.
	RateLimit int
	// KeyCacheTTL is how long a looked-up key is trusted before it is read
	// again: a key revoked from another process stops working within it.
	// The IDs of the channel names that sends use are kept as long, but
	// at most a second. 0: DefaultKeyCacheTTL; negative: every request
	// reads the key and the channel.
	KeyCacheTTL time.Duration
	// MaxRequestBytes bounds a request body (413 beyond). 0: the default.
	MaxRequestBytes int64
	// MaxBatch bounds the messages in one POST. 0: DefaultMaxBatch.
	MaxBatch int
	// MaxBodyLength bounds a message Body in characters. 0: the default.
	MaxBodyLength int
	// CORSOrigins lists the origins allowed to call the API from a
	// browser; "*" allows any. Empty: no CORS headers.
	CORSOrigins []string
	// TrustedProxies are the reverse proxies whose X-Forwarded-For header
	// names the client (for per-key IP allow-lists).
	TrustedProxies []netip.Prefix

	now func() time.Time // tests
}

// handlerFunc is a handler that returns a problem instead of writing one.
type handlerFunc func(w http.ResponseWriter, r *http.Request) *problem

// route is one entry of the route table: what is registered on the mux
// and what the OpenAPI document must describe.
type route struct {
	method, path string
	scope        string // "" for no authentication
	h            handlerFunc
}

// Server is the HTTP API. It is an http.Handler.
type Server struct {
	cfg    Config
	store  store.Store
	log    *slog.Logger
	mux    *http.ServeMux
	routes []route
	keys   *keyCache
	// channels caches channel IDs by name for sends.
	channels *channelCache
	limit    *limiter
	own      *Broadcaster // the changes this server makes
	ins      *inserter    // group commit of small sends
	now      func() time.Time
	// callbackDelay is the wait before a status callback's second attempt.
	callbackDelay time.Duration
}

// NewServer builds the API server on cfg.Store.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("api: Config.Store is nil: open a store first")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = DefaultRateLimit
	}
	if cfg.KeyCacheTTL == 0 {
		cfg.KeyCacheTTL = DefaultKeyCacheTTL
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.MaxBodyLength <= 0 {
		cfg.MaxBodyLength = DefaultMaxBodyLength
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	s := &Server{
		cfg:      cfg,
		store:    cfg.Store,
		log:      cfg.Logger,
		mux:      http.NewServeMux(),
		keys:     &keyCache{ttl: cfg.KeyCacheTTL, entries: map[string]cacheEntry{}},
		channels: &channelCache{ttl: min(cfg.KeyCacheTTL, maxChannelCacheTTL)},
		limit:    newLimiter(),
		own:      NewBroadcaster(),
		now:      cfg.now,

		callbackDelay: callbackRetryDelay,
	}
	s.ins = &inserter{store: cfg.Store, log: cfg.Logger, inserted: s.nudge}
	s.routes = s.routeTable()
	for _, rt := range s.routes {
		h := rt.h
		if rt.scope != "" {
			h = s.requireScope(rt.scope, h)
		}
		s.mux.Handle(rt.method+" "+rt.path, s.serve(h))
	}
	s.mux.Handle("/", s.serve(s.handleNoRoute))
	return s, nil
}

// routeTable lists every endpoint. The OpenAPI test walks it.
func (s *Server) routeTable() []route {
	return []route{
		{"GET", "/healthz", "", s.handleHealthz},
		{"GET", "/readyz", "", s.handleReadyz},
		{"GET", "/api/openapi.json", "", s.handleOpenAPI},

		{"POST", "/api/v1/messages", ScopeSend, s.handleSend},
		{"GET", "/api/v1/messages", ScopeRead, s.handleList},
		{"GET", "/api/v1/messages/{id}", ScopeRead, s.handleGet},
		{"POST", "/api/v1/messages/{id}/cancel", ScopeSend, s.handleCancel},
		{"POST", "/api/v1/messages/{id}/reprocess", ScopeSend, s.handleReprocess},
		{"GET", "/api/v1/events", ScopeRead, s.handleEvents},

		{"GET", "/api/v1/channels", ScopeRead, s.handleChannelList},
		{"POST", "/api/v1/channels", ScopeAdmin, s.handleChannelCreate},
		{"GET", "/api/v1/channels/{name}", ScopeRead, s.handleChannelGet},
		{"PATCH", "/api/v1/channels/{name}", ScopeAdmin, s.handleChannelUpdate},
		{"DELETE", "/api/v1/channels/{name}", ScopeAdmin, s.handleChannelDelete},
		{"POST", "/api/v1/channels/{name}/start", ScopeAdmin, s.handleChannelStart},
		{"POST", "/api/v1/channels/{name}/stop", ScopeAdmin, s.handleChannelStop},

		{"GET", "/api/v1/apikeys", ScopeAdmin, s.handleKeyList},
		{"POST", "/api/v1/apikeys", ScopeAdmin, s.handleKeyCreate},
		{"POST", "/api/v1/apikeys/{name}/revoke", ScopeAdmin, s.handleKeyRevoke},

		// Auron SMS Server compatibility: the key comes bare in Authorization.
		{"POST", "/{channel}/messagedb/create", ScopeSend, s.handleAuronCreate},
		{"POST", "/{channel}/messagedb/create.json", ScopeSend, s.handleAuronCreate},
		{"POST", "/{channel}/messagedb/update", ScopeSend, s.handleAuronUpdate},
		{"POST", "/{channel}/messagedb/update.json", ScopeSend, s.handleAuronUpdate},
		{"POST", "/{channel}/messagedb/load", ScopeRead, s.handleAuronLoad},
		{"POST", "/{channel}/messagedb/load.json", ScopeRead, s.handleAuronLoad},
		{"GET", "/{channel}/messagedb/version", "", s.handleAuronVersion},
		{"GET", "/{channel}/messagedb/version.json", "", s.handleAuronVersion},

		// Kannel compatibility: authenticates with username and password.
		{"GET", "/cgi-bin/sendsms", "", s.handleKannelSend},
		{"POST", "/cgi-bin/sendsms", "", s.handleKannelSend},
	}
}

// ServeHTTP answers CORS preflights and dispatches to the routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.cors(w, r) {
		return
	}
	s.mux.ServeHTTP(w, r)
}

// serve adapts a handlerFunc: problems are written as problem+json, panics
// become a logged 500, and every request is logged without its secrets.
func (s *Server) serve(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.ErrorContext(r.Context(), "api: handler panicked", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
				if sw.status == 0 {
					s.writeProblem(sw, r, internal(fmt.Errorf("panic: %v", v)))
				}
			}
			// The query is not logged: Kannel passes the key as password.
			s.log.DebugContext(r.Context(), "api: request", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", sw.status), slog.Duration("duration", s.now().Sub(start)))
		}()
		if p := h(sw, r); p != nil {
			if sw.status != 0 {
				// The answer was already started (an event stream): log only.
				s.log.WarnContext(r.Context(), "api: error after the response started", slog.String("path", r.URL.Path), slog.String("error", p.Error()), slog.Any("cause", p.cause))
				return
			}
			s.writeProblem(sw, r, p)
		}
	})
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and SetWriteDeadline.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// handleNoRoute answers 405 when the path exists with another method, 404
// otherwise, both as problem details.
func (s *Server) handleNoRoute(w http.ResponseWriter, r *http.Request) *problem {
	var allow []string
	for _, m := range []string{"GET", "POST", "PATCH", "DELETE", "PUT"} {
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, pattern := s.mux.Handler(r2); pattern != "/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		return newProblem(http.StatusMethodNotAllowed, problemMethod, fmt.Sprintf("%s is not allowed on %s: use %s", r.Method, r.URL.Path, strings.Join(allow, " or ")))
	}
	return notFound("there is no endpoint %s: see /api/openapi.json for the list", r.URL.Path)
}

// cors sets the CORS headers for an allowed origin and answers preflight
// requests. It reports whether the request was answered.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || len(s.cfg.CORSOrigins) == 0 {
		return false
	}
	if !slices.Contains(s.cfg.CORSOrigins, "*") && !slices.Contains(s.cfg.CORSOrigins, origin) {
		return false
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Expose-Headers", "Location, Retry-After")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-API-Key")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	return false
}

func (s *Server) nudge() {
	if s.cfg.Engine != nil {
		s.cfg.Engine.Nudge()
	}
}

func (s *Server) publish(id int64, status string, channelID int64) {
	if s.own.hasSubscribers() {
		s.own.Publish(Event{MessageID: id, Status: status, ChannelID: channelID, Time: s.now().UTC()})
	}
}

func parseID(r *http.Request) (int64, *problem) {
	v := r.PathValue("id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0, invalid("id", "%q is not a message ID: give the positive integer ID returned when the message was submitted", v)
	}
	return id, nil
}
