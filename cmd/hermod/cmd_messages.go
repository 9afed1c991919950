package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hermod-sms/hermod/api/client"
	"github.com/hermod-sms/hermod/store"
)

func (a *app) cmdSend(ctx context.Context, args []string) error {
	const usage = "hermod send --to NUMBER --body TEXT [--from SENDER] [--channel NAME] [--at TIME] [--priority N] [--client-ref KEY]"
	fs := a.newFlagSet("send")
	to := fs.String("to", "", "recipient number, e.g. +31612345678 (required)")
	body := fs.String("body", "", "message text")
	from := fs.String("from", "", "sender number or name; empty lets the channel decide")
	channel := fs.String("channel", "", "send through this channel (by name) instead of routing")
	at := fs.String("at", "", "send at this time: RFC 3339, \"2006-01-02 15:04\" (local time) or a delay such as 10m")
	priority := fs.Int("priority", 0, "higher is sent first")
	clientRef := fs.String("client-ref", "", "idempotency key: a second send with the same key returns the first message's ID")
	if _, err := a.parse(fs, usage, args, 0, 0); err != nil {
		return err
	}
	if strings.TrimSpace(*to) == "" {
		return usagef("--to is required (usage: %s)", usage)
	}
	msg := store.NewMessage{ToAddress: *to, Body: *body, FromAddress: *from, Priority: *priority, ClientReference: *clientRef}
	if *at != "" {
		t, err := parseTime(*at, time.Now())
		if err != nil {
			return usagef("--at: %v", err)
		}
		msg.ScheduledTime = t
	}
	c, err := a.remote()
	if err != nil {
		return err
	}
	if c != nil {
		res, err := c.Send(ctx, client.NewMessage{
			ToAddress: msg.ToAddress, Body: msg.Body, FromAddress: msg.FromAddress, Channel: *channel,
			Priority: msg.Priority, ScheduledTime: msg.ScheduledTime, ClientReference: msg.ClientReference,
		})
		if err != nil {
			return a.remoteError("send the message", err)
		}
		a.printSent(res.ID, res.Existing, *clientRef)
		return nil
	}
	s, err := a.openStore(ctx, true)
	if err != nil {
		return err
	}
	defer s.Close()
	if *channel != "" {
		ch, err := s.ChannelGet(ctx, *channel)
		if err != nil {
			return channelLookupError(*channel, err)
		}
		msg.ChannelID = ch.ID
	}
	res, err := s.MessageInsert(ctx, []store.NewMessage{msg})
	if err != nil {
		return fmt.Errorf("insert the message: %w", err)
	}
	if len(res) != 1 {
		return fmt.Errorf("insert the message: the store returned %d results for 1 message", len(res))
	}
	a.printSent(res[0].ID, res[0].Existing, *clientRef)
	return nil
}

// printSent prints a sent message's ID, and on standard error that it
// already existed.
func (a *app) printSent(id int64, existing bool, clientRef string) {
	fmt.Fprintln(a.stdout, id)
	if existing {
		fmt.Fprintf(a.stderr, "hermod: a message with client reference %q already existed; nothing was inserted\n", clientRef)
	}
}

func channelLookupError(name string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("channel %q does not exist: hermod channels list shows the channels", name)
	}
	return fmt.Errorf("look up channel %q: %w", name, err)
}

// parseTime accepts RFC 3339, a local "2006-01-02 15:04[:05]" or a delay
// from now ("10m", "+1h30m").
func parseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if d, err := time.ParseDuration(strings.TrimPrefix(s, "+")); err == nil {
		return now.Add(d).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use RFC 3339 (2025-01-31T15:04:05Z), \"2025-01-31 15:04\" (local time) or a delay such as 10m", s)
}

