package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hermod-sms/hermod/api"
	"github.com/hermod-sms/hermod/api/client"
	"github.com/hermod-sms/hermod/engine"
	"github.com/hermod-sms/hermod/store"
	"github.com/hermod-sms/hermod/store/open"

	// Channel types compiled into the binary.
	_ "github.com/hermod-sms/hermod/channels/simulator"
	_ "github.com/hermod-sms/hermod/channels/smpp"
)

// demoChannel is the channel `hermod run` creates in a database without
// channels when no database was configured.
const demoChannel = "simulator"

func (a *app) cmdRun(ctx context.Context, args []string) error {
	if _, err := a.parse(a.newFlagSet("run"), "hermod run [global flags]", args, 0, 0); err != nil {
		return err
	}
	return a.serve(ctx, serveOptions{})
}

func (a *app) cmdServe(ctx context.Context, args []string) error {
	if _, err := a.parse(a.newFlagSet("serve"), "hermod serve [global flags]", args, 0, 0); err != nil {
		return err
	}
	return a.serve(ctx, serveOptions{apiOnly: true})
}

func (a *app) cmdChannelRun(ctx context.Context, args []string) error {
	pos, err := a.parse(a.newFlagSet("channel run"), "hermod channel run NAME [global flags]", args, 1, 1)
	if err != nil {
		return err
	}
	if a.isChild() {
		// Started by hermod run: stop when it closes our input.
		var cancel context.CancelFunc
		ctx, cancel = untilEndOfInput(ctx, os.Stdin)
		defer cancel()
	}
	return a.serve(ctx, serveOptions{only: pos[0]})
}

// serveOptions says what a serving command runs.
type serveOptions struct {
	// only, when set, runs that one channel's loop and no API
	// (child-process mode).
	only string
	// apiOnly runs the API and the engine without channels (hermod serve).
	apiOnly bool
}

