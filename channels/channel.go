// Package channels defines what a channel is to the engine: the Channel
// interface, the Host a running channel calls back into, the errors that say
// whether a failure is worth retrying, and the registry that maps a channel
// type ("simulator", "smpp", ...) to its constructor.
//
// A channel type lives in its own package under channels/ and registers
// itself in an init function:
//
//	func init() { channels.Register("simulator", New) }
//
// Channels never import the engine or the store: the Host is their only way
// back into Hermod, so the same channel runs inside the service or in a child
// process.
package channels

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"
)

// Message is an outgoing message handed to a channel to send.
type Message struct {
	ID                    int64
	To                    string
	From                  string
	FromTON, FromNPI      int
	Body                  string
	DataCoding            int // -1: the channel chooses (GSM 7-bit, Latin-1 or UCS-2)
	Priority              int
	RequestDeliveryReport bool
	ValidUntil            time.Time // zero: none
	Attempt               int       // 1 on the first try
}

// Part is one segment of a sent message and the provider's id for it.
type Part struct {
	Number    int    // 1-based
	Reference string // normalized as the channel's delivery reports will name it
}

// Result is the outcome of sending one Message.
type Result struct {
	ID int64
	// Err is nil when the provider accepted every part. Otherwise it says
	// why; wrap it with Permanent for errors that retrying cannot fix.
	// An error whose outcome is unknown (a response that never came) is
	// temporary: the message is retried and may arrive twice.
	Err       error
	ErrorCode string // the provider's code ("ESME_RTHROTTLED/0x58", "HTTP 503")
	Reference string // the provider's id of the message or its first part
	Parts     []Part
	Note      string // extra text for the message's Trace
}

// Report is a delivery report for one part, as the provider sent it.
type Report struct {
	Reference string // normalized the same way as Part.Reference
	Delivered bool
	ErrorCode string    // the network's error code when not delivered
	State     string    // the provider's state word: DELIVRD, UNDELIV, REJECTD, EXPIRED ...
	DoneTime  time.Time // zero: now
}

// Incoming is a message received by a channel.
type Incoming struct {
	From         string
	FromTON      int
	FromNPI      int
	To           string
	Body         string
	DataCoding   int
	Reference    string
	TotalParts   int
	ReceivedTime time.Time
}

// Host is what a running channel calls back into. Its methods return only
// after what they were given is committed to the database: a channel
// acknowledges to its peer (deliver_sm_resp, HTTP 200) only after a nil
// error, so a crash never loses an incoming message or a report.
type Host interface {
	// Receive stores incoming messages.
	Receive(ctx context.Context, in []Incoming) error
	// Report applies delivery reports.
	Report(ctx context.Context, reports []Report) error
	// SetStatus publishes the channel's state ("bound", "reconnecting",
	// "error") with details, for the Channels table and logs.
	SetStatus(state, details string)
	// Logger is the channel's logger (channel name attached).
	Logger() *slog.Logger
}

// Channel is one configured, running channel.
type Channel interface {
	// Start connects or starts serving. It returns quickly: a channel that
	// cannot connect yet keeps trying in the background with backoff and
	// reports its state through Host.SetStatus.
	Start(ctx context.Context, host Host) error
	// Send sends a batch and returns one Result per message, in order. It
	// honours ctx: on cancellation it returns what it knows, with the
	// unknown outcomes as temporary errors.
	Send(ctx context.Context, msgs []Message) []Result
	// Stop disconnects cleanly within the context's deadline.
	Stop(ctx context.Context) error
}

// Limits is implemented by channels that want other than the engine's
// default batch size and number of concurrent Send calls.
type Limits interface {
	// BatchSize is the most messages one Send call gets.
	BatchSize() int
	// Concurrency is how many Send calls may run at once.
	Concurrency() int
}

// Receiver is implemented by channels that can only receive (an SMPP
// receiver bind, an inbound-only HTTP hook): the router does not send
// through them.
type Receiver interface {
	ReceiveOnly() bool
}

// Config is what a channel constructor gets.
type Config struct {
	ID       int64
	Name     string
	Settings json.RawMessage // the Channels.Settings JSON object; may be empty
	Logger   *slog.Logger
}

// Factory builds a channel from its configuration. It validates the
// settings and returns a clear error naming the setting that is wrong.
type Factory func(Config) (Channel, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Factory{}
)

// Register makes a channel type available under name. It panics if the name
// is taken, as database/sql.Register does.
func Register(name string, f Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("channels: Register called twice for type " + name)
	}
	registry[name] = f
}

// Types lists the registered channel types, sorted.
func Types() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]string, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ErrUnknownType is returned by New for a type nobody registered.
var ErrUnknownType = errors.New("unknown channel type")

// New builds a channel of the registered type.
func New(typ string, cfg Config) (Channel, error) {
	registryMu.RLock()
	f, ok := registry[typ]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("channel %q: %w %q (known types: %s)", cfg.Name, ErrUnknownType, typ, strings.Join(Types(), ", "))
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ch, err := f(cfg)
	if err != nil {
		return nil, fmt.Errorf("channel %q (%s): %w", cfg.Name, typ, err)
	}
	return ch, nil
}

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as permanent: the message fails (or fails over) at
// once instead of being retried.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked
// Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// DecodeSettings decodes a channel's JSON settings into dst (a pointer to a
// struct holding the defaults), rejecting unknown fields so that a misspelt
// setting is an error naming it, not a silently ignored line.
func DecodeSettings(raw json.RawMessage, dst any) error {
	if len(strings.TrimSpace(string(raw))) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	return nil
}
