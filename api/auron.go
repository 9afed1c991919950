package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hermod-sms/hermod/api/client"
	"github.com/hermod-sms/hermod/store"
)

// The Auron SMS Server compatibility endpoints: /{channel}/messagedb/...
// with the key bare in the Authorization header and Auron's JSON shapes.
// {channel} names the Hermod channel that sends the messages; "any" (or
// "-") lets the router choose.

// Auron result codes (LastError).
const (
	auronOK       = 0
	auronInvalid  = 1 // a field is wrong; LastErrorDescription says which
	auronConflict = 2 // the change is not possible in the message's state
	auronNotFound = 3 // no message with that ID
)

// auronIgnored are Auron message fields that Hermod has no use for and
// accepts without storing, so that existing clients work unchanged.
var auronIgnored = map[string]bool{
	"BillingID": true, "ConversationID": true, "Creator": true, "Hash": true, "Archive": true,
	"AckStatusID": true, "ToAddressTon": true, "ToAddressNpi": true, "BodyFormat": true, "HasUdh": true,
	"Header": true, "Attachments": true, "Tlvs": true,
}

type auronRequest struct {
	Message []map[string]json.RawMessage `json:"message"`
}

type auronResult struct {
	LocalID              json.RawMessage `json:"LocalID"`
	ID                   string          `json:"ID"`
	LastError            int             `json:"LastError"`
	LastErrorDescription string          `json:"LastErrorDescription"`
}

type auronResponse struct {
	Result []auronResult `json:"result"`
}

// auronChannel resolves the {channel} path segment.
func (s *Server) auronChannel(r *http.Request) (string, *problem) {
	name := r.PathValue("channel")
	if name == "any" || name == "-" {
		return "", nil
	}
	if _, err := s.store.ChannelGet(r.Context(), name); err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
			return "", notFound("there is no channel named %q: put an existing channel's name, or \"any\" to let the router choose, before /messagedb/", name)
		}
		return "", storeProblem(err, "look up channel "+name)
	}
	return name, nil
}

func (s *Server) readAuron(w http.ResponseWriter, r *http.Request) (*auronRequest, *problem) {
	body, p := readBody(w, r, s.cfg.MaxRequestBytes)
	if p != nil {
		return nil, p
	}
	var req auronRequest
	if p := decodeJSON(body, &req); p != nil {
		return nil, p
	}
	if len(req.Message) == 0 {
		return nil, invalid("message", "is empty or missing: send {\"message\": [{...}, ...]}")
	}
	if len(req.Message) > s.cfg.MaxBatch {
		return nil, newProblem(http.StatusRequestEntityTooLarge, problemTooLarge, fmt.Sprintf("the request holds %d messages; the limit is %d: split it", len(req.Message), s.cfg.MaxBatch))
	}
	return &req, nil
}

