package client

import (
	"fmt"
	"strings"
	"time"
)

// NewMessage is one message to send: the body of POST /api/v1/messages, or
// one element of a batch. ToAddress and Body are required; every other field
// has a default. The JSON names are the Messages column names.
type NewMessage struct {
	// ToAddress is the recipient: an international number with a leading
	// "+" (E.164, 7 to 15 digits), a national number or a short code (3 to
	// 15 digits).
	ToAddress string `json:"ToAddress"`
	// FromAddress is the sender: a number as for ToAddress or an
	// alphanumeric sender id of at most 11 characters. Empty: the channel's
	// default.
	FromAddress string `json:"FromAddress,omitempty"`
	// FromTON and FromNPI override the type of number and numbering plan of
	// FromAddress. Nil: the channel decides.
	FromTON *int `json:"FromTON,omitempty"`
	FromNPI *int `json:"FromNPI,omitempty"`
	// Body is the text. It must not be empty.
	Body string `json:"Body"`
	// DataCoding forces a data coding (0 GSM 7-bit, 3 Latin-1, 8 UCS-2).
	// Nil: automatic.
	DataCoding *int `json:"DataCoding,omitempty"`
	// Channel names the channel that must send the message. Empty: the
	// router chooses.
	Channel string `json:"Channel,omitempty"`
	// Priority: higher is sent first.
	Priority int `json:"Priority,omitempty"`
	// ScheduledTime delays sending until then. Zero: now.
	ScheduledTime time.Time `json:"ScheduledTime,omitzero"`
	// ValidUntil: the message expires if it was not sent by then.
	ValidUntil time.Time `json:"ValidUntil,omitzero"`
	// RequestDeliveryReport defaults to true.
	RequestDeliveryReport *bool `json:"RequestDeliveryReport,omitempty"`
	// BatchID and CampaignID group messages for reporting and filtering.
	BatchID    string `json:"BatchID,omitempty"`
	CampaignID string `json:"CampaignID,omitempty"`
	// ClientReference is the application's idempotency key: sending the same
	// key again returns the message that already has it instead of making a
	// second one (and 409 Conflict if the content differs).
	ClientReference string `json:"ClientReference,omitempty"`
	// CustomField1 and CustomField2 are free for the application.
	CustomField1 string `json:"CustomField1,omitempty"`
	CustomField2 string `json:"CustomField2,omitempty"`
}

// Batch is the body of POST /api/v1/messages for more than one message.
type Batch struct {
	Messages []NewMessage `json:"Messages"`
}

// SendResult is the answer for one submitted message.
type SendResult struct {
	ID              int64  `json:"ID"`
	Status          string `json:"Status"`
	ClientReference string `json:"ClientReference,omitempty"`
	// Existing is true when ClientReference matched a message that was
	// already there: ID is that message's and nothing new was stored.
	Existing bool `json:"Existing,omitempty"`
}

// BatchResult is the answer to a batch POST /api/v1/messages, one result per
// submitted message, in order.
type BatchResult struct {
	Messages []SendResult `json:"Messages"`
}

// Message is one row of Messages as the API shows it. Optional columns that
// are NULL in the database are left out.
type Message struct {
	ID                    int64     `json:"ID"`
	Direction             string    `json:"Direction"`
	Status                string    `json:"Status"`
	TriggerStatus         string    `json:"TriggerStatus"`
	ChannelID             int64     `json:"ChannelID,omitempty"`
	ToAddress             string    `json:"ToAddress"`
	FromAddress           string    `json:"FromAddress,omitempty"`
	FromTON               *int      `json:"FromTON,omitempty"`
	FromNPI               *int      `json:"FromNPI,omitempty"`
	Body                  string    `json:"Body"`
	DataCoding            *int      `json:"DataCoding,omitempty"`
	Priority              int       `json:"Priority"`
	RequestDeliveryReport bool      `json:"RequestDeliveryReport"`
	ScheduledTime         time.Time `json:"ScheduledTime,omitzero"`
	ValidUntil            time.Time `json:"ValidUntil,omitzero"`
	Reference             string    `json:"Reference,omitempty"`
	TotalParts            int       `json:"TotalParts"`
	Attempts              int       `json:"Attempts"`
	NextAttemptTime       time.Time `json:"NextAttemptTime,omitzero"`
	LeaseOwner            string    `json:"LeaseOwner,omitempty"`
	LeaseExpires          time.Time `json:"LeaseExpires,omitzero"`
	CreatedTime           time.Time `json:"CreatedTime,omitzero"`
	SentTime              time.Time `json:"SentTime,omitzero"`
	DeliveredTime         time.Time `json:"DeliveredTime,omitzero"`
	ReceivedTime          time.Time `json:"ReceivedTime,omitzero"`
	LastUpdate            time.Time `json:"LastUpdate,omitzero"`
	ErrorCode             string    `json:"ErrorCode,omitempty"`
	StatusDetails         string    `json:"StatusDetails,omitempty"`
	BatchID               string    `json:"BatchID,omitempty"`
	CampaignID            string    `json:"CampaignID,omitempty"`
	ClientReference       string    `json:"ClientReference,omitempty"`
	CustomField1          string    `json:"CustomField1,omitempty"`
	CustomField2          string    `json:"CustomField2,omitempty"`
	// Trace is the message's history, one line per transition. Only
	// GET /api/v1/messages/{id} fills it.
	Trace string `json:"Trace,omitempty"`
	// Parts are the segments of a sent message. Only
	// GET /api/v1/messages/{id} fills them.
	Parts []Part `json:"Parts,omitempty"`
}

