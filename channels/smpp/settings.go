package smpp

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hermod-sms/hermod/channels"
	"github.com/hermod-sms/hermod/channels/smpp/internal/pdu"
)

// Duration is a time.Duration that reads from JSON as a Go duration string
// ("30s", "1m30s") or as a number of seconds.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w (write it like \"30s\" or \"2m\")", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("duration %s: want a string like \"30s\" or a number of seconds", b)
	}
	*d = Duration(f * float64(time.Second))
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Settings configures an SMPP channel. It is decoded from the channel's
// Settings JSON; every field has the default shown, and an unknown field
// is an error.
type Settings struct {
	// Host and Port of the SMSC. Host is required; Port defaults to 2775.
	Host string `json:"host"`
	Port int    `json:"port"`
	// SystemID and Password are the bind credentials.
	SystemID string `json:"systemId"`
	Password string `json:"password"`
	// SystemType is sent in the bind (often empty, sometimes "SMPP" or a
	// value the provider assigns).
	SystemType string `json:"systemType"`
	// InterfaceVersion sent in the bind; default 0x34 (52).
	InterfaceVersion int `json:"interfaceVersion"`
	// AddressRange, AddrTON and AddrNPI restrict what a receiver bind gets.
	AddressRange string `json:"addressRange"`
	AddrTON      int    `json:"addrTon"`
	AddrNPI      int    `json:"addrNpi"`
	// BindType is "transceiver" (default), "transmitter" or "receiver".
	BindType string `json:"bindType"`
	// Binds is how many sessions the channel opens (default 1). Each is
	// bound separately; submits are spread over the bound ones.
	Binds int `json:"binds"`
	// ReceiverBinds adds this many receiver binds to transmitter binds
	// (for providers that want separate transmitter and receiver binds).
	ReceiverBinds int `json:"receiverBinds"`
	// TLS connects with TLS. TLSServerName overrides the name checked in
	// the certificate; TLSInsecureSkipVerify skips the check (tests only).
	TLS                   bool   `json:"tls"`
	TLSServerName         string `json:"tlsServerName"`
	TLSInsecureSkipVerify bool   `json:"tlsInsecureSkipVerify"`
	// Window is how many submit_sm may await their response per bind
	// (default 10).
	Window int `json:"window"`
	// Throughput limits the channel to this many message parts per second
	// over all binds; 0 (the default) means no limit.
	Throughput float64 `json:"throughput"`
	// EnquireLink is the keep-alive interval (default 30s).
	EnquireLink Duration `json:"enquireLink"`
	// ResponseTimeout is how long a response may take (bind, submit_sm,
	// enquire_link; default 10s). An enquire_link without response drops
	// the connection (half-open detection).
	ResponseTimeout Duration `json:"responseTimeout"`
	// ConnectTimeout bounds dialling and the TLS handshake (default 10s).
	ConnectTimeout Duration `json:"connectTimeout"`
	// ReconnectMin and ReconnectMax bound the jittered exponential
	// backoff between connection attempts (defaults 1s and 60s).
	ReconnectMin Duration `json:"reconnectMin"`
	ReconnectMax Duration `json:"reconnectMax"`
	// ThrottlePause is how long the whole channel pauses after
	// ESME_RTHROTTLED or ESME_RMSGQFUL; it doubles while throttling goes
	// on, up to ReconnectMax (default 1s).
	ThrottlePause Duration `json:"throttlePause"`
	// BindWait is how long Send waits for a bound session before it gives
	// a message back as a temporary failure (default 60s).
	BindWait Duration `json:"bindWait"`
	// PartRetries is how many times one part is resubmitted within a Send
	// after a temporary error or a lost response before the message is
	// given back to the engine (default 3).
	PartRetries int `json:"partRetries"`
	// SplitMethod is how long messages are sent: "udh8" (default),
	// "udh16", "sar" (sar_* TLVs) or "payload" (one submit_sm with
	// message_payload).
	SplitMethod string `json:"splitMethod"`
	// ResponseIDFormat and ReportIDFormat say how the provider writes
	// message ids in submit_sm_resp (and receipted_message_id) and in
	// receipt text: "text" (default: compared as text), "hex" or
	// "decimal" (numbers, compared by value).
	ResponseIDFormat string `json:"responseIdFormat"`
	ReportIDFormat   string `json:"reportIdFormat"`
	// IDCaseFold compares text ids case-insensitively (default true).
	IDCaseFold *bool `json:"idCaseFold"`
	// IDStripZeros ignores leading zeros in text ids (default true).
	IDStripZeros *bool `json:"idStripZeros"`
	// ErrorClasses overrides the temporary/permanent class of command
	// statuses: {"ESME_RSYSERR": "permanent", "0x00000401": "temporary"}.
	ErrorClasses map[string]string `json:"errorClasses"`
	// SourceTON and SourceNPI apply when the message has none (-1, the
	// default: 5/0 for alphanumeric senders, 1/1 for "+" numbers,
	// otherwise 0/1... see docs/channels/smpp.md).
	SourceTON int `json:"sourceTon"`
	SourceNPI int `json:"sourceNpi"`
	// DestTON and DestNPI of destination addresses (default 1 and 1).
	DestTON int `json:"destTon"`
	DestNPI int `json:"destNpi"`
	// ServiceType is the submit_sm service_type (default empty).
	ServiceType string `json:"serviceType"`
	// DataCodingGSM is the data_coding sent for GSM 7-bit text (default
	// 0, the SMSC default alphabet; some providers want 1).
	DataCodingGSM int `json:"dataCodingGsm"`
	// PDULog logs every PDU, decoded, with the password masked.
	PDULog bool `json:"pduLog"`
	// BatchSize is the most messages per Send (default 200) and
	// Concurrency how many Send calls run at once (default 2).
	BatchSize   int `json:"batchSize"`
	Concurrency int `json:"concurrency"`
	// ReassemblyTimeout is how long parts of an incoming long message wait
	// for the rest; then the parts received are stored as they are
	// (default 30s).
	ReassemblyTimeout Duration `json:"reassemblyTimeout"`
	// StatsInterval is how often counters are logged (default 1m; 0
	// leaves the default, negative disables).
	StatsInterval Duration `json:"statsInterval"`
}

