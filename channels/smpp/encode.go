package smpp

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hermod-sms/hermod/channels"
	"github.com/hermod-sms/hermod/channels/smpp/internal/pdu"
	"github.com/hermod-sms/hermod/channels/sms"
)

// refCounters hands out concatenation references. There is one counter per
// destination hash slot, so two long messages to the same number get
// different references until the counter wraps (256 messages with udh8,
// 65,536 with udh16 and sar), while the memory stays bounded however many
// destinations there are.
type refCounters struct {
	slots [4096]atomic.Uint32
}

func newRefCounters() *refCounters {
	r := &refCounters{}
	for i := range r.slots {
		r.slots[i].Store(rand.Uint32())
	}
	return r
}

func (r *refCounters) next(dest string) uint16 {
	h := fnv.New32a()
	h.Write([]byte(dest))
	return uint16(r.slots[h.Sum32()%uint32(len(r.slots))].Add(1))
}

// buildParts encodes and splits m into submit_sm PDUs, without sequence
// numbers (each gets its own when it is written).
func (c *Channel) buildParts(m channels.Message) ([]*pdu.PDU, error) {
	enc, err := sms.Resolve(m.DataCoding, m.Body)
	if err != nil {
		return nil, channels.Permanent(fmt.Errorf("encode message body: %w", err))
	}
	dataCoding := enc.DataCoding()
	if m.DataCoding >= 0 {
		dataCoding = byte(m.DataCoding) // honour what the application asked for, class bits included
	} else if enc == sms.GSM7 {
		dataCoding = byte(c.set.DataCodingGSM)
	}
	opts := sms.SplitOptions{}
	switch c.set.SplitMethod {
	case "udh16":
		opts.Method = sms.ConcatUDH16
	case "sar":
		opts.Method = sms.ConcatSAR
	case "payload":
		opts.Method = sms.ConcatNone
	}
	if opts.Method != sms.ConcatNone {
		opts.Reference = c.refs.next(m.To)
	}
	segs, err := sms.Split(m.Body, enc, opts)
	if err != nil {
		return nil, channels.Permanent(fmt.Errorf("split message body: %w", err))
	}
	base := pdu.PDU{
		Command:     pdu.SubmitSM,
		ServiceType: c.set.ServiceType,
		Dest:        strings.TrimPrefix(m.To, "+"),
		DestTON:     byte(c.set.DestTON),
		DestNPI:     byte(c.set.DestNPI),
		DataCoding:  dataCoding,
	}
	base.Source, base.SourceTON, base.SourceNPI = c.sourceAddress(m)
	if m.Priority > 0 {
		base.PriorityFlag = byte(min(m.Priority, 3))
	}
	if m.RequestDeliveryReport {
		base.RegisteredDelivery = 1
	}
	if !m.ValidUntil.IsZero() {
		base.ValidityPeriod = absoluteTime(m.ValidUntil)
	}
	out := make([]*pdu.PDU, 0, len(segs))
	for _, seg := range segs {
		p := base
		switch {
		case opts.Method == sms.ConcatNone:
			if len(seg.Data) > 254 {
				p.TLVs = []pdu.TLV{{Tag: pdu.TagMessagePayload, Value: seg.Data}}
			} else {
				p.ShortMessage = seg.Data
			}
		case seg.Total > 1 && opts.Method == sms.ConcatSAR:
			p.ShortMessage = seg.Data
			ref := make([]byte, 2)
			binary.BigEndian.PutUint16(ref, seg.Reference)
			p.TLVs = []pdu.TLV{
				{Tag: pdu.TagSarMsgRefNum, Value: ref},
				{Tag: pdu.TagSarTotalSegments, Value: []byte{byte(seg.Total)}},
				{Tag: pdu.TagSarSegmentSeqnum, Value: []byte{byte(seg.Number)}},
			}
		default:
			p.ShortMessage = seg.Payload()
			if seg.UDH != nil {
				p.ESMClass |= pdu.ESMUDHI
			}
		}
		out = append(out, &p)
	}
	return out, nil
}

// sourceAddress picks the sender's TON/NPI: the message's own when it set
// them (-1 is automatic, as the store keeps it; 0/0 is treated as unset
// too), else the channel's sourceTon/sourceNpi, else a guess from the
// address (alphanumeric 5/0, international "+..." 1/1, other digits 0/1).
func (c *Channel) sourceAddress(m channels.Message) (string, byte, byte) {
	addr := m.From
	digits := strings.TrimPrefix(addr, "+")
	ton, npi := -1, -1
	if !(m.FromTON == 0 && m.FromNPI == 0) {
		ton, npi = m.FromTON, m.FromNPI
	}
	if ton < 0 || ton > 255 {
		ton = c.set.SourceTON
	}
	if npi < 0 || npi > 255 {
		npi = c.set.SourceNPI
	}
	if ton < 0 || npi < 0 {
		gton, gnpi := 0, 1
		switch {
		case addr == "":
			gton, gnpi = 0, 0
		case strings.Trim(digits, "0123456789") != "":
			gton, gnpi = 5, 0
		case strings.HasPrefix(addr, "+"):
			gton, gnpi = 1, 1
		}
		if ton < 0 {
			ton = gton
		}
		if npi < 0 {
			npi = gnpi
		}
	}
	if ton == 5 {
		return addr, byte(ton), byte(npi)
	}
	return digits, byte(ton), byte(npi)
}

// absoluteTime renders t in the SMPP absolute time format
// YYMMDDhhmmsstnnp, in UTC.
func absoluteTime(t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("%s%d00+", t.Format("060102150405"), t.Nanosecond()/100_000_000)
}
