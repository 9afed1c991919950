package api

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/api/client"
	"github.com/hermod-sms/hermod/store"
)

func TestSendSingle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	code, body, hdr := b.do(t, "POST", "/api/v1/messages", b.sender, client.NewMessage{ToAddress: "+31612345678", Body: "hello", BatchID: "b1"})
	require.Equal(t, http.StatusCreated, code, "%s", body)
	res := decode[client.SendResult](t, body)
	require.Positive(t, res.ID)
	require.Equal(t, store.StatusScheduled, res.Status)
	require.Equal(t, fmt.Sprintf("/api/v1/messages/%d", res.ID), hdr.Get("Location"))

	// Committed: the store has it.
	m, err := b.store.MessageGet(t.Context(), res.ID)
	require.NoError(t, err)
	require.Equal(t, "+31612345678", m.ToAddress)
	require.Equal(t, "b1", m.BatchID)

	code, body, _ = b.do(t, "GET", fmt.Sprintf("/api/v1/messages/%d", res.ID), b.reader, nil)
	require.Equal(t, http.StatusOK, code, "%s", body)
	got := decode[client.Message](t, body)
	require.Equal(t, "hello", got.Body)
	require.Equal(t, "OUT", got.Direction)
	require.True(t, got.RequestDeliveryReport)
	require.Contains(t, string(body), `"ToAddress":"+31612345678"`, "JSON names are the column names")
}

func TestSendBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var batch client.Batch
	for i := range 50 {
		batch.Messages = append(batch.Messages, client.NewMessage{ToAddress: fmt.Sprintf("+3161234%04d", i), Body: fmt.Sprint("m", i)})
	}
	code, body, _ := b.do(t, "POST", "/api/v1/messages", b.sender, batch)
	require.Equal(t, http.StatusCreated, code, "%s", body)
	res := decode[client.BatchResult](t, body)
	require.Len(t, res.Messages, 50)
	require.Equal(t, 50, b.count(t))
}

func TestSendValidation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cases := []struct {
		name, body, field string
		status            int
	}{
		{"empty body text", `{"ToAddress":"+31612345678","Body":""}`, "Body", 400},
		{"bad number", `{"ToAddress":"+31 6 1234","Body":"x"}`, "ToAddress", 400},
		{"plus zero", `{"ToAddress":"+0612345678","Body":"x"}`, "ToAddress", 400},
		{"letters", `{"ToAddress":"abc","Body":"x"}`, "ToAddress", 400},
		{"long sender", `{"ToAddress":"+31612345678","FromAddress":"ThisIsTooLongASender","Body":"x"}`, "FromAddress", 400},
		{"unknown channel", `{"ToAddress":"+31612345678","Body":"x","Channel":"nope"}`, "Channel", 400},
		{"unknown field", `{"ToAddress":"+31612345678","Body":"x","Bogus":1}`, "Bogus", 400},
		{"wrong type", `{"ToAddress":31612345678,"Body":"x"}`, "ToAddress", 400},
		{"body too long", `{"ToAddress":"+31612345678","Body":"` + strings.Repeat("a", 1601) + `"}`, "Body", 400},
		{"nul", `{"ToAddress":"+31612345678","Body":"a\u0000b"}`, "Body", 400},
		{"ton range", `{"ToAddress":"+31612345678","Body":"x","FromTON":9}`, "FromTON", 400},
		{"empty batch", `{"Messages":[]}`, "Messages", 400},
		{"batch item", `{"Messages":[{"ToAddress":"+31612345678","Body":"x"},{"ToAddress":"1","Body":"x"}]}`, "Messages[1].ToAddress", 400},
		{"mixed", `{"Messages":[{"ToAddress":"+31612345678","Body":"x"}],"Body":"y"}`, "Messages", 400},
		{"not json", `hello`, "", 400},
		{"two values", `{"ToAddress":"+31612345678","Body":"x"}{}`, "", 400},
		{"array", `[1,2]`, "", 400},
		{"empty", ``, "", 400},
		{"truncated", `{"ToAddress":"+31612345678","Bo`, "", 400},
		{"invalid utf8", "{\"ToAddress\":\"+31612345678\",\"Body\":\"\xff\xfe\"}", "", 400},
		{"dup ref", `{"Messages":[{"ToAddress":"+31612345678","Body":"x","ClientReference":"r"},{"ToAddress":"+31612345678","Body":"x","ClientReference":"r"}]}`, "Messages[1].ClientReference", 400},
	}
	for _, tc := range cases {
		code, body, hdr := b.do(t, "POST", "/api/v1/messages", b.sender, tc.body)
		require.Equal(t, tc.status, code, "%s: %s", tc.name, body)
		require.Equal(t, "application/problem+json", hdr.Get("Content-Type"), tc.name)
		p := decode[client.Problem](t, body)
		require.Equal(t, tc.status, p.Status)
		require.NotEmpty(t, p.Detail, tc.name)
		if tc.field != "" {
			require.NotEmpty(t, p.Errors, "%s: %s", tc.name, body)
			require.Equal(t, tc.field, p.Errors[0].Field, "%s: %s", tc.name, body)
		}
	}
	require.Zero(t, b.count(t), "nothing is written for a bad request")
}

