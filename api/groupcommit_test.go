package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/api/client"
	"github.com/hermod-sms/hermod/store"
	"github.com/hermod-sms/hermod/store/storetest/testdb"
)

// fakeInsertStore records every MessageInsert and answers it with insert.
// Its first call blocks until release is closed, so that a test can queue
// calls behind it.
type fakeInsertStore struct {
	store.Store // nil: only MessageInsert is called

	entered chan struct{} // closed when the first call started
	release chan struct{}
	insert  func(msgs []store.NewMessage) ([]store.InsertResult, error)

	mu     sync.Mutex
	calls  [][]store.NewMessage
	nextID int64
}

func newFakeInsertStore() *fakeInsertStore {
	return &fakeInsertStore{entered: make(chan struct{}), release: make(chan struct{})}
}

func (f *fakeInsertStore) MessageInsert(_ context.Context, msgs []store.NewMessage) ([]store.InsertResult, error) {
	f.mu.Lock()
	first := len(f.calls) == 0
	f.calls = append(f.calls, append([]store.NewMessage(nil), msgs...))
	f.mu.Unlock()
	if first {
		close(f.entered)
		<-f.release
	}
	if f.insert != nil {
		return f.insert(msgs)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	res := make([]store.InsertResult, len(msgs))
	for i := range res {
		f.nextID++
		res[i].ID = f.nextID
	}
	return res, nil
}

// bodies returns the Bodies of each MessageInsert call.
func (f *fakeInsertStore) bodies() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out [][]string
	for _, c := range f.calls {
		var b []string
		for _, m := range c {
			b = append(b, m.Body)
		}
		out = append(out, b)
	}
	return out
}

func (ins *inserter) queued() int {
	ins.mu.Lock()
	defer ins.mu.Unlock()
	return len(ins.queue)
}

type insertOutcome struct {
	res []store.InsertResult
	err error
}

// groupBundle is an inserter on a fake store whose first insert ("first")
// is in progress, so that the calls started next queue up.
type groupBundle struct {
	ins     *inserter
	st      *fakeInsertStore
	nudges  atomic.Int64
	first   chan insertOutcome
	results map[string]chan insertOutcome
}

func setupGroup(t *testing.T) *groupBundle {
	t.Helper()
	g := &groupBundle{st: newFakeInsertStore(), first: make(chan insertOutcome, 1), results: map[string]chan insertOutcome{}}
	g.ins = &inserter{store: g.st, log: slog.New(slog.DiscardHandler), inserted: func() { g.nudges.Add(1) }}
	go func() {
		res, err := g.ins.insert(context.Background(), []store.NewMessage{{Body: "first"}})
		g.first <- insertOutcome{res, err}
	}()
	<-g.st.entered
	return g
}

// queue starts a call for msgs (named by the first Body) and waits until
// it is queued.
func (g *groupBundle) queue(t *testing.T, ctx context.Context, msgs ...store.NewMessage) chan insertOutcome {
	t.Helper()
	n := g.ins.queued()
	ch := make(chan insertOutcome, 1)
	g.results[msgs[0].Body] = ch
	go func() {
		res, err := g.ins.insert(ctx, msgs)
		ch <- insertOutcome{res, err}
	}()
	waitFor(t, func() bool { return g.ins.queued() == n+1 })
	return ch
}

func (g *groupBundle) outcome(t *testing.T, body string) insertOutcome {
	t.Helper()
	select {
	case o := <-g.results[body]:
		return o
	case <-time.After(5 * time.Second):
		t.Fatalf("the call %q was not answered within 5s", body)
		return insertOutcome{}
	}
}

func TestInserterGroupsQueuedCalls(t *testing.T) {
	t.Parallel()
	g := setupGroup(t)
	for i := range 10 {
		g.queue(t, context.Background(), store.NewMessage{Body: fmt.Sprint("m", i)})
	}
	close(g.st.release)
	require.NoError(t, (<-g.first).err)
	for i := range 10 {
		o := g.outcome(t, fmt.Sprint("m", i))
		require.NoError(t, o.err)
		require.Len(t, o.res, 1)
		require.Equal(t, int64(i+2), o.res[0].ID, "each call gets the result of its own message")
	}
	require.Equal(t, [][]string{{"first"}, {"m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9"}}, g.st.bodies(),
		"the ten calls queued behind the first are one insert")
	require.EqualValues(t, 2, g.nudges.Load(), "the engine is nudged once per group")
}

