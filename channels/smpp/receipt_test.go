package smpp

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/channels"
	"github.com/hermod-sms/hermod/channels/smpp/internal/pdu"
)

func TestParseReceiptText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, text string
		want       receipt
		ok         bool
	}{
		{"standard", "id:0123456789 sub:001 dlvrd:001 submit date:2401151030 done date:2401151031 stat:DELIVRD err:000 text:Hello world",
			receipt{ID: "0123456789", Sub: "001", Dlvrd: "001", Stat: "DELIVRD", Err: "000", Text: "Hello world",
				Submit: time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC), Done: time.Date(2024, 1, 15, 10, 31, 0, 0, time.UTC)}, true},
		{"upper case keys, seconds", "ID:abc SUB:001 DLVRD:000 SUBMIT DATE:240115103059 DONE DATE:240115103100 STAT:undeliv ERR:012 TEXT:",
			receipt{ID: "abc", Sub: "001", Dlvrd: "000", Stat: "UNDELIV", Err: "012",
				Submit: time.Date(2024, 1, 15, 10, 30, 59, 0, time.UTC), Done: time.Date(2024, 1, 15, 10, 31, 0, 0, time.UTC)}, true},
		{"other order, missing fields", "stat:EXPIRED err:001 id:77",
			receipt{ID: "77", Stat: "EXPIRED", Err: "001"}, true},
		{"text with colons and keys inside", "id:5 stat:DELIVRD text:see id:9 stat:X",
			receipt{ID: "5", Stat: "DELIVRD", Text: "see id:9 stat:X"}, true},
		{"bad dates tolerated", "id:5 submit date:xx done date:2401 stat:REJECTD err:",
			receipt{ID: "5", Stat: "REJECTD"}, true},
		{"not a receipt", "hello there", receipt{}, false},
		{"key glued to a word is not a key", "paid:5 hello", receipt{}, false},
		{"empty", "", receipt{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := parseReceiptText(tc.text)
			require.Equal(t, tc.ok, ok)
			if ok {
				require.Equal(t, tc.want, got)
			}
		})
	}
}

func TestReceiptFromPDU(t *testing.T) {
	t.Parallel()
	p := &pdu.PDU{Command: pdu.DeliverSM, ESMClass: pdu.ESMDeliveryReceipt,
		ShortMessage: []byte("id:0000ABC sub:001 dlvrd:000 submit date:2401151030 done date:2401151031 stat:UNDELIV err:034 text:")}
	r, ok := receiptFromPDU(p)
	require.True(t, ok)
	require.Equal(t, "0000ABC", r.ID)
	require.False(t, r.IDFromTLV)
	require.False(t, r.delivered())
	require.True(t, r.final())

	// TLVs win over text; network_error_code fills err.
	p.ShortMessage = []byte("id:1 stat:ENROUTE")
	p.SetTLV(pdu.TagReceiptedMessageID, []byte("ff01\x00"))
	p.SetTLV(pdu.TagMessageState, []byte{2})
	r, ok = receiptFromPDU(p)
	require.True(t, ok)
	require.Equal(t, "ff01", r.ID)
	require.True(t, r.IDFromTLV)
	require.Equal(t, "DELIVRD", r.Stat)

	p = &pdu.PDU{Command: pdu.DeliverSM, ESMClass: pdu.ESMIntermediate, ShortMessage: []byte("id:9 stat:ENROUTE")}
	r, ok = receiptFromPDU(p)
	require.True(t, ok)
	require.False(t, r.final())

	p = &pdu.PDU{Command: pdu.DeliverSM, ShortMessage: []byte("id:9 stat:DELIVRD")} // a user's SMS that looks like one
	_, ok = receiptFromPDU(p)
	require.False(t, ok)

	p = &pdu.PDU{Command: pdu.DataSM, ESMClass: pdu.ESMDeliveryReceipt}
	p.SetTLV(pdu.TagReceiptedMessageID, []byte("12\x00"))
	p.SetTLV(pdu.TagMessageState, []byte{5})
	p.SetTLV(pdu.TagNetworkErrorCode, []byte{3, 0x01, 0x02})
	r, ok = receiptFromPDU(p)
	require.True(t, ok)
	require.Equal(t, "UNDELIV", r.Stat)
	require.Equal(t, "258", r.Err)
}

