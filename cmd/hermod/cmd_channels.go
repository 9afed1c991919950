package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"

	"github.com/hermod-sms/hermod/api/client"
	"github.com/hermod-sms/hermod/channels"
	"github.com/hermod-sms/hermod/engine"
	"github.com/hermod-sms/hermod/store"
)

func (a *app) cmdChannelsList(ctx context.Context, args []string) error {
	const usage = "hermod channels list [--json]"
	fs := a.newFlagSet("channels list")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if _, err := a.parse(fs, usage, args, 0, 0); err != nil {
		return err
	}
	chs, err := a.listChannels(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		if chs == nil {
			chs = []*store.Channel{}
		}
		return writeJSON(a, chs)
	}
	if len(chs) == 0 {
		fmt.Fprintln(a.stderr, "(no channels: add one with hermod channels add NAME --type TYPE; types: "+strings.Join(channels.Types(), ", ")+")")
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tTYPE\tENABLED\tPINNED\tSTATUS\tON NODE\tSINCE\tDETAILS")
	for _, c := range chs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%v\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Name, c.Type, c.Enabled, dash(c.Node),
			dash(c.Status), dash(c.StatusNode), fmtTime(c.StatusTime), clip(c.StatusDetails, 60))
	}
	return tw.Flush()
}

// listChannels reads the channels from the database, or through the API
// with --server.
func (a *app) listChannels(ctx context.Context) ([]*store.Channel, error) {
	c, err := a.remote()
	if err != nil {
		return nil, err
	}
	if c != nil {
		list, err := c.Channels(ctx)
		if err != nil {
			return nil, a.remoteError("list channels", err)
		}
		chs := make([]*store.Channel, 0, len(list))
		for _, ch := range list {
			chs = append(chs, fromClientChannel(ch))
		}
		return chs, nil
	}
	s, err := a.openStore(ctx, true)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	chs, err := s.ChannelList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list channels: %w", err)
	}
	return chs, nil
}

func (a *app) cmdChannelsAdd(ctx context.Context, args []string) error {
	const usage = "hermod channels add NAME --type TYPE [--settings JSON] [--node NODE] [--disabled]"
	fs := a.newFlagSet("channels add")
	typ := fs.String("type", "", "channel type: "+strings.Join(channels.Types(), ", "))
	settings := fs.String("settings", "{}", "the type's settings as a JSON object (see docs/channels/)")
	pin := fs.String("pin", "", "run the channel only on the node with this name")
	disabled := fs.Bool("disabled", false, "create the channel disabled")
	pos, err := a.parse(fs, usage, args, 1, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	if *typ == "" {
		return usagef("--type is required: one of %s (usage: %s)", strings.Join(channels.Types(), ", "), usage)
	}
	if !json.Valid([]byte(*settings)) || !strings.HasPrefix(strings.TrimSpace(*settings), "{") {
		return usagef("--settings is not a JSON object: pass e.g. --settings '{\"latency\":\"50ms\"}'")
	}
	// Building the channel validates the type and its settings without
	// starting it; the engine's own "process" setting is not the type's.
	_, typeSettings, err := engine.SplitChannelSettings(*settings)
	if err != nil {
		return usagef("%v: fix --settings", err)
	}
	if _, err := channels.New(*typ, channels.Config{Name: name, Settings: typeSettings}); err != nil {
		if errors.Is(err, channels.ErrUnknownType) {
			return usagef("%v: pick one of the known types for --type", err)
		}
		return usagef("%v: fix --settings", err)
	}
	rc, err := a.remote()
	if err != nil {
		return err
	}
	if rc != nil {
		enabled := !*disabled
		ch, err := rc.CreateChannel(ctx, client.NewChannel{Name: name, Type: *typ, Settings: client.RawJSON(*settings), Enabled: &enabled, Node: *pin})
		if client.StatusOf(err) == http.StatusConflict {
			return fmt.Errorf("channel %q already exists: pick another name, or delete it first with hermod channels delete %s", name, name)
		}
		if err != nil {
			return a.remoteError(fmt.Sprintf("add channel %q", name), err)
		}
		a.printAdded(fromClientChannel(*ch))
		return nil
	}
	s, err := a.openStore(ctx, true)
	if err != nil {
		return err
	}
	defer s.Close()
	c, err := s.ChannelCreate(ctx, store.Channel{Name: name, Type: *typ, Settings: *settings, Enabled: !*disabled, Node: *pin})
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("channel %q already exists: pick another name, or delete it first with hermod channels delete %s", name, name)
	}
	if err != nil {
		return fmt.Errorf("add channel %q: %w", name, err)
	}
	a.printAdded(c)
	return nil
}