// serve runs the engine and the HTTP API until ctx ends, then stops both
// cleanly.
func (a *app) serve(ctx context.Context, o serveOptions) error {
	if a.flagServer != "" {
		return usagef("--server does not apply to a command that runs a server: it serves the database named by --db / HERMOD_DB / db:")
	}
	if err := a.load(); err != nil {
		return err
	}
	withAPI := o.only == "" && !apiDisabled(a.cfg.API.Listen)
	if o.apiOnly && !withAPI {
		return usagef("hermod serve runs the HTTP API, but api.listen is off: set --api-listen, HERMOD_API_LISTEN or api.listen to an address such as %s", defaultAPIListen)
	}
	// Check what can be checked before anything starts: a certificate
	// that does not load or a port in use is a one-line error, not a
	// half-started server. The API's listener is bound here and handed to
	// api.Serve, so that the address announced is the one served (also
	// with port 0) and no other process can take it in between.
	var (
		apiLn   net.Listener // closed on return unless handed to api.Serve
		apiAddr string
	)
	if withAPI {
		var err error
		if apiLn, apiAddr, err = a.checkAPI(); err != nil {
			return err
		}
		defer func() {
			if apiLn != nil {
				_ = apiLn.Close()
			}
		}()
	}

	s, err := a.openStore(ctx, true)
	if err != nil {
		return err
	}
	defer s.Close()

	chs, err := s.ChannelList(ctx)
	if err != nil {
		return fmt.Errorf("list channels: %w", err)
	}
	created := ""
	if o.only != "" {
		if _, err := s.ChannelGet(ctx, o.only); err != nil {
			return channelLookupError(o.only, err)
		}
	} else if len(chs) == 0 && !a.dbExplicit && !o.apiOnly {
		// The zero-configuration demo: a fresh default database gets a
		// simulator so that an inserted message goes somewhere. A
		// configured database never gets a channel it did not ask for.
		c, err := s.ChannelCreate(ctx, store.Channel{Name: demoChannel, Type: "simulator", Settings: "{}", Enabled: true})
		if err != nil && !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("create the %s channel: %w", demoChannel, err)
		}
		if c != nil {
			chs = append(chs, c)
			created = c.Name
		}
	}

	ecfg := a.engineConfig(s, o.only)
	if o.apiOnly {
		ecfg.NoChannels = true
	}
	eng, err := engine.New(ecfg)
	if err != nil {
		return usagef("engine configuration: %v", err)
	}
	var srv *api.Server
	if withAPI {
		if srv, err = a.newAPIServer(s, eng); err != nil {
			return err
		}
	}
	// Cancelling the context given to Start is a hard stop; the signal
	// context must lead to the clean Stop below instead.
	runCtx, hardStop := context.WithCancel(context.WithoutCancel(ctx))
	defer hardStop()
	if err := eng.Start(runCtx); err != nil {
		return fmt.Errorf("start the engine: %w", err)
	}

	// The API stops when ctx ends (Serve then shuts down gracefully) or
	// when the engine could not be started cleanly below.
	apiCtx, stopAPI := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAPI()
	var apiDone chan error // nil without an API: never ready in the select below
	if withAPI {
		apiDone = make(chan error, 1)
		// The listener accepts connections already; Serve answers them
		// and closes it when it returns.
		ln := apiLn
		apiLn = nil
		go func() {
			apiDone <- api.Serve(apiCtx, api.ServeConfig{
				Listener:        ln,
				CertFile:        resolve(a.dir, a.cfg.API.TLS.Cert),
				KeyFile:         resolve(a.dir, a.cfg.API.TLS.Key),
				ShutdownTimeout: a.cfg.Engine.ShutdownTimeout,
				Logger:          a.logger,
			}, srv)
		}()
	}
	if a.isChild() {
		// The parent logs our output; it has announced itself already.
		a.logger.Info("channel process running", "channel", o.only, "pid", os.Getpid())
	} else {
		fmt.Fprintln(a.stdout, a.announce(chs, created, o, a.apiURL(apiAddr)))
	}

	var apiErr error
	select {
	case <-ctx.Done():
	case apiErr = <-apiDone:
		// The API ended on its own: the server is not what the user
		// started any more, so stop the rest and say why.
		if apiErr == nil {
			apiErr = errors.New("the HTTP API stopped unexpectedly")
		}
		a.logger.Error("the HTTP API failed; stopping", "error", apiErr)
		apiDone = nil
	}
	a.logger.Info("stopping", "timeout", a.cfg.Engine.ShutdownTimeout)
	// The API stops taking requests while the engine finishes its sends;
	// both are bounded by engine.shutdownTimeout.
	stopAPI()
	engErr := a.stopEngine(eng)
	if apiDone != nil {
		if err := <-apiDone; err != nil && apiErr == nil {
			apiErr = fmt.Errorf("stop the HTTP API: %w", err)
		}
	}
	if err := errors.Join(apiErr, engErr); err != nil {
		return err
	}
	a.logger.Info("stopped")
	return nil
}

// stopEngine stops the engine within engine.shutdownTimeout.
func (a *app) stopEngine(eng *engine.Engine) error {
	stopCtx, cancel := context.WithTimeout(context.Background(), a.cfg.Engine.ShutdownTimeout)
	defer cancel()
	if err := eng.Stop(stopCtx); err != nil {
		return fmt.Errorf("stop the engine: %w", err)
	}
	return nil
}

// checkAPI checks the API settings that need the file system or the
// network, and listens on api.listen. It returns the listener, for
// api.Serve, and the address served: api.listen's host with the port bound
// (port 0 becomes the free port found).
func (a *app) checkAPI() (net.Listener, string, error) {
	c := a.cfg.API
	if c.TLS.Cert != "" {
		cert, key := resolve(a.dir, c.TLS.Cert), resolve(a.dir, c.TLS.Key)
		if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
			return nil, "", configErrorf("api.tls: the certificate %s and key %s do not load (%v): give PEM files that belong together (fix api.tls.cert/key or HERMOD_API_TLS_CERT/KEY)", cert, key, err)
		}
	}
	addr := strings.TrimSpace(c.Listen)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("the HTTP API cannot listen on %s (%v): is another hermod or program using the port? Set another address with --api-listen, HERMOD_API_LISTEN or api.listen, or off", addr, err)
	}
	host, _, _ := net.SplitHostPort(addr)
	return ln, net.JoinHostPort(host, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)), nil
}

