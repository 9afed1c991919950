package sms

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Encoding is a way of turning text into the bytes of a short message.
type Encoding uint8

// The encodings Hermod sends and receives. The zero Encoding is invalid, so
// that a forgotten field is an error rather than a silent GSM7.
const (
	// GSM7 is the GSM 03.38 default alphabet with its extension table,
	// one septet per character (two for ^ { } \ [ ~ ] | € and form feed).
	// Encode yields unpacked septets, one per byte, as SMPP sends them
	// with data_coding 0; PackSeptets packs them for PDU mode.
	GSM7 Encoding = iota + 1
	// Latin1 is ISO-8859-1, one octet per character (SMPP data_coding 3).
	// Many SMSCs mis-handle it: Choose only picks it when asked to.
	Latin1
	// UCS2 is UTF-16 big-endian (SMPP data_coding 8). Characters outside
	// the Basic Multilingual Plane, such as most emoji, take a surrogate
	// pair: two UTF-16 units, four octets.
	UCS2
)

// SMPP data_coding values (SMPP 3.4 section 5.2.19) that Hermod uses.
const (
	DataCodingDefault byte = 0x00 // SMSC default alphabet: GSM 03.38 for Hermod
	DataCodingIA5     byte = 0x01 // IA5 (CCITT T.50), in practice ASCII
	DataCodingBinary  byte = 0x02 // 8-bit binary (0x04 is binary as well)
	DataCodingLatin1  byte = 0x03 // ISO-8859-1
	DataCodingUCS2    byte = 0x08 // UCS-2 / UTF-16BE
)

// Errors returned by this package. They are wrapped with details; test for
// them with errors.Is.
var (
	// ErrUnencodable means the text has a character the encoding cannot
	// represent.
	ErrUnencodable = errors.New("character cannot be encoded")
	// ErrInvalidData means bytes received are not valid in their encoding.
	ErrInvalidData = errors.New("invalid encoded data")
	// ErrInvalidText means the text is not valid UTF-8.
	ErrInvalidText = errors.New("text is not valid UTF-8")
	// ErrBinaryData means a data_coding announces binary data, not text.
	ErrBinaryData = errors.New("data_coding announces binary data, not text")
	// ErrUnsupportedDataCoding means a data_coding names an alphabet this
	// package does not implement (JIS, Cyrillic, Hebrew, KS C 5601, ...).
	ErrUnsupportedDataCoding = errors.New("unsupported data_coding")
	// ErrTooLong means the text needs more segments than allowed.
	ErrTooLong = errors.New("message too long")
)

// String returns the encoding's name: "GSM7", "Latin1" or "UCS2".
func (e Encoding) String() string {
	switch e {
	case GSM7:
		return "GSM7"
	case Latin1:
		return "Latin1"
	case UCS2:
		return "UCS2"
	}
	return fmt.Sprintf("Encoding(%d)", uint8(e))
}

func (e Encoding) valid() error {
	if e < GSM7 || e > UCS2 {
		return fmt.Errorf("sms: %v is not an encoding; use sms.GSM7, sms.Latin1 or sms.UCS2", e)
	}
	return nil
}

// DataCoding returns the SMPP data_coding value that announces e: 0 for
// GSM7, 3 for Latin1, 8 for UCS2. These values are also the GSM 03.38 TP-DCS
// values for GSM7 (0x00) and UCS2 (0x08) without a message class.
func (e Encoding) DataCoding() byte {
	switch e {
	case Latin1:
		return DataCodingLatin1
	case UCS2:
		return DataCodingUCS2
	}
	return DataCodingDefault
}

// Encode encodes text. GSM7 yields unpacked septets (one byte each, an
// extension character as 0x1B and its code), Latin1 one octet per character,
// UCS2 UTF-16BE. A character the encoding cannot represent is an error
// wrapping ErrUnencodable that names it and its position.
func (e Encoding) Encode(text string) ([]byte, error) {
	if err := e.valid(); err != nil {
		return nil, err
	}
	if !utf8.ValidString(text) {
		return nil, fmt.Errorf("sms: %w: fix the text's character set before sending it", ErrInvalidText)
	}
	out := make([]byte, 0, len(text)*2)
	return e.appendEncoded(out, text)
}

