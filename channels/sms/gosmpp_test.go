package sms_test

import (
	"testing"

	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"
	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/channels/sms"
)

// sms.Encoding is a gosmpp data.Encoding, so the SMPP channel can hand a
// segment's bytes to gosmpp with the right data_coding.
var _ data.Encoding = sms.GSM7

func TestGosmppShortMessage(t *testing.T) {
	t.Parallel()

	text := "Grüße 😀 " + string(make160('x'))
	enc := sms.Choose(text)
	require.Equal(t, sms.UCS2, enc)
	segs, err := sms.Split(text, enc, sms.SplitOptions{Reference: 9})
	require.NoError(t, err)
	require.Greater(t, len(segs), 1)

	var got string
	for _, s := range segs {
		submit := pdu.NewSubmitSM().(*pdu.SubmitSM)
		require.NoError(t, submit.Message.SetMessageDataWithEncoding(s.Payload(), enc))
		submit.EsmClass |= data.SM_UDH_GSM

		// Marshal as gosmpp would put it on the wire, read it back as a
		// received PDU.
		buf := pdu.NewBuffer(nil)
		submit.Message.Marshal(buf)
		var back pdu.ShortMessage
		require.NoError(t, back.Unmarshal(buf, true))
		require.Equal(t, enc.DataCoding(), back.Encoding().DataCoding())

		dataCoding, err := sms.EncodingOf(back.Encoding().DataCoding())
		require.NoError(t, err)
		raw, err := back.GetMessageData()
		require.NoError(t, err)
		part, err := dataCoding.Decode(raw)
		require.NoError(t, err)
		got += part
	}
	require.Equal(t, text, got)
}
