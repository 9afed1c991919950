// Package store defines the one interface through which Hermod touches its
// database, and the types that cross it.
//
// Every backend (store/sqlite, store/postgres, store/sqlserver) implements
// Store in its own package with its own SQL; the engine, the API and the
// command line hold no SQL. store/storetest runs one conformance suite against
// every backend.
//
// Conventions that every implementation follows:
//
//   - Times are UTC. "Now" is the database's clock (so that several nodes with
//     skewed clocks agree); durations are passed in, instants are not.
//     Durations may be zero or negative (a lease that has already expired,
//     a report overdue at once): tests make time pass that way.
//   - An optional column is NULL when its Go field holds the zero value ("" for
//     strings, the zero time, 0 for ChannelID), and comes back as that zero
//     value.
//   - Every status transition appends one line to Messages.Trace, in the form
//     "2006-01-02 15:04:05.000 STATUS text" followed by "\n". The text is
//     kept on one line (newlines in provider errors become spaces).
//   - ErrorCode and StatusDetails are cleared when a message becomes SENT.
//   - Batch methods apply the whole batch in one transaction and as few
//     statements as the backend allows; they never return before the
//     transaction has committed.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Message status values (the Status column): what happened on the channel.
const (
	StatusCreating     = "CREATING"     // an application is still writing the row: ignored
	StatusScheduled    = "SCHEDULED"    // default: waits for ScheduledTime, then is routed
	StatusQueued       = "QUEUED"       // routed to a channel, waiting to be claimed
	StatusSending      = "SENDING"      // claimed by a node under a lease
	StatusSent         = "SENT"         // accepted by the provider, Reference known
	StatusDelivered    = "DELIVERED"    // every part delivered
	StatusNotDelivered = "NOTDELIVERED" // a part was rejected by the network
	StatusNoReport     = "NOREPORT"     // no delivery report in time
	StatusFailed       = "FAILED"       // gave up after retries, or a permanent error
	StatusBlocked      = "BLOCKED"      // a blocking rule matched
	StatusNoChannel    = "NOCHANNEL"    // no channel can send it
	StatusDailyLimit   = "DAILYLIMIT"   // the channel's daily limit was reached
	StatusExpired      = "EXPIRED"      // ValidUntil passed before it was sent
	StatusCancelled    = "CANCELLED"    // the application cancelled it
	StatusReceived     = "RECEIVED"     // an incoming message
)

// TriggerStatus values: what business logic has done with a message.
const (
	TriggerPending    = ""
	TriggerProcessing = "PROCESSING"
	TriggerProcessed  = "PROCESSED"
	TriggerNoMatch    = "NOMATCH"
	TriggerNone       = "NOTRIGGERS"
	TriggerFailed     = "FAILED"
)

// Directions.
const (
	DirectionOut = "OUT"
	DirectionIn  = "IN"
)

// Part status values (MessageParts.Status).
const (
	PartSent         = "SENT"
	PartDelivered    = "DELIVERED"
	PartNotDelivered = "NOTDELIVERED"
)

// Errors returned by every backend. Wrap with %w; test with errors.Is.
var (
	// ErrNotFound: the row asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the row exists but is in a state that forbids the change
	// (cancelling a message that is already SENT, a duplicate channel name).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the input breaks a rule of the schema (empty ToAddress, an
	// unknown channel type). The wrapping error says which field and why.
	ErrInvalid = errors.New("invalid")
	// ErrStatement: a statement failed on a database that answered. The
	// SQL, the data or the schema is wrong (a missing table or column, a
	// syntax error, a value that does not convert, a trigger that raised
	// an error, a feature the server lacks, a row that does not scan), so
	// running it again fails the same way until someone fixes it. An error
	// that is none of the store errors is an outage: the database did not
	// answer (connection refused or reset, a timeout, a server shutting
	// down, no resources). Wrap with Statement, which keeps the driver's
	// error reachable with errors.As.
	ErrStatement = errors.New("statement failed")
)