// newAPIServer builds the HTTP API on the store, nudging the engine after
// inserts and streaming its events.
func (a *app) newAPIServer(s open.Store, eng *engine.Engine) (*api.Server, error) {
	c := a.cfg.API
	proxies, err := parsePrefixes(c.TrustedProxies)
	if err != nil {
		return nil, err
	}
	srv, err := api.NewServer(api.Config{
		Store:          s,
		Engine:         eng,
		Events:         api.AdaptEvents(eng.Subscribe, func(e engine.Event) api.Event { return api.Event(e) }),
		Problems:       func() []client.HealthProblem { return healthProblems(eng.Problems()) },
		Logger:         a.logger,
		Version:        versionString(),
		RateLimit:      c.RateLimit,
		KeyCacheTTL:    c.KeyCacheTTL,
		CORSOrigins:    c.CORSOrigins,
		TrustedProxies: proxies,
	})
	if err != nil {
		return nil, fmt.Errorf("set up the HTTP API: %w", err)
	}
	return srv, nil
}

// apiURL is the base URL of the API served on addr ("" for none).
func (a *app) apiURL(addr string) string {
	if addr == "" {
		return ""
	}
	scheme := "http"
	if a.cfg.API.TLS.Cert != "" {
		scheme = "https"
	}
	host, port, _ := net.SplitHostPort(addr)
	if ip, err := netip.ParseAddr(host); host == "" || err == nil && ip.IsUnspecified() {
		// Every interface: name the one that surely works here.
		host = "localhost"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// engineConfig maps the settings onto the engine's configuration.
func (a *app) engineConfig(s open.Store, only string) engine.Config {
	e := a.cfg.Engine
	cfg := engine.Config{
		Store:             s,
		Logger:            a.logger,
		Node:              a.cfg.Node,
		Version:           versionString(),
		NoChannels:        e.NoChannels,
		ClaimBatch:        e.ClaimBatch,
		Lease:             e.Lease,
		SendTimeout:       e.SendTimeout,
		MaxAttempts:       e.MaxAttempts,
		RetryBase:         e.RetryBase,
		RetryMax:          e.RetryMax,
		NoReportAfter:     e.NoReportAfter,
		PollMin:           e.PollMin,
		PollMax:           e.PollMax,
		FlushInterval:     e.FlushInterval,
		HeartbeatInterval: e.HeartbeatInterval,
		LeaderTTL:         e.LeaderTTL,
		ChannelRefresh:    e.ChannelRefresh,
		RestartBackoff:    e.RestartBackoff,
		StoreTimeout:      e.StoreTimeout,
	}
	if only != "" {
		cfg.OnlyChannels = []string{only}
		cfg.NoChannels = false
		cfg.ParentNode = a.getenv(parentNodeEnv)
	} else {
		cfg.ChildCommand = a.childCommand
	}
	return cfg
}

// announce is the one line `hermod run` prints once it is running.
func (a *app) announce(chs []*store.Channel, created string, o serveOptions, apiURL string) string {
	var names []string
	for _, c := range chs {
		if o.only != "" && c.Name != o.only {
			continue
		}
		n := c.Name + " (" + c.Type
		if process, _, _ := engine.SplitChannelSettings(c.Settings); process == engine.ProcessChild && o.only == "" {
			n += ", child process"
		}
		if !c.Enabled {
			n += ", disabled"
		}
		if c.Name == created {
			n += ", created"
		}
		names = append(names, n+")")
	}
	list := strings.Join(names, ", ")
	switch {
	case o.apiOnly:
		list = "none on this node (API only)"
	case list == "":
		list = "none: add one with hermod channels add NAME --type TYPE"
	}
	how := "send by inserting into Messages"
	apiPart := ""
	if apiURL != "" {
		apiPart = ", API " + apiURL + " (needs a key: hermod apikey create NAME --scopes send,read)"
		how = "send by inserting into Messages or POST /api/v1/messages"
	}
	return fmt.Sprintf("hermod %s running: database %s, node %s, channels %s%s; %s; stop with Ctrl+C",
		versionString(), a.dbDisplay(), a.cfg.Node, list, apiPart, how)
}

// shutdownGrace is how long a service stop waits beyond the engine's
// shutdown timeout before giving up.
const shutdownGrace = 2 * time.Second

// healthProblems converts the engine's problems for /readyz.
func healthProblems(ps []engine.Problem) []client.HealthProblem {
	out := make([]client.HealthProblem, len(ps))
	for i, p := range ps {
		out[i] = client.HealthProblem(p)
	}
	return out
}
