// Package client is the Go client of Hermod's HTTP API: typed requests and
// responses for every endpoint under /api/v1, used by `hermod --server URL`
// and by applications.
//
//	c := client.New("https://sms.example.com", os.Getenv("HERMOD_API_KEY"))
//	res, err := c.Send(ctx, client.NewMessage{ToAddress: "+31612345678", Body: "Hello"})
//
// Every error the server answers is returned as a *Problem (RFC 9457) that
// says which field is wrong and how to fix it; errors.As gets at it.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls one Hermod server with one API key. It is safe for
// concurrent use.
type Client struct {
	base string
	key  string
	http *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the client use hc (for TLS settings, proxies,
// timeouts). The default is a client with a 60 second timeout.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// New returns a client for the server at baseURL (e.g.
// "http://localhost:8080") that authenticates with key.
func New(baseURL, key string, opts ...Option) *Client {
	c := &Client{base: strings.TrimRight(baseURL, "/"), key: key, http: &http.Client{Timeout: 60 * time.Second}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// do sends a request with a JSON body (if in is not nil) and decodes a
// JSON answer into out (if not nil). A non-2xx answer is a *Problem.
func (c *Client) do(ctx context.Context, method, path string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("hermod client: encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return 0, fmt.Errorf("hermod client: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("hermod client: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return resp.StatusCode, problemFrom(resp)
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("hermod client: decode the answer to %s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// problemFrom reads an error answer as a *Problem, also when the server (or
// a proxy in front of it) did not send problem+json.
func problemFrom(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	p := &Problem{}
	if err := json.Unmarshal(b, p); err != nil || p.Status == 0 {
		p = &Problem{Title: http.StatusText(resp.StatusCode), Status: resp.StatusCode, Detail: strings.TrimSpace(string(b))}
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		p.RetryAfter = time.Duration(s) * time.Second
	}
	return p
}

// StatusOf returns the HTTP status of a *Problem in err's chain, or 0.
func StatusOf(err error) int {
	var p *Problem
	if errors.As(err, &p) {
		return p.Status
	}
	return 0
}

// Send submits one message. The result's Existing is true when its
// ClientReference matched a message that was already there.
func (c *Client) Send(ctx context.Context, m NewMessage) (*SendResult, error) {
	var out SendResult
	if _, err := c.do(ctx, "POST", "/api/v1/messages", m, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SendBatch submits up to 10,000 messages in one request and one database
// transaction: either all are stored or, on a validation error, none.
func (c *Client) SendBatch(ctx context.Context, msgs []NewMessage) ([]SendResult, error) {
	var out BatchResult
	if _, err := c.do(ctx, "POST", "/api/v1/messages", Batch{Messages: msgs}, &out); err != nil {
		return nil, err
	}
	return out.Messages, nil
}

// Message returns one message with its parts and trace.
func (c *Client) Message(ctx context.Context, id int64) (*Message, error) {
	var out Message
	if _, err := c.do(ctx, "GET", "/api/v1/messages/"+strconv.FormatInt(id, 10), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListOptions filter GET /api/v1/messages. Zero fields do not filter.
type ListOptions struct {
	Status    []string
	Direction string // "OUT" or "IN"
	Channel   string
	Address   string
	BatchID   string
	Campaign  string
	Since     time.Time
	Until     time.Time
	After     string // the NextCursor of the previous page
	Ascending bool
	Limit     int // 1 to 1000; 0: 100
}

func (o ListOptions) query() string {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("status", strings.Join(o.Status, ","))
	set("direction", o.Direction)
	set("channel", o.Channel)
	set("address", o.Address)
	set("batch", o.BatchID)
	set("campaign", o.Campaign)
	if !o.Since.IsZero() {
		set("since", o.Since.UTC().Format(time.RFC3339Nano))
	}
	if !o.Until.IsZero() {
		set("until", o.Until.UTC().Format(time.RFC3339Nano))
	}
	set("after", o.After)
	if o.Ascending {
		set("order", "asc")
	}
	if o.Limit > 0 {
		set("limit", strconv.Itoa(o.Limit))
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// Messages returns one page of messages.
func (c *Client) Messages(ctx context.Context, o ListOptions) (*MessagePage, error) {
	var out MessagePage
	if _, err := c.do(ctx, "GET", "/api/v1/messages"+o.query(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AllMessages iterates over every message matching o, page by page. The
// iteration stops at the first error, which it yields.
func (c *Client) AllMessages(ctx context.Context, o ListOptions) iter.Seq2[Message, error] {
	return func(yield func(Message, error) bool) {
		for {
			page, err := c.Messages(ctx, o)
			if err != nil {
				yield(Message{}, err)
				return
			}
			for _, m := range page.Messages {
				if !yield(m, nil) {
					return
				}
			}
			if page.NextCursor == "" {
				return
			}
			o.After = page.NextCursor
		}
	}
}

// Cancel cancels a SCHEDULED or QUEUED message.
func (c *Client) Cancel(ctx context.Context, id int64) (*Message, error) {
	var out Message
	if _, err := c.do(ctx, "POST", "/api/v1/messages/"+strconv.FormatInt(id, 10)+"/cancel", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Reprocess runs a message's triggers again, or with resend sends a failed
// message again.
func (c *Client) Reprocess(ctx context.Context, id int64, resend bool) (*Message, error) {
	var out Message
	if _, err := c.do(ctx, "POST", "/api/v1/messages/"+strconv.FormatInt(id, 10)+"/reprocess", ReprocessRequest{Resend: resend}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Channels lists the channels.
func (c *Client) Channels(ctx context.Context) ([]Channel, error) {
	var out ChannelList
	if _, err := c.do(ctx, "GET", "/api/v1/channels", nil, &out); err != nil {
		return nil, err
	}
	return out.Channels, nil
}

// Channel returns one channel by name.
func (c *Client) Channel(ctx context.Context, name string) (*Channel, error) {
	return c.channelCall(ctx, "GET", name, "", nil)
}

// CreateChannel creates a channel (admin scope).
func (c *Client) CreateChannel(ctx context.Context, ch NewChannel) (*Channel, error) {
	var out Channel
	if _, err := c.do(ctx, "POST", "/api/v1/channels", ch, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateChannel changes a channel (admin scope).
func (c *Client) UpdateChannel(ctx context.Context, name string, u ChannelUpdate) (*Channel, error) {
	return c.channelCall(ctx, "PATCH", name, "", u)
}

// StartChannel enables a channel (admin scope).
func (c *Client) StartChannel(ctx context.Context, name string) (*Channel, error) {
	return c.channelCall(ctx, "POST", name, "/start", nil)
}

// StopChannel disables a channel (admin scope).
func (c *Client) StopChannel(ctx context.Context, name string) (*Channel, error) {
	return c.channelCall(ctx, "POST", name, "/stop", nil)
}

// DeleteChannel deletes a channel (admin scope).
func (c *Client) DeleteChannel(ctx context.Context, name string) error {
	_, err := c.do(ctx, "DELETE", "/api/v1/channels/"+url.PathEscape(name), nil, nil)
	return err
}

func (c *Client) channelCall(ctx context.Context, method, name, suffix string, in any) (*Channel, error) {
	var out Channel
	if _, err := c.do(ctx, method, "/api/v1/channels/"+url.PathEscape(name)+suffix, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateAPIKey creates an API key (admin scope); the answer holds the key.
func (c *Client) CreateAPIKey(ctx context.Context, k NewAPIKey) (*CreatedAPIKey, error) {
	var out CreatedAPIKey
	if _, err := c.do(ctx, "POST", "/api/v1/apikeys", k, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// APIKeys lists the API keys (admin scope).
func (c *Client) APIKeys(ctx context.Context) ([]APIKey, error) {
	var out APIKeyList
	if _, err := c.do(ctx, "GET", "/api/v1/apikeys", nil, &out); err != nil {
		return nil, err
	}
	return out.APIKeys, nil
}

// RevokeAPIKey revokes an API key by name or ID (admin scope).
func (c *Client) RevokeAPIKey(ctx context.Context, nameOrID string) error {
	_, err := c.do(ctx, "POST", "/api/v1/apikeys/"+url.PathEscape(nameOrID)+"/revoke", nil, nil)
	return err
}

// Ready calls /readyz: nil when the server and its database are ready.
func (c *Client) Ready(ctx context.Context) (*Health, error) {
	var out Health
	if _, err := c.do(ctx, "GET", "/readyz", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Events streams message state changes until ctx ends or the connection
// drops (then the iteration yields the error and stops; reconnect and
// re-read the messages you care about). statuses, if given, filter.
func (c *Client) Events(ctx context.Context, statuses ...string) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		path := "/api/v1/events"
		if len(statuses) > 0 {
			path += "?status=" + url.QueryEscape(strings.Join(statuses, ","))
		}
		req, err := http.NewRequestWithContext(ctx, "GET", c.base+path, nil)
		if err != nil {
			yield(Event{}, err)
			return
		}
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Authorization", "Bearer "+c.key)
		hc := *c.http
		hc.Timeout = 0 // a stream has no end
		resp, err := hc.Do(req)
		if err != nil {
			yield(Event{}, fmt.Errorf("hermod client: events: %w", err))
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			yield(Event{}, problemFrom(resp))
			return
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var e Event
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				if !yield(Event{}, fmt.Errorf("hermod client: events: %w", err)) {
					return
				}
				continue
			}
			if !yield(e, nil) {
				return
			}
		}
		if err := sc.Err(); err != nil && ctx.Err() == nil {
			yield(Event{}, fmt.Errorf("hermod client: events: %w", err))
		}
	}
}
