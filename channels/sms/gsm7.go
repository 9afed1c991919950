package sms

import (
	"fmt"
	"unicode/utf8"
)

// gsmEscape is the septet that announces a character of the extension table.
const gsmEscape = 0x1B

// gsmBasic is the GSM 03.38 default alphabet, indexed by septet. Index 0x1B
// is the escape, not a character; it holds U+001B only as a placeholder and
// is left out of gsmBasicCode.
const gsmBasic = "@£$¥èéùìòÇ\nØø\rÅå" +
	"Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ" +
	" !\"#¤%&'()*+,-./" +
	"0123456789:;<=>?" +
	"¡ABCDEFGHIJKLMNO" +
	"PQRSTUVWXYZÄÖÑÜ§" +
	"¿abcdefghijklmno" +
	"pqrstuvwxyzäöñüà"

// gsmExt is the GSM 03.38 extension table: the septet that follows an
// escape, and the character it stands for.
var gsmExt = map[byte]rune{
	0x0A: '\f',
	0x14: '^',
	0x28: '{',
	0x29: '}',
	0x2F: '\\',
	0x3C: '[',
	0x3D: '~',
	0x3E: ']',
	0x40: '|',
	0x65: '€',
}

var (
	gsmBasicRune [128]rune
	gsmBasicCode = make(map[rune]byte, 127)
	gsmExtCode   = make(map[rune]byte, len(gsmExt))
)

func init() {
	i := 0
	for _, r := range gsmBasic {
		gsmBasicRune[i] = r
		if i != gsmEscape {
			gsmBasicCode[r] = byte(i)
		}
		i++
	}
	if i != 128 {
		panic(fmt.Sprintf("sms: GSM 03.38 table has %d characters, want 128", i))
	}
	for b, r := range gsmExt {
		gsmExtCode[r] = b
	}
}

// gsmSeptets returns how many septets r takes in GSM7: 1 for the default
// alphabet, 2 for the extension table, 0 when GSM7 cannot represent it.
func gsmSeptets(r rune) int {
	if _, ok := gsmBasicCode[r]; ok {
		return 1
	}
	if _, ok := gsmExtCode[r]; ok {
		return 2
	}
	return 0
}

// decodeGSM7 decodes unpacked septets. An escape followed by a septet the
// extension table does not define reads as that septet's default-alphabet
// character, as GSM 03.38 asks of receivers; a dangling escape, a double
// escape (reserved for a further table) and a byte above 0x7F are errors.
func decodeGSM7(data []byte) (string, error) {
	out := make([]byte, 0, len(data)+len(data)/2)
	for i := 0; i < len(data); i++ {
		b := data[i]
		if b > 0x7F {
			return "", fmt.Errorf("sms: %w: GSM7 byte 0x%02X at offset %d is not a septet; packed data must be unpacked first", ErrInvalidData, b, i)
		}
		if b != gsmEscape {
			out = utf8.AppendRune(out, gsmBasicRune[b])
			continue
		}
		if i+1 == len(data) {
			return "", fmt.Errorf("sms: %w: GSM7 data ends with an escape (0x1B) at offset %d and no character after it", ErrInvalidData, i)
		}
		i++
		c := data[i]
		switch {
		case c > 0x7F:
			return "", fmt.Errorf("sms: %w: GSM7 byte 0x%02X at offset %d is not a septet", ErrInvalidData, c, i)
		case c == gsmEscape:
			return "", fmt.Errorf("sms: %w: GSM7 double escape at offset %d selects an extension table this reader does not know", ErrInvalidData, i-1)
		}
		if r, ok := gsmExt[c]; ok {
			out = utf8.AppendRune(out, r)
		} else {
			out = utf8.AppendRune(out, gsmBasicRune[c])
		}
	}
	return string(out), nil
}

// PackSeptets packs septets (one per byte, as GSM7.Encode returns them)
// into octets, least significant bit first, as GSM 03.40 user data carries
// them in PDU mode. fillBits (0-6) zero bits come first: after a user data
// header of n octets (length octet included), FillBits(n) of them align the
// text to a septet boundary.
func PackSeptets(septets []byte, fillBits int) ([]byte, error) {
	if fillBits < 0 || fillBits > 6 {
		return nil, fmt.Errorf("sms: fill bits %d out of range 0-6", fillBits)
	}
	out := make([]byte, (fillBits+7*len(septets)+7)/8)
	for i, s := range septets {
		if s > 0x7F {
			return nil, fmt.Errorf("sms: byte 0x%02X at offset %d is not a septet", s, i)
		}
		bit := fillBits + 7*i
		idx, shift := bit/8, uint(bit%8)
		out[idx] |= s << shift
		if shift > 1 {
			out[idx+1] |= s >> (8 - shift)
		}
	}
	return out, nil
}

// UnpackSeptets unpacks count septets from packed octets, skipping
// fillBits (0-6) leading bits. count comes from the user data length (in PDU
// mode, TP-UDL less the septets the header takes): the octets alone cannot
// say whether seven spare bits at the end are a septet. Too little data is
// an error wrapping ErrInvalidData.
func UnpackSeptets(packed []byte, fillBits, count int) ([]byte, error) {
	if fillBits < 0 || fillBits > 6 {
		return nil, fmt.Errorf("sms: fill bits %d out of range 0-6", fillBits)
	}
	if count < 0 {
		return nil, fmt.Errorf("sms: negative septet count %d", count)
	}
	if need := fillBits + 7*count; need > 8*len(packed) {
		return nil, fmt.Errorf("sms: %w: %d septets after %d fill bits need %d octets, have %d", ErrInvalidData, count, fillBits, (need+7)/8, len(packed))
	}
	out := make([]byte, count)
	for i := range out {
		bit := fillBits + 7*i
		idx, shift := bit/8, uint(bit%8)
		v := packed[idx] >> shift
		if shift > 1 {
			v |= packed[idx+1] << (8 - shift)
		}
		out[i] = v & 0x7F
	}
	return out, nil
}

// FillBits returns how many fill bits follow a user data header of udhLen
// octets (its length octet included) so that GSM7 text starts on a septet
// boundary: 1 for the 6-octet concatenation header, 0 for the 7-octet one.
func FillBits(udhLen int) int {
	return (7 - (udhLen*8)%7) % 7
}
