// Package pdu encodes and decodes the SMPP 3.4 protocol data units that
// Hermod's SMPP client and its test SMSC exchange. It is deliberately small:
// one PDU struct covers every command the client uses, decoding never panics
// on hostile input (it is fuzzed), and every PDU keeps its own sequence
// number so that nothing is shared between sessions.
package pdu

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Command ids (SMPP 3.4 section 5.1.2.1).
const (
	GenericNack         uint32 = 0x80000000
	BindReceiver        uint32 = 0x00000001
	BindReceiverResp    uint32 = 0x80000001
	BindTransmitter     uint32 = 0x00000002
	BindTransmitterResp uint32 = 0x80000002
	QuerySM             uint32 = 0x00000003
	QuerySMResp         uint32 = 0x80000003
	SubmitSM            uint32 = 0x00000004
	SubmitSMResp        uint32 = 0x80000004
	DeliverSM           uint32 = 0x00000005
	DeliverSMResp       uint32 = 0x80000005
	Unbind              uint32 = 0x00000006
	UnbindResp          uint32 = 0x80000006
	ReplaceSM           uint32 = 0x00000007
	ReplaceSMResp       uint32 = 0x80000007
	CancelSM            uint32 = 0x00000008
	CancelSMResp        uint32 = 0x80000008
	BindTransceiver     uint32 = 0x00000009
	BindTransceiverResp uint32 = 0x80000009
	Outbind             uint32 = 0x0000000B
	EnquireLink         uint32 = 0x00000015
	EnquireLinkResp     uint32 = 0x80000015
	SubmitMulti         uint32 = 0x00000021
	SubmitMultiResp     uint32 = 0x80000021
	AlertNotification   uint32 = 0x00000102
	DataSM              uint32 = 0x00000103
	DataSMResp          uint32 = 0x80000103
)

// Optional parameter (TLV) tags used by Hermod.
const (
	TagUserMessageReference uint16 = 0x0204
	TagSarMsgRefNum         uint16 = 0x020C
	TagSarTotalSegments     uint16 = 0x020E
	TagSarSegmentSeqnum     uint16 = 0x020F
	TagScInterfaceVersion   uint16 = 0x0210
	TagMessagePayload       uint16 = 0x0424
	TagReceiptedMessageID   uint16 = 0x001E
	TagMessageState         uint16 = 0x0427
	TagNetworkErrorCode     uint16 = 0x0423
)

// ESM class bits.
const (
	ESMUDHI            byte = 0x40 // short_message starts with a user data header
	ESMTypeMask        byte = 0x3C
	ESMDeliveryReceipt byte = 0x04 // SMSC delivery receipt
	ESMDeliveryAck     byte = 0x08 // SME delivery acknowledgement
	ESMManualAck       byte = 0x10 // SME manual/user acknowledgement
	ESMIntermediate    byte = 0x20 // intermediate delivery notification
)

// HeaderLen is the size of the PDU header.
const HeaderLen = 16

// MaxLen is the largest PDU Hermod accepts. SMPP sets no limit; real PDUs
// stay far below this (message_payload holds at most 64 KiB).
const MaxLen = 70000

// IsResponse reports whether the command id is a response.
func IsResponse(id uint32) bool { return id&0x80000000 != 0 }

// TLV is one optional parameter.
type TLV struct {
	Tag   uint16
	Value []byte
}

// PDU is one SMPP PDU. Only the fields of its command are encoded.
type PDU struct {
	Command uint32
	Status  uint32
	Seq     uint32

	// bind_* and outbind
	SystemID         string
	Password         string
	SystemType       string
	InterfaceVersion byte
	AddrTON, AddrNPI byte
	AddressRange     string

	// submit_sm, deliver_sm, data_sm
	ServiceType          string
	SourceTON, SourceNPI byte
	Source               string
	DestTON, DestNPI     byte
	Dest                 string
	ESMClass             byte
	ProtocolID           byte
	PriorityFlag         byte
	ScheduleDeliveryTime string
	ValidityPeriod       string
	RegisteredDelivery   byte
	ReplaceIfPresent     byte
	DataCoding           byte
	SMDefaultMsgID       byte
	ShortMessage         []byte

	// *_sm_resp
	MessageID string

	TLVs []TLV
}

