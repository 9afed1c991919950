package sms

import (
	"fmt"
	"unicode/utf8"
)

// ConcatMethod is how the parts of a long message are tied together.
type ConcatMethod uint8

// Concatenation methods. The zero value, ConcatUDH8, is what handsets and
// SMSCs understand most widely.
const (
	// ConcatUDH8 puts a 6-octet user data header with an 8-bit reference
	// in each part: 153 GSM7 septets, 134 Latin-1 octets or 67 UTF-16
	// units per part.
	ConcatUDH8 ConcatMethod = iota
	// ConcatUDH16 puts a 7-octet header with a 16-bit reference in each
	// part: 152 septets, 132 octets or 66 UTF-16 units per part.
	ConcatUDH16
	// ConcatSAR carries no header in the payload: the SMPP sar_msg_ref_num,
	// sar_total_segments and sar_segment_seqnum TLVs say which part is
	// which (from Segment.Reference, Total and Number). Parts are sized as
	// for ConcatUDH8, because the SMSC must add that header when it
	// delivers them to a handset: a 160-septet part cannot reach one.
	ConcatSAR
	// ConcatNone never splits: the whole text is one segment of any
	// length, for the SMPP message_payload TLV or an HTTP provider that
	// splits by itself.
	ConcatNone
)

// String returns the method's name: "UDH8", "UDH16", "SAR" or "None".
func (m ConcatMethod) String() string {
	switch m {
	case ConcatUDH8:
		return "UDH8"
	case ConcatUDH16:
		return "UDH16"
	case ConcatSAR:
		return "SAR"
	case ConcatNone:
		return "None"
	}
	return fmt.Sprintf("ConcatMethod(%d)", uint8(m))
}

// SplitOptions controls Split and Measure.
type SplitOptions struct {
	// Method ties the parts together; the zero value is ConcatUDH8.
	Method ConcatMethod
	// Reference identifies the message in every part's header or SAR
	// TLVs. The caller should vary it between messages to one recipient
	// (a counter per channel will do); with ConcatUDH8 only the low eight
	// bits are sent.
	Reference uint16
	// MaxSegments caps the number of parts; 0 means 255, the most a
	// concatenation header can count. More is an error wrapping
	// ErrTooLong.
	MaxSegments int
}

// Segment is one short message of a split text.
type Segment struct {
	Number    int    // 1-based position
	Total     int    // number of segments of the text
	Reference uint16 // SplitOptions.Reference, for SAR TLVs
	// Text is the part of the original text this segment carries; the
	// segments' texts concatenate to the original.
	Text string
	// UDH is the encoded concatenation header (length octet included),
	// nil for a single segment and for ConcatSAR and ConcatNone.
	UDH []byte
	// Data is Text encoded: GSM7 as unpacked septets, Latin1 as octets,
	// UCS2 as UTF-16BE. An escape sequence or a surrogate pair is never
	// cut between two segments.
	Data []byte
	// Units is how much of the segment's capacity Text uses: septets
	// (GSM7), octets (Latin1) or UTF-16 units (UCS2).
	Units int
}

// Payload returns UDH followed by Data: what SMPP sends as short_message,
// with esm_class UDHI (0x40) set when UDH is not nil. PDU mode packs GSM7
// differently: see PackSeptets and FillBits.
func (s Segment) Payload() []byte {
	out := make([]byte, 0, len(s.UDH)+len(s.Data))
	out = append(out, s.UDH...)
	return append(out, s.Data...)
}

// Info is what a user interface or an API shows about a text being typed:
// how it will be encoded and into how many segments.
type Info struct {
	Encoding Encoding `json:"encoding"`
	Segments int      `json:"segments"`
	// Units is the total length in the encoding's units: GSM7 septets (an
	// extension character counts two), Latin-1 octets or UTF-16 units (an
	// emoji outside the Basic Multilingual Plane counts two).
	Units int `json:"units"`
	// PerSegment is the capacity of one segment in units: 160, 140 or 70
	// for a single segment, less once the text needs several. 0 with
	// ConcatNone, which has no limit.
	PerSegment int `json:"perSegment"`
	// Remaining is how many units are left in the last segment. A
	// character of two units may not fit in one remaining unit.
	Remaining int `json:"remaining"`
}

// limits returns the capacity in units of a single message and of one part
// of a concatenated message; 0 for no limit.
func limits(enc Encoding, m ConcatMethod) (single, multi int) {
	if m == ConcatNone {
		return 0, 0
	}
	wide := m == ConcatUDH16
	switch enc {
	case GSM7:
		if wide {
			return 160, 152
		}
		return 160, 153
	case Latin1:
		if wide {
			return 140, 132
		}
		return 140, 134
	default: // UCS2, in UTF-16 units of two octets
		if wide {
			return 70, 66
		}
		return 70, 67
	}
}

// cut is one segment's place in the text.
type cut struct {
	start, end int // byte offsets into the text
	units      int
}

// units returns how many units r takes in enc, or 0 if enc cannot encode it.
func units(enc Encoding, r rune) int {
	switch enc {
	case GSM7:
		return gsmSeptets(r)
	case Latin1:
		if r > 0xFF {
			return 0
		}
		return 1
	default:
		if r >= 0x10000 {
			return 2
		}
		return 1
	}
}