// auronMessage converts one Auron message object to a NewMessage.
func auronMessage(fields map[string]json.RawMessage, channel string) (client.NewMessage, error) {
	m := client.NewMessage{Channel: channel}
	var validity int
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		raw := fields[k]
		var err error
		switch k {
		case "LocalID":
		case "TypeID":
			var v string
			if err = json.Unmarshal(raw, &v); err == nil && !strings.EqualFold(v, "SMS") {
				err = fmt.Errorf("%q: Hermod sends SMS only; use \"SMS\"", v)
			}
		case "StatusID":
			var v string
			if err = json.Unmarshal(raw, &v); err == nil && v != "" && !strings.EqualFold(v, store.StatusScheduled) {
				err = fmt.Errorf("%q: a new message is SCHEDULED", v)
			}
		case "DirectionID":
			var v string
			if err = json.Unmarshal(raw, &v); err == nil && v != "" && !strings.EqualFold(v, store.DirectionOut) && !strings.EqualFold(v, "OUTGOING") {
				err = fmt.Errorf("%q: only outgoing messages can be created", v)
			}
		case "ChannelID":
			var v string
			if err = unmarshalLoose(raw, &v); err == nil && v != "" {
				m.Channel = v
			}
		case "ToAddress":
			err = json.Unmarshal(raw, &m.ToAddress)
		case "FromAddress":
			err = json.Unmarshal(raw, &m.FromAddress)
		case "FromAddressTon":
			err = json.Unmarshal(raw, &m.FromTON)
		case "FromAddressNpi":
			err = json.Unmarshal(raw, &m.FromNPI)
		case "Body":
			err = json.Unmarshal(raw, &m.Body)
		case "DataCoding":
			err = json.Unmarshal(raw, &m.DataCoding)
		case "Priority":
			err = json.Unmarshal(raw, &m.Priority)
		case "RequestDeliveryReport":
			var v any
			if err = json.Unmarshal(raw, &v); err == nil {
				b := v == true || v == float64(1) || v == "1" || v == "true"
				m.RequestDeliveryReport = &b
			}
		case "ScheduledTime":
			var v string
			if err = json.Unmarshal(raw, &v); err == nil && v != "" {
				m.ScheduledTime, err = parseAuronTime(v)
			}
		case "ValidityPeriod":
			err = json.Unmarshal(raw, &validity)
			if err == nil && validity < 0 {
				err = errors.New("give the validity in minutes")
			}
		case "BatchID":
			err = unmarshalLoose(raw, &m.BatchID)
		case "CampaignID":
			err = unmarshalLoose(raw, &m.CampaignID)
		case "ClientReference":
			err = unmarshalLoose(raw, &m.ClientReference)
		case "CustomField1":
			err = unmarshalLoose(raw, &m.CustomField1)
		case "CustomField2":
			err = unmarshalLoose(raw, &m.CustomField2)
		default:
			if !auronIgnored[k] {
				err = errors.New("unknown field: remove it or check the spelling")
			}
		}
		if err != nil {
			return m, fmt.Errorf("%s: %w", k, err)
		}
	}
	if validity > 0 {
		from := m.ScheduledTime
		if from.IsZero() {
			from = time.Now()
		}
		m.ValidUntil = from.Add(time.Duration(validity) * time.Minute).UTC()
	}
	return m, nil
}

// unmarshalLoose reads a JSON string or number into a string (Auron's
// BatchID and CustomField1 are numbers).
func unmarshalLoose(raw json.RawMessage, dst *string) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] != '"' {
		var n json.Number
		if err := json.Unmarshal(raw, &n); err != nil {
			return errors.New("give a string or a number")
		}
		*dst = n.String()
		return nil
	}
	return json.Unmarshal(raw, dst)
}

func parseAuronTime(v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time: write it as YYYY-MM-DD HH:MM:SS (UTC) or RFC 3339", v)
}

func (s *Server) handleAuronCreate(w http.ResponseWriter, r *http.Request) *problem {
	channel, p := s.auronChannel(r)
	if p != nil {
		return p
	}
	req, p := s.readAuron(w, r)
	if p != nil {
		return p
	}
	out := make([]auronResult, len(req.Message))
	cms := make([]client.NewMessage, len(req.Message))
	for i, fields := range req.Message {
		out[i].LocalID = fields["LocalID"]
		if out[i].LocalID == nil {
			out[i].LocalID = json.RawMessage(`""`)
		}
		cm, err := auronMessage(fields, channel)
		if err != nil {
			out[i].LastError, out[i].LastErrorDescription = auronInvalid, err.Error()
		}
		cms[i] = cm
	}
	channelIDs, p := s.resolveChannels(r, cms)
	if p != nil {
		return p
	}
	var (
		nms []store.NewMessage
		idx []int
	)
	for i := range cms {
		if out[i].LastError != auronOK {
			continue
		}
		var fe fieldErrors
		nm := s.toNewMessage(&fe, fieldPath{}, &cms[i], channelIDs)
		if len(fe) > 0 {
			out[i].LastError, out[i].LastErrorDescription = auronInvalid, fe[0].Field+": "+fe[0].Detail
			continue
		}
		nms = append(nms, nm)
		idx = append(idx, i)
	}
	if len(nms) > 0 {
		res, err := s.insertMessages(r.Context(), nms)
		if err != nil {
			return insertProblem(err)
		}
		for j, ir := range res {
			i := idx[j]
			out[i].ID = strconv.FormatInt(ir.ID, 10)
			out[i].LastErrorDescription = "Success"
			if !ir.Existing {
				s.publish(ir.ID, store.StatusScheduled, nms[j].ChannelID)
				continue
			}
			m, err := s.store.MessageGet(r.Context(), ir.ID)
			if err != nil {
				return storeProblem(err, "read the message with the same ClientReference")
			}
			if same, field := sameContent(m, &nms[j]); !same {
				out[i].LastError = auronConflict
				out[i].LastErrorDescription = fmt.Sprintf("ClientReference %q belongs to message %d, whose %s differs", nms[j].ClientReference, ir.ID, field)
			}
		}
	}
	writeJSON(w, http.StatusOK, auronResponse{Result: out})
	return nil
}