// TLV returns the value of the first optional parameter with tag.
func (p *PDU) TLV(tag uint16) ([]byte, bool) {
	for _, t := range p.TLVs {
		if t.Tag == tag {
			return t.Value, true
		}
	}
	return nil, false
}

// SetTLV adds or replaces an optional parameter.
func (p *PDU) SetTLV(tag uint16, v []byte) {
	for i := range p.TLVs {
		if p.TLVs[i].Tag == tag {
			p.TLVs[i].Value = v
			return
		}
	}
	p.TLVs = append(p.TLVs, TLV{Tag: tag, Value: v})
}

// Response builds the response PDU for request p with status.
func (p *PDU) Response(status uint32) *PDU {
	return &PDU{Command: p.Command | 0x80000000, Status: status, Seq: p.Seq}
}

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed PDU")

// ErrFrame is wrapped by framing errors after which the byte stream cannot
// be trusted: the connection must be closed.
var ErrFrame = errors.New("invalid PDU length")

// ReadFrame reads one whole PDU (header included) from r. An error wrapping
// ErrFrame means the stream is out of step; the bytes read so far are
// returned with it for logging.
func ReadFrame(r io.Reader) ([]byte, error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(head[:])
	if n < HeaderLen || n > MaxLen {
		return head[:], fmt.Errorf("%w: command_length %d (must be %d..%d)", ErrFrame, n, HeaderLen, MaxLen)
	}
	buf := make([]byte, n)
	copy(buf, head[:])
	if _, err := io.ReadFull(r, buf[4:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return buf, fmt.Errorf("%w: truncated PDU: %w", ErrFrame, err)
		}
		return buf, err
	}
	return buf, nil
}

// Header decodes the header of a frame, for answering a PDU whose body is
// malformed.
func Header(frame []byte) (cmd, status, seq uint32, ok bool) {
	if len(frame) < HeaderLen {
		return 0, 0, 0, false
	}
	return binary.BigEndian.Uint32(frame[4:]), binary.BigEndian.Uint32(frame[8:]), binary.BigEndian.Uint32(frame[12:]), true
}

type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
	}
}

func (r *reader) byte(field string) byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail("%s missing at offset %d", field, r.off)
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *reader) cstring(field string, max int) string {
	if r.err != nil {
		return ""
	}
	i := bytes.IndexByte(r.b[r.off:], 0)
	if i < 0 {
		r.fail("%s at offset %d is not NUL-terminated", field, r.off)
		return ""
	}
	if i >= max {
		r.fail("%s at offset %d is %d octets long (at most %d)", field, r.off, i, max-1)
		return ""
	}
	s := string(r.b[r.off : r.off+i])
	r.off += i + 1
	return s
}

func (r *reader) bytes(field string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b)-r.off {
		r.fail("%s at offset %d needs %d octets, %d left", field, r.off, n, len(r.b)-r.off)
		return nil
	}
	v := make([]byte, n)
	copy(v, r.b[r.off:r.off+n])
	r.off += n
	return v
}

func (r *reader) tlvs() []TLV {
	var out []TLV
	for r.err == nil && r.off < len(r.b) {
		if len(r.b)-r.off < 4 {
			r.fail("optional parameter at offset %d is truncated", r.off)
			return out
		}
		tag := binary.BigEndian.Uint16(r.b[r.off:])
		n := int(binary.BigEndian.Uint16(r.b[r.off+2:]))
		r.off += 4
		v := r.bytes(fmt.Sprintf("optional parameter 0x%04X", tag), n)
		out = append(out, TLV{Tag: tag, Value: v})
	}
	return out
}

