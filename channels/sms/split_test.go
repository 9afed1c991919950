package sms_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/channels/sms"
)

func TestSplitCounts(t *testing.T) {
	t.Parallel()

	const emoji = "😀"
	tests := []struct {
		name     string
		text     string
		enc      sms.Encoding
		method   sms.ConcatMethod
		parts    []int // units per segment
		perSeg   int
		encoding sms.Encoding
	}{
		{"empty", "", sms.GSM7, sms.ConcatUDH8, []int{0}, 160, sms.GSM7},
		{"160 GSM is one", strings.Repeat("a", 160), sms.GSM7, sms.ConcatUDH8, []int{160}, 160, sms.GSM7},
		{"161 GSM is two", strings.Repeat("a", 161), sms.GSM7, sms.ConcatUDH8, []int{153, 8}, 153, sms.GSM7},
		{"306 GSM is two", strings.Repeat("a", 306), sms.GSM7, sms.ConcatUDH8, []int{153, 153}, 153, sms.GSM7},
		{"307 GSM is three", strings.Repeat("a", 307), sms.GSM7, sms.ConcatUDH8, []int{153, 153, 1}, 153, sms.GSM7},
		{"80 euros fill 160 septets", strings.Repeat("€", 80), sms.GSM7, sms.ConcatUDH8, []int{160}, 160, sms.GSM7},
		{"81 euros need two", strings.Repeat("€", 81), sms.GSM7, sms.ConcatUDH8, []int{152, 10}, 153, sms.GSM7},
		{"159 plus euro is two", strings.Repeat("a", 159) + "€", sms.GSM7, sms.ConcatUDH8, []int{153, 8}, 153, sms.GSM7},
		{"euro at septet 153 moves", strings.Repeat("a", 152) + "€" + strings.Repeat("b", 10), sms.GSM7, sms.ConcatUDH8, []int{152, 12}, 153, sms.GSM7},
		{"euro at septet 152 stays", strings.Repeat("a", 151) + "€" + strings.Repeat("b", 10), sms.GSM7, sms.ConcatUDH8, []int{153, 10}, 153, sms.GSM7},
		{"16-bit GSM", strings.Repeat("a", 161), sms.GSM7, sms.ConcatUDH16, []int{152, 9}, 152, sms.GSM7},
		{"16-bit euro at 152 moves", strings.Repeat("a", 151) + "€" + strings.Repeat("x", 10), sms.GSM7, sms.ConcatUDH16, []int{151, 12}, 152, sms.GSM7},
		{"SAR GSM is sized for the header the SMSC adds", strings.Repeat("a", 161), sms.GSM7, sms.ConcatSAR, []int{153, 8}, 153, sms.GSM7},
		{"None never splits", strings.Repeat("a", 1000), sms.GSM7, sms.ConcatNone, []int{1000}, 0, sms.GSM7},
		{"70 UCS2 is one", strings.Repeat("ж", 70), sms.UCS2, sms.ConcatUDH8, []int{70}, 70, sms.UCS2},
		{"71 UCS2 is two", strings.Repeat("ж", 71), sms.UCS2, sms.ConcatUDH8, []int{67, 4}, 67, sms.UCS2},
		{"71 UCS2 16-bit", strings.Repeat("ж", 71), sms.UCS2, sms.ConcatUDH16, []int{66, 5}, 66, sms.UCS2},
		{"35 emoji are one", strings.Repeat(emoji, 35), sms.UCS2, sms.ConcatUDH8, []int{70}, 70, sms.UCS2},
		{"36 emoji are two", strings.Repeat(emoji, 36), sms.UCS2, sms.ConcatUDH8, []int{66, 6}, 67, sms.UCS2},
		{"surrogate pair at unit 67 moves", strings.Repeat("ж", 66) + emoji + strings.Repeat("ж", 5), sms.UCS2, sms.ConcatUDH8, []int{66, 7}, 67, sms.UCS2},
		{"140 Latin-1 is one", strings.Repeat("ç", 140), sms.Latin1, sms.ConcatUDH8, []int{140}, 140, sms.Latin1},
		{"141 Latin-1 is two", strings.Repeat("ç", 141), sms.Latin1, sms.ConcatUDH8, []int{134, 7}, 134, sms.Latin1},
		{"141 Latin-1 16-bit", strings.Repeat("ç", 141), sms.Latin1, sms.ConcatUDH16, []int{132, 9}, 132, sms.Latin1},
		{"GSM text forced to UCS2", strings.Repeat("a", 71), sms.UCS2, sms.ConcatUDH8, []int{67, 4}, 67, sms.UCS2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := sms.SplitOptions{Method: tt.method, Reference: 0x0102}
			segs, err := sms.Split(tt.text, tt.enc, opts)
			require.NoError(t, err)
			var got []int
			var joined strings.Builder
			var data []byte
			for i, s := range segs {
				got = append(got, s.Units)
				joined.WriteString(s.Text)
				data = append(data, s.Data...)
				require.Equal(t, i+1, s.Number)
				require.Equal(t, len(segs), s.Total)
				require.Equal(t, uint16(0x0102), s.Reference)
				wantUDH := len(segs) > 1 && (tt.method == sms.ConcatUDH8 || tt.method == sms.ConcatUDH16)
				require.Equal(t, wantUDH, s.UDH != nil)
				if s.UDH != nil {
					h, rest, err := sms.ParseUDH(s.Payload())
					require.NoError(t, err)
					require.Equal(t, s.Data, rest)
					c, ok := h.Concat()
					require.True(t, ok)
					require.Equal(t, sms.Concat{Reference: c.Reference, Total: len(segs), Number: i + 1, Wide: tt.method == sms.ConcatUDH16}, c)
					if len(s.UDH) == 6 {
						require.Equal(t, uint16(0x02), c.Reference)
					} else {
						require.Equal(t, uint16(0x0102), c.Reference)
					}
					require.LessOrEqual(t, len(s.Payload()), 140+20, "payload stays a short message")
				} else {
					require.Equal(t, s.Data, s.Payload())
				}
			}
			require.Equal(t, tt.parts, got)
			require.Equal(t, tt.text, joined.String())
			back, err := tt.enc.Decode(data)
			require.NoError(t, err)
			require.Equal(t, tt.text, back)

			info, err := sms.Measure(tt.text, tt.enc, opts)
			require.NoError(t, err)
			require.Equal(t, len(tt.parts), info.Segments)
			require.Equal(t, tt.perSeg, info.PerSegment)
			require.Equal(t, tt.encoding, info.Encoding)
			if tt.perSeg > 0 {
				require.Equal(t, tt.perSeg-tt.parts[len(tt.parts)-1], info.Remaining)
			}
		})
	}
}