// Statement marks err, the error of a statement that failed on a database
// that answered, as ErrStatement, and appends fix, how to repair it, when
// it is not "". err should say what the store was doing.
func Statement(err error, fix string) error {
	if fix == "" {
		return fmt.Errorf("%w (%w)", err, ErrStatement)
	}
	return fmt.Errorf("%w: %s (%w)", err, fix, ErrStatement)
}

// Fixes of statement errors that every backend can name.
const (
	// FixSchema: an object the store uses is missing or has changed.
	FixSchema = "the database schema does not match this version of Hermod: run `hermod migrate status` and `hermod migrate up`, and undo changes made by hand to Hermod's tables, views and procedures"
	// FixData: a value does not convert or breaks a rule.
	FixData = "a row holds a value Hermod cannot read or write: compare the row with the column types of docs/schema.md and correct it"
	// FixRaised: a trigger or procedure raised the error.
	FixRaised = "a trigger or procedure in the database raised this error: fix or disable it"
	// FixPermission: the database user lacks a privilege.
	FixPermission = "the database user lacks a privilege on Hermod's objects: grant it the one the error names"
	// FixServer: the statement uses something the server does not do.
	FixServer = "the server does not accept a statement of Hermod's: report it as a bug, with the server's version and this error"
)

// Message is one row of Messages.
type Message struct {
	ID                    int64
	Direction             string // DirectionOut or DirectionIn
	Status                string
	TriggerStatus         string
	ChannelID             int64 // 0: not routed yet
	ToAddress             string
	FromAddress           string
	FromTON, FromNPI      int // -1: automatic (NULL in the database)
	Body                  string
	DataCoding            int // -1: automatic (NULL in the database)
	Priority              int // higher first
	RequestDeliveryReport bool
	ScheduledTime         time.Time
	ValidUntil            time.Time
	Reference             string // the provider's id (of the first part)
	TotalParts            int
	Attempts              int
	NextAttemptTime       time.Time
	LeaseOwner            string
	LeaseExpires          time.Time
	CreatedTime           time.Time
	SentTime              time.Time
	DeliveredTime         time.Time
	ReceivedTime          time.Time
	LastUpdate            time.Time
	ErrorCode             string // the provider's or network's error code, if any
	StatusDetails         string // why it is in its status, in words
	BatchID               string
	CampaignID            string
	ClientReference       string // the application's idempotency key; unique when given
	CustomField1          string
	CustomField2          string
	Trace                 string
	// StatusCallback is the URL the application asked to be called on
	// status changes (Kannel's dlr-url); "" when none.
	StatusCallback string
	// StatusCallbackMask holds Kannel's dlr-mask bits selecting the statuses
	// that call StatusCallback (1 DELIVERED, 2 NOTDELIVERED, 8 SENT, 16
	// FAILED or EXPIRED); 0 (NULL in the database) means every final status.
	StatusCallbackMask int
}

// Part is one row of MessageParts: one segment of a (long) outgoing message.
type Part struct {
	MessageID     int64
	PartNumber    int // 1-based
	ChannelID     int64
	Reference     string // the provider's id for this part, normalized by the channel
	Status        string // PartSent, PartDelivered, PartNotDelivered
	ErrorCode     string
	SentTime      time.Time
	DeliveredTime time.Time
}

// NewMessage is what an application submits. Zero values take the schema's
// defaults: Status SCHEDULED (due now), RequestDeliveryReport true.
type NewMessage struct {
	ToAddress        string
	FromAddress      string
	FromTON, FromNPI *int // nil: automatic (NULL)
	Body             string
	DataCoding       *int // nil: automatic (NULL)
	ChannelID        int64
	Priority         int
	ScheduledTime    time.Time
	ValidUntil       time.Time
	NoDeliveryReport bool // true: RequestDeliveryReport = 0
	BatchID          string
	CampaignID       string
	ClientReference  string
	CustomField1     string
	CustomField2     string
	// StatusCallback is a URL to call on status changes ("" none); see
	// Message.StatusCallback.
	StatusCallback string
	// StatusCallbackMask is Kannel's dlr-mask (0: NULL, every final status).
	StatusCallbackMask int
}

// InsertResult tells what MessageInsert did with one NewMessage.
type InsertResult struct {
	ID int64
	// Existing is true when ClientReference matched a message that was
	// already there: ID is that message's and nothing was inserted.
	Existing bool
}