// Decode decodes one frame as returned by ReadFrame.
func Decode(frame []byte) (*PDU, error) {
	if len(frame) < HeaderLen {
		return nil, fmt.Errorf("%w: %d octets, shorter than a header", ErrMalformed, len(frame))
	}
	if n := binary.BigEndian.Uint32(frame); int(n) != len(frame) {
		return nil, fmt.Errorf("%w: command_length %d but frame has %d octets", ErrMalformed, n, len(frame))
	}
	p := &PDU{
		Command: binary.BigEndian.Uint32(frame[4:]),
		Status:  binary.BigEndian.Uint32(frame[8:]),
		Seq:     binary.BigEndian.Uint32(frame[12:]),
	}
	r := &reader{b: frame, off: HeaderLen}
	body := len(frame) > HeaderLen
	switch p.Command {
	case BindReceiver, BindTransmitter, BindTransceiver:
		p.SystemID = r.cstring("system_id", 16)
		p.Password = r.cstring("password", 9)
		p.SystemType = r.cstring("system_type", 13)
		p.InterfaceVersion = r.byte("interface_version")
		p.AddrTON = r.byte("addr_ton")
		p.AddrNPI = r.byte("addr_npi")
		p.AddressRange = r.cstring("address_range", 41)
	case BindReceiverResp, BindTransmitterResp, BindTransceiverResp:
		if body { // an error response may have no body
			p.SystemID = r.cstring("system_id", 16)
			p.TLVs = r.tlvs()
		}
	case Outbind:
		p.SystemID = r.cstring("system_id", 16)
		p.Password = r.cstring("password", 9)
	case SubmitSM, DeliverSM:
		p.ServiceType = r.cstring("service_type", 6)
		p.SourceTON = r.byte("source_addr_ton")
		p.SourceNPI = r.byte("source_addr_npi")
		p.Source = r.cstring("source_addr", 21)
		p.DestTON = r.byte("dest_addr_ton")
		p.DestNPI = r.byte("dest_addr_npi")
		p.Dest = r.cstring("destination_addr", 21)
		p.ESMClass = r.byte("esm_class")
		p.ProtocolID = r.byte("protocol_id")
		p.PriorityFlag = r.byte("priority_flag")
		p.ScheduleDeliveryTime = r.cstring("schedule_delivery_time", 17)
		p.ValidityPeriod = r.cstring("validity_period", 17)
		p.RegisteredDelivery = r.byte("registered_delivery")
		p.ReplaceIfPresent = r.byte("replace_if_present_flag")
		p.DataCoding = r.byte("data_coding")
		p.SMDefaultMsgID = r.byte("sm_default_msg_id")
		n := int(r.byte("sm_length"))
		p.ShortMessage = r.bytes("short_message", n)
		p.TLVs = r.tlvs()
	case DataSM:
		p.ServiceType = r.cstring("service_type", 6)
		p.SourceTON = r.byte("source_addr_ton")
		p.SourceNPI = r.byte("source_addr_npi")
		p.Source = r.cstring("source_addr", 65)
		p.DestTON = r.byte("dest_addr_ton")
		p.DestNPI = r.byte("dest_addr_npi")
		p.Dest = r.cstring("destination_addr", 65)
		p.ESMClass = r.byte("esm_class")
		p.RegisteredDelivery = r.byte("registered_delivery")
		p.DataCoding = r.byte("data_coding")
		p.TLVs = r.tlvs()
	case SubmitSMResp, DeliverSMResp, DataSMResp:
		if body {
			p.MessageID = r.cstring("message_id", 65)
			p.TLVs = r.tlvs()
		}
	case GenericNack, Unbind, UnbindResp, EnquireLink, EnquireLinkResp:
		// header only; a body is tolerated and ignored
		return p, nil
	default:
		// Other commands are answered with generic_nack by the session;
		// their bodies are not needed.
		return p, nil
	}
	if r.err != nil {
		return p, r.err
	}
	if r.off != len(frame) {
		return p, fmt.Errorf("%w: %d unexpected octets after the body", ErrMalformed, len(frame)-r.off)
	}
	return p, nil
}

type writer struct{ b []byte }

