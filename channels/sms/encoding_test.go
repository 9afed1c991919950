package sms_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/channels/sms"
)

func TestGSM7Vectors(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		text string
		want []byte
	}{
		{"empty", "", []byte{}},
		{"at is zero", "@", []byte{0x00}},
		{"ascii", "Hi!", []byte{0x48, 0x69, 0x21}},
		{"currency", "£$¥¤", []byte{0x01, 0x02, 0x03, 0x24}},
		{"greek", "ΔΦΓΛΩΠΨΣΘΞ", []byte{0x10, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A}},
		{"accents", "èéùìòÇØøÅåÆæßÉ", []byte{0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0B, 0x0C, 0x0E, 0x0F, 0x1C, 0x1D, 0x1E, 0x1F}},
		{"line ends", "a\nb\rc", []byte{0x61, 0x0A, 0x62, 0x0D, 0x63}},
		{"upper specials", "¡ÄÖÑÜ§¿äöñüà", []byte{0x40, 0x5B, 0x5C, 0x5D, 0x5E, 0x5F, 0x60, 0x7B, 0x7C, 0x7D, 0x7E, 0x7F}},
		{"underscore", "_", []byte{0x11}},
		{"euro", "€", []byte{0x1B, 0x65}},
		{"extension table", "^{}\\[~]|\f", []byte{0x1B, 0x14, 0x1B, 0x28, 0x1B, 0x29, 0x1B, 0x2F, 0x1B, 0x3C, 0x1B, 0x3D, 0x1B, 0x3E, 0x1B, 0x40, 0x1B, 0x0A}},
		{"mixed", "5€ {x}", []byte{0x35, 0x1B, 0x65, 0x20, 0x1B, 0x28, 0x78, 0x1B, 0x29}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := sms.GSM7.Encode(tt.text)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			back, err := sms.GSM7.Decode(got)
			require.NoError(t, err)
			require.Equal(t, tt.text, back)
		})
	}
}

func TestGSM7EncodeRejects(t *testing.T) {
	t.Parallel()

	for _, text := range []string{"ç", "`", "é😀", "Привет", "\x1b", "\t", "\x00"} {
		_, err := sms.GSM7.Encode(text)
		require.ErrorIs(t, err, sms.ErrUnencodable, "text %q", text)
	}
	_, err := sms.GSM7.Encode("abc\xff")
	require.ErrorIs(t, err, sms.ErrInvalidText)
}

func TestGSM7Decode(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		data    []byte
		want    string
		wantErr bool
	}{
		{"unknown extension reads as basic", []byte{0x1B, 0x41}, "A", false},
		{"escape then newline is form feed", []byte{0x1B, 0x0A}, "\f", false},
		{"dangling escape", []byte{0x41, 0x1B}, "", true},
		{"double escape", []byte{0x1B, 0x1B, 0x41}, "", true},
		{"high bit", []byte{0x41, 0x80}, "", true},
		{"high bit after escape", []byte{0x1B, 0xE5}, "", true},
		{"every septet but escape", allBasicSeptets(), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := sms.GSM7.Decode(tt.data)
			if tt.wantErr {
				require.ErrorIs(t, err, sms.ErrInvalidData)
				return
			}
			require.NoError(t, err)
			if tt.want != "" {
				require.Equal(t, tt.want, got)
			}
			again, err := sms.GSM7.Encode(got)
			require.NoError(t, err)
			if tt.want == "" {
				require.Equal(t, tt.data, again, "every basic septet round trips")
			}
		})
	}
}

func allBasicSeptets() []byte {
	var b []byte
	for i := 0; i < 128; i++ {
		if i != 0x1B {
			b = append(b, byte(i))
		}
	}
	return b
}

func TestUCS2(t *testing.T) {
	t.Parallel()

	tests := []struct {
		text string
		want []byte
	}{
		{"", []byte{}},
		{"A", []byte{0x00, 0x41}},
		{"€", []byte{0x20, 0xAC}},
		{"Привет", []byte{0x04, 0x1F, 0x04, 0x40, 0x04, 0x38, 0x04, 0x32, 0x04, 0x35, 0x04, 0x42}},
		{"😀", []byte{0xD8, 0x3D, 0xDE, 0x00}},
		{"a😀b", []byte{0x00, 0x61, 0xD8, 0x3D, 0xDE, 0x00, 0x00, 0x62}},
		{"\x00", []byte{0x00, 0x00}},
		{"\uFFFD", []byte{0xFF, 0xFD}},
	}
	for _, tt := range tests {
		got, err := sms.UCS2.Encode(tt.text)
		require.NoError(t, err)
		require.Equal(t, tt.want, got, "encode %q", tt.text)
		back, err := sms.UCS2.Decode(got)
		require.NoError(t, err)
		require.Equal(t, tt.text, back)
	}

	for name, bad := range map[string][]byte{
		"odd length":             {0x00, 0x41, 0x00},
		"lone high at end":       {0x00, 0x41, 0xD8, 0x3D},
		"high then non-low":      {0xD8, 0x3D, 0x00, 0x41},
		"high then high":         {0xD8, 0x3D, 0xD8, 0x3D},
		"lone low":               {0xDE, 0x00},
		"high cut before low":    {0xD8, 0x3D, 0xDE},
		"low before high (swap)": {0xDE, 0x00, 0xD8, 0x3D},
	} {
		_, err := sms.UCS2.Decode(bad)
		require.ErrorIs(t, err, sms.ErrInvalidData, name)
	}

	_, err := sms.UCS2.Encode("\xed\xa0\x80") // a UTF-8-encoded surrogate is not UTF-8
	require.ErrorIs(t, err, sms.ErrInvalidText)
}