// Incoming is a message received on a channel, stored as a RECEIVED row.
type Incoming struct {
	ChannelID    int64
	FromAddress  string
	FromTON      int
	FromNPI      int
	ToAddress    string
	Body         string
	DataCoding   int
	Reference    string // the provider's id, when it gives one
	TotalParts   int
	ReceivedTime time.Time // zero: the database's now
}

// MessageFilter selects messages for MessageList. Zero fields do not filter.
type MessageFilter struct {
	Status     []string
	Direction  string
	ChannelID  int64
	Address    string // matches ToAddress or FromAddress exactly
	BatchID    string
	CampaignID string
	Since      time.Time // CreatedTime >= Since
	Until      time.Time // CreatedTime < Until
	AfterID    int64     // cursor: ID > AfterID when ascending, ID < AfterID when descending
	Ascending  bool      // default newest first
	Limit      int       // default 100, at most 10000
}

// RouteParams drives MessageRoute.
type RouteParams struct {
	// Channels are the IDs of enabled channels that can send, in a stable
	// order. A due SCHEDULED message without a ChannelID goes to
	// Channels[ID % len(Channels)] (round robin by ID); with a ChannelID it
	// keeps it if that channel exists in Channels table (enabled or not);
	// otherwise, and when Channels is empty for an unassigned message, it
	// becomes NOCHANNEL with StatusDetails saying why.
	Channels []int64
	Limit    int // at most this many rows per call
}

// Change is one status transition a store call made and committed: the
// message, the Status it reached and its ChannelID after the change (0
// when it has none). Calls that change rows in sets (routing, delivery
// reports, sweeps, rescues) return them so that the engine can publish
// every transition without reading the rows again; backends take them
// from the changing statements themselves (RETURNING, OUTPUT ... INTO),
// never from a query per row. Their order is unspecified, except that a
// message named twice by one call (a sweep that makes it NOREPORT, then
// applies its pending report) is named in the order of its transitions.
type Change struct {
	ID        int64
	Status    string
	ChannelID int64
}

// RouteResult counts what MessageRoute did.
type RouteResult struct {
	Queued    int
	NoChannel int
	Expired   int // due SCHEDULED rows whose ValidUntil had passed become EXPIRED
	// Changes names every message counted above: QUEUED with the channel
	// it was routed to, NOCHANNEL (ChannelID as the message asked for, 0
	// when it named none) and EXPIRED.
	Changes []Change
}

// ClaimParams drives MessageClaim.
type ClaimParams struct {
	ChannelID int64
	Limit     int // claim at most this many (keep far below 5,000 on SQL Server)
	Owner     string
	Lease     time.Duration
}

// SentParams records that the provider accepted a claimed message.
type SentParams struct {
	ID        int64
	Owner     string // only applied while the row is SENDING under this owner
	Reference string // the provider's id for the message (its first part)
	Parts     []Part // one per part; MessageID, ChannelID and Status are filled by the store; empty: one part named Reference
	Note      string // extra text for the Trace line
}

// RetryParams returns a claimed message to QUEUED after a temporary error.
type RetryParams struct {
	ID        int64
	Owner     string
	Delay     time.Duration // NextAttemptTime = now + Delay
	ErrorCode string
	Error     string // goes to StatusDetails and the Trace
}

// FailParams makes a claimed message FAILED.
type FailParams struct {
	ID        int64
	Owner     string
	ErrorCode string
	Error     string
}

// ReportParams is one delivery report for one part.
type ReportParams struct {
	ChannelID int64
	Reference string // normalized the same way as Part.Reference
	Status    string // PartDelivered or PartNotDelivered
	ErrorCode string
	DoneTime  time.Time // zero: the database's now
}

// ReportResult counts what MessageReportApply did.
type ReportResult struct {
	Matched int // reports that found their part
	Pending int // reports kept in PendingReports until MessageMarkSent writes their part
	// Settled names the messages that became DELIVERED or NOTDELIVERED in
	// this call; a report that changes no message's status (a part of a
	// multi-part message still waiting for others, a repeated report)
	// adds none.
	Settled []Change
}

