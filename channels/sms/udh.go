package sms

import (
	"fmt"
)

// Information element identifiers (GSM 03.40 section 9.2.3.24) for
// concatenated messages.
const (
	IEIConcat8  byte = 0x00 // concatenated message, 8-bit reference
	IEIConcat16 byte = 0x08 // concatenated message, 16-bit reference
)

// Element is one information element of a user data header.
type Element struct {
	ID   byte
	Data []byte
}

// UDH is a user data header: the information elements at the start of a
// short message whose esm_class (SMPP) or TP-UDHI (PDU) says it has one.
type UDH struct {
	Elements []Element
}

// Concat says which part of which concatenated message a segment is.
type Concat struct {
	// Reference is the same in every part of one message and should differ
	// between messages to one recipient; with an 8-bit header only its low
	// eight bits are sent.
	Reference uint16
	Total     int  // number of parts, 1-255
	Number    int  // this part, 1-Total
	Wide      bool // a 16-bit reference (IEI 0x08) rather than 8-bit (IEI 0x00)
}

// Element returns c as an information element.
func (c Concat) Element() Element {
	if c.Wide {
		return Element{ID: IEIConcat16, Data: []byte{byte(c.Reference >> 8), byte(c.Reference), byte(c.Total), byte(c.Number)}}
	}
	return Element{ID: IEIConcat8, Data: []byte{byte(c.Reference), byte(c.Total), byte(c.Number)}}
}

func (c Concat) validate() error {
	if c.Total < 1 || c.Total > 255 {
		return fmt.Errorf("sms: concatenation total %d out of range 1-255", c.Total)
	}
	if c.Number < 1 || c.Number > c.Total {
		return fmt.Errorf("sms: concatenation part number %d out of range 1-%d", c.Number, c.Total)
	}
	return nil
}

// ConcatUDH returns the encoded user data header for one part of a
// concatenated message: 6 octets (05 00 03 ref total number), or 7 with a
// 16-bit reference (06 08 04 refHi refLo total number).
func ConcatUDH(c Concat) ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	return UDH{Elements: []Element{c.Element()}}.Bytes()
}

// Bytes encodes the header with its leading length octet (UDHL).
func (h UDH) Bytes() ([]byte, error) {
	n := 0
	for _, e := range h.Elements {
		if len(e.Data) > 255 {
			return nil, fmt.Errorf("sms: information element 0x%02X has %d octets of data, at most 255 fit", e.ID, len(e.Data))
		}
		n += 2 + len(e.Data)
	}
	if n > 255 {
		return nil, fmt.Errorf("sms: user data header of %d octets is longer than 255", n)
	}
	out := make([]byte, 0, 1+n)
	out = append(out, byte(n))
	for _, e := range h.Elements {
		out = append(out, e.ID, byte(len(e.Data)))
		out = append(out, e.Data...)
	}
	return out, nil
}

// Concat returns the concatenation element of the header, if it has a
// valid one (8- or 16-bit reference, total 1-255, number 1-total). When
// several are present the last one wins, as GSM 03.40 says of repeated
// elements.
func (h UDH) Concat() (Concat, bool) {
	var (
		c  Concat
		ok bool
	)
	for _, e := range h.Elements {
		var cand Concat
		switch {
		case e.ID == IEIConcat8 && len(e.Data) == 3:
			cand = Concat{Reference: uint16(e.Data[0]), Total: int(e.Data[1]), Number: int(e.Data[2])}
		case e.ID == IEIConcat16 && len(e.Data) == 4:
			cand = Concat{Reference: uint16(e.Data[0])<<8 | uint16(e.Data[1]), Total: int(e.Data[2]), Number: int(e.Data[3]), Wide: true}
		default:
			continue
		}
		if cand.validate() == nil {
			c, ok = cand, true
		}
	}
	return c, ok
}

// ParseUDH splits a short message that starts with a user data header into
// the header and the rest. Elements of any identifier are kept; the
// element data alias msg. A header whose lengths run past its end or past
// the message is an error wrapping ErrInvalidData.
//
// For GSM7 in PDU mode the header is read from the packed user data and the
// text then starts after FillBits(len(header)) bits: see UnpackSeptets.
func ParseUDH(msg []byte) (UDH, []byte, error) {
	if len(msg) == 0 {
		return UDH{}, nil, fmt.Errorf("sms: %w: message flagged as having a user data header is empty", ErrInvalidData)
	}
	n := int(msg[0])
	if 1+n > len(msg) {
		return UDH{}, nil, fmt.Errorf("sms: %w: user data header length %d exceeds the %d octets that follow it", ErrInvalidData, n, len(msg)-1)
	}
	body := msg[1 : 1+n]
	var h UDH
	for i := 0; i < len(body); {
		if i+2 > len(body) {
			return UDH{}, nil, fmt.Errorf("sms: %w: user data header ends inside an element at octet %d", ErrInvalidData, 1+i)
		}
		id, l := body[i], int(body[i+1])
		if i+2+l > len(body) {
			return UDH{}, nil, fmt.Errorf("sms: %w: information element 0x%02X at octet %d claims %d octets, only %d remain in the header", ErrInvalidData, id, 1+i, l, len(body)-i-2)
		}
		h.Elements = append(h.Elements, Element{ID: id, Data: body[i+2 : i+2+l : i+2+l]})
		i += 2 + l
	}
	return h, msg[1+n:], nil
}
