package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hermod-sms/hermod/api/client"
	"github.com/hermod-sms/hermod/store"
)

// sendRequest is the body of POST /api/v1/messages: one message, or a batch
// in Messages.
type sendRequest struct {
	client.NewMessage
	Messages []client.NewMessage `json:"Messages"`
}

func (s *Server) handleSend(w http.ResponseWriter, r *http.Request) *problem {
	body, p := readBody(w, r, s.cfg.MaxRequestBytes)
	if p != nil {
		return p
	}
	var req sendRequest
	if p := decodeJSON(body, &req); p != nil {
		return p
	}
	batch := req.Messages != nil
	msgs := req.Messages
	if !batch {
		msgs = []client.NewMessage{req.NewMessage}
	} else if req.NewMessage != (client.NewMessage{}) {
		return invalid("Messages", "a batch carries its messages in Messages only: move the other fields into each message")
	}
	if len(msgs) == 0 {
		return invalid("Messages", "is empty: give at least one message")
	}
	if len(msgs) > s.cfg.MaxBatch {
		return newProblem(http.StatusRequestEntityTooLarge, problemTooLarge,
			fmt.Sprintf("the batch holds %d messages; the limit is %d: split it into smaller batches", len(msgs), s.cfg.MaxBatch),
			client.FieldError{Field: "Messages", Detail: fmt.Sprintf("holds %d messages; at most %d", len(msgs), s.cfg.MaxBatch)})
	}
	results, p := s.insert(r, msgs, batch)
	if p != nil {
		return p
	}
	status := http.StatusOK
	for _, res := range results {
		if !res.Existing {
			status = http.StatusCreated
		}
	}
	if !batch {
		w.Header().Set("Location", "/api/v1/messages/"+strconv.FormatInt(results[0].ID, 10))
		writeJSON(w, status, results[0])
		return nil
	}
	writeJSON(w, status, client.BatchResult{Messages: results})
	return nil
}

// insert validates msgs, stores them in one transaction and checks repeated
// ClientReferences against the messages that already have them. Nothing is
// written unless every message is valid.
func (s *Server) insert(r *http.Request, msgs []client.NewMessage, batch bool) ([]client.SendResult, *problem) {
	return s.insertWith(r, msgs, batch, nil)
}

// insertWith is insert with extra, when not nil, setting the fields of each
// store.NewMessage that client.NewMessage does not carry (Kannel's dlr-url).
func (s *Server) insertWith(r *http.Request, msgs []client.NewMessage, batch bool, extra func(*store.NewMessage)) ([]client.SendResult, *problem) {
	ctx := r.Context()
	channelIDs, p := s.resolveChannels(r, msgs)
	if p != nil {
		return nil, p
	}
	var fe fieldErrors
	nms := make([]store.NewMessage, len(msgs))
	seen := map[string]int{}
	for i := range msgs {
		at := fieldPath{batch: batch, i: i}
		nms[i] = s.toNewMessage(&fe, at, &msgs[i], channelIDs)
		if extra != nil {
			extra(&nms[i])
		}
		if ref := msgs[i].ClientReference; ref != "" {
			if j, dup := seen[ref]; dup {
				fe.add(at.field("ClientReference"), "%q is also the ClientReference of Messages[%d]: give every message its own key", ref, j)
			}
			seen[ref] = i
		}
	}
	if p := fe.problem(); p != nil {
		return nil, p
	}
	res, err := s.insertMessages(ctx, nms)
	if err != nil {
		return nil, insertProblem(err)
	}
	out := make([]client.SendResult, len(res))
	var conflicts fieldErrors
	for i, ir := range res {
		out[i] = client.SendResult{ID: ir.ID, Status: store.StatusScheduled, ClientReference: nms[i].ClientReference, Existing: ir.Existing}
		if !ir.Existing {
			s.publish(ir.ID, store.StatusScheduled, nms[i].ChannelID)
			continue
		}
		m, err := s.store.MessageGet(ctx, ir.ID)
		if err != nil {
			return nil, storeProblem(err, "read the message with the same ClientReference")
		}
		out[i].Status = m.Status
		if same, field := sameContent(m, &nms[i]); !same {
			conflicts.add(fieldPath{batch: batch, i: i}.field("ClientReference"), "%q belongs to message %d, whose %s differs: use a new ClientReference for a different message, or resend exactly the same content", nms[i].ClientReference, ir.ID, field)
		}
	}
	if len(conflicts) > 0 {
		p := newProblem(http.StatusConflict, problemConflict, conflicts[0].Field+": "+conflicts[0].Detail, conflicts...)
		if batch {
			p.Detail = fmt.Sprintf("%d messages reuse a ClientReference with different content and were not stored; the others were (see results)", len(conflicts))
			p.Results = out
		}
		return nil, p
	}
	return out, nil
}