func (a *app) cmdMessagesList(ctx context.Context, args []string) error {
	const usage = "hermod messages list [--status S[,S...]] [--direction OUT|IN] [--channel NAME] [--address NUMBER] [--since TIME] [--until TIME] [--limit N] [--json]"
	fs := a.newFlagSet("messages list")
	status := fs.String("status", "", "only these statuses, comma separated (e.g. FAILED,NOCHANNEL)")
	direction := fs.String("direction", "", "OUT or IN")
	channel := fs.String("channel", "", "only messages of this channel (by name)")
	address := fs.String("address", "", "only messages to or from this number")
	since := fs.String("since", "", "created at or after TIME (RFC 3339, local \"2006-01-02 15:04\", or a duration ago such as 1h)")
	until := fs.String("until", "", "created before TIME (same forms as --since)")
	limit := fs.Int("limit", 50, "at most this many, newest first (1 to 10000)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if _, err := a.parse(fs, usage, args, 0, 0); err != nil {
		return err
	}
	f := store.MessageFilter{Limit: *limit, Address: *address}
	if *limit < 1 || *limit > 10000 {
		return usagef("--limit %d is out of range: use 1 to 10000", *limit)
	}
	if *status != "" {
		for _, st := range strings.Split(*status, ",") {
			f.Status = append(f.Status, strings.ToUpper(strings.TrimSpace(st)))
		}
	}
	switch d := strings.ToUpper(*direction); d {
	case "", store.DirectionOut, store.DirectionIn:
		f.Direction = d
	default:
		return usagef("--direction %q is not OUT or IN", *direction)
	}
	now := time.Now()
	for _, x := range []struct {
		flag string
		val  string
		dst  *time.Time
	}{{"--since", *since, &f.Since}, {"--until", *until, &f.Until}} {
		if x.val == "" {
			continue
		}
		if d, err := time.ParseDuration(x.val); err == nil && d > 0 {
			*x.dst = now.Add(-d).UTC()
			continue
		}
		t, err := parseTime(x.val, now)
		if err != nil {
			return usagef("%s: %v", x.flag, err)
		}
		*x.dst = t
	}
	var (
		msgs  []*store.Message
		names map[int64]string
	)
	c, err := a.remote()
	if err != nil {
		return err
	}
	if c != nil {
		msgs, names, err = a.remoteMessages(ctx, c, f, *channel)
	} else {
		msgs, names, err = a.localMessages(ctx, f, *channel)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		if msgs == nil {
			msgs = []*store.Message{}
		}
		return writeJSON(a, msgs)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDIR\tSTATUS\tCHANNEL\tTO\tFROM\tCREATED\tSENT\tATTEMPTS\tBODY")
	for _, m := range msgs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", m.ID, m.Direction, m.Status,
			channelName(names, m.ChannelID), m.ToAddress, dash(m.FromAddress), fmtTime(m.CreatedTime), fmtTime(m.SentTime), m.Attempts, clip(m.Body, 40))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(msgs) == 0 {
		fmt.Fprintln(a.stderr, "(no messages match)")
	}
	return nil
}

