package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// DefaultShutdownTimeout bounds Serve's graceful shutdown when
// ServeConfig.ShutdownTimeout is 0.
const DefaultShutdownTimeout = 10 * time.Second

// ServeConfig is where and how Serve listens.
type ServeConfig struct {
	// Addr is the listen address, e.g. ":8080". It is not used when
	// Listener is set.
	Addr string
	// Listener, when set, is served instead of listening on Addr. A caller
	// that listens itself knows before anything else starts whether the
	// address can be used, and which address it got (port 0 picks a free
	// port), with no window in which another process could take it. Serve
	// closes it when it returns, also on an error before serving.
	Listener net.Listener
	// CertFile and KeyFile, when both set, serve HTTPS with that
	// certificate and key (PEM files).
	CertFile, KeyFile string
	// ShutdownTimeout bounds the graceful shutdown: once ctx ends, requests
	// in flight get this long to finish before their connections are
	// closed. 0: DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Logger; nil: slog.Default().
	Logger *slog.Logger
}

// Serve serves h on cfg.Listener, or on a listener of its own on cfg.Addr,
// until ctx is done, then shuts down gracefully: it stops accepting
// connections, ends the event streams (GET /api/v1/events), lets the
// requests in flight finish with their normal answers, and returns nil once
// they have, or an error after cfg.ShutdownTimeout with the remaining
// connections closed. Ending ctx does not cancel the requests' contexts: a
// send that is being committed when the shutdown begins is answered with
// its outcome, not with an error. This is what `hermod serve` (and
// `hermod run` with the API enabled) calls.
func Serve(ctx context.Context, cfg ServeConfig, h http.Handler) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	timeout := cfg.ShutdownTimeout
	if timeout <= 0 {
		timeout = DefaultShutdownTimeout
	}
	tlsConfig, err := loadTLS(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		if cfg.Listener != nil {
			_ = cfg.Listener.Close()
		}
		return err
	}
	ln := cfg.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Addr); err != nil {
			return fmt.Errorf("api: listen on %s: %w (is another process using the port?)", cfg.Addr, err)
		}
	}

	// Requests get a context that carries ctx's values but not its end,
	// so that the shutdown does not cancel them; an event stream ends
	// when it sees the shutdown channel closed instead.
	shutdown := make(chan struct{})
	closeShutdown := sync.OnceFunc(func() { close(shutdown) })
	base := context.WithValue(context.WithoutCancel(ctx), shutdownKey{}, (<-chan struct{})(shutdown))
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second, // the event stream extends its own deadline
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	srv.RegisterOnShutdown(closeShutdown)

	// A Server calls its status callbacks (Kannel's dlr-url) while it is
	// served.
	if s, ok := h.(*Server); ok {
		cbCtx, stopCallbacks := context.WithCancel(ctx)
		cbDone := make(chan struct{})
		go func() {
			defer close(cbDone)
			s.RunCallbacks(cbCtx)
		}()
		defer func() {
			stopCallbacks()
			<-cbDone
		}()
	}

	cfg.Logger.InfoContext(ctx, "api: listening", slog.String("addr", ln.Addr().String()), slog.Bool("tls", tlsConfig != nil))
	errc := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			errc <- srv.ServeTLS(ln, "", "") // the certificate is in TLSConfig
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		// Serve closed the listener; close the connections it left.
		closeShutdown()
		_ = srv.Close()
		return fmt.Errorf("api: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}

	cfg.Logger.InfoContext(base, "api: shutting down", slog.Duration("timeout", timeout))
	sctx, cancel := context.WithTimeout(base, timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("api: shutdown: requests still running after %s were cut off (a longer shutdown timeout lets them finish): %w", timeout, err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("api: serve on %s: %w", ln.Addr(), err)
	}
	return nil
}

// loadTLS returns the TLS configuration for the certificate and key files,
// or nil for plain HTTP when both are empty.
func loadTLS(certFile, keyFile string) (*tls.Config, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("api: TLS needs both a certificate file and a key file: give both, or neither to serve plain HTTP")
	}
	if certFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("api: load TLS certificate %s and key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, nil
}

// shutdownKey is the context key of the channel that Serve closes when its
// shutdown begins.
type shutdownKey struct{}

// shuttingDown returns a channel that is closed when the Serve that
// accepted the request begins to shut down. It is nil, so never ready, for
// a request served another way (such as httptest), whose long-lived
// handlers end when the request's context does.
func shuttingDown(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(shutdownKey{}).(<-chan struct{})
	return ch
}