// SweepParams drives MessageSweep.
type SweepParams struct {
	// NoReportAfter: SENT messages that requested a report and have had none
	// for this long become NOREPORT.
	NoReportAfter time.Duration
	// PendingReportTTL: unmatched reports older than this are deleted.
	PendingReportTTL time.Duration
	Limit            int
}

// SweepResult counts what MessageSweep did.
type SweepResult struct {
	NoReport       int
	Expired        int // QUEUED (not SENDING) rows whose ValidUntil passed
	PendingDeleted int
	// Changes names every message whose status the sweep changed: the
	// NOREPORT and EXPIRED ones counted above and, on backends whose sweep
	// also applies pending reports whose part has appeared since
	// (PostgreSQL), the DELIVERED and NOTDELIVERED ones those settled.
	Changes []Change
}

// SentResult tells what MessageMarkSentSettled did.
type SentResult struct {
	// Changed counts the messages made SENT: what MessageMarkSent returns.
	Changed int
	// Settled names the messages that delivery reports kept in
	// PendingReports (they came before the submit response) made
	// DELIVERED or NOTDELIVERED in the same transaction, after SENT.
	Settled []Change
}

// Channel is one row of Channels.
type Channel struct {
	ID            int64
	Name          string // unique, [A-Za-z0-9_.-], at most 64 characters
	Type          string // a registered channel type: "simulator", "smpp", ...
	Settings      string // JSON object, type specific
	Enabled       bool
	Node          string // pinned to this node name; "" runs anywhere
	Status        string // written by the node running it: "running", "bound", "reconnecting", "stopped", "error"
	StatusDetails string
	StatusNode    string
	StatusTime    time.Time
	CreatedTime   time.Time
	LastUpdate    time.Time
}

// ChannelStatusParams records a channel's runtime state.
type ChannelStatusParams struct {
	ID      int64
	Node    string
	Status  string
	Details string
}

// NodeParams records a node's heartbeat.
type NodeParams struct {
	Name    string // unique per running process, e.g. host-pid-random
	Host    string
	PID     int
	Version string
}

// Node is one row of Nodes.
type Node struct {
	Name          string
	Host          string
	PID           int
	Version       string
	StartedTime   time.Time
	HeartbeatTime time.Time
}

// LeaderParams drives LeaderElect and LeaderResign.
type LeaderParams struct {
	Name string // what is being led; "default"
	Node string
	TTL  time.Duration
}

// APIKey is one row of ApiKeys. The secret itself is never stored: Hash is
// the hex SHA-256 of the whole key, Prefix its first characters (shown in
// listings so that a user can tell keys apart).
type APIKey struct {
	ID          int64
	Name        string // unique
	Prefix      string
	Hash        string // unique
	Scopes      string // comma separated: "send", "read", "admin"
	AllowedIPs  string // comma separated CIDRs or addresses; "" allows any
	RateLimit   int    // requests per second; 0: the server's default
	CreatedTime time.Time
	RevokedTime time.Time // zero: active
}