func (e Encoding) appendEncoded(out []byte, text string) ([]byte, error) {
	pos := 0
	for _, r := range text {
		pos++
		switch e {
		case GSM7:
			if b, ok := gsmBasicCode[r]; ok {
				out = append(out, b)
			} else if b, ok := gsmExtCode[r]; ok {
				out = append(out, gsmEscape, b)
			} else {
				return nil, unencodable(e, r, pos)
			}
		case Latin1:
			if r > 0xFF {
				return nil, unencodable(e, r, pos)
			}
			out = append(out, byte(r))
		case UCS2:
			if r >= 0x10000 {
				hi, lo := utf16.EncodeRune(r)
				out = append(out, byte(hi>>8), byte(hi), byte(lo>>8), byte(lo))
			} else {
				out = append(out, byte(r>>8), byte(r))
			}
		}
	}
	return out, nil
}

func unencodable(e Encoding, r rune, pos int) error {
	return fmt.Errorf("sms: %w: %q (U+%04X), character %d, has no %v code; send the message as UCS2 (data_coding 8) or replace the character",
		ErrUnencodable, r, r, pos, e)
}

// Decode decodes bytes encoded as e. GSM7 takes unpacked septets (unpack
// PDU-mode user data with UnpackSeptets first). Invalid input (a GSM7 byte
// above 0x7F or a dangling escape, odd-length or badly paired UTF-16) is an
// error wrapping ErrInvalidData that says where; Decode never panics.
//
// To read a concatenated message, decode the concatenation of its parts'
// data (UDH removed), not each part alone: a sender that split an escape
// sequence or a surrogate pair across parts is then still read correctly.
func (e Encoding) Decode(data []byte) (string, error) {
	if err := e.valid(); err != nil {
		return "", err
	}
	switch e {
	case GSM7:
		return decodeGSM7(data)
	case Latin1:
		rs := make([]rune, len(data))
		for i, b := range data {
			rs[i] = rune(b)
		}
		return string(rs), nil
	default:
		return decodeUCS2(data)
	}
}

func decodeUCS2(data []byte) (string, error) {
	if len(data)%2 != 0 {
		return "", fmt.Errorf("sms: %w: UCS2 data has an odd length (%d octets); it was cut or is not UTF-16BE", ErrInvalidData, len(data))
	}
	out := make([]byte, 0, len(data)+len(data)/2)
	for i := 0; i < len(data); i += 2 {
		u := rune(data[i])<<8 | rune(data[i+1])
		switch {
		case utf16.IsSurrogate(u) && u < 0xDC00: // high surrogate
			if i+3 >= len(data) {
				return "", fmt.Errorf("sms: %w: UCS2 high surrogate U+%04X at octet %d is not followed by a low surrogate", ErrInvalidData, u, i)
			}
			lo := rune(data[i+2])<<8 | rune(data[i+3])
			r := utf16.DecodeRune(u, lo)
			if r == utf8.RuneError {
				return "", fmt.Errorf("sms: %w: UCS2 high surrogate U+%04X at octet %d is followed by U+%04X, not a low surrogate", ErrInvalidData, u, i, lo)
			}
			out = utf8.AppendRune(out, r)
			i += 2
		case utf16.IsSurrogate(u):
			return "", fmt.Errorf("sms: %w: UCS2 low surrogate U+%04X at octet %d has no high surrogate before it", ErrInvalidData, u, i)
		default:
			out = utf8.AppendRune(out, u)
		}
	}
	return string(out), nil
}

// Choose returns the first of the candidate encodings that can represent
// every character of text; without candidates it tries GSM7 and then UCS2.
// UCS2 represents any text, and is returned when no candidate fits.
//
// Latin-1 is used only when asked for, because many SMSCs mis-handle it:
//
//	enc := sms.Choose(body, sms.GSM7, sms.Latin1, sms.UCS2)
func Choose(text string, candidates ...Encoding) Encoding {
	if len(candidates) == 0 {
		candidates = []Encoding{GSM7, UCS2}
	}
	for _, c := range candidates {
		if fits(text, c) {
			return c
		}
	}
	return UCS2
}

func fits(text string, e Encoding) bool {
	switch e {
	case GSM7:
		for _, r := range text {
			if gsmSeptets(r) == 0 {
				return false
			}
		}
		return utf8.ValidString(text)
	case Latin1:
		for _, r := range text {
			if r > 0xFF {
				return false
			}
		}
		return utf8.ValidString(text)
	case UCS2:
		return true
	}
	return false
}