// plan decides where the segments of text begin and end. Split and Measure
// both use it, so that what a user interface shows is what is sent. A
// character that does not fit in what is left of a segment starts the next
// one whole.
func plan(text string, enc Encoding, m ConcatMethod) (cuts []cut, perSegment, total int, err error) {
	pos := 0
	for _, r := range text {
		pos++
		u := units(enc, r)
		if u == 0 {
			return nil, 0, 0, unencodable(enc, r, pos)
		}
		total += u
	}
	single, multi := limits(enc, m)
	if single == 0 || total <= single {
		return []cut{{start: 0, end: len(text), units: total}}, single, total, nil
	}
	cur := cut{}
	for i, r := range text {
		u := units(enc, r)
		if cur.units+u > multi {
			cur.end = i
			cuts = append(cuts, cur)
			cur = cut{start: i}
		}
		cur.units += u
	}
	cur.end = len(text)
	cuts = append(cuts, cur)
	return cuts, multi, total, nil
}

func (o SplitOptions) maxSegments() int {
	if o.MaxSegments <= 0 || o.MaxSegments > 255 {
		return 255
	}
	return o.MaxSegments
}

func validMethod(m ConcatMethod) error {
	if m > ConcatNone {
		return fmt.Errorf("sms: %v is not a concatenation method; use ConcatUDH8, ConcatUDH16, ConcatSAR or ConcatNone", m)
	}
	return nil
}

// Split encodes text as enc and cuts it into segments that each fit one
// short message. A text that fits one message is one segment without a
// header. Otherwise the segments carry a concatenation header (ConcatUDH8,
// ConcatUDH16) or rely on SAR TLVs (ConcatSAR); ConcatNone never splits.
// An empty text is one empty segment.
//
// A character enc cannot represent is an error wrapping ErrUnencodable
// (choose the encoding with Choose or Resolve); text that is not UTF-8 one
// wrapping ErrInvalidText; more segments than allowed one wrapping
// ErrTooLong.
func Split(text string, enc Encoding, opts SplitOptions) ([]Segment, error) {
	if err := enc.valid(); err != nil {
		return nil, err
	}
	if err := validMethod(opts.Method); err != nil {
		return nil, err
	}
	if !utf8.ValidString(text) {
		return nil, fmt.Errorf("sms: %w: fix the text's character set before sending it", ErrInvalidText)
	}
	cuts, per, _, err := plan(text, enc, opts.Method)
	if err != nil {
		return nil, err
	}
	if max := opts.maxSegments(); len(cuts) > max {
		return nil, fmt.Errorf("sms: %w: the text needs %d segments of %d %v units, at most %d are allowed; shorten it", ErrTooLong, len(cuts), per, enc, max)
	}
	segs := make([]Segment, len(cuts))
	for i, c := range cuts {
		s := Segment{
			Number:    i + 1,
			Total:     len(cuts),
			Reference: opts.Reference,
			Text:      text[c.start:c.end],
			Units:     c.units,
		}
		s.Data, err = enc.appendEncoded(make([]byte, 0, 2*c.units), s.Text)
		if err != nil {
			return nil, err
		}
		if len(cuts) > 1 && (opts.Method == ConcatUDH8 || opts.Method == ConcatUDH16) {
			s.UDH, err = ConcatUDH(Concat{Reference: opts.Reference, Total: s.Total, Number: s.Number, Wide: opts.Method == ConcatUDH16})
			if err != nil {
				return nil, err
			}
		}
		segs[i] = s
	}
	return segs, nil
}

// Measure tells how Split would encode and cut text, without encoding it.
// It fails when Split would.
func Measure(text string, enc Encoding, opts SplitOptions) (Info, error) {
	if err := enc.valid(); err != nil {
		return Info{}, err
	}
	if err := validMethod(opts.Method); err != nil {
		return Info{}, err
	}
	if !utf8.ValidString(text) {
		return Info{}, fmt.Errorf("sms: %w: fix the text's character set before sending it", ErrInvalidText)
	}
	cuts, per, total, err := plan(text, enc, opts.Method)
	if err != nil {
		return Info{}, err
	}
	if max := opts.maxSegments(); len(cuts) > max {
		return Info{}, fmt.Errorf("sms: %w: the text needs %d segments of %d %v units, at most %d are allowed; shorten it", ErrTooLong, len(cuts), per, enc, max)
	}
	return info(enc, cuts, per, total), nil
}

func info(enc Encoding, cuts []cut, per, total int) Info {
	in := Info{Encoding: enc, Segments: len(cuts), Units: total, PerSegment: per}
	if per > 0 {
		in.Remaining = per - cuts[len(cuts)-1].units
	}
	return in
}

// Count is the segment calculator for user interfaces and APIs: it chooses
// the encoding as Choose(text) does and counts segments as Split does with
// the default options (8-bit concatenation header), without a cap on their
// number. It never fails: bytes that are not UTF-8 count as one UTF-16 unit
// each (sending such text fails with ErrInvalidText).
func Count(text string) Info {
	enc := Choose(text)
	cuts, per, total, err := plan(text, enc, ConcatUDH8)
	if err != nil { // unreachable: UCS2 and a fitting GSM7 encode everything
		return Info{Encoding: enc}
	}
	return info(enc, cuts, per, total)
}