// insertMessages stores nms in one transaction and returns one result per
// message. Small requests share their transaction with concurrent ones
// (see inserter); big batches have their own. The engine is nudged after
// the commit.
func (s *Server) insertMessages(ctx context.Context, nms []store.NewMessage) ([]store.InsertResult, error) {
	if len(nms) <= groupMaxCall {
		return s.ins.insert(ctx, nms)
	}
	res, err := insertChecked(ctx, s.store, nms)
	if err == nil {
		s.nudge()
	}
	return res, err
}

// insertProblem maps an error of insertMessages to a problem. An error
// that is neither the user's doing nor a broken store means the database
// did not take the messages: 503, so that the client retries.
func insertProblem(err error) *problem {
	switch {
	case errors.Is(err, errStoreBroken):
		return internal(err)
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrInvalid),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return storeProblem(err, "store the messages")
	}
	return unavailable(err, "the database did not take the messages; try again after Retry-After, with the same ClientReference so that nothing is stored twice")
}

// resolveChannels looks up every channel name used in msgs.
func (s *Server) resolveChannels(r *http.Request, msgs []client.NewMessage) (map[string]int64, *problem) {
	ids := map[string]int64{}
	missing := map[string]bool{}
	for i := range msgs {
		name := msgs[i].Channel
		if name == "" || missing[name] {
			continue
		}
		if _, ok := ids[name]; ok {
			continue
		}
		now := s.now()
		if id, ok := s.channels.get(name, now); ok {
			ids[name] = id
			continue
		}
		ch, err := s.store.ChannelGet(r.Context(), name)
		switch {
		case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalid):
			missing[name] = true
		case err != nil:
			return nil, storeProblem(err, "look up channel "+name)
		default:
			ids[name] = ch.ID
			s.channels.put(name, ch.ID, now)
		}
	}
	return ids, nil
}

// channelCache keeps the IDs of channel names for at most a second, so
// that sends naming a channel do not cost a database round trip each.
// Names that do not exist are not kept: a channel created elsewhere is
// usable at once. A channel deleted by another process may still be
// accepted in sends for up to a second, as if the send had come just
// before the delete (the messages end up NOCHANNEL); a change through this
// server empties the cache at once.
type channelCache struct {
	ttl     time.Duration
	mu      sync.Mutex
	entries map[string]channelEntry
}

type channelEntry struct {
	id      int64
	expires time.Time
}

func (c *channelCache) get(name string, now time.Time) (int64, bool) {
	if c.ttl <= 0 {
		return 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[name]
	if !ok || now.After(e.expires) {
		return 0, false
	}
	return e.id, true
}

func (c *channelCache) put(name string, id int64, now time.Time) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) > 10000 {
		c.entries = map[string]channelEntry{}
	}
	c.entries[name] = channelEntry{id: id, expires: now.Add(c.ttl)}
}

// forget drops every cached name (after a channel changed).
func (c *channelCache) forget() {
	c.mu.Lock()
	clear(c.entries)
	c.mu.Unlock()
}

