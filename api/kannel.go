package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/hermod-sms/hermod/api/client"
	"github.com/hermod-sms/hermod/store"
)

// handleKannelSend is Kannel's sendsms interface:
// /cgi-bin/sendsms?username=NAME&password=KEY&to=NUMBER&text=TEXT[&from=..][&smsc=CHANNEL][&dlr-mask=..][&dlr-url=..]
// username is the API key's name and password the key itself (send scope).
// Answers are plain text as Kannel gives them: 202 "0: Accepted for
// delivery", 403 "Authorization failed for sendsms", 400 with the reason.
// Several recipients may be given in to, separated by spaces.
//
// dlr-url (absolute http or https) is stored as the message's
// StatusCallback and dlr-mask as its StatusCallbackMask: RunCallbacks calls
// the URL, with Kannel's escapes substituted, when the message reaches a
// status the mask selects (no mask: every final status).
func (s *Server) handleKannelSend(w http.ResponseWriter, r *http.Request) *problem {
	text := func(status int, msg string) *problem {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = fmt.Fprint(w, msg)
		return nil
	}
	if r.Method == http.MethodPost && r.Header.Get("Content-Type") == "application/x-www-form-urlencoded" {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		if err := r.ParseForm(); err != nil {
			return text(http.StatusBadRequest, "Malformed request: "+err.Error())
		}
	}
	q := r.URL.Query()
	get := func(k string) string {
		if v := q.Get(k); v != "" {
			return v
		}
		return r.PostFormValue(k)
	}
	user, pass := get("username"), get("password")
	if user == "" {
		user = get("user")
	}
	if pass == "" {
		pass = get("pass")
	}
	pr, prob := s.authenticate(r.Context(), r, pass, ScopeSend)
	if prob != nil {
		if prob.Status == http.StatusTooManyRequests || prob.Status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(prob.retryAfter.Seconds()))))
			return text(prob.Status, "Temporary failure, try again later.")
		}
		return text(http.StatusForbidden, "Authorization failed for sendsms")
	}
	if user != pr.name {
		return text(http.StatusForbidden, "Authorization failed for sendsms")
	}
	to := strings.Fields(get("to"))
	body := get("text")
	if len(to) == 0 {
		return text(http.StatusBadRequest, "Missing receiver number, rejected")
	}
	if body == "" {
		return text(http.StatusBadRequest, "Missing text, rejected")
	}
	if len(to) > s.cfg.MaxBatch {
		return text(http.StatusRequestEntityTooLarge, fmt.Sprintf("Too many receivers (limit %d), rejected", s.cfg.MaxBatch))
	}
	var coding *int
	if v := get("coding"); v != "" {
		c, err := strconv.Atoi(v)
		if err != nil || c < 0 || c > 2 {
			return text(http.StatusBadRequest, "Invalid coding: use 0 (7-bit), 1 (8-bit) or 2 (UCS-2)")
		}
		dc := []int{0, 4, 8}[c]
		coding = &dc
	}
	noDLR := false
	mask := 0
	if v := get("dlr-mask"); v != "" {
		var err error
		mask, err = strconv.Atoi(v)
		if err != nil || mask < 0 || mask > 255 {
			return text(http.StatusBadRequest, "Invalid dlr-mask: give a number from 0 to 255")
		}
		noDLR = mask&(1|2) == 0
	}
	dlrURL := get("dlr-url")
	if get("dlr-mask") != "" && mask == 0 {
		dlrURL = "" // Kannel: dlr-mask=0 asks for no reports
	}
	if dlrURL != "" {
		if err := validCallbackURL(dlrURL); err != nil {
			return text(http.StatusBadRequest, "Invalid dlr-url: "+err.Error())
		}
	}
	dlr := !noDLR
	channel := get("smsc")
	msgs := make([]client.NewMessage, len(to))
	for i, t := range to {
		if strings.HasPrefix(t, "00") {
			t = "+" + t[2:]
		}
		msgs[i] = client.NewMessage{ToAddress: t, FromAddress: get("from"), Body: body, DataCoding: coding, Channel: channel, RequestDeliveryReport: &dlr}
	}
	results, p := s.insertWith(r, msgs, len(msgs) > 1, func(nm *store.NewMessage) {
		nm.StatusCallback, nm.StatusCallbackMask = dlrURL, mask
	})
	if p != nil {
		if p.Status == http.StatusBadRequest {
			return text(http.StatusBadRequest, "Invalid request: "+p.Detail)
		}
		if p.Status >= 500 {
			return p
		}
		return text(p.Status, p.Detail)
	}
	w.Header().Set("X-Hermod-Message-ID", strconv.FormatInt(results[0].ID, 10))
	if len(results) > 1 {
		return text(http.StatusAccepted, fmt.Sprintf("0: Accepted for delivery (%d messages)", len(results)))
	}
	return text(http.StatusAccepted, "0: Accepted for delivery")
}