// localMessages lists messages from the database.
func (a *app) localMessages(ctx context.Context, f store.MessageFilter, channel string) ([]*store.Message, map[int64]string, error) {
	s, err := a.openStore(ctx, true)
	if err != nil {
		return nil, nil, err
	}
	defer s.Close()
	names, err := channelNames(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	if channel != "" {
		ch, err := s.ChannelGet(ctx, channel)
		if err != nil {
			return nil, nil, channelLookupError(channel, err)
		}
		f.ChannelID = ch.ID
	}
	msgs, err := s.MessageList(ctx, f)
	if err != nil {
		return nil, nil, fmt.Errorf("list messages: %w", err)
	}
	return msgs, names, nil
}

// remoteMessages lists messages through the API, page by page up to
// f.Limit.
func (a *app) remoteMessages(ctx context.Context, c *client.Client, f store.MessageFilter, channel string) ([]*store.Message, map[int64]string, error) {
	names, err := a.remoteChannelNames(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	o := client.ListOptions{Status: f.Status, Direction: f.Direction, Channel: channel, Address: f.Address,
		Since: f.Since, Until: f.Until, Limit: min(f.Limit, 1000)}
	var msgs []*store.Message
	for m, err := range c.AllMessages(ctx, o) {
		if err != nil {
			return nil, nil, a.remoteError("list messages", err)
		}
		sm, _ := fromClientMessage(m)
		msgs = append(msgs, sm)
		if len(msgs) >= f.Limit {
			break
		}
	}
	return msgs, names, nil
}

// remoteChannelNames maps channel IDs to names, read through the API.
func (a *app) remoteChannelNames(ctx context.Context, c *client.Client) (map[int64]string, error) {
	chs, err := c.Channels(ctx)
	if err != nil {
		return nil, a.remoteError("list channels", err)
	}
	names := map[int64]string{0: "-"}
	for _, ch := range chs {
		names[ch.ID] = ch.Name
	}
	return names, nil
}

func (a *app) cmdMessagesShow(ctx context.Context, args []string) error {
	const usage = "hermod messages show ID [--json]"
	fs := a.newFlagSet("messages show")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := a.parse(fs, usage, args, 1, 1)
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil || id <= 0 {
		return usagef("%q is not a message ID (a positive number)", pos[0])
	}
	var (
		m     *store.Message
		parts []store.Part
		names map[int64]string
	)
	c, err := a.remote()
	if err != nil {
		return err
	}
	if c != nil {
		cm, err := c.Message(ctx, id)
		if client.StatusOf(err) == http.StatusNotFound {
			return fmt.Errorf("message %d does not exist", id)
		}
		if err != nil {
			return a.remoteError(fmt.Sprintf("read message %d", id), err)
		}
		m, parts = fromClientMessage(*cm)
		if !*asJSON {
			if names, err = a.remoteChannelNames(ctx, c); err != nil {
				return err
			}
		}
	} else if m, parts, names, err = a.localMessage(ctx, id, !*asJSON); err != nil {
		return err
	}
	if *asJSON {
		if parts == nil {
			parts = []store.Part{}
		}
		return writeJSON(a, struct {
			Message *store.Message
			Parts   []store.Part
		}{m, parts})
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 1, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s:\t%v\n", k, v) }
	row("ID", m.ID)
	row("Direction", m.Direction)
	row("Status", m.Status)
	row("TriggerStatus", quoteEmpty(m.TriggerStatus))
	row("Channel", fmt.Sprintf("%s (ID %d)", channelName(names, m.ChannelID), m.ChannelID))
	row("ToAddress", m.ToAddress)
	row("FromAddress", dash(m.FromAddress))
	row("FromTON/NPI", fmt.Sprintf("%s/%s", auto(m.FromTON), auto(m.FromNPI)))
	row("Body", strconv.Quote(m.Body))
	row("DataCoding", auto(m.DataCoding))
	row("Priority", m.Priority)
	row("RequestDeliveryReport", m.RequestDeliveryReport)
	row("ScheduledTime", fmtTime(m.ScheduledTime))
	row("ValidUntil", fmtTime(m.ValidUntil))
	row("Reference", dash(m.Reference))
	row("TotalParts", m.TotalParts)
	row("Attempts", m.Attempts)
	row("NextAttemptTime", fmtTime(m.NextAttemptTime))
	row("LeaseOwner", dash(m.LeaseOwner))
	row("LeaseExpires", fmtTime(m.LeaseExpires))
	row("CreatedTime", fmtTime(m.CreatedTime))
	row("SentTime", fmtTime(m.SentTime))
	row("DeliveredTime", fmtTime(m.DeliveredTime))
	row("ReceivedTime", fmtTime(m.ReceivedTime))
	row("LastUpdate", fmtTime(m.LastUpdate))
	row("ErrorCode", dash(m.ErrorCode))
	row("StatusDetails", dash(m.StatusDetails))
	row("BatchID", dash(m.BatchID))
	row("CampaignID", dash(m.CampaignID))
	row("ClientReference", dash(m.ClientReference))
	row("CustomField1", dash(m.CustomField1))
	row("CustomField2", dash(m.CustomField2))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "\nParts (%d):\n", len(parts))
	if len(parts) > 0 {
		tw = tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  PART\tSTATUS\tREFERENCE\tERROR\tSENT\tDELIVERED")
		for _, p := range parts {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\n", p.PartNumber, p.Status, dash(p.Reference), dash(p.ErrorCode), fmtTime(p.SentTime), fmtTime(p.DeliveredTime))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(a.stdout, "\nTrace:")
	for _, line := range strings.Split(strings.TrimRight(m.Trace, "\n"), "\n") {
		if line != "" {
			fmt.Fprintf(a.stdout, "  %s\n", line)
		}
	}
	return nil
}

// localMessage reads a message, its parts and (withNames) the channel
// names from the database.
func (a *app) localMessage(ctx context.Context, id int64, withNames bool) (*store.Message, []store.Part, map[int64]string, error) {
	s, err := a.openStore(ctx, true)
	if err != nil {
		return nil, nil, nil, err
	}
	defer s.Close()
	m, err := s.MessageGet(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil, fmt.Errorf("message %d does not exist", id)
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read message %d: %w", id, err)
	}
	parts, err := s.MessageParts(ctx, id)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read the parts of message %d: %w", id, err)
	}
	var names map[int64]string
	if withNames {
		if names, err = channelNames(ctx, s); err != nil {
			return nil, nil, nil, err
		}
	}
	return m, parts, names, nil
}

// channelNames maps channel IDs to names ("-" for 0).
func channelNames(ctx context.Context, s store.Store) (map[int64]string, error) {
	chs, err := s.ChannelList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list channels: %w", err)
	}
	names := map[int64]string{0: "-"}
	for _, c := range chs {
		names[c.ID] = c.Name
	}
	return names, nil
}

// channelName names a channel ID, also one that was deleted.
func channelName(names map[int64]string, id int64) string {
	if n, ok := names[id]; ok {
		return n
	}
	return fmt.Sprintf("#%d (deleted)", id)
}

func writeJSON(a *app, v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05.000")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func quoteEmpty(s string) string {
	if s == "" {
		return "'' (to do)"
	}
	return s
}

func auto(n int) string {
	if n < 0 {
		return "auto"
	}
	return strconv.Itoa(n)
}

// clip shortens s to n runes on one line.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
