package sms_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/channels/sms"
)

func TestConcatUDH(t *testing.T) {
	t.Parallel()

	b, err := sms.ConcatUDH(sms.Concat{Reference: 0x1A7, Total: 3, Number: 2})
	require.NoError(t, err)
	require.Equal(t, []byte{0x05, 0x00, 0x03, 0xA7, 0x03, 0x02}, b, "8-bit header keeps the low byte")

	b, err = sms.ConcatUDH(sms.Concat{Reference: 0x1A7, Total: 3, Number: 2, Wide: true})
	require.NoError(t, err)
	require.Equal(t, []byte{0x06, 0x08, 0x04, 0x01, 0xA7, 0x03, 0x02}, b)

	for _, c := range []sms.Concat{{Total: 0, Number: 1}, {Total: 256, Number: 1}, {Total: 2, Number: 0}, {Total: 2, Number: 3}} {
		_, err := sms.ConcatUDH(c)
		require.Error(t, err, "%+v", c)
	}
}

func TestParseUDH(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name     string
		msg      []byte
		rest     []byte
		elements int
		concat   *sms.Concat
	}{
		{"8-bit", []byte{0x05, 0x00, 0x03, 0x42, 0x02, 0x01, 'h', 'i'}, []byte("hi"), 1, &sms.Concat{Reference: 0x42, Total: 2, Number: 1}},
		{"16-bit", []byte{0x06, 0x08, 0x04, 0x12, 0x34, 0x05, 0x05, 'x'}, []byte("x"), 1, &sms.Concat{Reference: 0x1234, Total: 5, Number: 5, Wide: true}},
		{"port addressing then concat",
			[]byte{0x0B, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0, 0x00, 0x03, 0x07, 0x02, 0x02, 0xAA},
			[]byte{0xAA}, 2, &sms.Concat{Reference: 7, Total: 2, Number: 2}},
		{"no concat", []byte{0x04, 0x05, 0x02, 0x0B, 0x84}, []byte{}, 1, nil},
		{"empty header", []byte{0x00, 'a'}, []byte("a"), 0, nil},
		{"concat with number zero is ignored", []byte{0x05, 0x00, 0x03, 0x01, 0x02, 0x00}, []byte{}, 1, nil},
		{"concat with number above total is ignored", []byte{0x05, 0x00, 0x03, 0x01, 0x02, 0x03}, []byte{}, 1, nil},
		{"concat of wrong length is ignored", []byte{0x04, 0x00, 0x02, 0x01, 0x02}, []byte{}, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, rest, err := sms.ParseUDH(tt.msg)
			require.NoError(t, err)
			require.Equal(t, tt.rest, rest)
			require.Len(t, h.Elements, tt.elements)
			c, ok := h.Concat()
			if tt.concat == nil {
				require.False(t, ok)
				return
			}
			require.True(t, ok)
			require.Equal(t, *tt.concat, c)

			again, err := h.Bytes()
			require.NoError(t, err)
			require.Equal(t, tt.msg[:len(tt.msg)-len(tt.rest)], again, "Bytes re-encodes what ParseUDH read")
		})
	}
}

func TestParseUDHInvalid(t *testing.T) {
	t.Parallel()

	for name, msg := range map[string][]byte{
		"empty":                  {},
		"length past end":        {0x05, 0x00, 0x03},
		"element cut":            {0x01, 0x00},
		"element length too big": {0x03, 0x00, 0x05, 0x01},
	} {
		_, _, err := sms.ParseUDH(msg)
		require.ErrorIs(t, err, sms.ErrInvalidData, name)
	}
}

func TestUDHBytesTooLong(t *testing.T) {
	t.Parallel()

	_, err := sms.UDH{Elements: []sms.Element{{ID: 1, Data: make([]byte, 256)}}}.Bytes()
	require.Error(t, err)
	_, err = sms.UDH{Elements: []sms.Element{{ID: 1, Data: make([]byte, 200)}, {ID: 2, Data: make([]byte, 60)}}}.Bytes()
	require.Error(t, err)
}
