package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/store"
)

// receiver is an application's dlr-url endpoint: it records the queries it
// is called with and answers with the codes of fail first, then 200.
type receiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	calls []url.Values
	fail  []int
}

func newReceiver(t *testing.T, fail ...int) *receiver {
	rc := &receiver{fail: fail}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.mu.Lock()
		rc.calls = append(rc.calls, r.URL.Query())
		code := http.StatusOK
		if len(rc.fail) > 0 {
			code, rc.fail = rc.fail[0], rc.fail[1:]
		}
		rc.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) got() []url.Values {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]url.Values(nil), rc.calls...)
}

// startCallbacks runs the server's callbacks until the test ends.
func startCallbacks(t *testing.T, b *testBundle) {
	b.api.callbackDelay = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.api.RunCallbacks(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	waitFor(t, b.events.hasSubscribers)
}

// kannelSend sends one message through /cgi-bin/sendsms and returns its ID.
func kannelSend(t *testing.T, b *testBundle, mask, dlrURL string) int64 {
	q := url.Values{"username": {"sender"}, "password": {b.sender}, "to": {"+31612345678"}, "text": {"hi"}, "from": {"Shop"}, "dlr-url": {dlrURL}}
	if mask != "" {
		q.Set("dlr-mask", mask)
	}
	code, body, hdr := b.do(t, "GET", "/cgi-bin/sendsms?"+q.Encode(), "", nil)
	require.Equal(t, http.StatusAccepted, code, "%s", body)
	id, err := strconv.ParseInt(hdr.Get("X-Hermod-Message-ID"), 10, 64)
	require.NoError(t, err)
	return id
}

func TestKannelDLRURLCalled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	startCallbacks(t, b)
	rc := newReceiver(t)
	id := kannelSend(t, b, "1", rc.srv.URL+"/dlr?id=%I&status=%d&to=%p&from=%P&what=%A&pct=%%25")
	m, err := b.store.MessageGet(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, 1, m.StatusCallbackMask)

	// SENT is not in mask 1: no call. DELIVERED is.
	b.events.Publish(Event{MessageID: id, Status: store.StatusSent, ChannelID: 7, Time: time.Now()})
	b.events.Publish(Event{MessageID: id, Status: store.StatusDelivered, ChannelID: 7, Time: time.Now()})
	waitFor(t, func() bool { return len(rc.got()) > 0 })
	time.Sleep(100 * time.Millisecond) // a second call would come now
	calls := rc.got()
	require.Len(t, calls, 1)
	require.Equal(t, strconv.FormatInt(id, 10), calls[0].Get("id"))
	require.Equal(t, "1", calls[0].Get("status"))
	require.Equal(t, "+31612345678", calls[0].Get("to"))
	require.Equal(t, "Shop", calls[0].Get("from"))
	require.Equal(t, "DELIVERED", calls[0].Get("what"))
	require.Equal(t, "%", calls[0].Get("pct"))
}

func TestKannelDLRURLMask(t *testing.T) {
	t.Parallel()
	b := setup(t)
	startCallbacks(t, b)
	undelivered := newReceiver(t)
	delivered := newReceiver(t)
	a := kannelSend(t, b, "2", undelivered.srv.URL+"/?s=%d")
	c := kannelSend(t, b, "1", delivered.srv.URL+"/?s=%d")
	none := kannelSend(t, b, "0", undelivered.srv.URL+"/?s=%d")
	for _, id := range []int64{a, none, c} {
		b.events.Publish(Event{MessageID: id, Status: store.StatusDelivered, Time: time.Now()})
	}
	waitFor(t, func() bool { return len(delivered.got()) == 1 })
	time.Sleep(100 * time.Millisecond)
	require.Empty(t, undelivered.got(), "mask 2 and mask 0 call nothing on DELIVERED")

	b.events.Publish(Event{MessageID: a, Status: store.StatusNotDelivered, Time: time.Now()})
	waitFor(t, func() bool { return len(undelivered.got()) == 1 })
	require.Equal(t, "2", undelivered.got()[0].Get("s"))
}

func TestKannelDLRURLRetried(t *testing.T) {
	t.Parallel()
	b := setup(t)
	startCallbacks(t, b)
	flaky := newReceiver(t, http.StatusServiceUnavailable, http.StatusBadGateway)
	id := kannelSend(t, b, "", flaky.srv.URL+"/?s=%d") // no mask: every final status
	b.events.Publish(Event{MessageID: id, Status: store.StatusSent, Time: time.Now()})
	b.events.Publish(Event{MessageID: id, Status: store.StatusFailed, Time: time.Now()})
	waitFor(t, func() bool { return len(flaky.got()) == 3 })
	time.Sleep(100 * time.Millisecond)
	calls := flaky.got()
	require.Len(t, calls, 3, "two 5xx answers, then success; SENT is not final")
	require.Equal(t, "16", calls[2].Get("s"))

	refused := newReceiver(t, http.StatusNotFound)
	id = kannelSend(t, b, "31", refused.srv.URL+"/")
	b.events.Publish(Event{MessageID: id, Status: store.StatusDelivered, Time: time.Now()})
	waitFor(t, func() bool { return len(refused.got()) == 1 })
	time.Sleep(100 * time.Millisecond)
	require.Len(t, refused.got(), 1, "a 4xx answer is not retried")
}

func TestKannelDLRURLInvalid(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, u := range []string{"ftp://example.com/x", "/relative?x=%d", "http://"} {
		q := url.Values{"username": {"sender"}, "password": {b.sender}, "to": {"+31612345678"}, "text": {"hi"}, "dlr-mask": {"1"}, "dlr-url": {u}}
		code, body, _ := b.do(t, "GET", "/cgi-bin/sendsms?"+q.Encode(), "", nil)
		require.Equal(t, http.StatusBadRequest, code, u)
		require.Contains(t, string(body), "Invalid dlr-url", u)
	}
	require.Zero(t, b.count(t))
}

func TestExpandCallback(t *testing.T) {
	t.Parallel()
	m := &store.Message{ID: 42, ToAddress: "+31 6&x", FromAddress: "Shop", ChannelID: 3}
	e := Event{MessageID: 42, Status: store.StatusExpired, Time: time.Unix(1700000000, 0)}
	got := expandCallback("https://a.example/p?d=%d&p=%p&P=%P&T=%T&I=%I&i=%i&q=%q&pc=%%&end=%", m, e)
	require.Equal(t, "https://a.example/p?d=16&p=%2B31+6%26x&P=Shop&T=1700000000&I=42&i=3&q=%q&pc=%&end=%", got)
	require.True(t, callbackWanted(0, store.StatusNoReport))
	require.False(t, callbackWanted(0, store.StatusSent))
	require.True(t, callbackWanted(8, store.StatusSent))
	require.False(t, callbackWanted(31, store.StatusNoReport))
	require.False(t, callbackWanted(0, store.StatusQueued))
	require.Equal(t, "https://a.example/p", safeURL("https://a.example/p?password=secret"))
}
