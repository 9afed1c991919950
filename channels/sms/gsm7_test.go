package sms_test

import (
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/channels/sms"
)

func TestPackSeptetsVectors(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		text string
		fill int
		want string
	}{
		// GSM 03.38 / 03.40 textbook example.
		{"hellohello", "hellohello", 0, "e8329bfd4697d9ec37"},
		{"eight septets in seven octets", "12345678", 0, "31d98c56b3dd70"},
		{"one septet", "A", 0, "41"},
		// Behind a 6-octet UDH the text starts after one fill bit.
		{"one fill bit", "hi", 1, "d069"},
		{"six fill bits", "A", 6, "4010"},
		{"empty", "", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			septets, err := sms.GSM7.Encode(tt.text)
			require.NoError(t, err)
			packed, err := sms.PackSeptets(septets, tt.fill)
			require.NoError(t, err)
			require.Equal(t, tt.want, hex.EncodeToString(packed))
			back, err := sms.UnpackSeptets(packed, tt.fill, len(septets))
			require.NoError(t, err)
			require.Equal(t, septets, back)
		})
	}
}

func TestPackSeptetsErrors(t *testing.T) {
	t.Parallel()

	_, err := sms.PackSeptets([]byte{0x80}, 0)
	require.Error(t, err)
	_, err = sms.PackSeptets([]byte{0x41}, 7)
	require.Error(t, err)
	_, err = sms.UnpackSeptets([]byte{0x41}, -1, 1)
	require.Error(t, err)
	_, err = sms.UnpackSeptets([]byte{0x41}, 0, -1)
	require.Error(t, err)
	_, err = sms.UnpackSeptets([]byte{0x41}, 0, 2)
	require.ErrorIs(t, err, sms.ErrInvalidData)
	_, err = sms.UnpackSeptets([]byte{0x41}, 2, 1)
	require.ErrorIs(t, err, sms.ErrInvalidData)
	_, err = sms.UnpackSeptets(nil, 0, 1)
	require.ErrorIs(t, err, sms.ErrInvalidData)
	got, err := sms.UnpackSeptets(nil, 0, 0)
	require.NoError(t, err)
	require.Empty(t, got)
}

func TestFillBits(t *testing.T) {
	t.Parallel()

	require.Equal(t, 0, sms.FillBits(0))
	require.Equal(t, 1, sms.FillBits(6)) // 05 00 03 rr tt nn
	require.Equal(t, 0, sms.FillBits(7)) // 06 08 04 rr rr tt nn
	require.Equal(t, 6, sms.FillBits(1))
	for n := 0; n < 300; n++ {
		require.Zero(t, (n*8+sms.FillBits(n))%7, "udh length %d", n)
		require.Less(t, sms.FillBits(n), 7)
	}
}

func TestPackWithHeaderAlignsOnSeptets(t *testing.T) {
	t.Parallel()

	// The whole user data, header octets then packed text, read as septets
	// from bit 0, must show the text starting at septet ceil(udh bits/7).
	segs, err := sms.Split(string(make160('x'))+"yz", sms.GSM7, sms.SplitOptions{Reference: 0x42})
	require.NoError(t, err)
	require.Len(t, segs, 2)
	s := segs[1]
	fill := sms.FillBits(len(s.UDH))
	packed, err := sms.PackSeptets(s.Data, fill)
	require.NoError(t, err)
	// Merge the fill bits' octet with the last header octet, as PDU mode
	// does: the fill bits are the low bits of the first text octet.
	ud := append(append([]byte{}, s.UDH...), packed...)
	headerSeptets := (len(s.UDH)*8 + fill) / 7
	all, err := sms.UnpackSeptets(ud, 0, headerSeptets+len(s.Data))
	require.NoError(t, err)
	require.Equal(t, s.Data, all[headerSeptets:])
}

func make160(r byte) []byte {
	b := make([]byte, 160)
	for i := range b {
		b[i] = r
	}
	return b
}