// Part is one segment of a sent message (a MessageParts row).
type Part struct {
	PartNumber    int       `json:"PartNumber"`
	ChannelID     int64     `json:"ChannelID,omitempty"`
	Reference     string    `json:"Reference,omitempty"`
	Status        string    `json:"Status"`
	ErrorCode     string    `json:"ErrorCode,omitempty"`
	SentTime      time.Time `json:"SentTime,omitzero"`
	DeliveredTime time.Time `json:"DeliveredTime,omitzero"`
}

// MessagePage is one page of GET /api/v1/messages.
type MessagePage struct {
	Messages []Message `json:"Messages"`
	// NextCursor, when not empty, is the value of the "after" parameter
	// that returns the next page.
	NextCursor string `json:"NextCursor,omitempty"`
}

// ReprocessRequest is the optional body of POST /api/v1/messages/{id}/reprocess.
type ReprocessRequest struct {
	// Resend sends a FAILED (NOCHANNEL, BLOCKED, DAILYLIMIT, EXPIRED,
	// NOTDELIVERED, NOREPORT) message again. False: run its triggers again.
	Resend bool `json:"Resend,omitempty"`
}

// Channel is one row of Channels.
type Channel struct {
	ID   int64  `json:"ID"`
	Name string `json:"Name"`
	Type string `json:"Type"`
	// Settings is the channel type's JSON settings object.
	Settings      RawJSON   `json:"Settings,omitempty"`
	Enabled       bool      `json:"Enabled"`
	Node          string    `json:"Node,omitempty"`
	Status        string    `json:"Status"`
	StatusDetails string    `json:"StatusDetails,omitempty"`
	StatusNode    string    `json:"StatusNode,omitempty"`
	StatusTime    time.Time `json:"StatusTime,omitzero"`
	CreatedTime   time.Time `json:"CreatedTime,omitzero"`
	LastUpdate    time.Time `json:"LastUpdate,omitzero"`
}

// ChannelList is the answer of GET /api/v1/channels.
type ChannelList struct {
	Channels []Channel `json:"Channels"`
}

// NewChannel is the body of POST /api/v1/channels.
type NewChannel struct {
	Name     string  `json:"Name"`
	Type     string  `json:"Type"`
	Settings RawJSON `json:"Settings,omitempty"`
	// Enabled defaults to true.
	Enabled *bool  `json:"Enabled,omitempty"`
	Node    string `json:"Node,omitempty"`
}

// ChannelUpdate is the body of PATCH /api/v1/channels/{name}: nil fields
// keep their value.
type ChannelUpdate struct {
	Type     *string `json:"Type,omitempty"`
	Settings RawJSON `json:"Settings,omitempty"`
	Enabled  *bool   `json:"Enabled,omitempty"`
	Node     *string `json:"Node,omitempty"`
}

// RawJSON is a raw JSON value (a channel's settings object).
type RawJSON []byte

// MarshalJSON returns the raw value, or null when empty.
func (r RawJSON) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("null"), nil
	}
	return r, nil
}

// UnmarshalJSON keeps a copy of the raw value.
func (r *RawJSON) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*r = nil
		return nil
	}
	*r = append((*r)[:0], b...)
	return nil
}