func TestInserterKeepsACallTogether(t *testing.T) {
	t.Parallel()
	g := setupGroup(t)
	g.queue(t, context.Background(), store.NewMessage{Body: "a1"}, store.NewMessage{Body: "a2"})
	g.queue(t, context.Background(), store.NewMessage{Body: "b1"})
	close(g.st.release)
	a := g.outcome(t, "a1")
	require.NoError(t, a.err)
	require.Equal(t, []store.InsertResult{{ID: 2}, {ID: 3}}, a.res)
	b := g.outcome(t, "b1")
	require.NoError(t, b.err)
	require.Equal(t, []store.InsertResult{{ID: 4}}, b.res)
}

func TestInserterNeverGroupsOneClientReferenceTwice(t *testing.T) {
	t.Parallel()
	g := setupGroup(t)
	g.queue(t, context.Background(), store.NewMessage{Body: "x", ClientReference: "r"})
	g.queue(t, context.Background(), store.NewMessage{Body: "y", ClientReference: "r"})
	g.queue(t, context.Background(), store.NewMessage{Body: "z"})
	g.queue(t, context.Background(), store.NewMessage{Body: "w", ClientReference: "s"}, store.NewMessage{Body: "w2", ClientReference: "r"})
	g.queue(t, context.Background(), store.NewMessage{Body: "v", ClientReference: "s"})
	close(g.st.release)
	for _, b := range []string{"x", "y", "z", "w", "v"} {
		require.NoError(t, g.outcome(t, b).err, b)
	}
	require.Equal(t, [][]string{{"first"}, {"x", "z", "v"}, {"y"}, {"w", "w2"}}, g.st.bodies(),
		"a call whose ClientReference is already in the group waits for the next one")
}

func TestInserterFallsBackOneByOneOnInvalid(t *testing.T) {
	t.Parallel()
	g := setupGroup(t)
	var next atomic.Int64
	g.st.insert = func(msgs []store.NewMessage) ([]store.InsertResult, error) {
		res := make([]store.InsertResult, len(msgs))
		for i, m := range msgs {
			if m.Body == "bad" {
				return nil, fmt.Errorf("message %d: body breaks a rule: %w", i, store.ErrInvalid)
			}
			res[i].ID = next.Add(1)
		}
		return res, nil
	}
	g.queue(t, context.Background(), store.NewMessage{Body: "good1"})
	g.queue(t, context.Background(), store.NewMessage{Body: "bad"})
	g.queue(t, context.Background(), store.NewMessage{Body: "good2"})
	close(g.st.release)
	require.NoError(t, g.outcome(t, "good1").err)
	require.ErrorIs(t, g.outcome(t, "bad").err, store.ErrInvalid)
	require.NoError(t, g.outcome(t, "good2").err)
	require.Equal(t, [][]string{{"first"}, {"good1", "bad", "good2"}, {"good1"}, {"bad"}, {"good2"}}, g.st.bodies())
}

func TestInserterOutageFailsTheGroup(t *testing.T) {
	t.Parallel()
	g := setupGroup(t)
	outage := errors.New("dial tcp 127.0.0.1:5432: connection refused")
	g.st.insert = func([]store.NewMessage) ([]store.InsertResult, error) { return nil, outage }
	g.queue(t, context.Background(), store.NewMessage{Body: "a"})
	g.queue(t, context.Background(), store.NewMessage{Body: "b"})
	close(g.st.release)
	require.ErrorIs(t, (<-g.first).err, outage)
	require.ErrorIs(t, g.outcome(t, "a").err, outage)
	require.ErrorIs(t, g.outcome(t, "b").err, outage)
	require.Len(t, g.st.bodies(), 2, "an outage is not retried call by call")
	require.Zero(t, g.nudges.Load())
}