// Store is every database operation Hermod performs.
type Store interface {
	// Backend names the implementation: "sqlite", "postgres", "sqlserver".
	Backend() string
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the connections.
	Close() error

	// MessageInsert inserts outgoing messages as an application would, in one
	// transaction. A ClientReference that already exists returns the
	// existing ID with Existing set, also when two inserts race.
	MessageInsert(ctx context.Context, msgs []NewMessage) ([]InsertResult, error)
	// MessageGet returns one message, or ErrNotFound.
	MessageGet(ctx context.Context, id int64) (*Message, error)
	// MessageList returns messages matching the filter, ordered by ID.
	MessageList(ctx context.Context, f MessageFilter) ([]*Message, error)
	// MessageParts returns the parts of one message ordered by PartNumber.
	MessageParts(ctx context.Context, id int64) ([]Part, error)
	// MessageCancel makes a SCHEDULED or QUEUED message CANCELLED. Any other
	// status returns ErrConflict; a missing message ErrNotFound.
	MessageCancel(ctx context.Context, id int64) error
	// MessageReprocess acts on a message again. With resend, a FAILED,
	// NOCHANNEL, BLOCKED, DAILYLIMIT, EXPIRED, NOTDELIVERED or NOREPORT
	// outgoing message goes back to SCHEDULED (NextAttemptTime, lease and
	// StatusDetails cleared, Attempts kept, a Trace line added); any other
	// status is ErrConflict. Without resend, TriggerStatus is set to '' so
	// that triggers run again.
	MessageReprocess(ctx context.Context, id int64, resend bool) error
	// MessageCountByStatus counts messages per Status for one direction ("" both).
	MessageCountByStatus(ctx context.Context, direction string) (map[string]int, error)

	// MessageRoute moves due SCHEDULED outgoing messages (ScheduledTime NULL
	// or passed) to QUEUED on a channel, or to NOCHANNEL/EXPIRED.
	MessageRoute(ctx context.Context, p RouteParams) (RouteResult, error)
	// MessageClaim takes due QUEUED messages of one channel (NextAttemptTime
	// NULL or passed), highest Priority first then lowest ID, and makes them
	// SENDING under a lease in one statement: Attempts+1, LeaseOwner,
	// LeaseExpires = now + Lease. Rows locked by another claimer are skipped
	// (or waited for, where the database cannot skip). Rows whose ValidUntil
	// has passed are not claimed (the sweeper expires them).
	MessageClaim(ctx context.Context, p ClaimParams) ([]*Message, error)
	// MessageMarkSent makes claimed messages SENT (SentTime, Reference,
	// TotalParts, clears the lease), writes their MessageParts rows, and
	// applies any PendingReports for those parts. Rows no longer SENDING
	// under Owner are skipped; the result counts the rows changed.
	MessageMarkSent(ctx context.Context, p []SentParams) (int, error)
	// MessageMarkRetry returns claimed messages to QUEUED with
	// NextAttemptTime = now + Delay, clearing the lease.
	MessageMarkRetry(ctx context.Context, p []RetryParams) (int, error)
	// MessageMarkFailed makes claimed messages FAILED.
	MessageMarkFailed(ctx context.Context, p []FailParams) (int, error)
	// MessageReportApply applies delivery reports to parts, matched on
	// (ChannelID, Reference). The message becomes DELIVERED when every part
	// is delivered (DeliveredTime = the last DoneTime), NOTDELIVERED as soon
	// as one part is not delivered (ErrorCode set). A report whose part is
	// not known yet (it came before the submit response) is stored in
	// PendingReports and applied by MessageMarkSent.
	MessageReportApply(ctx context.Context, p []ReportParams) (ReportResult, error)
	// MessageRescue returns SENDING messages whose lease expired to QUEUED,
	// with a Trace line saying the lease of owner X expired and the message
	// may have been sent (at-least-once). It returns those messages, each
	// with Status QUEUED and its channel.
	MessageRescue(ctx context.Context, limit int) ([]Change, error)
	// MessageSweep makes overdue SENT messages NOREPORT and expired
	// QUEUED messages EXPIRED, and deletes stale pending reports.
	MessageSweep(ctx context.Context, p SweepParams) (SweepResult, error)
	// MessageReceive stores incoming messages as RECEIVED rows and returns
	// their IDs, after the commit.
	MessageReceive(ctx context.Context, in []Incoming) ([]int64, error)

	// ChannelList returns every channel ordered by ID.
	ChannelList(ctx context.Context) ([]*Channel, error)
	// ChannelGet returns a channel by name, or ErrNotFound.
	ChannelGet(ctx context.Context, name string) (*Channel, error)
	// ChannelCreate inserts a channel and returns it with ID set; a duplicate
	// name is ErrConflict, an invalid name ErrInvalid.
	ChannelCreate(ctx context.Context, c Channel) (*Channel, error)
	// ChannelUpdate changes Type, Settings, Enabled and Node of the channel
	// with c.ID; ErrNotFound if there is none, ErrInvalid if Settings is not
	// a JSON object.
	ChannelUpdate(ctx context.Context, c Channel) error
	// ChannelDelete deletes a channel by ID; ErrNotFound if there is none.
	ChannelDelete(ctx context.Context, id int64) error
	// ChannelSetStatus records a channel's runtime status; ErrNotFound if
	// the channel is gone.
	ChannelSetStatus(ctx context.Context, p ChannelStatusParams) error

	// NodeHeartbeat inserts or refreshes a node's row.
	NodeHeartbeat(ctx context.Context, p NodeParams) error
	// NodeList returns every node ordered by Name.
	NodeList(ctx context.Context) ([]Node, error)
	// NodeDelete removes a node's row (clean shutdown).
	NodeDelete(ctx context.Context, name string) error
	// NodeDeleteStale removes nodes without a heartbeat for this long.
	NodeDeleteStale(ctx context.Context, olderThan time.Duration) (int, error)

	// LeaderElect makes p.Node the leader of p.Name for TTL if there is no
	// leader or the lease expired, or extends the lease if p.Node already
	// leads. It reports whether p.Node leads after the call.
	LeaderElect(ctx context.Context, p LeaderParams) (bool, error)
	// LeaderResign gives up leadership if p.Node holds it.
	LeaderResign(ctx context.Context, p LeaderParams) error
	// LeaderGet returns the current leader's node name ("" if none or expired).
	LeaderGet(ctx context.Context, name string) (string, error)

	// APIKeyCreate stores a key (Name and Hash unique: ErrConflict) and
	// returns it with ID and CreatedTime set.
	APIKeyCreate(ctx context.Context, k APIKey) (*APIKey, error)
	// APIKeyList returns every key, revoked ones too, ordered by ID.
	APIKeyList(ctx context.Context) ([]*APIKey, error)
	// APIKeyByHash returns the key with this hash (revoked or not), or
	// ErrNotFound.
	APIKeyByHash(ctx context.Context, hash string) (*APIKey, error)
	// APIKeyRevoke sets RevokedTime on the key with this name or ID
	// (nameOrID is tried as a name first); ErrNotFound if none.
	APIKeyRevoke(ctx context.Context, nameOrID string) error

	// OptionGet returns an option's value, or ErrNotFound.
	OptionGet(ctx context.Context, name string) (string, error)
	// OptionSet inserts or replaces an option.
	OptionSet(ctx context.Context, name, value string) error
}