func TestSplitPayloadOctets(t *testing.T) {
	t.Parallel()

	// Packed GSM7 plus UDH, Latin-1 plus UDH, UCS-2 plus UDH: every part
	// must fit the 140 octets of TP-UD.
	for _, tc := range []struct {
		text string
		enc  sms.Encoding
		m    sms.ConcatMethod
	}{
		{strings.Repeat("a€", 200), sms.GSM7, sms.ConcatUDH8},
		{strings.Repeat("a€", 200), sms.GSM7, sms.ConcatUDH16},
		{strings.Repeat("é", 400), sms.Latin1, sms.ConcatUDH8},
		{strings.Repeat("é", 400), sms.Latin1, sms.ConcatUDH16},
		{strings.Repeat("ж😀", 100), sms.UCS2, sms.ConcatUDH8},
		{strings.Repeat("ж😀", 100), sms.UCS2, sms.ConcatUDH16},
	} {
		segs, err := sms.Split(tc.text, tc.enc, sms.SplitOptions{Method: tc.m})
		require.NoError(t, err)
		for _, s := range segs {
			octets := len(s.Data)
			if tc.enc == sms.GSM7 {
				packed, err := sms.PackSeptets(s.Data, sms.FillBits(len(s.UDH)))
				require.NoError(t, err)
				octets = len(packed)
			}
			require.LessOrEqual(t, len(s.UDH)+octets, 140, "%v %v part %d", tc.enc, tc.m, s.Number)
		}
	}
}