func (w *writer) cstring(s string) { w.b = append(append(w.b, s...), 0) }
func (w *writer) byte(v byte)      { w.b = append(w.b, v) }
func (w *writer) tlvs(ts []TLV) {
	for _, t := range ts {
		w.b = binary.BigEndian.AppendUint16(w.b, t.Tag)
		w.b = binary.BigEndian.AppendUint16(w.b, uint16(len(t.Value)))
		w.b = append(w.b, t.Value...)
	}
}

// Encode encodes p into a frame. It fails when a field does not fit its
// SMPP size.
func Encode(p *PDU) ([]byte, error) {
	w := &writer{b: make([]byte, HeaderLen, 64+len(p.ShortMessage))}
	check := func(field, v string, max int) error {
		if len(v) >= max || strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("%s %q: at most %d octets without NUL", field, v, max-1)
		}
		return nil
	}
	var errs []error
	switch p.Command {
	case BindReceiver, BindTransmitter, BindTransceiver:
		errs = append(errs, check("system_id", p.SystemID, 16), check("password", p.Password, 9),
			check("system_type", p.SystemType, 13), check("address_range", p.AddressRange, 41))
		w.cstring(p.SystemID)
		w.cstring(p.Password)
		w.cstring(p.SystemType)
		w.byte(p.InterfaceVersion)
		w.byte(p.AddrTON)
		w.byte(p.AddrNPI)
		w.cstring(p.AddressRange)
	case BindReceiverResp, BindTransmitterResp, BindTransceiverResp:
		errs = append(errs, check("system_id", p.SystemID, 16))
		w.cstring(p.SystemID)
		w.tlvs(p.TLVs)
	case Outbind:
		w.cstring(p.SystemID)
		w.cstring(p.Password)
	case SubmitSM, DeliverSM:
		errs = append(errs, check("service_type", p.ServiceType, 6), check("source_addr", p.Source, 21),
			check("destination_addr", p.Dest, 21), check("schedule_delivery_time", p.ScheduleDeliveryTime, 17),
			check("validity_period", p.ValidityPeriod, 17))
		if len(p.ShortMessage) > 254 {
			errs = append(errs, fmt.Errorf("short_message is %d octets (at most 254; use message_payload)", len(p.ShortMessage)))
		}
		w.cstring(p.ServiceType)
		w.byte(p.SourceTON)
		w.byte(p.SourceNPI)
		w.cstring(p.Source)
		w.byte(p.DestTON)
		w.byte(p.DestNPI)
		w.cstring(p.Dest)
		w.byte(p.ESMClass)
		w.byte(p.ProtocolID)
		w.byte(p.PriorityFlag)
		w.cstring(p.ScheduleDeliveryTime)
		w.cstring(p.ValidityPeriod)
		w.byte(p.RegisteredDelivery)
		w.byte(p.ReplaceIfPresent)
		w.byte(p.DataCoding)
		w.byte(p.SMDefaultMsgID)
		w.byte(byte(len(p.ShortMessage)))
		w.b = append(w.b, p.ShortMessage...)
		w.tlvs(p.TLVs)
	case DataSM:
		errs = append(errs, check("service_type", p.ServiceType, 6), check("source_addr", p.Source, 65),
			check("destination_addr", p.Dest, 65))
		w.cstring(p.ServiceType)
		w.byte(p.SourceTON)
		w.byte(p.SourceNPI)
		w.cstring(p.Source)
		w.byte(p.DestTON)
		w.byte(p.DestNPI)
		w.cstring(p.Dest)
		w.byte(p.ESMClass)
		w.byte(p.RegisteredDelivery)
		w.byte(p.DataCoding)
		w.tlvs(p.TLVs)
	case SubmitSMResp, DataSMResp:
		errs = append(errs, check("message_id", p.MessageID, 65))
		if p.Status == 0 || p.MessageID != "" {
			w.cstring(p.MessageID)
		}
		w.tlvs(p.TLVs)
	case DeliverSMResp:
		w.cstring(p.MessageID)
	case GenericNack, Unbind, UnbindResp, EnquireLink, EnquireLinkResp:
	default:
		return nil, fmt.Errorf("encode command 0x%08X: not supported", p.Command)
	}
	for _, t := range p.TLVs {
		if len(t.Value) > 0xFFFF {
			errs = append(errs, fmt.Errorf("optional parameter 0x%04X is %d octets (at most 65535)", t.Tag, len(t.Value)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("encode %s: %w", CommandName(p.Command), err)
	}
	binary.BigEndian.PutUint32(w.b[0:], uint32(len(w.b)))
	binary.BigEndian.PutUint32(w.b[4:], p.Command)
	binary.BigEndian.PutUint32(w.b[8:], p.Status)
	binary.BigEndian.PutUint32(w.b[12:], p.Seq)
	return w.b, nil
}

var commandNames = map[uint32]string{
	GenericNack: "generic_nack", BindReceiver: "bind_receiver", BindReceiverResp: "bind_receiver_resp",
	BindTransmitter: "bind_transmitter", BindTransmitterResp: "bind_transmitter_resp",
	QuerySM: "query_sm", QuerySMResp: "query_sm_resp", SubmitSM: "submit_sm", SubmitSMResp: "submit_sm_resp",
	DeliverSM: "deliver_sm", DeliverSMResp: "deliver_sm_resp", Unbind: "unbind", UnbindResp: "unbind_resp",
	ReplaceSM: "replace_sm", ReplaceSMResp: "replace_sm_resp", CancelSM: "cancel_sm", CancelSMResp: "cancel_sm_resp",
	BindTransceiver: "bind_transceiver", BindTransceiverResp: "bind_transceiver_resp", Outbind: "outbind",
	EnquireLink: "enquire_link", EnquireLinkResp: "enquire_link_resp", SubmitMulti: "submit_multi",
	SubmitMultiResp: "submit_multi_resp", AlertNotification: "alert_notification", DataSM: "data_sm", DataSMResp: "data_sm_resp",
}

// CommandName names a command id ("submit_sm").
func CommandName(id uint32) string {
	if n, ok := commandNames[id]; ok {
		return n
	}
	return fmt.Sprintf("command 0x%08X", id)
}

// String renders p for the PDU trace log, with the password masked.
func (p *PDU) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s seq=%d", CommandName(p.Command), p.Seq)
	if p.Status != 0 || IsResponse(p.Command) {
		fmt.Fprintf(&b, " status=%s", StatusText(p.Status))
	}
	switch p.Command {
	case BindReceiver, BindTransmitter, BindTransceiver:
		fmt.Fprintf(&b, " system_id=%q password=\"***\" system_type=%q interface_version=0x%02X addr_ton=%d addr_npi=%d address_range=%q",
			p.SystemID, p.SystemType, p.InterfaceVersion, p.AddrTON, p.AddrNPI, p.AddressRange)
	case Outbind:
		fmt.Fprintf(&b, " system_id=%q password=\"***\"", p.SystemID)
	case BindReceiverResp, BindTransmitterResp, BindTransceiverResp:
		fmt.Fprintf(&b, " system_id=%q", p.SystemID)
	case SubmitSM, DeliverSM, DataSM:
		fmt.Fprintf(&b, " src=%d/%d:%q dst=%d/%d:%q esm_class=0x%02X registered_delivery=%d data_coding=0x%02X",
			p.SourceTON, p.SourceNPI, p.Source, p.DestTON, p.DestNPI, p.Dest, p.ESMClass, p.RegisteredDelivery, p.DataCoding)
		if p.ValidityPeriod != "" {
			fmt.Fprintf(&b, " validity_period=%q", p.ValidityPeriod)
		}
		if p.Command != DataSM {
			fmt.Fprintf(&b, " short_message=%s", hex.EncodeToString(p.ShortMessage))
		}
	case SubmitSMResp, DataSMResp, DeliverSMResp:
		fmt.Fprintf(&b, " message_id=%q", p.MessageID)
	}
	for _, t := range p.TLVs {
		fmt.Fprintf(&b, " tlv[0x%04X]=%s", t.Tag, hex.EncodeToString(t.Value))
	}
	return b.String()
}
