package api

import (
	"context"
	"encoding/json"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/store"
)

func TestAuronCreateUpdateLoad(t *testing.T) {
	t.Parallel()
	b := setup(t)
	auron := func(path, body string) (int, []byte) {
		code, out, _ := b.do(t, "POST", path, "", body, "Authorization", b.admin)
		return code, out
	}
	code, body := auron("/any/messagedb/create.json", `{"message":[
		{"LocalID":1,"TypeID":"SMS","StatusID":"SCHEDULED","ToAddress":"+31612345678","Body":"one","BillingID":"x","CustomField1":7},
		{"LocalID":"two","TypeID":"SMS","ToAddress":"bad","Body":"two"},
		{"LocalID":3,"TypeID":"EMAIL","ToAddress":"+31612345678","Body":"three"},
		{"LocalID":4,"ToAddress":"+31687654321","Body":"four","Unknown":1}]}`)
	require.Equal(t, 200, code, "%s", body)
	var res auronResponse
	require.NoError(t, json.Unmarshal(body, &res))
	require.Len(t, res.Result, 4)
	require.JSONEq(t, `1`, string(res.Result[0].LocalID))
	require.Equal(t, 0, res.Result[0].LastError)
	require.Equal(t, "Success", res.Result[0].LastErrorDescription)
	require.NotEmpty(t, res.Result[0].ID)
	require.JSONEq(t, `"two"`, string(res.Result[1].LocalID))
	require.Equal(t, auronInvalid, res.Result[1].LastError)
	require.Contains(t, res.Result[1].LastErrorDescription, "ToAddress")
	require.Equal(t, auronInvalid, res.Result[2].LastError)
	require.Contains(t, res.Result[3].LastErrorDescription, "Unknown")
	require.Equal(t, 1, b.count(t))
	id := res.Result[0].ID

	m, err := b.store.MessageGet(context.Background(), mustInt(t, id))
	require.NoError(t, err)
	require.Equal(t, "7", m.CustomField1)

	// Update: cancel, then a change Hermod does not support.
	code, body = auron("/any/messagedb/update", `{"message":[{"ID":"`+id+`","StatusID":"CANCELLED"},{"ID":`+id+`,"Body":"changed"},{"ID":999999,"StatusID":"CANCELLED"}]}`)
	require.Equal(t, 200, code, "%s", body)
	require.NoError(t, json.Unmarshal(body, &res))
	require.Equal(t, 0, res.Result[0].LastError, "%s", body)
	require.Equal(t, auronInvalid, res.Result[1].LastError)
	require.Equal(t, auronNotFound, res.Result[2].LastError)
	m, err = b.store.MessageGet(context.Background(), mustInt(t, id))
	require.NoError(t, err)
	require.Equal(t, store.StatusCancelled, m.Status)

	// Load with a filter.
	code, body = auron("/any/messagedb/create", `{"message":[{"ToAddress":"+32470000001","Body":"be"},{"ToAddress":"+31600000002","Body":"nl"}]}`)
	require.Equal(t, 200, code, "%s", body)
	code, body = auron("/any/messagedb/load", `{"Filter":"ToAddress LIKE '+31%' AND (StatusID = 'SCHEDULED' OR Status IN ('CANCELLED'))","OrderBy":"ID DESC"}`)
	require.Equal(t, 200, code, "%s", body)
	var loaded struct {
		Message []map[string]any `json:"message"`
	}
	require.NoError(t, json.Unmarshal(body, &loaded))
	require.Len(t, loaded.Message, 2)
	require.Equal(t, "+31600000002", loaded.Message[0]["ToAddress"])
	require.Equal(t, "SMS", loaded.Message[0]["TypeID"])
	require.Equal(t, "CANCELLED", loaded.Message[1]["StatusID"])

	for _, bad := range []string{
		`{"Filter":"1=1; DROP TABLE Messages"}`,
		`{"Filter":"Status = 'SENT' OR (SELECT 1) = 1"}`,
		`{"Filter":"Password = 'x'"}`,
		`{"Filter":"Status = "}`,
		`{"Filter":"ID = 'abc'"}`,
		`{"Filter":"Status = 'x' --"}`,
	} {
		code, body = auron("/any/messagedb/load", bad)
		require.Equal(t, 400, code, "%s: %s", bad, body)
	}
	code, _ = auron("/nosuchchannel/messagedb/create", `{"message":[{"ToAddress":"+31612345678","Body":"x"}]}`)
	require.Equal(t, 404, code)
	code, body, _ = b.do(t, "GET", "/any/messagedb/version", "", nil)
	require.Equal(t, 200, code)
	require.Contains(t, string(body), `"version":"test"`)
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, json.Unmarshal([]byte(s), &n))
	return n
}

func TestKannelSendsms(t *testing.T) {
	t.Parallel()
	b := setup(t)
	q := url.Values{"username": {"sender"}, "password": {b.sender}, "to": {"+31612345678 0031687654321"}, "text": {"hi there"}, "from": {"Shop"}, "dlr-mask": {"0"}}
	code, body, hdr := b.do(t, "GET", "/cgi-bin/sendsms?"+q.Encode(), "", nil)
	require.Equal(t, 202, code, "%s", body)
	require.Equal(t, "0: Accepted for delivery (2 messages)", string(body))
	require.NotEmpty(t, hdr.Get("X-Hermod-Message-ID"))
	msgs, err := b.store.MessageList(context.Background(), store.MessageFilter{Ascending: true})
	require.NoError(t, err)
	require.Len(t, msgs, 2)
	require.Equal(t, "+31687654321", msgs[1].ToAddress)
	require.Equal(t, "Shop", msgs[0].FromAddress)
	require.False(t, msgs[0].RequestDeliveryReport)

	q.Set("to", "+31612345678")
	code, body, _ = b.do(t, "GET", "/cgi-bin/sendsms?"+q.Encode(), "", nil)
	require.Equal(t, 202, code)
	require.Equal(t, "0: Accepted for delivery", string(body))

	q.Del("text")
	code, body, _ = b.do(t, "GET", "/cgi-bin/sendsms?"+q.Encode(), "", nil)
	require.Equal(t, 400, code)
	require.Contains(t, string(body), "Missing text")
	q.Set("text", "x")
	q.Set("to", "12")
	code, _, _ = b.do(t, "GET", "/cgi-bin/sendsms?"+q.Encode(), "", nil)
	require.Equal(t, 400, code)
	require.Equal(t, 3, b.count(t))
}
