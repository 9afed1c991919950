package api

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/hermod-sms/hermod/api/client"
)

// problemTypeBase is where the problem types are documented: each type URI
// is an anchor in docs/api.md.
const problemTypeBase = "https://github.com/hermod-sms/hermod/blob/main/docs/api.md#problem-"

// Problem types. Each has a section in docs/api.md.
const (
	problemInvalid      = "invalid-request"
	problemUnauthorized = "unauthorized"
	problemForbidden    = "forbidden"
	problemNotFound     = "not-found"
	problemConflict     = "conflict"
	problemTooLarge     = "too-large"
	problemRateLimited  = "rate-limited"
	problemUnsupported  = "unsupported-media-type"
	problemMethod       = "method-not-allowed"
	problemUnavailable  = "unavailable"
	problemInternal     = "internal"
)

// problem is an error a handler returns to have it answered as
// application/problem+json.
type problem struct {
	client.Problem
	retryAfter time.Duration
	cause      error // logged for 5xx, never shown
}

func (p *problem) Error() string { return p.Problem.Error() }

func newProblem(status int, typ, detail string, fields ...client.FieldError) *problem {
	return &problem{Problem: client.Problem{
		Type:   problemTypeBase + typ,
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
		Errors: fields,
	}}
}

// invalid is a 400 naming one field.
func invalid(field, format string, args ...any) *problem {
	d := fmt.Sprintf(format, args...)
	return newProblem(http.StatusBadRequest, problemInvalid, field+": "+d, client.FieldError{Field: field, Detail: d})
}

func notFound(format string, args ...any) *problem {
	return newProblem(http.StatusNotFound, problemNotFound, fmt.Sprintf(format, args...))
}

func conflict(format string, args ...any) *problem {
	return newProblem(http.StatusConflict, problemConflict, fmt.Sprintf(format, args...))
}

func internal(err error) *problem {
	p := newProblem(http.StatusInternalServerError, problemInternal, "the server failed to answer; the error is logged, try again later")
	p.cause = err
	return p
}

func unavailable(err error, detail string) *problem {
	p := newProblem(http.StatusServiceUnavailable, problemUnavailable, detail)
	p.cause = err
	p.retryAfter = 5 * time.Second
	return p
}

// writeProblem answers with p as application/problem+json.
func (s *Server) writeProblem(w http.ResponseWriter, r *http.Request, p *problem) {
	p.Instance = r.URL.Path
	if p.Status >= 500 {
		s.log.ErrorContext(r.Context(), "api: request failed", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", p.Status), slog.Any("error", p.cause))
	}
	if p.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(p.retryAfter.Seconds()))))
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p.Problem)
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
