package smpp

import (
	"math/big"
	"strings"
	"time"

	"github.com/hermod-sms/hermod/channels/smpp/internal/pdu"
)

// idNormalizer turns a provider's message id into the form Hermod stores
// and matches: the same function is applied to submit_sm_resp ids and to
// the ids in delivery reports, so the two meet however the provider
// writes them.
type idNormalizer struct {
	caseFold, stripZeros bool
}

// normalize renders id, written in format ("text", "hex" or "decimal"),
// canonically. Numeric ids become decimal numbers without leading zeros;
// an id that does not parse in its declared base falls back to text
// rules, so that a wrong setting degrades to "as is" instead of losing the
// id.
func (n idNormalizer) normalize(id, format string) string {
	id = strings.TrimSpace(strings.TrimRight(id, "\x00"))
	if id == "" {
		return ""
	}
	switch format {
	case "hex", "decimal":
		base := 16
		if format == "decimal" {
			base = 10
		}
		if v, ok := new(big.Int).SetString(id, base); ok && v.Sign() >= 0 {
			return v.String()
		}
	}
	if n.stripZeros {
		t := strings.TrimLeft(id, "0")
		if t == "" {
			t = "0"
		}
		id = t
	}
	if n.caseFold {
		id = strings.ToLower(id)
	}
	return id
}

// receipt is a parsed delivery receipt.
type receipt struct {
	ID        string // as written in the text (or the TLV)
	IDFromTLV bool   // ID came from receipted_message_id
	Stat      string // DELIVRD, UNDELIV, ...
	Err       string
	Sub       string
	Dlvrd     string
	Submit    time.Time
	Done      time.Time
	Text      string
}

// final reports whether the receipt's state ends the message's life; an
// ENROUTE or ACCEPTD notification is intermediate.
func (r receipt) final() bool {
	switch r.Stat {
	case "ENROUTE", "ACCEPTD", "ACCEPTED", "BUFFRED", "BUFFERED", "SCHEDULED":
		return false
	}
	return true
}

func (r receipt) delivered() bool { return r.Stat == "DELIVRD" || r.Stat == "DELIVERED" }

var messageStateWords = map[byte]string{1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV", 6: "ACCEPTD", 7: "UNKNOWN", 8: "REJECTD"}

// receiptKeys are the fields of the standard receipt text (SMPP 3.4
// appendix B), matched case-insensitively.
var receiptKeys = []string{"id", "sub", "dlvrd", "submit date", "done date", "stat", "err", "text"}

// parseReceiptText parses "id:... sub:... dlvrd:... submit date:... done
// date:... stat:... err:... text:..." in any order and case, with fields
// missing. ok is false when there is neither an id nor a stat.
func parseReceiptText(s string) (r receipt, ok bool) {
	lower := strings.ToLower(s)
	type pos struct {
		key        string
		start, val int
	}
	var found []pos
	for _, k := range receiptKeys {
		from := 0
		for from < len(lower) {
			i := strings.Index(lower[from:], k+":")
			if i < 0 {
				break
			}
			i += from
			// a key starts the text or follows a space; "done date" must
			// not be found inside another value either.
			if i == 0 || lower[i-1] == ' ' || lower[i-1] == '\t' {
				found = append(found, pos{k, i, i + len(k) + 1})
				break
			}
			from = i + 1
		}
	}
	if len(found) == 0 {
		return r, false
	}
	// Values end where the next key (by position) starts; text runs to
	// the end.
	for i := range found {
		for j := i + 1; j < len(found); j++ {
			if found[j].start < found[i].start {
				found[i], found[j] = found[j], found[i]
			}
		}
	}
	for i, f := range found {
		end := len(s)
		if f.key != "text" && i+1 < len(found) {
			end = found[i+1].start
		}
		if f.val > end {
			continue
		}
		v := strings.TrimSpace(s[f.val:end])
		switch f.key {
		case "id":
			r.ID = v
		case "sub":
			r.Sub = v
		case "dlvrd":
			r.Dlvrd = v
		case "submit date":
			r.Submit = parseReceiptTime(v)
		case "done date":
			r.Done = parseReceiptTime(v)
		case "stat":
			r.Stat = strings.ToUpper(v)
		case "err":
			r.Err = v
		case "text":
			r.Text = s[f.val:]
		}
	}
	return r, r.ID != "" || r.Stat != ""
}

// parseReceiptTime reads YYMMDDhhmm or YYMMDDhhmmss; zero when it cannot.
func parseReceiptTime(v string) time.Time {
	for _, layout := range []string{"060102150405", "0601021504"} {
		if len(v) == len(layout) {
			if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
				return t
			}
		}
	}
	return time.Time{}
}

// receiptFromPDU reads a delivery receipt from a deliver_sm or data_sm:
// the TLVs receipted_message_id and message_state take precedence over
// the text, which fills in what they lack. ok is false when p is not a
// receipt.
func receiptFromPDU(p *pdu.PDU) (r receipt, ok bool) {
	kind := p.ESMClass & pdu.ESMTypeMask
	isReceipt := kind == pdu.ESMDeliveryReceipt || kind == pdu.ESMIntermediate
	id, hasID := p.TLV(pdu.TagReceiptedMessageID)
	if hasID {
		isReceipt = true
	}
	if !isReceipt {
		return r, false
	}
	text := p.ShortMessage
	if len(text) == 0 {
		text, _ = p.TLV(pdu.TagMessagePayload)
	}
	r, _ = parseReceiptText(string(text))
	if hasID {
		if v := strings.TrimRight(string(id), "\x00"); v != "" {
			r.ID, r.IDFromTLV = v, true
		}
	}
	if st, ok := p.TLV(pdu.TagMessageState); ok && len(st) == 1 {
		if w, ok := messageStateWords[st[0]]; ok {
			r.Stat = w
		}
	}
	if r.Err == "" {
		if ne, ok := p.TLV(pdu.TagNetworkErrorCode); ok && len(ne) == 3 {
			r.Err = networkErrorText(ne)
		}
	}
	return r, r.ID != ""
}

func networkErrorText(ne []byte) string {
	const digits = "0123456789"
	code := int(ne[1])<<8 | int(ne[2])
	s := ""
	for code > 0 || s == "" {
		s = string(digits[code%10]) + s
		code /= 10
	}
	for len(s) < 3 {
		s = "0" + s
	}
	return s
}