// handleAuronUpdate applies the changes Hermod supports to existing
// messages: StatusID CANCELLED cancels, StatusID SCHEDULED sends a failed
// message again, TriggerStatusID "" runs its triggers again. Fields that
// repeat the stored value are accepted; other changes are refused per
// message.
func (s *Server) handleAuronUpdate(w http.ResponseWriter, r *http.Request) *problem {
	if _, p := s.auronChannel(r); p != nil {
		return p
	}
	req, p := s.readAuron(w, r)
	if p != nil {
		return p
	}
	out := make([]auronResult, len(req.Message))
	for i, fields := range req.Message {
		out[i].LocalID = fields["LocalID"]
		if out[i].LocalID == nil {
			out[i].LocalID = json.RawMessage(`""`)
		}
		code, desc, id := s.auronUpdateOne(r, fields)
		out[i].LastError, out[i].LastErrorDescription = code, desc
		if id > 0 {
			out[i].ID = strconv.FormatInt(id, 10)
		}
	}
	s.nudge()
	writeJSON(w, http.StatusOK, auronResponse{Result: out})
	return nil
}

func (s *Server) auronUpdateOne(r *http.Request, fields map[string]json.RawMessage) (int, string, int64) {
	ctx := r.Context()
	var idText string
	if err := unmarshalLoose(fields["ID"], &idText); err != nil || fields["ID"] == nil {
		return auronInvalid, "ID: give the ID of the message to update", 0
	}
	id, err := strconv.ParseInt(idText, 10, 64)
	if err != nil || id <= 0 {
		return auronInvalid, fmt.Sprintf("ID: %q is not a message ID", idText), 0
	}
	m, err := s.store.MessageGet(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return auronNotFound, fmt.Sprintf("there is no message %d", id), id
		}
		s.log.ErrorContext(ctx, "api: auron update: read message", slog.Int64("id", id), slog.Any("error", err))
		return auronConflict, "the message could not be read; try again", id
	}
	current := toClientMessage(m)
	cur, _ := json.Marshal(current)
	var curFields map[string]json.RawMessage
	_ = json.Unmarshal(cur, &curFields)
	var action func() error
	var what string
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		raw := fields[k]
		switch k {
		case "ID", "LocalID", "TypeID":
			continue
		case "StatusID":
			var v string
			if err := json.Unmarshal(raw, &v); err != nil {
				return auronInvalid, "StatusID: give a status string", id
			}
			switch v = strings.ToUpper(v); {
			case v == m.Status:
			case v == store.StatusCancelled:
				action, what = func() error { return s.store.MessageCancel(ctx, id) }, "cancelled"
			case v == store.StatusScheduled:
				action, what = func() error { return s.store.MessageReprocess(ctx, id, true) }, "sent again"
			default:
				return auronInvalid, fmt.Sprintf("StatusID: %q cannot be set through the API; use CANCELLED to cancel or SCHEDULED to send a failed message again", v), id
			}
		case "TriggerStatusID":
			var v string
			if err := json.Unmarshal(raw, &v); err != nil {
				return auronInvalid, "TriggerStatusID: give a string", id
			}
			if v != "" && v != m.TriggerStatus {
				return auronInvalid, "TriggerStatusID: only \"\" (run the triggers again) can be set", id
			}
			if v == "" && action == nil {
				action, what = func() error { return s.store.MessageReprocess(ctx, id, false) }, "reprocessed"
			}
		default:
			if auronIgnored[k] {
				continue
			}
			if c, ok := curFields[k]; ok && jsonEqual(c, raw) {
				continue
			}
			return auronInvalid, fmt.Sprintf("%s: changing it is not supported by Hermod's API; create a new message instead", k), id
		}
	}
	if action == nil {
		return auronOK, "Success", id
	}
	if err := action(); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return auronConflict, fmt.Sprintf("message %d is %s and cannot be %s", id, m.Status, what), id
		}
		if errors.Is(err, store.ErrNotFound) {
			return auronNotFound, fmt.Sprintf("there is no message %d", id), id
		}
		s.log.ErrorContext(ctx, "api: auron update", slog.Int64("id", id), slog.Any("error", err))
		return auronConflict, "the message could not be changed; try again", id
	}
	if m2, err := s.store.MessageGet(ctx, id); err == nil {
		s.publish(id, m2.Status, m2.ChannelID)
	}
	return auronOK, "Success", id
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// auronLoadRequest is the body of messagedb/load.
type auronLoadRequest struct {
	// Filter is a WHERE condition over Messages (a safe subset of SQL).
	Filter string `json:"Filter"`
	// OrderBy is "ID" / "ID ASC" (the default) or "ID DESC".
	OrderBy string `json:"OrderBy"`
	// Limit is the most messages returned: default 100, at most 10,000.
	Limit int `json:"Limit"`
}