// storeProblem maps a store error to a problem: the sentinel errors are the
// user's doing, anything else is the server's.
func storeProblem(err error, what string) *problem {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound("%s: %v", what, err)
	case errors.Is(err, store.ErrConflict):
		return conflict("%s: %v", what, err)
	case errors.Is(err, store.ErrInvalid):
		return newProblem(http.StatusBadRequest, problemInvalid, fmt.Sprintf("%s: %v", what, err))
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return unavailable(err, "the request was cancelled or timed out before the database answered; try again")
	}
	return internal(fmt.Errorf("%s: %w", what, err))
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) *problem {
	f, p := s.parseFilter(r)
	if p != nil {
		return p
	}
	msgs, err := s.store.MessageList(r.Context(), f)
	if err != nil {
		return storeProblem(err, "list messages")
	}
	page := client.MessagePage{Messages: make([]client.Message, 0, len(msgs))}
	for _, m := range msgs {
		cm := toClientMessage(m)
		cm.Trace = ""
		page.Messages = append(page.Messages, cm)
	}
	if len(msgs) == f.Limit && len(msgs) > 0 {
		page.NextCursor = strconv.FormatInt(msgs[len(msgs)-1].ID, 10)
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

// listParams are the query parameters GET /api/v1/messages accepts.
var listParams = map[string]bool{
	"status": true, "direction": true, "channel": true, "address": true, "batch": true,
	"campaign": true, "since": true, "until": true, "after": true, "order": true, "limit": true,
}

func (s *Server) parseFilter(r *http.Request) (store.MessageFilter, *problem) {
	q := r.URL.Query()
	var fe fieldErrors
	for k := range q {
		if !listParams[k] {
			fe.add(k, "unknown query parameter: use status, direction, channel, address, batch, campaign, since, until, after, order or limit")
		}
	}
	f := store.MessageFilter{Limit: 100}
	for _, v := range q["status"] {
		for _, st := range strings.Split(v, ",") {
			st = strings.ToUpper(strings.TrimSpace(st))
			if st == "" {
				continue
			}
			if !knownStatus(st) {
				fe.add("status", "%q is not a status: use one of %s", st, strings.Join(statuses, ", "))
			}
			f.Status = append(f.Status, st)
		}
	}
	switch d := strings.ToUpper(q.Get("direction")); d {
	case "", store.DirectionIn, store.DirectionOut:
		f.Direction = d
	default:
		fe.add("direction", "%q is not a direction: use OUT or IN", q.Get("direction"))
	}
	if name := q.Get("channel"); name != "" {
		ch, err := s.store.ChannelGet(r.Context(), name)
		switch {
		case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalid):
			fe.add("channel", "there is no channel named %q: give the name of an existing channel", name)
		case err != nil:
			return f, storeProblem(err, "look up channel "+name)
		default:
			f.ChannelID = ch.ID
		}
	}
	f.Address = q.Get("address")
	f.BatchID = q.Get("batch")
	f.CampaignID = q.Get("campaign")
	f.Since = parseTimeParam(&fe, q, "since")
	f.Until = parseTimeParam(&fe, q, "until")
	if v := q.Get("after"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id < 0 {
			fe.add("after", "%q is not a cursor: pass the NextCursor of the previous page", v)
		}
		f.AfterID = id
	}
	switch o := strings.ToLower(q.Get("order")); o {
	case "", "desc":
	case "asc":
		f.Ascending = true
	default:
		fe.add("order", "%q: use asc (oldest first) or desc (newest first, the default)", o)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			fe.add("limit", "%q: give a number from 1 to 1000", v)
		}
		f.Limit = n
	}
	for _, k := range []string{"address", "batch", "campaign"} {
		checkText(&fe, k, q.Get(k), maxRefLength)
	}
	return f, fe.problem()
}

func parseTimeParam(fe *fieldErrors, q url.Values, name string) time.Time {
	v := q.Get(name)
	if v == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		if d, derr := time.Parse(time.DateOnly, v); derr == nil {
			return d
		}
		fe.add(name, "%q is not a time: give RFC 3339 (2030-01-02T15:04:05Z) or a date (2030-01-02)", v)
		return time.Time{}
	}
	checkTime(fe, name, t)
	return t.UTC()
}

var statuses = []string{
	store.StatusCreating, store.StatusScheduled, store.StatusQueued, store.StatusSending, store.StatusSent,
	store.StatusDelivered, store.StatusNotDelivered, store.StatusNoReport, store.StatusFailed, store.StatusBlocked,
	store.StatusNoChannel, store.StatusDailyLimit, store.StatusExpired, store.StatusCancelled, store.StatusReceived,
}

