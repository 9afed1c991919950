package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/hermod-sms/hermod/api/client"
	"github.com/hermod-sms/hermod/store"
)

// server is the URL of the Hermod server to work through: --server, else
// HERMOD_SERVER; "" works on the database.
func (a *app) server() string {
	if a.flagServer != "" {
		return a.flagServer
	}
	return a.getenv("HERMOD_SERVER")
}

// apiKey is the key for the server: --api-key, else HERMOD_API_KEY.
func (a *app) apiKey() string {
	if a.flagAPIKey != "" {
		return a.flagAPIKey
	}
	if a.getenv == nil {
		return ""
	}
	return a.getenv("HERMOD_API_KEY")
}

// remote returns a client of the server named by --server / HERMOD_SERVER,
// or nil when the command is to work on the database.
func (a *app) remote() (*client.Client, error) {
	srv := strings.TrimSpace(a.server())
	if srv == "" {
		return nil, nil
	}
	u, err := url.Parse(srv)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, configErrorf("--server %q is not a URL of a hermod server: give e.g. http://127.0.0.1:8080 or https://sms.example.com (fix --server or HERMOD_SERVER)", srv)
	}
	if u.User != nil {
		return nil, configErrorf("--server %q carries credentials in the URL: pass the API key with --api-key or HERMOD_API_KEY instead", u.Redacted())
	}
	if strings.TrimSpace(a.apiKey()) == "" {
		return nil, configErrorf("--server %s needs an API key: set HERMOD_API_KEY (or pass --api-key); create one on the server with hermod apikey create NAME --scopes send,read", srv)
	}
	return client.New(srv, strings.TrimSpace(a.apiKey())), nil
}

// remoteError explains a failed API call: what was being done, and for a
// refused key what to check. The server's problem details say the rest.
func (a *app) remoteError(what string, err error) error {
	var p *client.Problem
	if !errors.As(err, &p) {
		return fmt.Errorf("%s: the hermod server at %s did not answer (%w): check --server / HERMOD_SERVER and that hermod run serves the API there (api.listen)", what, a.server(), err)
	}
	detail := p.Detail
	if detail == "" {
		detail = p.Title
	}
	switch p.Status {
	case http.StatusUnauthorized:
		return fmt.Errorf("%s: the server refused the API key (401): %s (check --api-key / HERMOD_API_KEY)", what, detail)
	case http.StatusForbidden:
		return fmt.Errorf("%s: the API key may not do this (403): %s", what, detail)
	}
	return fmt.Errorf("%s: %w", what, p)
}

// fromClientMessage converts an API message to the store's type, so that
// a message read through the server prints as one read from the database.
func fromClientMessage(m client.Message) (*store.Message, []store.Part) {
	opt := func(p *int) int {
		if p == nil {
			return -1
		}
		return *p
	}
	out := &store.Message{
		ID: m.ID, Direction: m.Direction, Status: m.Status, TriggerStatus: m.TriggerStatus, ChannelID: m.ChannelID,
		ToAddress: m.ToAddress, FromAddress: m.FromAddress, FromTON: opt(m.FromTON), FromNPI: opt(m.FromNPI),
		Body: m.Body, DataCoding: opt(m.DataCoding), Priority: m.Priority, RequestDeliveryReport: m.RequestDeliveryReport,
		ScheduledTime: m.ScheduledTime, ValidUntil: m.ValidUntil, Reference: m.Reference, TotalParts: m.TotalParts,
		Attempts: m.Attempts, NextAttemptTime: m.NextAttemptTime, LeaseOwner: m.LeaseOwner, LeaseExpires: m.LeaseExpires,
		CreatedTime: m.CreatedTime, SentTime: m.SentTime, DeliveredTime: m.DeliveredTime, ReceivedTime: m.ReceivedTime,
		LastUpdate: m.LastUpdate, ErrorCode: m.ErrorCode, StatusDetails: m.StatusDetails, BatchID: m.BatchID,
		CampaignID: m.CampaignID, ClientReference: m.ClientReference, CustomField1: m.CustomField1,
		CustomField2: m.CustomField2, Trace: m.Trace,
	}
	parts := make([]store.Part, 0, len(m.Parts))
	for _, p := range m.Parts {
		parts = append(parts, store.Part{
			MessageID: m.ID, PartNumber: p.PartNumber, ChannelID: p.ChannelID, Reference: p.Reference,
			Status: p.Status, ErrorCode: p.ErrorCode, SentTime: p.SentTime, DeliveredTime: p.DeliveredTime,
		})
	}
	return out, parts
}

// fromClientChannel converts an API channel to the store's type.
func fromClientChannel(c client.Channel) *store.Channel {
	settings := string(c.Settings)
	if settings == "" {
		settings = "{}"
	}
	return &store.Channel{
		ID: c.ID, Name: c.Name, Type: c.Type, Settings: settings, Enabled: c.Enabled, Node: c.Node,
		Status: c.Status, StatusDetails: c.StatusDetails, StatusNode: c.StatusNode, StatusTime: c.StatusTime,
		CreatedTime: c.CreatedTime, LastUpdate: c.LastUpdate,
	}
}