func defaultSettings() Settings {
	return Settings{
		Port:              2775,
		InterfaceVersion:  0x34,
		BindType:          "transceiver",
		Binds:             1,
		Window:            10,
		EnquireLink:       Duration(30 * time.Second),
		ResponseTimeout:   Duration(10 * time.Second),
		ConnectTimeout:    Duration(10 * time.Second),
		ReconnectMin:      Duration(time.Second),
		ReconnectMax:      Duration(60 * time.Second),
		ThrottlePause:     Duration(time.Second),
		BindWait:          Duration(60 * time.Second),
		PartRetries:       3,
		SplitMethod:       "udh8",
		ResponseIDFormat:  "text",
		ReportIDFormat:    "text",
		SourceTON:         -1,
		SourceNPI:         -1,
		DestTON:           1,
		DestNPI:           1,
		BatchSize:         200,
		Concurrency:       2,
		ReassemblyTimeout: Duration(30 * time.Second),
		StatsInterval:     Duration(time.Minute),
	}
}

// ParseSettings decodes and validates settings JSON, applying defaults.
func ParseSettings(raw json.RawMessage) (Settings, error) {
	s := defaultSettings()
	if err := channels.DecodeSettings(raw, &s); err != nil {
		return s, err
	}
	return s, s.validate()
}