func TestLatin1(t *testing.T) {
	t.Parallel()

	got, err := sms.Latin1.Encode("Café ÿ!")
	require.NoError(t, err)
	require.Equal(t, []byte{'C', 'a', 'f', 0xE9, ' ', 0xFF, '!'}, got)

	_, err = sms.Latin1.Encode("5€")
	require.ErrorIs(t, err, sms.ErrUnencodable)
	require.ErrorContains(t, err, "character 2")

	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	text, err := sms.Latin1.Decode(all)
	require.NoError(t, err)
	again, err := sms.Latin1.Encode(text)
	require.NoError(t, err)
	require.Equal(t, all, again)
}

func TestInvalidEncoding(t *testing.T) {
	t.Parallel()

	var zero sms.Encoding
	_, err := zero.Encode("x")
	require.Error(t, err)
	_, err = sms.Encoding(9).Decode([]byte("x"))
	require.Error(t, err)
	_, err = sms.Split("x", zero, sms.SplitOptions{})
	require.Error(t, err)
	_, err = sms.Split("x", sms.GSM7, sms.SplitOptions{Method: 9})
	require.Error(t, err)
}

func TestChoose(t *testing.T) {
	t.Parallel()

	require.Equal(t, sms.GSM7, sms.Choose(""))
	require.Equal(t, sms.GSM7, sms.Choose("Hello {world} 5€"))
	require.Equal(t, sms.UCS2, sms.Choose("Café ç"))
	require.Equal(t, sms.UCS2, sms.Choose("hi 😀"))
	require.Equal(t, sms.UCS2, sms.Choose("bad \xff"))
	require.Equal(t, sms.Latin1, sms.Choose("Café ç", sms.GSM7, sms.Latin1, sms.UCS2))
	require.Equal(t, sms.GSM7, sms.Choose("Café", sms.GSM7, sms.Latin1, sms.UCS2))
	require.Equal(t, sms.UCS2, sms.Choose("5€ ç", sms.GSM7, sms.Latin1))
}

func TestEncodingOf(t *testing.T) {
	t.Parallel()

	ok := map[byte]sms.Encoding{
		0x00: sms.GSM7, 0x01: sms.Latin1, 0x03: sms.Latin1, 0x08: sms.UCS2,
		0x10: sms.GSM7, 0x18: sms.UCS2, 0xC0: sms.GSM7, 0xD3: sms.GSM7, 0xE1: sms.UCS2,
		0xF0: sms.GSM7, 0xF3: sms.GSM7,
	}
	for dc, want := range ok {
		got, err := sms.EncodingOf(dc)
		require.NoError(t, err, "data_coding 0x%02X", dc)
		require.Equal(t, want, got, "data_coding 0x%02X", dc)
	}
	for _, dc := range []byte{0x02, 0x04, 0x14, 0xF4, 0xF7} {
		_, err := sms.EncodingOf(dc)
		require.ErrorIs(t, err, sms.ErrBinaryData, "data_coding 0x%02X", dc)
	}
	for _, dc := range []byte{0x05, 0x06, 0x07, 0x09, 0x0E, 0x1C, 0x20, 0x7F} {
		_, err := sms.EncodingOf(dc)
		require.ErrorIs(t, err, sms.ErrUnsupportedDataCoding, "data_coding 0x%02X", dc)
	}
	for _, e := range []sms.Encoding{sms.GSM7, sms.Latin1, sms.UCS2} {
		got, err := sms.EncodingOf(e.DataCoding())
		require.NoError(t, err)
		require.Equal(t, e, got)
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()

	enc, err := sms.Resolve(-1, "hello")
	require.NoError(t, err)
	require.Equal(t, sms.GSM7, enc)
	enc, err = sms.Resolve(-1, "привет")
	require.NoError(t, err)
	require.Equal(t, sms.UCS2, enc)
	enc, err = sms.Resolve(8, "hello")
	require.NoError(t, err)
	require.Equal(t, sms.UCS2, enc)
	enc, err = sms.Resolve(3, "Café")
	require.NoError(t, err)
	require.Equal(t, sms.Latin1, enc)

	_, err = sms.Resolve(0, "привет")
	require.ErrorIs(t, err, sms.ErrUnencodable)
	_, err = sms.Resolve(4, "hello")
	require.ErrorIs(t, err, sms.ErrBinaryData)
	_, err = sms.Resolve(300, "hello")
	require.ErrorIs(t, err, sms.ErrUnsupportedDataCoding)
	_, err = sms.Resolve(-2, "hello")
	require.ErrorIs(t, err, sms.ErrUnsupportedDataCoding)
	_, err = sms.Resolve(8, "bad \xff")
	require.ErrorIs(t, err, sms.ErrInvalidText)
}

func TestEncodingText(t *testing.T) {
	t.Parallel()

	b, err := json.Marshal(sms.Count("hi"))
	require.NoError(t, err)
	require.JSONEq(t, `{"encoding":"GSM7","segments":1,"units":2,"perSegment":160,"remaining":158}`, string(b))

	for in, want := range map[string]sms.Encoding{"gsm7": sms.GSM7, "UCS-2": sms.UCS2, "iso-8859-1": sms.Latin1, "Latin1": sms.Latin1} {
		var e sms.Encoding
		require.NoError(t, e.UnmarshalText([]byte(in)))
		require.Equal(t, want, e)
	}
	var e sms.Encoding
	require.Error(t, e.UnmarshalText([]byte("utf8")))
	_, err = sms.Encoding(0).MarshalText()
	require.Error(t, err)
	require.Equal(t, "Encoding(7)", sms.Encoding(7).String())
}