func TestInserterSurvivesAPanic(t *testing.T) {
	t.Parallel()
	g := setupGroup(t)
	g.st.insert = func([]store.NewMessage) ([]store.InsertResult, error) { panic("driver bug") }
	g.queue(t, context.Background(), store.NewMessage{Body: "a"})
	close(g.st.release)
	require.ErrorIs(t, (<-g.first).err, errStoreBroken)
	require.ErrorIs(t, g.outcome(t, "a").err, errStoreBroken)
	require.Equal(t, http.StatusInternalServerError, insertProblem(errStoreBroken).Status)

	g.st.insert = nil
	res, err := g.ins.insert(context.Background(), []store.NewMessage{{Body: "after"}})
	require.NoError(t, err, "the inserter works on after a panic")
	require.Len(t, res, 1)
}

func TestInserterAbandonedCallIsNotWritten(t *testing.T) {
	t.Parallel()
	g := setupGroup(t)
	ctx, cancel := context.WithCancel(context.Background())
	g.queue(t, ctx, store.NewMessage{Body: "gone"})
	g.queue(t, context.Background(), store.NewMessage{Body: "stays"})
	cancel()
	require.ErrorIs(t, g.outcome(t, "gone").err, context.Canceled)
	close(g.st.release)
	require.NoError(t, g.outcome(t, "stays").err)
	require.Equal(t, [][]string{{"first"}, {"stays"}}, g.st.bodies())
}

func TestInserterLimitsTheGroup(t *testing.T) {
	t.Parallel()
	g := setupGroup(t)
	big := make([]store.NewMessage, groupMaxCall)
	for i := range big {
		big[i].Body = "big"
	}
	n := groupMaxMessages/groupMaxCall + 1
	for i := range n {
		msgs := append([]store.NewMessage{{Body: fmt.Sprint("c", i)}}, big[1:]...)
		g.queue(t, context.Background(), msgs...)
	}
	close(g.st.release)
	for i := range n {
		require.NoError(t, g.outcome(t, fmt.Sprint("c", i)).err)
	}
	got := g.st.bodies()
	require.Len(t, got, 3)
	require.Len(t, got[1], groupMaxMessages)
	require.Len(t, got[2], groupMaxCall)
}

// failingInsertStore is a real store whose MessageInsert fails as when the
// database is down.
type failingInsertStore struct{ store.Store }

func (failingInsertStore) MessageInsert(context.Context, []store.NewMessage) ([]store.InsertResult, error) {
	return nil, errors.New("failed to connect to `user=postgres database=test`: connection refused")
}

func TestSendDatabaseDown(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{cfg: func(c *Config) { c.Store = failingInsertStore{c.Store} }})
	code, body, hdr := b.do(t, "POST", "/api/v1/messages", b.sender, client.NewMessage{ToAddress: "+31612345678", Body: "x"})
	require.Equal(t, http.StatusServiceUnavailable, code, "%s", body)
	require.Equal(t, "5", hdr.Get("Retry-After"))
	require.NotContains(t, string(body), "connection refused", "the cause is logged, not shown")
	var batch client.Batch
	for range groupMaxCall + 1 {
		batch.Messages = append(batch.Messages, client.NewMessage{ToAddress: "+31612345678", Body: "x"})
	}
	code, body, _ = b.do(t, "POST", "/api/v1/messages", b.sender, batch)
	require.Equal(t, http.StatusServiceUnavailable, code, "%s", body)
	require.Zero(t, b.count(t))
}

func TestSendConcurrent(t *testing.T) {
	t.Parallel()
	testdb.Run(t, func(t *testing.T, backend string) {
		t.Parallel()
		testSendConcurrent(t, setup(t, setupOpts{backend: backend}))
	})
}

