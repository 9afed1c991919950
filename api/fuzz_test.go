package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzSendDecode posts arbitrary bodies to POST /api/v1/messages: the answer
// is always a 2xx, or a 4xx problem, never a 5xx or a crash.
func FuzzSendDecode(f *testing.F) {
	for _, s := range []string{
		`{"ToAddress":"+31612345678","Body":"hi"}`,
		`{"Messages":[{"ToAddress":"+31612345678","Body":"hi","ClientReference":"a"}]}`,
		`{"ToAddress":1}`, `{"ToAddress":"+31612345678","Body":"x","ScheduledTime":"2030-01-02T03:04:05Z"}`,
		`{"ToAddress":"+31612345678","Body":"x","ScheduledTime":"yesterday"}`, `{"Priority":1e40}`,
		"{\"Body\":\"\xff\"}", `[`, `null`, `{"Messages":null}`, `{"Messages":[null]}`, `{"FromTON":-1}`,
		`{"ToAddress":"+31612345678","Body":"x","ValidUntil":"0001-01-01T00:00:00Z"}`,
	} {
		f.Add(s)
	}
	b := setup(f)
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", "/api/v1/messages", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+b.sender)
		rec := httptest.NewRecorder()
		b.api.ServeHTTP(rec, req)
		require.Less(t, rec.Code, 500, "body %q: %s", body, rec.Body)
		if rec.Code >= 400 {
			require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
		} else {
			require.Contains(t, []int{http.StatusOK, http.StatusCreated}, rec.Code)
		}
	})
}