type auronMessageOut struct {
	client.Message
	TypeID          string `json:"TypeID"`
	StatusID        string `json:"StatusID"`
	DirectionID     string `json:"DirectionID"`
	TriggerStatusID string `json:"TriggerStatusID"`
}

// maxFilterScan bounds the rows a load reads to find its matches.
const maxFilterScan = 100000

func (s *Server) handleAuronLoad(w http.ResponseWriter, r *http.Request) *problem {
	channel, p := s.auronChannel(r)
	if p != nil {
		return p
	}
	body, p := readBody(w, r, 1<<20)
	if p != nil {
		return p
	}
	var req auronLoadRequest
	if p := decodeJSON(body, &req); p != nil {
		return p
	}
	node, err := parseFilter(req.Filter)
	if err != nil {
		return invalid("Filter", "%v", err)
	}
	limit := req.Limit
	switch {
	case limit == 0:
		limit = 100
	case limit < 0 || limit > 10000:
		return invalid("Limit", "%d: give 1 to 10000", req.Limit)
	}
	f := store.MessageFilter{Ascending: true, Limit: 1000}
	switch strings.ToUpper(strings.Join(strings.Fields(req.OrderBy), " ")) {
	case "", "ID", "ID ASC":
	case "ID DESC":
		f.Ascending = false
	default:
		return invalid("OrderBy", "%q: use \"ID\" or \"ID DESC\"", req.OrderBy)
	}
	if node != nil {
		pushDown(node, &f)
	}
	if channel != "" {
		ch, err := s.store.ChannelGet(r.Context(), channel)
		if err != nil {
			return storeProblem(err, "look up channel "+channel)
		}
		if f.ChannelID != 0 && f.ChannelID != ch.ID {
			writeJSON(w, http.StatusOK, map[string]any{"message": []auronMessageOut{}})
			return nil
		}
		f.ChannelID = ch.ID
	}
	out := []auronMessageOut{}
	scanned := 0
	for len(out) < limit {
		page, err := s.store.MessageList(r.Context(), f)
		if err != nil {
			return storeProblem(err, "load messages")
		}
		for _, m := range page {
			if matches(node, m) {
				out = append(out, auronMessageOut{Message: toClientMessage(m), TypeID: "SMS", StatusID: m.Status, DirectionID: m.Direction, TriggerStatusID: m.TriggerStatus})
				if len(out) == limit {
					break
				}
			}
		}
		scanned += len(page)
		if len(page) < f.Limit {
			break
		}
		if scanned >= maxFilterScan {
			w.Header().Set("X-Hermod-Scan-Limit", strconv.Itoa(scanned))
			s.log.WarnContext(r.Context(), "api: auron load stopped at the scan limit; narrow the Filter with Status, Direction, ChannelID, BatchID, CampaignID or CreatedTime", slog.Int("scanned", scanned))
			break
		}
		f.AfterID = page[len(page)-1].ID
	}
	writeJSON(w, http.StatusOK, map[string]any{"message": out})
	return nil
}

func (s *Server) handleAuronVersion(w http.ResponseWriter, r *http.Request) *problem {
	writeJSON(w, http.StatusOK, map[string]string{"version": s.cfg.Version, "product": "Hermod"})
	return nil
}
