package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kardianos/service"

	"github.com/hermod-sms/hermod/store/open"
)

// serviceName is the name under which hermod installs itself.
const serviceName = "hermod"

// serviceConfig describes the service. The installed service runs
// `hermod service run` with the global flags given to `service install`;
// relative paths in them are made absolute against the working directory
// of the install, so that the service finds the same files.
func (a *app) serviceConfig() (*service.Config, error) {
	args := []string{"service", "run"}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("find the working directory: %w", err)
	}
	if a.flagDB != "" {
		db := a.flagDB
		if p, ok := open.SQLitePath(db, ""); ok && !filepath.IsAbs(p) {
			db = "sqlite://" + filepath.ToSlash(filepath.Join(cwd, p))
		}
		args = append(args, "--db", db)
	}
	if a.flagConfig != "" {
		args = append(args, "--config", resolve(cwd, a.flagConfig))
	}
	if a.flagNoMigrate {
		args = append(args, "--no-migrate")
	}
	if a.flagLogLevel != "" {
		args = append(args, "--log-level", a.flagLogLevel)
	}
	if a.flagLogFormat != "" {
		args = append(args, "--log-format", a.flagLogFormat)
	}
	if a.flagNode != "" {
		args = append(args, "--node", a.flagNode)
	}
	if a.flagAPIListen != nil {
		args = append(args, "--api-listen", *a.flagAPIListen)
	}
	return &service.Config{
		Name:        serviceName,
		DisplayName: "Hermod SMS server",
		Description: "Sends and receives SMS through the messages in its database.",
		Arguments:   args,
		Option: service.KeyValue{
			"Restart":                "on-failure", // systemd
			"OnFailure":              "restart",    // Windows
			"OnFailureDelayDuration": "5s",
			"KeepAlive":              true, // launchd
			"RunAtLoad":              true,
		},
	}, nil
}

// program adapts the server to service.Interface.
type program struct {
	a      *app
	cancel context.CancelFunc
	done   chan error
}

// Start runs the server in the background; it must not block.
func (p *program) Start(s service.Service) error {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.done = make(chan error, 1)
	go func() {
		err := p.a.serve(ctx, serveOptions{})
		p.done <- err
		if err != nil && ctx.Err() == nil {
			// Failed on its own (database unreachable, bad
			// configuration): exit non-zero so that the service
			// manager restarts us with its back-off.
			fmt.Fprintf(p.a.stderr, "hermod: %v\n", open.Scrub(err, p.a.cfg.DB))
			os.Exit(1)
		}
	}()
	return nil
}

// Stop stops the server and returns within the shutdown timeout plus a
// little grace, as service managers expect.
func (p *program) Stop(s service.Service) error {
	if p.cancel == nil {
		return nil
	}
	p.cancel()
	limit := p.a.cfg.Engine.ShutdownTimeout
	if limit <= 0 {
		limit = defaults().Engine.ShutdownTimeout
	}
	select {
	case err := <-p.done:
		return err
	case <-time.After(limit + shutdownGrace):
		return errors.New("the engine did not stop in time; in-flight messages return to the queue when their lease expires")
	}
}

func (a *app) newService() (service.Service, error) {
	cfg, err := a.serviceConfig()
	if err != nil {
		return nil, err
	}
	s, err := service.New(&program{a: a}, cfg)
	if err != nil {
		return nil, fmt.Errorf("this system has no supported service manager (%w): run hermod run under your own supervisor instead", err)
	}
	return s, nil
}

func (a *app) cmdServiceRun(ctx context.Context, args []string) error {
	if _, err := a.parse(a.newFlagSet("service run"), "hermod service run [global flags]", args, 0, 0); err != nil {
		return err
	}
	if !service.Interactive() {
		// A Windows service starts in System32: relative paths (the
		// default hermod.db and hermod.yaml) belong next to the executable.
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the executable's directory: %w", err)
		}
		a.dir = filepath.Dir(exe)
		a.serviceMode = true
	}
	if err := a.load(); err != nil {
		return err
	}
	s, err := a.newService()
	if err != nil {
		return err
	}
	if service.Interactive() {
		// Started by hand: behave like hermod run.
		return a.serve(ctx, serveOptions{})
	}
	return s.Run()
}

func (a *app) serviceControl(args []string, verb string, do func(service.Service) error, done string) error {
	if _, err := a.parse(a.newFlagSet("service "+verb), "hermod service "+verb+" [global flags]", args, 0, 0); err != nil {
		return err
	}
	s, err := a.newService()
	if err != nil {
		return err
	}
	if err := do(s); err != nil {
		return fmt.Errorf("service %s: %w (managing services usually needs administrator rights)", verb, err)
	}
	fmt.Fprintln(a.stdout, done)
	return nil
}

func (a *app) cmdServiceInstall(_ context.Context, args []string) error {
	return a.serviceControl(args, "install", service.Service.Install,
		"service "+serviceName+" installed; start it with hermod service start")
}

func (a *app) cmdServiceUninstall(_ context.Context, args []string) error {
	return a.serviceControl(args, "uninstall", service.Service.Uninstall, "service "+serviceName+" removed")
}

func (a *app) cmdServiceStart(_ context.Context, args []string) error {
	return a.serviceControl(args, "start", service.Service.Start, "service "+serviceName+" started")
}

func (a *app) cmdServiceStop(_ context.Context, args []string) error {
	return a.serviceControl(args, "stop", service.Service.Stop, "service "+serviceName+" stopped")
}

func (a *app) cmdServiceStatus(_ context.Context, args []string) error {
	if _, err := a.parse(a.newFlagSet("service status"), "hermod service status", args, 0, 0); err != nil {
		return err
	}
	s, err := a.newService()
	if err != nil {
		return err
	}
	st, err := s.Status()
	if errors.Is(err, service.ErrNotInstalled) {
		fmt.Fprintln(a.stdout, "not installed")
		return nil
	}
	if err != nil {
		return fmt.Errorf("service status: the %s service manager did not answer (%w): is hermod installed (hermod service install) and is the service manager running?", service.Platform(), err)
	}
	switch st {
	case service.StatusRunning:
		fmt.Fprintln(a.stdout, "running")
	case service.StatusStopped:
		fmt.Fprintln(a.stdout, "stopped")
	default:
		fmt.Fprintln(a.stdout, "unknown")
	}
	return nil
}