func knownStatus(s string) bool {
	for _, st := range statuses {
		if st == s {
			return true
		}
	}
	return false
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) *problem {
	id, p := parseID(r)
	if p != nil {
		return p
	}
	m, err := s.store.MessageGet(r.Context(), id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return notFound("there is no message %d", id)
		}
		return storeProblem(err, "read the message")
	}
	parts, err := s.store.MessageParts(r.Context(), id)
	if err != nil {
		return storeProblem(err, "read the message's parts")
	}
	cm := toClientMessage(m)
	for _, pt := range parts {
		cm.Parts = append(cm.Parts, client.Part{
			PartNumber: pt.PartNumber, ChannelID: pt.ChannelID, Reference: pt.Reference, Status: pt.Status,
			ErrorCode: pt.ErrorCode, SentTime: pt.SentTime, DeliveredTime: pt.DeliveredTime,
		})
	}
	writeJSON(w, http.StatusOK, cm)
	return nil
}

func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request) *problem {
	id, p := parseID(r)
	if p != nil {
		return p
	}
	if err := s.store.MessageCancel(r.Context(), id); err != nil {
		return s.messageChangeProblem(r, id, err, "cancelled", "only SCHEDULED and QUEUED messages can be cancelled")
	}
	return s.answerMessage(w, r, id, store.StatusCancelled)
}

func (s *Server) handleReprocess(w http.ResponseWriter, r *http.Request) *problem {
	id, p := parseID(r)
	if p != nil {
		return p
	}
	var req client.ReprocessRequest
	body, p := readBody(w, r, 64<<10)
	if p != nil {
		return p
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		if p := decodeJSON(body, &req); p != nil {
			return p
		}
	}
	if err := s.store.MessageReprocess(r.Context(), id, req.Resend); err != nil {
		return s.messageChangeProblem(r, id, err, "sent again", "only FAILED, NOCHANNEL, BLOCKED, DAILYLIMIT, EXPIRED, NOTDELIVERED and NOREPORT outgoing messages can be sent again; send {\"Resend\": false} to run its triggers again instead")
	}
	s.nudge()
	status := ""
	if req.Resend {
		status = store.StatusScheduled
	}
	return s.answerMessage(w, r, id, status)
}

// messageChangeProblem explains why a cancel or reprocess was refused.
func (s *Server) messageChangeProblem(r *http.Request, id int64, err error, verb, rule string) *problem {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound("there is no message %d", id)
	case errors.Is(err, store.ErrConflict):
		cur := "its current status"
		if m, gerr := s.store.MessageGet(r.Context(), id); gerr == nil {
			cur = m.Status
		}
		return conflict("message %d is %s and cannot be %s: %s", id, cur, verb, rule)
	}
	return storeProblem(err, "change message "+strconv.FormatInt(id, 10))
}

// answerMessage answers with the message as it is now, and publishes the
// change when status is not empty.
func (s *Server) answerMessage(w http.ResponseWriter, r *http.Request, id int64, status string) *problem {
	m, err := s.store.MessageGet(r.Context(), id)
	if err != nil {
		return storeProblem(err, "read the message")
	}
	if status != "" {
		s.publish(id, m.Status, m.ChannelID)
	}
	writeJSON(w, http.StatusOK, toClientMessage(m))
	return nil
}

func toClientMessage(m *store.Message) client.Message {
	opt := func(v int) *int {
		if v < 0 {
			return nil
		}
		return &v
	}
	return client.Message{
		ID: m.ID, Direction: m.Direction, Status: m.Status, TriggerStatus: m.TriggerStatus, ChannelID: m.ChannelID,
		ToAddress: m.ToAddress, FromAddress: m.FromAddress, FromTON: opt(m.FromTON), FromNPI: opt(m.FromNPI),
		Body: m.Body, DataCoding: opt(m.DataCoding), Priority: m.Priority, RequestDeliveryReport: m.RequestDeliveryReport,
		ScheduledTime: m.ScheduledTime, ValidUntil: m.ValidUntil, Reference: m.Reference, TotalParts: m.TotalParts,
		Attempts: m.Attempts, NextAttemptTime: m.NextAttemptTime, LeaseOwner: m.LeaseOwner, LeaseExpires: m.LeaseExpires,
		CreatedTime: m.CreatedTime, SentTime: m.SentTime, DeliveredTime: m.DeliveredTime, ReceivedTime: m.ReceivedTime,
		LastUpdate: m.LastUpdate, ErrorCode: m.ErrorCode, StatusDetails: m.StatusDetails, BatchID: m.BatchID,
		CampaignID: m.CampaignID, ClientReference: m.ClientReference, CustomField1: m.CustomField1,
		CustomField2: m.CustomField2, Trace: m.Trace,
	}
}
