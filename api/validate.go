package api

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hermod-sms/hermod/api/client"
	"github.com/hermod-sms/hermod/store"
)

// Column limits from docs/schema.md.
const (
	maxAddress   = 64
	maxRefLength = 100
	maxCustom    = 1000
	maxSenderID  = 11
)

// fieldErrors collects what is wrong with a request, at most maxErrors.
type fieldErrors []client.FieldError

const maxErrors = 50

func (fe *fieldErrors) add(field, format string, args ...any) {
	if len(*fe) < maxErrors {
		*fe = append(*fe, client.FieldError{Field: field, Detail: fmt.Sprintf(format, args...)})
	}
}

func (fe fieldErrors) problem() *problem {
	if len(fe) == 0 {
		return nil
	}
	detail := fe[0].Field + ": " + fe[0].Detail
	if len(fe) > 1 {
		detail = fmt.Sprintf("%s (and %d more errors, see errors)", detail, len(fe)-1)
	}
	return newProblem(400, problemInvalid, detail, fe...)
}

// validRecipient reports whether s is an international number
// (+ then 7 to 15 digits, no leading 0) or a national number or short code
// (3 to 15 digits).
func validRecipient(s string) bool {
	digits := s
	if strings.HasPrefix(s, "+") {
		digits = s[1:]
		if len(digits) < 7 || len(digits) > 15 || digits[0] == '0' {
			return false
		}
	} else if len(digits) < 3 || len(digits) > 15 {
		return false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return false
		}
	}
	return true
}

// validSenderID reports whether s is an alphanumeric sender id: 1 to 11
// characters of the GSM basic set's letters, digits, space and . - _ & with
// at least one letter.
func validSenderID(s string) bool {
	if s == "" || len(s) > maxSenderID {
		return false
	}
	letter := false
	for _, c := range s {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
			letter = true
		case c >= '0' && c <= '9', c == ' ', c == '.', c == '-', c == '_', c == '&':
		default:
			return false
		}
	}
	return letter
}

func recipientHint(s string) string {
	switch {
	case strings.TrimSpace(s) == "":
		return "is empty: give the recipient's number, e.g. +31612345678"
	case strings.ContainsAny(s, " -()./"):
		return fmt.Sprintf("%q contains spaces or punctuation: give digits only, with a leading + for an international number (e.g. +31612345678)", s)
	case strings.HasPrefix(s, "00"):
		return fmt.Sprintf("%q starts with 00: write the international prefix as + (e.g. +%s)", s, strings.TrimPrefix(s, "00"))
	case strings.HasPrefix(s, "+0"):
		return fmt.Sprintf("%q: a country code never starts with 0; drop the 0 after the + (e.g. +31612345678)", s)
	}
	return fmt.Sprintf("%q is not a phone number: give + and 7 to 15 digits (E.164, e.g. +31612345678), or a national number or short code of 3 to 15 digits", s)
}

// checkText adds an error for a string that the database cannot hold.
func checkText(fe *fieldErrors, field, s string, limit int) {
	if strings.IndexByte(s, 0) >= 0 {
		fe.add(field, "contains a NUL character (\\u0000), which the database cannot store: remove it")
	}
	if n := utf8.RuneCountInString(s); n > limit {
		fe.add(field, "is %d characters long; the limit is %d: shorten it", n, limit)
	}
}

// checkTextAt is checkText for a field of a submitted message: the field's
// name is built only when the value is wrong, which in a batch of
// thousands saves an allocation per field.
func checkTextAt(fe *fieldErrors, at fieldPath, name, s string, limit int) {
	if strings.IndexByte(s, 0) >= 0 || len(s) > limit && utf8.RuneCountInString(s) > limit {
		checkText(fe, at.field(name), s, limit)
	}
}

// fieldPath says where a submitted message is: the only one of its
// request, or Messages[i] of a batch. Field names in errors are built from
// it only when there is an error.
type fieldPath struct {
	batch bool
	i     int
}

// field returns the name of a field of the message in errors:
// "ToAddress", or "Messages[3].ToAddress" in a batch.
func (p fieldPath) field(name string) string {
	if !p.batch {
		return name
	}
	return "Messages[" + strconv.Itoa(p.i) + "]." + name
}

func badTime(t time.Time) bool {
	return !t.IsZero() && (t.Year() < 2000 || t.Year() > 9999)
}

func checkTime(fe *fieldErrors, field string, t time.Time) {
	if badTime(t) {
		fe.add(field, "%s is out of range: give an RFC 3339 time between the years 2000 and 9999, e.g. 2030-01-02T15:04:05Z", t.Format(time.RFC3339))
	}
}