// SentSettler is implemented by stores that can name the messages that
// MessageMarkSent settled by applying delivery reports that came before
// their submit response. Every backend of this module implements it; the
// engine, when the store does, uses it instead of MessageMarkSent to
// publish those DELIVERED and NOTDELIVERED transitions. It is separate
// from Store so that wrappers of a Store (test doubles that embed one)
// keep working and simply publish less.
type SentSettler interface {
	// MessageMarkSentSettled does exactly what MessageMarkSent does and
	// also returns the messages the pending reports settled.
	MessageMarkSentSettled(ctx context.Context, p []SentParams) (SentResult, error)
}

// Notifier is implemented by stores that can wake the engine when new work
// is inserted (PostgreSQL LISTEN/NOTIFY). Wait returns a channel that
// receives a value, debounced, after messages were inserted or changed to a
// state the engine must act on; it is closed when ctx ends. Errors
// (a lost connection) are retried inside with backoff.
type Notifier interface {
	Notifications(ctx context.Context) <-chan struct{}
}

// Migrator is implemented by every store: the versioned schema migrations
// under sql/<backend> and the repeatable scripts under procedures/<backend>.
type Migrator interface {
	// MigrateUp applies every pending migration, then the repeatable scripts.
	MigrateUp(ctx context.Context) error
	// MigrateDown rolls back n migrations (n <= 0: all).
	MigrateDown(ctx context.Context, n int) error
	// MigrateStatus reports the current and the latest version, and whether
	// the schema is marked dirty by a failed migration.
	MigrateStatus(ctx context.Context) (current, latest uint, dirty bool, err error)
}

// OneLine keeps text that goes into a Trace line on one line: a text with
// line breaks (a provider's multi-line error) has every run of white space
// collapsed to one space. Backends apply it to the notes and errors they
// write into Trace and StatusDetails.
func OneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}
