package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hermod-sms/hermod/api/client"
	"github.com/hermod-sms/hermod/store"
)

// handleHealthz answers 200 while the process serves requests.
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) *problem {
	writeJSON(w, http.StatusOK, client.Health{Status: "ok"})
	return nil
}

// handleReadyz answers 200 when the database answers and its schema is at
// the latest migration, 503 otherwise. When a statement of the engine fails
// on a database that answers (a broken trigger, a column changed by hand),
// it still answers 200, with Status "degraded" and the failing operations
// in Problems: this node still takes messages, and taking it out of a load
// balancer would not help, since every node shares the database. Monitor
// Status to learn of it.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) *problem {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		return unavailable(err, "the database does not answer: check that it is running and reachable")
	}
	h := client.Health{Status: "ok", Backend: s.store.Backend()}
	if m, ok := s.store.(store.Migrator); ok {
		cur, latest, dirty, err := m.MigrateStatus(ctx)
		if err != nil {
			return unavailable(err, "the schema version could not be read: run `hermod migrate status`")
		}
		h.SchemaVersion, h.LatestSchemaVersion = cur, latest
		switch {
		case dirty:
			return unavailable(nil, fmt.Sprintf("the schema is marked dirty at version %d by a failed migration: fix it and run `hermod migrate up`", cur))
		case cur != latest:
			return unavailable(nil, fmt.Sprintf("the schema is at version %d, the latest is %d: run `hermod migrate up`", cur, latest))
		}
	}
	if s.cfg.Problems != nil {
		if h.Problems = s.cfg.Problems(); len(h.Problems) > 0 {
			h.Status = "degraded"
		}
	}
	writeJSON(w, http.StatusOK, h)
	return nil
}