func TestSendTooLarge(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{cfg: func(c *Config) { c.MaxRequestBytes = 1000; c.MaxBatch = 3 }})
	code, body, _ := b.do(t, "POST", "/api/v1/messages", b.sender, `{"ToAddress":"+31612345678","Body":"`+strings.Repeat("a", 2000)+`"}`)
	require.Equal(t, http.StatusRequestEntityTooLarge, code, "%s", body)
	code, body, _ = b.do(t, "POST", "/api/v1/messages", b.sender, `{"Messages":[{"ToAddress":"+31612345678","Body":"a"},{"ToAddress":"+31612345678","Body":"a"},{"ToAddress":"+31612345678","Body":"a"},{"ToAddress":"+31612345678","Body":"a"}]}`)
	require.Equal(t, http.StatusRequestEntityTooLarge, code, "%s", body)
	code, _, _ = b.do(t, "POST", "/api/v1/messages", b.sender, `{"ToAddress":"+31612345678","Body":"x"}`, "Content-Type", "text/plain")
	require.Equal(t, http.StatusUnsupportedMediaType, code)
	require.Zero(t, b.count(t))
}

func TestClientReference(t *testing.T) {
	t.Parallel()
	b := setup(t)
	msg := client.NewMessage{ToAddress: "+31612345678", Body: "once", ClientReference: "order-1"}
	code, body, _ := b.do(t, "POST", "/api/v1/messages", b.sender, msg)
	require.Equal(t, http.StatusCreated, code, "%s", body)
	first := decode[client.SendResult](t, body)

	code, body, _ = b.do(t, "POST", "/api/v1/messages", b.sender, msg)
	require.Equal(t, http.StatusOK, code, "%s", body)
	again := decode[client.SendResult](t, body)
	require.Equal(t, first.ID, again.ID)
	require.True(t, again.Existing)

	msg.Body = "different"
	code, body, _ = b.do(t, "POST", "/api/v1/messages", b.sender, msg)
	require.Equal(t, http.StatusConflict, code, "%s", body)
	p := decode[client.Problem](t, body)
	require.Equal(t, "ClientReference", p.Errors[0].Field)
	require.Contains(t, p.Errors[0].Detail, "Body")
	require.Equal(t, 1, b.count(t))
}

func TestClientReferenceConcurrent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	msg := client.NewMessage{ToAddress: "+31612345678", Body: "race", ClientReference: "race-1"}
	var wg sync.WaitGroup
	ids := make([]int64, 8)
	codes := make([]int, 8)
	for i := range ids {
		wg.Go(func() {
			code, body, _ := b.do(t, "POST", "/api/v1/messages", b.sender, msg)
			codes[i] = code
			if code < 300 {
				ids[i] = decode[client.SendResult](t, body).ID
			}
		})
	}
	wg.Wait()
	created := 0
	for i := range ids {
		require.Contains(t, []int{200, 201}, codes[i])
		require.Equal(t, ids[0], ids[i])
		if codes[i] == 201 {
			created++
		}
	}
	require.Equal(t, 1, created)
	require.Equal(t, 1, b.count(t))
}

