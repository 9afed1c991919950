package smpp

import (
	"fmt"
	"sort"
	"testing"
	"unicode/utf8"

	"github.com/hermod-sms/hermod/channels"
	"github.com/hermod-sms/hermod/channels/smpp/internal/pdu"
)

// FuzzReceiptText: parsing never panics, and a receipt Hermod's test SMSC
// would write reads back field by field.
func FuzzReceiptText(f *testing.F) {
	f.Add("id:0123 sub:001 dlvrd:001 submit date:2401151030 done date:2401151031 stat:DELIVRD err:000 text:hi", "abc", "UNDELIV")
	f.Add("stat:EXPIRED id:", "0", "DELIVRD")
	f.Fuzz(func(t *testing.T, text, id, stat string) {
		parseReceiptText(text)
		receiptFromPDU(&pdu.PDU{Command: pdu.DeliverSM, ESMClass: pdu.ESMDeliveryReceipt, ShortMessage: []byte(text)})
		if id == "" || stat == "" || !plainWord(id) || !plainWord(stat) {
			return
		}
		r, ok := parseReceiptText(fmt.Sprintf("id:%s sub:001 dlvrd:000 submit date:2401151030 done date:2401151031 stat:%s err:005 text:%s", id, stat, text))
		if !ok || r.ID != id || r.Err != "005" || r.Text != text {
			t.Fatalf("read back %+v", r)
		}
	})
}

// plainWord: no spaces, no colons, so it cannot look like another field.
func plainWord(s string) bool {
	for _, r := range s {
		if r == ' ' || r == ':' || r == '\t' || r < 0x20 || r == utf8.RuneError {
			return false
		}
	}
	return utf8.ValidString(s) && s == string([]rune(s))
}

// FuzzSendPathRoundTrip: whatever text Hermod splits and encodes into
// submit_sm PDUs, decoding those PDUs and joining them as the receiving
// side does gives the text back, for every split method.
func FuzzSendPathRoundTrip(f *testing.F) {
	f.Add("hello", 0)
	f.Add("price {EUR} [10€] ~ok^ | price {EUR} [10€] ~ok^ | price {EUR} [10€] ~ok^ | price {EUR} [10€] ~ok^ | price {EUR} [10€] ~ok^ | price {EUR} [10€] ~ok^ | price {EUR} [10€] ~ok^ |", 1)
	f.Add("😀 Привет 👍🏽 😀 Привет 👍🏽 😀 Привет 👍🏽 😀 Привет 👍🏽 😀 Привет 👍🏽 😀 Привет 👍🏽 😀 Привет 👍🏽", 2)
	f.Add("Grüße", 3)
	methods := []string{"udh8", "udh16", "sar", "payload"}
	f.Fuzz(func(t *testing.T, text string, method int) {
		if !utf8.ValidString(text) || len(text) > 2000 {
			return
		}
		c, err := newChannel(channels.Config{Settings: fmt.Appendf(nil, `{"host":"x","splitMethod":%q}`, methods[uint(method)%4])})
		if err != nil {
			t.Fatal(err)
		}
		parts, err := c.buildParts(channels.Message{To: "+311", From: "x", Body: text, DataCoding: -1})
		if err != nil {
			return // too long, or not encodable (NUL and the like are checked by channels/sms)
		}
		type got struct {
			num  int
			data []byte
		}
		var pieces []got
		var dc byte
		for i, p := range parts {
			b, err := pdu.Encode(p)
			if err != nil {
				t.Fatalf("encode part %d: %v", i+1, err)
			}
			q, err := pdu.Decode(b)
			if err != nil {
				t.Fatalf("decode part %d: %v", i+1, err)
			}
			data, _, total, num, multi, err := concatInfo(q)
			if err != nil {
				t.Fatal(err)
			}
			if len(parts) > 1 && (!multi || total != len(parts)) {
				t.Fatalf("part %d: concatenation info lost (multi %v, total %d)", i+1, multi, total)
			}
			if !multi {
				num = 1
			}
			pieces = append(pieces, got{num, data})
			dc = q.DataCoding
		}
		sort.Slice(pieces, func(i, j int) bool { return pieces[i].num < pieces[j].num })
		var data []byte
		for _, pc := range pieces {
			data = append(data, pc.data...)
		}
		if back := c.decodeBody(dc, data); back != text {
			t.Fatalf("round trip: %q became %q", text, back)
		}
	})
}

// FuzzIncomingUserData: any user data with UDHI set is read without a
// panic.
func FuzzIncomingUserData(f *testing.F) {
	f.Add([]byte{5, 0, 3, 1, 2, 1, 'a'}, byte(0))
	f.Add([]byte{6, 8, 4, 0, 1, 2, 2, 0, 'a'}, byte(8))
	f.Add([]byte{0xFF}, byte(3))
	f.Fuzz(func(t *testing.T, ud []byte, dc byte) {
		c, err := newChannel(channels.Config{Settings: []byte(`{"host":"x"}`)})
		if err != nil {
			t.Fatal(err)
		}
		p := &pdu.PDU{Command: pdu.DeliverSM, ESMClass: pdu.ESMUDHI, DataCoding: dc, ShortMessage: ud}
		data, _, _, _, _, _ := concatInfo(p)
		c.decodeBody(dc, data)
	})
}
