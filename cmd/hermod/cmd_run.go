package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

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
	return a.serve(ctx, "")
}

func (a *app) cmdChannelRun(ctx context.Context, args []string) error {
	pos, err := a.parse(a.newFlagSet("channel run"), "hermod channel run NAME [global flags]", args, 1, 1)
	if err != nil {
		return err
	}
	return a.serve(ctx, pos[0])
}

// serve runs the engine until ctx ends, then stops it cleanly. only, when
// set, runs that one channel's loop (child-process mode).
func (a *app) serve(ctx context.Context, only string) error {
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
	if only != "" {
		if _, err := s.ChannelGet(ctx, only); err != nil {
			return channelLookupError(only, err)
		}
	} else if len(chs) == 0 && !a.dbExplicit {
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

	eng, err := engine.New(a.engineConfig(s, only))
	if err != nil {
		return usagef("engine configuration: %v", err)
	}
	// Cancelling the context given to Start is a hard stop; the signal
	// context must lead to the clean Stop below instead.
	runCtx, hardStop := context.WithCancel(context.WithoutCancel(ctx))
	defer hardStop()
	if err := eng.Start(runCtx); err != nil {
		return fmt.Errorf("start the engine: %w", err)
	}
	fmt.Fprintln(a.stdout, a.announce(chs, created, only))

	<-ctx.Done()
	a.logger.Info("stopping", "timeout", a.cfg.Engine.ShutdownTimeout)
	stopCtx, cancel := context.WithTimeout(context.Background(), a.cfg.Engine.ShutdownTimeout)
	defer cancel()
	if err := eng.Stop(stopCtx); err != nil {
		return fmt.Errorf("stop the engine: %w", err)
	}
	a.logger.Info("stopped")
	return nil
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
	}
	if only != "" {
		cfg.OnlyChannels = []string{only}
		cfg.NoChannels = false
	}
	return cfg
}

// announce is the one line `hermod run` prints once it is running.
func (a *app) announce(chs []*store.Channel, created, only string) string {
	var names []string
	for _, c := range chs {
		if only != "" && c.Name != only {
			continue
		}
		n := c.Name + " (" + c.Type
		if !c.Enabled {
			n += ", disabled"
		}
		if c.Name == created {
			n += ", created"
		}
		names = append(names, n+")")
	}
	list := strings.Join(names, ", ")
	if list == "" {
		list = "none: add one with hermod channels add NAME --type TYPE"
	}
	return fmt.Sprintf("hermod %s running: database %s, node %s, channels %s; send by inserting into Messages; stop with Ctrl+C",
		versionString(), a.dbDisplay(), a.cfg.Node, list)
}

// shutdownGrace is how long a service stop waits beyond the engine's
// shutdown timeout before giving up.
const shutdownGrace = 2 * time.Second