// testSendConcurrent sends single messages from many clients at once, with
// ClientReferences repeated across them: every request gets its own answer,
// a repeated key makes one message, and different content under one key is
// a 409 for all but the one that was stored.
func testSendConcurrent(t *testing.T, b *testBundle) {
	const clients = 40
	type answer struct {
		code int
		res  client.SendResult
	}
	answers := make([]answer, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			msg := client.NewMessage{ToAddress: "+3161234" + fmt.Sprintf("%04d", i), Body: "m" + strconv.Itoa(i)}
			switch {
			case i < 10: // one key, same content
				msg.ToAddress, msg.Body, msg.ClientReference = "+31600000001", "same", "same-ref"
			case i < 20: // one key, different content
				msg.ClientReference = "clash-ref"
			}
			req, err := http.NewRequest("POST", b.srv.URL+"/api/v1/messages", jsonBody(t, msg))
			if !assert.NoError(t, err) {
				return
			}
			req.Header.Set("Authorization", "Bearer "+b.sender)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if !assert.NoError(t, err) {
				return
			}
			defer resp.Body.Close()
			answers[i].code = resp.StatusCode
			if resp.StatusCode < 300 {
				_ = readJSON(resp, &answers[i].res)
			}
		})
	}
	wg.Wait()

	created := map[int]int{}
	var sameIDs, clashIDs []int64
	for i, a := range answers {
		created[a.code]++
		switch {
		case i < 10:
			require.Contains(t, []int{http.StatusCreated, http.StatusOK}, a.code, "request %d", i)
			sameIDs = append(sameIDs, a.res.ID)
		case i < 20:
			require.Contains(t, []int{http.StatusCreated, http.StatusConflict}, a.code, "request %d", i)
			if a.code == http.StatusCreated {
				clashIDs = append(clashIDs, a.res.ID)
			}
		default:
			require.Equal(t, http.StatusCreated, a.code, "request %d", i)
			require.Positive(t, a.res.ID)
		}
	}
	for _, id := range sameIDs {
		require.Equal(t, sameIDs[0], id, "one ClientReference, one message")
	}
	require.Len(t, clashIDs, 1, "one of the clashing requests is stored, the others are refused")
	require.Equal(t, created[http.StatusCreated], 1+1+20)
	require.Equal(t, 22, b.count(t))
}

func jsonBody(t *testing.T, v any) io.Reader {
	j, err := json.Marshal(v)
	assert.NoError(t, err)
	return bytes.NewReader(j)
}

func readJSON(resp *http.Response, v any) error {
	return json.NewDecoder(resp.Body).Decode(v)
}

// channelCountingStore counts ChannelGet calls.
type channelCountingStore struct {
	store.Store
	gets atomic.Int64
}

func (s *channelCountingStore) ChannelGet(ctx context.Context, name string) (*store.Channel, error) {
	s.gets.Add(1)
	return s.Store.ChannelGet(ctx, name)
}

func TestSendChannelCache(t *testing.T) {
	t.Parallel()
	counting := &channelCountingStore{}
	b := setup(t, setupOpts{cfg: func(c *Config) {
		c.KeyCacheTTL = time.Hour
		start := time.Now()
		c.now = func() time.Time { return start } // the cache never expires here
		counting.Store, c.Store = c.Store, counting
	}})
	send := func(channel string) (int, []byte) {
		code, body, _ := b.do(t, "POST", "/api/v1/messages", b.sender, client.NewMessage{ToAddress: "+31612345678", Body: "x", Channel: channel})
		return code, body
	}

	code, body := send("later")
	require.Equal(t, http.StatusBadRequest, code, "%s", body)
	_, err := b.store.ChannelCreate(t.Context(), store.Channel{Name: "later", Type: testChannelType, Settings: "{}", Enabled: true})
	require.NoError(t, err)
	code, body = send("later")
	require.Equal(t, http.StatusCreated, code, "an unknown name is not cached: %s", body)

	ch, err := b.store.ChannelCreate(t.Context(), store.Channel{Name: "sim", Type: testChannelType, Settings: "{}", Enabled: true})
	require.NoError(t, err)
	before := counting.gets.Load()
	for range 5 {
		code, body = send("sim")
		require.Equal(t, http.StatusCreated, code, "%s", body)
	}
	require.Equal(t, before+1, counting.gets.Load(), "the channel is read once, then cached")
	m, err := b.store.MessageGet(t.Context(), decode[client.SendResult](t, body).ID)
	require.NoError(t, err)
	require.Equal(t, ch.ID, m.ChannelID)

	code, body, _ = b.do(t, "DELETE", "/api/v1/channels/sim", b.admin, nil)
	require.Equal(t, http.StatusNoContent, code, "%s", body)
	code, body = send("sim")
	require.Equal(t, http.StatusBadRequest, code, "a channel deleted through the API is forgotten at once: %s", body)
	require.Equal(t, "Channel", decode[client.Problem](t, body).Errors[0].Field)
}