// toNewMessage validates one submitted message and converts it. The
// channel name is resolved by the caller (channelIDs) because it needs the
// database.
func (s *Server) toNewMessage(fe *fieldErrors, at fieldPath, m *client.NewMessage, channelIDs map[string]int64) store.NewMessage {
	f := at.field
	if !validRecipient(m.ToAddress) {
		fe.add(f("ToAddress"), "%s", recipientHint(m.ToAddress))
	}
	if m.FromAddress != "" && !validRecipient(m.FromAddress) && !validSenderID(m.FromAddress) {
		fe.add(f("FromAddress"), "%q is neither a phone number (+ and 7 to 15 digits, or 3 to 15 digits) nor an alphanumeric sender id (1 to 11 letters, digits, space, . - _ &, with at least one letter)", m.FromAddress)
	}
	if m.Body == "" {
		fe.add(f("Body"), "is empty: give the text to send")
	} else {
		checkTextAt(fe, at, "Body", m.Body, s.cfg.MaxBodyLength)
	}
	checkTextAt(fe, at, "BatchID", m.BatchID, maxRefLength)
	checkTextAt(fe, at, "CampaignID", m.CampaignID, maxRefLength)
	checkTextAt(fe, at, "ClientReference", m.ClientReference, maxRefLength)
	checkTextAt(fe, at, "CustomField1", m.CustomField1, maxCustom)
	checkTextAt(fe, at, "CustomField2", m.CustomField2, maxCustom)
	if m.FromTON != nil && (*m.FromTON < 0 || *m.FromTON > 7) {
		fe.add(f("FromTON"), "%d is out of range: give 0 to 7 (1 international, 5 alphanumeric), or leave it out to let the channel decide", *m.FromTON)
	}
	if m.FromNPI != nil && (*m.FromNPI < 0 || *m.FromNPI > 18) {
		fe.add(f("FromNPI"), "%d is out of range: give 0 to 18 (1 E.164), or leave it out to let the channel decide", *m.FromNPI)
	}
	if m.DataCoding != nil && (*m.DataCoding < 0 || *m.DataCoding > 255) {
		fe.add(f("DataCoding"), "%d is out of range: give 0 to 255 (0 GSM 7-bit, 3 Latin-1, 8 UCS-2), or leave it out for automatic", *m.DataCoding)
	}
	if m.Priority < math.MinInt32 || m.Priority > math.MaxInt32 {
		fe.add(f("Priority"), "%d is out of range: give a 32-bit integer (higher is sent first)", m.Priority)
	}
	if badTime(m.ScheduledTime) {
		checkTime(fe, f("ScheduledTime"), m.ScheduledTime)
	}
	if badTime(m.ValidUntil) {
		checkTime(fe, f("ValidUntil"), m.ValidUntil)
	}
	if !m.ValidUntil.IsZero() && !m.ScheduledTime.IsZero() && !m.ValidUntil.After(m.ScheduledTime) {
		fe.add(f("ValidUntil"), "is not after ScheduledTime: the message would expire before it is sent")
	}
	var chID int64
	if m.Channel != "" {
		id, ok := channelIDs[m.Channel]
		if !ok {
			fe.add(f("Channel"), "there is no channel named %q: give the name of an existing channel (GET /api/v1/channels), or leave it out to let the router choose", m.Channel)
		}
		chID = id
	}
	return store.NewMessage{
		ToAddress:        m.ToAddress,
		FromAddress:      m.FromAddress,
		FromTON:          m.FromTON,
		FromNPI:          m.FromNPI,
		Body:             m.Body,
		DataCoding:       m.DataCoding,
		ChannelID:        chID,
		Priority:         m.Priority,
		ScheduledTime:    m.ScheduledTime.UTC(),
		ValidUntil:       m.ValidUntil.UTC(),
		NoDeliveryReport: m.RequestDeliveryReport != nil && !*m.RequestDeliveryReport,
		BatchID:          m.BatchID,
		CampaignID:       m.CampaignID,
		ClientReference:  m.ClientReference,
		CustomField1:     m.CustomField1,
		CustomField2:     m.CustomField2,
	}
}

// sameContent reports whether an existing message is what nm asks for, so
// that a repeated ClientReference is a retry and not a conflict. Times are
// compared to the millisecond, the schema's precision.
func sameContent(m *store.Message, nm *store.NewMessage) (bool, string) {
	intOr := func(p *int) int {
		if p == nil {
			return -1
		}
		return *p
	}
	sameTime := func(a, b time.Time) bool {
		return a.Truncate(time.Millisecond).Equal(b.Truncate(time.Millisecond))
	}
	switch {
	case m.Direction != store.DirectionOut:
		return false, "Direction"
	case m.ToAddress != nm.ToAddress:
		return false, "ToAddress"
	case m.Body != nm.Body:
		return false, "Body"
	case m.FromAddress != nm.FromAddress:
		return false, "FromAddress"
	case nm.ChannelID != 0 && m.ChannelID != nm.ChannelID:
		return false, "Channel"
	case m.Priority != nm.Priority:
		return false, "Priority"
	case m.FromTON != intOr(nm.FromTON):
		return false, "FromTON"
	case m.FromNPI != intOr(nm.FromNPI):
		return false, "FromNPI"
	case m.DataCoding != intOr(nm.DataCoding):
		return false, "DataCoding"
	case m.RequestDeliveryReport == nm.NoDeliveryReport:
		return false, "RequestDeliveryReport"
	case !nm.ScheduledTime.IsZero() && !sameTime(m.ScheduledTime, nm.ScheduledTime):
		return false, "ScheduledTime"
	case !sameTime(m.ValidUntil, nm.ValidUntil):
		return false, "ValidUntil"
	case m.BatchID != nm.BatchID:
		return false, "BatchID"
	case m.CampaignID != nm.CampaignID:
		return false, "CampaignID"
	case m.CustomField1 != nm.CustomField1:
		return false, "CustomField1"
	case m.CustomField2 != nm.CustomField2:
		return false, "CustomField2"
	}
	return true, ""
}