func (s *Settings) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.Host == "" {
		bad("host is required (the SMSC's host name or address)")
	}
	if s.Port <= 0 || s.Port > 65535 {
		bad("port %d: must be 1..65535", s.Port)
	}
	if len(s.SystemID) > 15 {
		bad("systemId %q: at most 15 characters", s.SystemID)
	}
	if len(s.Password) > 8 {
		bad("password: at most 8 characters (SMPP 3.4 limit)")
	}
	if len(s.SystemType) > 12 {
		bad("systemType %q: at most 12 characters", s.SystemType)
	}
	if s.InterfaceVersion < 0 || s.InterfaceVersion > 255 {
		bad("interfaceVersion %d: must be 0..255 (0x34 = 52 for SMPP 3.4)", s.InterfaceVersion)
	}
	switch s.BindType {
	case "transceiver", "transmitter", "receiver":
	default:
		bad("bindType %q: must be transceiver, transmitter or receiver", s.BindType)
	}
	if s.Binds < 1 || s.Binds > 64 {
		bad("binds %d: must be 1..64", s.Binds)
	}
	if s.ReceiverBinds < 0 || s.ReceiverBinds > 64 {
		bad("receiverBinds %d: must be 0..64", s.ReceiverBinds)
	}
	if s.Window < 1 || s.Window > 10000 {
		bad("window %d: must be 1..10000", s.Window)
	}
	if s.Throughput < 0 {
		bad("throughput %v: must be 0 (no limit) or positive", s.Throughput)
	}
	for name, d := range map[string]Duration{"enquireLink": s.EnquireLink, "responseTimeout": s.ResponseTimeout,
		"connectTimeout": s.ConnectTimeout, "reconnectMin": s.ReconnectMin, "reconnectMax": s.ReconnectMax,
		"throttlePause": s.ThrottlePause, "bindWait": s.BindWait, "reassemblyTimeout": s.ReassemblyTimeout} {
		if d <= 0 {
			bad("%s %v: must be positive", name, time.Duration(d))
		}
	}
	if s.ReconnectMax < s.ReconnectMin {
		bad("reconnectMax %v is below reconnectMin %v", time.Duration(s.ReconnectMax), time.Duration(s.ReconnectMin))
	}
	if s.PartRetries < 0 {
		bad("partRetries %d: must be 0 or more", s.PartRetries)
	}
	switch s.SplitMethod {
	case "udh8", "udh16", "sar", "payload":
	default:
		bad("splitMethod %q: must be udh8, udh16, sar or payload", s.SplitMethod)
	}
	for name, f := range map[string]string{"responseIdFormat": s.ResponseIDFormat, "reportIdFormat": s.ReportIDFormat} {
		switch f {
		case "text", "hex", "decimal":
		default:
			bad("%s %q: must be text, hex or decimal", name, f)
		}
	}
	if _, err := parseErrorClasses(s.ErrorClasses); err != nil {
		errs = append(errs, err)
	}
	for name, v := range map[string]int{"sourceTon": s.SourceTON, "sourceNpi": s.SourceNPI} {
		if v < -1 || v > 255 {
			bad("%s %d: must be -1 (automatic) or 0..255", name, v)
		}
	}
	for name, v := range map[string]int{"destTon": s.DestTON, "destNpi": s.DestNPI, "addrTon": s.AddrTON, "addrNpi": s.AddrNPI, "dataCodingGsm": s.DataCodingGSM} {
		if v < 0 || v > 255 {
			bad("%s %d: must be 0..255", name, v)
		}
	}
	if len(s.ServiceType) > 5 {
		bad("serviceType %q: at most 5 characters", s.ServiceType)
	}
	if s.BatchSize < 1 || s.BatchSize > 5000 {
		bad("batchSize %d: must be 1..5000", s.BatchSize)
	}
	if s.Concurrency < 1 || s.Concurrency > 64 {
		bad("concurrency %d: must be 1..64", s.Concurrency)
	}
	if s.BindType == "receiver" && s.ReceiverBinds > 0 {
		bad("receiverBinds is for transmitter binds; with bindType receiver use binds")
	}
	return errors.Join(errs...)
}

func (s *Settings) caseFold() bool   { return s.IDCaseFold == nil || *s.IDCaseFold }
func (s *Settings) stripZeros() bool { return s.IDStripZeros == nil || *s.IDStripZeros }

// parseErrorClasses reads the errorClasses overrides: keys are SMPP names
// or hex/decimal codes, values "temporary" or "permanent".
func parseErrorClasses(m map[string]string) (map[uint32]bool, error) {
	out := map[uint32]bool{}
	for k, v := range m {
		var code uint32
		if c, ok := pdu.StatusByName(strings.ToUpper(k)); ok {
			code = c
		} else if n, err := strconv.ParseUint(k, 0, 32); err == nil {
			code = uint32(n)
		} else {
			return nil, fmt.Errorf("errorClasses: %q is neither an SMPP status name (ESME_RSYSERR) nor a code (0x08)", k)
		}
		switch strings.ToLower(v) {
		case "temporary":
			out[code] = true
		case "permanent":
			out[code] = false
		default:
			return nil, fmt.Errorf("errorClasses[%q] = %q: must be temporary or permanent", k, v)
		}
	}
	return out, nil
}