// EncodingOf returns the encoding an SMPP data_coding announces, for
// reading received messages and for honouring a data_coding an application
// asked for. 0 is GSM7 (Hermod takes the SMSC default alphabet to be GSM
// 03.38), 3 is Latin1 and 8 is UCS2; 1 (IA5, that is ASCII) reads as
// Latin1, of which ASCII is a subset. The GSM 03.38 coding groups an SMSC
// may pass through (0x10-0x1F with a message class, 0xC0-0xEF message
// waiting, 0xF0-0xFF data coding/message class) are understood too.
//
// Binary data_coding values (2, 4, and their coding-group forms) return an
// error wrapping ErrBinaryData; other alphabets one wrapping
// ErrUnsupportedDataCoding.
func EncodingOf(dataCoding byte) (Encoding, error) {
	dc := dataCoding
	switch {
	case dc == DataCodingDefault:
		return GSM7, nil
	case dc == DataCodingIA5 || dc == DataCodingLatin1:
		return Latin1, nil
	case dc == DataCodingUCS2:
		return UCS2, nil
	case dc == 0x02 || dc == 0x04:
		return 0, fmt.Errorf("sms: data_coding 0x%02X: %w", dc, ErrBinaryData)
	case dc >= 0x10 && dc <= 0x1F: // GSM 03.38 general group with message class
		switch (dc >> 2) & 0x03 {
		case 0:
			return GSM7, nil
		case 1:
			return 0, fmt.Errorf("sms: data_coding 0x%02X: %w", dc, ErrBinaryData)
		case 2:
			return UCS2, nil
		}
	case dc >= 0xC0 && dc <= 0xDF: // message waiting, default alphabet
		return GSM7, nil
	case dc >= 0xE0 && dc <= 0xEF: // message waiting, UCS2
		return UCS2, nil
	case dc >= 0xF0: // data coding / message class
		if dc&0x04 != 0 {
			return 0, fmt.Errorf("sms: data_coding 0x%02X: %w", dc, ErrBinaryData)
		}
		return GSM7, nil
	}
	return 0, fmt.Errorf("sms: %w 0x%02X: Hermod reads GSM 7-bit (0), IA5 (1), Latin-1 (3) and UCS-2 (8)", ErrUnsupportedDataCoding, dc)
}

// Resolve returns the encoding for sending text with the data coding an
// application asked for, as channels.Message.DataCoding holds it: -1 means
// automatic (Choose(text)), anything else is an SMPP data_coding passed to
// EncodingOf. It checks that the encoding can represent the text, so that a
// wrong explicit choice fails before anything is sent.
func Resolve(dataCoding int, text string) (Encoding, error) {
	if dataCoding == -1 {
		return Choose(text), nil
	}
	if dataCoding < 0 || dataCoding > 0xFF {
		return 0, fmt.Errorf("sms: %w %d: use -1 (automatic), 0 (GSM 7-bit), 3 (Latin-1) or 8 (UCS-2)", ErrUnsupportedDataCoding, dataCoding)
	}
	enc, err := EncodingOf(byte(dataCoding))
	if err != nil {
		return 0, err
	}
	if !utf8.ValidString(text) {
		return 0, fmt.Errorf("sms: %w: fix the text's character set before sending it", ErrInvalidText)
	}
	if !fits(text, enc) {
		_, err := enc.Encode(text)
		return 0, err
	}
	return enc, nil
}

// MarshalText returns the encoding's name, so that JSON shows "GSM7",
// "Latin1" or "UCS2".
func (e Encoding) MarshalText() ([]byte, error) {
	if err := e.valid(); err != nil {
		return nil, err
	}
	return []byte(e.String()), nil
}

// UnmarshalText reads an encoding's name as MarshalText writes it, ignoring
// case; "GSM", "LATIN-1", "ISO-8859-1" and "UCS-2" are accepted too.
func (e *Encoding) UnmarshalText(b []byte) error {
	switch strings.ToUpper(string(b)) {
	case "GSM7", "GSM", "GSM-7":
		*e = GSM7
	case "LATIN1", "LATIN-1", "ISO-8859-1":
		*e = Latin1
	case "UCS2", "UCS-2", "UTF-16BE":
		*e = UCS2
	default:
		return fmt.Errorf("sms: unknown encoding %q: use GSM7, Latin1 or UCS2", b)
	}
	return nil
}
