package sms_test

import (
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/channels/sms"
)

// The fuzz targets run their seed corpora as ordinary tests; explore with
// e.g. go test ./channels/sms -run '^$' -fuzz FuzzDecodeGSM7 -fuzztime 30s.

func FuzzDecodeGSM7(f *testing.F) {
	for _, seed := range [][]byte{
		{}, []byte("hello"), {0x1B, 0x65}, {0x1B}, {0x41, 0x1B}, {0x1B, 0x1B, 0x41},
		{0x1B, 0x41}, {0x80}, {0xFF, 0x00}, {0x1B, 0xE5}, {0x00, 0x7F, 0x1B, 0x0A},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		text, err := sms.GSM7.Decode(data)
		if err != nil {
			require.ErrorIs(t, err, sms.ErrInvalidData)
			require.Empty(t, text)
			return
		}
		require.True(t, utf8.ValidString(text))
		// Decoding is tolerant (an unknown extension code reads as its
		// basic character) but what it yields always encodes and reads back.
		again, err := sms.GSM7.Encode(text)
		require.NoError(t, err)
		require.LessOrEqual(t, len(again), len(data))
		back, err := sms.GSM7.Decode(again)
		require.NoError(t, err)
		require.Equal(t, text, back)
	})
}

func FuzzDecodeUCS2(f *testing.F) {
	for _, seed := range [][]byte{
		{}, {0x00}, {0x00, 0x41}, {0xD8, 0x3D, 0xDE, 0x00}, {0xD8, 0x3D}, {0xDE, 0x00},
		{0xD8, 0x3D, 0x00, 0x41}, {0xD8, 0x3D, 0xDE}, {0xFF, 0xFE, 0x00, 0x41}, {0xDB, 0xFF, 0xDF, 0xFF},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		text, err := sms.UCS2.Decode(data)
		if err != nil {
			require.ErrorIs(t, err, sms.ErrInvalidData)
			require.Empty(t, text)
			return
		}
		require.True(t, utf8.ValidString(text))
		// Valid UTF-16 and text are in one-to-one correspondence.
		again, err := sms.UCS2.Encode(text)
		require.NoError(t, err)
		require.Equal(t, data, again)
	})
}

// FuzzDecodeDataCoding reads arbitrary bytes under an arbitrary
// data_coding, as a received deliver_sm may carry them.
func FuzzDecodeDataCoding(f *testing.F) {
	f.Add(byte(0x00), []byte("hi"))
	f.Add(byte(0x03), []byte{0xE9, 0xFF})
	f.Add(byte(0x08), []byte{0x04, 0x1F})
	f.Add(byte(0xF4), []byte{0x01})
	f.Add(byte(0x18), []byte{0x00})
	f.Add(byte(0x05), []byte{0x00})
	f.Fuzz(func(t *testing.T, dc byte, data []byte) {
		enc, err := sms.EncodingOf(dc)
		if err != nil {
			require.True(t, errors.Is(err, sms.ErrBinaryData) || errors.Is(err, sms.ErrUnsupportedDataCoding), "%v", err)
			return
		}
		text, err := enc.Decode(data)
		if err != nil {
			require.ErrorIs(t, err, sms.ErrInvalidData)
			return
		}
		require.True(t, utf8.ValidString(text))
	})
}

func FuzzUnpackSeptets(f *testing.F) {
	f.Add([]byte{0xE8, 0x32, 0x9B, 0xFD, 0x46, 0x97, 0xD9, 0xEC, 0x37}, 0, 10)
	f.Add([]byte{0xD0, 0x69}, 1, 2)
	f.Add([]byte{}, 0, 0)
	f.Add([]byte{0x41}, 6, 1)
	f.Add([]byte{0x41}, 7, 1)
	f.Add([]byte{0x41}, 0, -1)
	f.Fuzz(func(t *testing.T, packed []byte, fill, count int) {
		septets, err := sms.UnpackSeptets(packed, fill, count)
		if err != nil {
			return
		}
		require.Len(t, septets, count)
		for _, s := range septets {
			require.LessOrEqual(t, s, byte(0x7F))
		}
		repacked, err := sms.PackSeptets(septets, fill)
		require.NoError(t, err)
		require.LessOrEqual(t, len(repacked), len(packed))
		again, err := sms.UnpackSeptets(repacked, fill, count)
		require.NoError(t, err)
		require.Equal(t, septets, again)
	})
}

func FuzzParseUDH(f *testing.F) {
	for _, seed := range [][]byte{
		{}, {0x00}, {0x05, 0x00, 0x03, 0x42, 0x02, 0x01, 'h', 'i'}, {0x06, 0x08, 0x04, 0x12, 0x34, 0x05, 0x05},
		{0x05, 0x00, 0x03}, {0x01, 0x00}, {0x03, 0x00, 0x05, 0x01}, {0xFF},
		{0x0B, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0, 0x00, 0x03, 0x07, 0x02, 0x02, 0xAA},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		h, rest, err := sms.ParseUDH(msg)
		if err != nil {
			require.ErrorIs(t, err, sms.ErrInvalidData)
			return
		}
		b, err := h.Bytes()
		require.NoError(t, err)
		require.Equal(t, msg[:len(msg)-len(rest)], b, "a parsed header re-encodes to its bytes")
		if c, ok := h.Concat(); ok {
			require.GreaterOrEqual(t, c.Number, 1)
			require.LessOrEqual(t, c.Number, c.Total)
			require.LessOrEqual(t, c.Total, 255)
		}
	})
}

// FuzzSplit checks Split's invariants on arbitrary text.
func FuzzSplit(f *testing.F) {
	f.Add("", uint8(0), uint8(0))
	f.Add("hello {world}", uint8(0), uint8(1))
	f.Add("€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€", uint8(0), uint8(0))
	f.Add("😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀", uint8(2), uint8(0))
	f.Add("Çà et là, ÿ", uint8(1), uint8(2))
	f.Add("bad \xff utf-8", uint8(2), uint8(3))
	f.Fuzz(func(t *testing.T, text string, e, m uint8) {
		enc := []sms.Encoding{sms.GSM7, sms.Latin1, sms.UCS2}[int(e)%3]
		opts := sms.SplitOptions{Method: methods[int(m)%len(methods)]}
		if _, err := sms.Split(text, enc, opts); err != nil {
			require.True(t, errors.Is(err, sms.ErrUnencodable) || errors.Is(err, sms.ErrInvalidText) || errors.Is(err, sms.ErrTooLong), "%v", err)
			_, merr := sms.Measure(text, enc, opts)
			require.Error(t, merr, "Measure fails when Split does")
			return
		}
		checkSplit(t, text, enc, opts)
		_ = sms.Count(text)
	})
}