func TestListAndCursor(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var batch client.Batch
	for i := range 25 {
		batch.Messages = append(batch.Messages, client.NewMessage{ToAddress: "+31612345678", Body: fmt.Sprint(i), BatchID: map[bool]string{true: "even", false: "odd"}[i%2 == 0]})
	}
	code, body, _ := b.do(t, "POST", "/api/v1/messages", b.sender, batch)
	require.Equal(t, 201, code, "%s", body)

	var all []int64
	cursor := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		code, body, _ := b.do(t, "GET", "/api/v1/messages?limit=10&order=asc&after="+cursor, b.reader, nil)
		require.Equal(t, 200, code, "%s", body)
		page := decode[client.MessagePage](t, body)
		for _, m := range page.Messages {
			require.Empty(t, m.Trace)
			all = append(all, m.ID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	require.Len(t, all, 25)
	for i := 1; i < len(all); i++ {
		require.Greater(t, all[i], all[i-1])
	}

	code, body, _ = b.do(t, "GET", "/api/v1/messages?batch=even&status=SCHEDULED,QUEUED", b.reader, nil)
	require.Equal(t, 200, code, "%s", body)
	require.Len(t, decode[client.MessagePage](t, body).Messages, 13)

	for _, q := range []string{"status=NOPE", "direction=sideways", "limit=0", "limit=x", "since=yesterday", "bogus=1", "channel=nope", "order=up"} {
		code, body, _ = b.do(t, "GET", "/api/v1/messages?"+q, b.reader, nil)
		require.Equal(t, 400, code, "%s: %s", q, body)
		require.NotEmpty(t, decode[client.Problem](t, body).Errors, q)
	}
}

func TestCancelAndReprocess(t *testing.T) {
	t.Parallel()
	b := setup(t)
	code, body, _ := b.do(t, "POST", "/api/v1/messages", b.sender, client.NewMessage{ToAddress: "+31612345678", Body: "x"})
	require.Equal(t, 201, code)
	id := decode[client.SendResult](t, body).ID

	code, body, _ = b.do(t, "POST", fmt.Sprintf("/api/v1/messages/%d/cancel", id), b.sender, nil)
	require.Equal(t, 200, code, "%s", body)
	require.Equal(t, store.StatusCancelled, decode[client.Message](t, body).Status)

	code, body, _ = b.do(t, "POST", fmt.Sprintf("/api/v1/messages/%d/cancel", id), b.sender, nil)
	require.Equal(t, 409, code, "%s", body)
	require.Contains(t, string(body), "CANCELLED")

	code, body, _ = b.do(t, "POST", fmt.Sprintf("/api/v1/messages/%d/reprocess", id), b.sender, `{"Resend":true}`)
	require.Equal(t, 409, code, "%s", body)
	code, body, _ = b.do(t, "POST", fmt.Sprintf("/api/v1/messages/%d/reprocess", id), b.sender, nil)
	require.Equal(t, 200, code, "%s", body)

	code, _, _ = b.do(t, "POST", "/api/v1/messages/999999/cancel", b.sender, nil)
	require.Equal(t, 404, code)
	code, _, _ = b.do(t, "GET", "/api/v1/messages/abc", b.reader, nil)
	require.Equal(t, 400, code)
	code, _, _ = b.do(t, "GET", "/api/v1/messages/999999", b.reader, nil)
	require.Equal(t, 404, code)
}

func TestNotFoundAndMethod(t *testing.T) {
	t.Parallel()
	b := setup(t)
	code, body, hdr := b.do(t, "GET", "/api/v1/nothing", b.reader, nil)
	require.Equal(t, 404, code)
	require.Equal(t, "application/problem+json", hdr.Get("Content-Type"), "%s", body)
	code, _, hdr = b.do(t, "DELETE", "/api/v1/messages", b.admin, nil)
	require.Equal(t, 405, code)
	require.Contains(t, hdr.Get("Allow"), "POST")
}