func (a *app) printAdded(c *store.Channel) {
	state := "enabled"
	if !c.Enabled {
		state = "disabled"
	}
	fmt.Fprintf(a.stdout, "channel %s added (ID %d, type %s, %s); a running hermod picks it up within seconds\n", c.Name, c.ID, c.Type, state)
}

func (a *app) cmdChannelsEnable(ctx context.Context, args []string) error {
	return a.setChannelEnabled(ctx, args, "enable", true)
}

func (a *app) cmdChannelsDisable(ctx context.Context, args []string) error {
	return a.setChannelEnabled(ctx, args, "disable", false)
}

func (a *app) setChannelEnabled(ctx context.Context, args []string, verb string, enabled bool) error {
	usage := "hermod channels " + verb + " NAME"
	fs := a.newFlagSet("channels " + verb)
	pos, err := a.parse(fs, usage, args, 1, 1)
	if err != nil {
		return err
	}
	rc, err := a.remote()
	if err != nil {
		return err
	}
	if rc != nil {
		call := rc.StopChannel
		if enabled {
			call = rc.StartChannel
		}
		ch, err := call(ctx, pos[0])
		if client.StatusOf(err) == http.StatusNotFound {
			return fmt.Errorf("channel %q does not exist: hermod channels list shows the channels", pos[0])
		}
		if err != nil {
			return a.remoteError(fmt.Sprintf("%s channel %q", verb, pos[0]), err)
		}
		fmt.Fprintf(a.stdout, "channel %s %sd\n", ch.Name, verb)
		return nil
	}
	s, err := a.openStore(ctx, true)
	if err != nil {
		return err
	}
	defer s.Close()
	c, err := s.ChannelGet(ctx, pos[0])
	if err != nil {
		return channelLookupError(pos[0], err)
	}
	c.Enabled = enabled
	if err := s.ChannelUpdate(ctx, *c); err != nil {
		return fmt.Errorf("%s channel %q: %w", verb, c.Name, err)
	}
	fmt.Fprintf(a.stdout, "channel %s %sd\n", c.Name, verb)
	return nil
}

func (a *app) cmdChannelsDelete(ctx context.Context, args []string) error {
	const usage = "hermod channels delete NAME"
	fs := a.newFlagSet("channels delete")
	pos, err := a.parse(fs, usage, args, 1, 1)
	if err != nil {
		return err
	}
	rc, err := a.remote()
	if err != nil {
		return err
	}
	if rc != nil {
		err := rc.DeleteChannel(ctx, pos[0])
		if client.StatusOf(err) == http.StatusNotFound {
			return fmt.Errorf("channel %q does not exist: hermod channels list shows the channels", pos[0])
		}
		if err != nil {
			return a.remoteError(fmt.Sprintf("delete channel %q", pos[0]), err)
		}
		fmt.Fprintf(a.stdout, "channel %s deleted; its messages keep their ChannelID\n", pos[0])
		return nil
	}
	s, err := a.openStore(ctx, true)
	if err != nil {
		return err
	}
	defer s.Close()
	c, err := s.ChannelGet(ctx, pos[0])
	if err != nil {
		return channelLookupError(pos[0], err)
	}
	if err := s.ChannelDelete(ctx, c.ID); err != nil {
		return fmt.Errorf("delete channel %q: %w", c.Name, err)
	}
	fmt.Fprintf(a.stdout, "channel %s deleted; its messages keep ChannelID %d\n", c.Name, c.ID)
	return nil
}