func TestSplitErrors(t *testing.T) {
	t.Parallel()

	_, err := sms.Split("привет", sms.GSM7, sms.SplitOptions{})
	require.ErrorIs(t, err, sms.ErrUnencodable)
	_, err = sms.Split("5€", sms.Latin1, sms.SplitOptions{})
	require.ErrorIs(t, err, sms.ErrUnencodable)
	_, err = sms.Split("a\xffb", sms.UCS2, sms.SplitOptions{})
	require.ErrorIs(t, err, sms.ErrInvalidText)

	// 255 parts of 153 septets is the most a header can count.
	segs, err := sms.Split(strings.Repeat("a", 255*153), sms.GSM7, sms.SplitOptions{})
	require.NoError(t, err)
	require.Len(t, segs, 255)
	_, err = sms.Split(strings.Repeat("a", 255*153+1), sms.GSM7, sms.SplitOptions{})
	require.ErrorIs(t, err, sms.ErrTooLong)
	_, err = sms.Measure(strings.Repeat("a", 255*153+1), sms.GSM7, sms.SplitOptions{})
	require.ErrorIs(t, err, sms.ErrTooLong)

	_, err = sms.Split(strings.Repeat("a", 307), sms.GSM7, sms.SplitOptions{MaxSegments: 2})
	require.ErrorIs(t, err, sms.ErrTooLong)
	require.ErrorContains(t, err, "3 segments")
	segs, err = sms.Split(strings.Repeat("a", 1000), sms.GSM7, sms.SplitOptions{Method: sms.ConcatNone, MaxSegments: 1})
	require.NoError(t, err)
	require.Len(t, segs, 1)
}

func TestCount(t *testing.T) {
	t.Parallel()

	tests := []struct {
		text string
		want sms.Info
	}{
		{"", sms.Info{Encoding: sms.GSM7, Segments: 1, Units: 0, PerSegment: 160, Remaining: 160}},
		{"Hello", sms.Info{Encoding: sms.GSM7, Segments: 1, Units: 5, PerSegment: 160, Remaining: 155}},
		{"5€", sms.Info{Encoding: sms.GSM7, Segments: 1, Units: 3, PerSegment: 160, Remaining: 157}},
		{strings.Repeat("a", 160), sms.Info{Encoding: sms.GSM7, Segments: 1, Units: 160, PerSegment: 160, Remaining: 0}},
		{strings.Repeat("a", 161), sms.Info{Encoding: sms.GSM7, Segments: 2, Units: 161, PerSegment: 153, Remaining: 145}},
		{"hi 😀", sms.Info{Encoding: sms.UCS2, Segments: 1, Units: 5, PerSegment: 70, Remaining: 65}},
		{strings.Repeat("ж", 71), sms.Info{Encoding: sms.UCS2, Segments: 2, Units: 71, PerSegment: 67, Remaining: 63}},
		{"ç", sms.Info{Encoding: sms.UCS2, Segments: 1, Units: 1, PerSegment: 70, Remaining: 69}},
		{"a\xffb", sms.Info{Encoding: sms.UCS2, Segments: 1, Units: 3, PerSegment: 70, Remaining: 67}},
		{strings.Repeat("a", 40000), sms.Info{Encoding: sms.GSM7, Segments: 262, Units: 40000, PerSegment: 153, Remaining: 153*262 - 40000}},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, sms.Count(tt.text), "text %.20q", tt.text)
	}
}

func TestMeasureErrorsAndNames(t *testing.T) {
	t.Parallel()

	_, err := sms.Measure("x", sms.Encoding(0), sms.SplitOptions{})
	require.Error(t, err)
	_, err = sms.Measure("x", sms.GSM7, sms.SplitOptions{Method: 7})
	require.Error(t, err)
	_, err = sms.Measure("a\xff", sms.UCS2, sms.SplitOptions{})
	require.ErrorIs(t, err, sms.ErrInvalidText)
	_, err = sms.Measure("ж", sms.GSM7, sms.SplitOptions{})
	require.ErrorIs(t, err, sms.ErrUnencodable)

	info, err := sms.Measure(strings.Repeat("a", 1000), sms.GSM7, sms.SplitOptions{Method: sms.ConcatNone})
	require.NoError(t, err)
	require.Equal(t, sms.Info{Encoding: sms.GSM7, Segments: 1, Units: 1000}, info)

	names := []string{}
	for _, m := range []sms.ConcatMethod{sms.ConcatUDH8, sms.ConcatUDH16, sms.ConcatSAR, sms.ConcatNone, 9} {
		names = append(names, m.String())
	}
	require.Equal(t, []string{"UDH8", "UDH16", "SAR", "None", "ConcatMethod(9)"}, names)
}
