package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hermod-sms/hermod/api/client"
)

// handleEvents streams message state changes as server-sent events: one
// "message" event per change, its data the JSON of client.Event, and a
// comment every 15 seconds to keep proxies from closing the stream. The
// optional status query parameter (comma separated) filters by status.
// A client that reads too slowly loses events rather than slowing the
// server; it should re-read the messages it cares about after reconnecting.
// The stream ends when the server begins to shut down (see Serve), so that
// the shutdown does not wait for the client to hang up.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) *problem {
	var want map[string]bool
	for k := range r.URL.Query() {
		if k != "status" {
			return invalid(k, "unknown query parameter: the only one is status")
		}
	}
	if v := r.URL.Query().Get("status"); v != "" {
		want = map[string]bool{}
		for _, st := range strings.Split(v, ",") {
			st = strings.ToUpper(strings.TrimSpace(st))
			if !knownStatus(st) {
				return invalid("status", "%q is not a status: use one of %s", st, strings.Join(statuses, ", "))
			}
			want[st] = true
		}
	}
	rc := http.NewResponseController(w)
	own, stopOwn := s.own.Subscribe(256)
	defer stopOwn()
	var eng <-chan Event
	if s.cfg.Events != nil {
		ch, stop := s.cfg.Events.Subscribe(256)
		defer stop()
		eng = ch
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, ": hermod events\n\n"); err != nil {
		return nil
	}
	if err := rc.Flush(); err != nil {
		return internal(fmt.Errorf("event stream: the response writer cannot flush: %w", err))
	}
	stopping := shuttingDown(r.Context())
	tick := time.NewTicker(eventHeartbeat)
	defer tick.Stop()
	var seq int64
	send := func(e Event) error {
		if want != nil && !want[e.Status] {
			return nil
		}
		seq++
		b, _ := json.Marshal(client.Event{MessageID: e.MessageID, Status: e.Status, ChannelID: e.ChannelID, Time: e.Time.UTC()})
		_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := fmt.Fprintf(w, "id: %s\nevent: message\ndata: %s\n\n", strconv.FormatInt(seq, 10), b); err != nil {
			return err
		}
		return rc.Flush()
	}
	for {
		var err error
		select {
		case <-r.Context().Done():
			return nil
		case <-stopping:
			// A comment says why the stream ends; the client reconnects
			// (to another node, or to this one once it is back).
			_ = rc.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := fmt.Fprint(w, ": hermod is shutting down\n\n"); err == nil {
				_ = rc.Flush()
			}
			return nil
		case e, ok := <-own:
			if !ok {
				return nil
			}
			err = send(e)
		case e, ok := <-eng:
			if !ok {
				eng = nil // the engine's source ended; keep the API's own events
				continue
			}
			err = send(e)
		case <-tick.C:
			_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err = fmt.Fprint(w, ": keep-alive\n\n"); err == nil {
				err = rc.Flush()
			}
		}
		if err != nil {
			return nil // the client went away
		}
	}
}