func TestNormalizeID(t *testing.T) {
	t.Parallel()
	def := idNormalizer{caseFold: true, stripZeros: true}
	raw := idNormalizer{}
	for _, tc := range []struct {
		n          idNormalizer
		id, format string
		want       string
	}{
		{def, "0000ABCdef", "text", "abcdef"},
		{def, " 00012\x00", "text", "12"},
		{def, "000", "text", "0"},
		{raw, "0000ABCdef", "text", "0000ABCdef"},
		{def, "1A2B", "hex", "6699"},
		{def, "001a2b", "hex", "6699"},
		{def, "0000006699", "decimal", "6699"},
		{def, "FFFFFFFFFFFFFFFFFFFFFFFF", "hex", "79228162514264337593543950335"},
		{def, "not-hex", "hex", "not-hex"},
		{def, "", "hex", ""},
	} {
		require.Equal(t, tc.want, tc.n.normalize(tc.id, tc.format), "%q as %s", tc.id, tc.format)
	}
	// The point: a provider answering hex and reporting decimal meets.
	require.Equal(t, def.normalize("00C0FFEE", "hex"), def.normalize("12648430", "decimal"))
}

func TestErrorClassification(t *testing.T) {
	t.Parallel()
	for code, temporary := range map[uint32]bool{
		pdu.StatusThrottled: true, pdu.StatusMsgQFul: true, pdu.StatusSysErr: true, pdu.StatusDeliveryFail: true,
		pdu.StatusInvDstAdr: false, pdu.StatusInvMsgLen: false, 0x48: false, 0x400: true,
	} {
		require.Equal(t, temporary, pdu.Status(code).Temporary, pdu.StatusText(code))
	}
	require.Equal(t, "ESME_RINVDSTADR (0x0000000B)", pdu.StatusText(0x0B))
	require.Equal(t, "ESME_0x00000401 (0x00000401)", pdu.StatusText(0x401))

	c, err := newChannel(testConfig(t, `{"host":"x","errorClasses":{"ESME_RSYSERR":"permanent","0x401":"permanent","esme_rinvdstadr":"temporary"}}`))
	require.NoError(t, err)
	require.False(t, c.classify(pdu.StatusSysErr))
	require.False(t, c.classify(0x401))
	require.True(t, c.classify(pdu.StatusInvDstAdr))
	require.True(t, c.classify(pdu.StatusThrottled))
}

func TestSettings(t *testing.T) {
	t.Parallel()
	s, err := ParseSettings([]byte(`{"host":"smsc.example.com","enquireLink":45,"reconnectMax":"2m"}`))
	require.NoError(t, err)
	require.Equal(t, 2775, s.Port)
	require.Equal(t, Duration(45*time.Second), s.EnquireLink)
	require.Equal(t, Duration(2*time.Minute), s.ReconnectMax)
	require.Equal(t, "transceiver", s.BindType)
	require.True(t, s.caseFold())

	_, err = ParseSettings([]byte(`{"host":"x","windw":5}`))
	require.ErrorContains(t, err, `unknown field "windw"`)

	_, err = ParseSettings([]byte(`{"port":0,"bindType":"both","splitMethod":"magic","password":"123456789","errorClasses":{"NOPE":"temporary"}}`))
	require.Error(t, err)
	for _, want := range []string{"host is required", "port 0", `bindType "both"`, `splitMethod "magic"`, "password: at most 8", `"NOPE"`} {
		require.ErrorContains(t, err, want)
	}
	require.NotContains(t, err.Error(), "123456789", "the password is never echoed")
}

func TestSourceAddress(t *testing.T) {
	t.Parallel()
	c, err := newChannel(testConfig(t, `{"host":"x"}`))
	require.NoError(t, err)
	for _, tc := range []struct {
		from     string
		addr     string
		ton, npi byte
	}{
		{"Hermod", "Hermod", 5, 0},
		{"+31612345678", "31612345678", 1, 1},
		{"1234", "1234", 0, 1},
		{"", "", 0, 0},
	} {
		addr, ton, npi := c.sourceAddress(msgFrom(tc.from))
		require.Equal(t, []any{tc.addr, tc.ton, tc.npi}, []any{addr, ton, npi}, tc.from)
	}
	addr, ton, npi := c.sourceAddress(channels.Message{From: "Shop", FromTON: -1, FromNPI: -1})
	require.Equal(t, []any{"Shop", byte(5), byte(0)}, []any{addr, ton, npi}, "-1 is automatic")
	addr, ton, npi = c.sourceAddress(channels.Message{From: "+4412", FromTON: 2, FromNPI: -1})
	require.Equal(t, []any{"4412", byte(2), byte(1)}, []any{addr, ton, npi})
	require.True(t, strings.HasSuffix(absoluteTime(time.Date(2024, 2, 3, 4, 5, 6, 700_000_000, time.UTC)), "7"+"00+"))
	require.Equal(t, "240203040506700+", absoluteTime(time.Date(2024, 2, 3, 4, 5, 6, 700_000_000, time.UTC)))
}