// Event is one message state change, as sent by GET /api/v1/events.
type Event struct {
	MessageID int64     `json:"MessageID"`
	Status    string    `json:"Status"`
	ChannelID int64     `json:"ChannelID,omitempty"`
	Time      time.Time `json:"Time"`
}

// APIKey describes an API key. The secret is never shown again after
// creation; Prefix tells keys apart.
type APIKey struct {
	ID          int64     `json:"ID"`
	Name        string    `json:"Name"`
	Prefix      string    `json:"Prefix"`
	Scopes      []string  `json:"Scopes"`
	AllowedIPs  []string  `json:"AllowedIPs,omitempty"`
	RateLimit   int       `json:"RateLimit,omitempty"`
	CreatedTime time.Time `json:"CreatedTime,omitzero"`
	RevokedTime time.Time `json:"RevokedTime,omitzero"`
}

// NewAPIKey is the body of POST /api/v1/apikeys.
type NewAPIKey struct {
	Name       string   `json:"Name"`
	Scopes     []string `json:"Scopes"`
	AllowedIPs []string `json:"AllowedIPs,omitempty"`
	// RateLimit in requests per second; 0: the server's default.
	RateLimit int `json:"RateLimit,omitempty"`
}

// CreatedAPIKey is the answer of POST /api/v1/apikeys: the only time the
// secret Key is shown.
type CreatedAPIKey struct {
	APIKey
	Key string `json:"Key"`
}

// APIKeyList is the answer of GET /api/v1/apikeys.
type APIKeyList struct {
	APIKeys []APIKey `json:"APIKeys"`
}

// Health is the answer of GET /healthz and GET /readyz.
type Health struct {
	// Status is "ok", or "degraded" when /readyz lists Problems.
	Status string `json:"Status"`
	// Backend, SchemaVersion and LatestSchemaVersion are filled by /readyz.
	Backend             string `json:"Backend,omitempty"`
	SchemaVersion       uint   `json:"SchemaVersion,omitempty"`
	LatestSchemaVersion uint   `json:"LatestSchemaVersion,omitempty"`
	// Problems lists the database operations of this node's engine that
	// fail now (/readyz).
	Problems []HealthProblem `json:"Problems,omitempty"`
}

// HealthProblem is a database operation of the engine that fails now.
type HealthProblem struct {
	// Operation is the store call, such as "MessageClaim"; "" when the
	// database does not answer at all.
	Operation string `json:"Operation,omitempty"`
	// Channel is the channel whose call fails; "" for the node's own
	// services.
	Channel string `json:"Channel,omitempty"`
	// Kind is "statement" (the database answers, a statement fails: its
	// SQL, the data or the schema is wrong) or "unavailable" (the
	// database does not answer).
	Kind string `json:"Kind"`
	// Error is the last error, with the fix when it is known.
	Error string `json:"Error"`
	// Since is when the first call failed.
	Since time.Time `json:"Since"`
	// FailedCalls counts the calls that failed since then.
	FailedCalls int `json:"FailedCalls"`
}

// Problem is an RFC 9457 problem details object: every error the API
// returns. It implements error, so that the client's methods return it.
type Problem struct {
	Type     string `json:"type,omitempty"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Errors names each field that is wrong and how to fix it.
	Errors []FieldError `json:"errors,omitempty"`
	// Results, on a 409 for a batch, holds the results of the messages
	// that were stored (or already existed) alongside the conflicting ones.
	Results []SendResult `json:"results,omitempty"`
	// RetryAfter is taken from the Retry-After header of a 429 or 503.
	RetryAfter time.Duration `json:"-"`
}

// FieldError names one field that is wrong.
type FieldError struct {
	// Field is the path of the field in the request, e.g.
	// "Messages[3].ToAddress", or the query parameter's name.
	Field string `json:"field"`
	// Detail says what is wrong and how to fix it.
	Detail string `json:"detail"`
}

// Error returns the title, the detail and the field errors on one line.
func (p *Problem) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", p.Status, p.Title)
	if p.Detail != "" {
		b.WriteString(": ")
		b.WriteString(p.Detail)
	}
	for i, e := range p.Errors {
		if i == 3 {
			fmt.Fprintf(&b, " (and %d more)", len(p.Errors)-3)
			break
		}
		fmt.Fprintf(&b, "; %s: %s", e.Field, e.Detail)
	}
	return b.String()
}
