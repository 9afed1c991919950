package simulator

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/channels"
)

// fakeHost records what the channel hands back.
type fakeHost struct {
	mu       sync.Mutex
	reports  []channels.Report
	calls    int
	incoming []channels.Incoming
	status   []string
	failNext int // Report calls that fail before one succeeds
	got      chan struct{}
}

func newFakeHost() *fakeHost { return &fakeHost{got: make(chan struct{}, 1000)} }

func (h *fakeHost) Receive(_ context.Context, in []channels.Incoming) error {
	h.mu.Lock()
	h.incoming = append(h.incoming, in...)
	h.mu.Unlock()
	h.got <- struct{}{}
	return nil
}

func (h *fakeHost) Report(_ context.Context, r []channels.Report) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	if h.failNext > 0 {
		h.failNext--
		return errors.New("database down")
	}
	h.reports = append(h.reports, r...)
	h.got <- struct{}{}
	return nil
}

func (h *fakeHost) SetStatus(state, details string) {
	h.mu.Lock()
	h.status = append(h.status, state)
	h.mu.Unlock()
}

func (h *fakeHost) Logger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func (h *fakeHost) reportCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.reports)
}

func newSim(t *testing.T, settings string) (*Channel, *fakeHost) {
	t.Helper()
	ch, err := channels.New(Type, channels.Config{ID: 1, Name: "sim", Settings: json.RawMessage(settings)})
	require.NoError(t, err)
	h := newFakeHost()
	require.NoError(t, ch.Start(context.Background(), h))
	t.Cleanup(func() { _ = ch.Stop(context.Background()) })
	return ch.(*Channel), h
}

func msgs(n int) []channels.Message {
	out := make([]channels.Message, n)
	for i := range out {
		out[i] = channels.Message{ID: int64(i + 1), To: "+31600000000", Body: "hi", RequestDeliveryReport: true, Attempt: 1}
	}
	return out
}

func TestSettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ settings, err string }{
		{`{"failRate": 2}`, "failRate"},
		{`{"failRate": 0.6, "permanentFailRate": 0.6}`, "failRate + permanentFailRate"},
		{`{"latency": "fast"}`, "duration"},
		{`{"reportDelay": "-1s"}`, "reportDelay"},
		{`{"batchSize": 5000}`, "batchSize"},
		{`{"concurency": 2}`, "concurency"},
	} {
		_, err := channels.New(Type, channels.Config{Name: "sim", Settings: json.RawMessage(tc.settings)})
		require.ErrorContains(t, err, tc.err, tc.settings)
	}
	ch, err := channels.New(Type, channels.Config{Name: "sim", Settings: json.RawMessage(`{"latency": 5, "reportDelay": "1s", "batchSize": 7}`)})
	require.NoError(t, err)
	s := ch.(*Channel).Settings()
	require.Equal(t, Duration(5*time.Millisecond), s.Latency)
	require.Equal(t, Duration(time.Second), s.ReportDelay)
	require.Equal(t, 7, ch.(channels.Limits).BatchSize())
	require.Equal(t, 2, ch.(channels.Limits).Concurrency())

	ch, err = channels.New(Type, channels.Config{Name: "sim"})
	require.NoError(t, err)
	require.Equal(t, DefaultSettings(), ch.(*Channel).Settings())
}

func TestSendAndReports(t *testing.T) {
	t.Parallel()
	logPath := filepath.Join(t.TempDir(), "sim.log")
	ch, h := newSim(t, `{"reportDelay": "5ms", "log": "`+logPath+`"}`)
	require.Contains(t, h.status, "running")

	in := msgs(20)
	in[3].Body = strings.Repeat("a", 161) // two parts
	in[4].RequestDeliveryReport = false
	res := ch.Send(context.Background(), in)
	require.Len(t, res, 20)
	refs := map[string]bool{}
	for i, r := range res {
		require.NoError(t, r.Err)
		require.Equal(t, in[i].ID, r.ID)
		require.NotEmpty(t, r.Reference)
		require.Equal(t, r.Reference, r.Parts[0].Reference)
		for _, p := range r.Parts {
			require.False(t, refs[p.Reference], "reference %s unique", p.Reference)
			refs[p.Reference] = true
		}
	}
	require.Len(t, res[3].Parts, 2)

	// 19 messages want a report, one of them has two parts.
	require.Eventually(t, func() bool { return h.reportCount() == 20 }, 5*time.Second, time.Millisecond)
	h.mu.Lock()
	for i, r := range h.reports {
		require.True(t, r.Delivered)
		require.Equal(t, "DELIVRD", r.State)
		require.False(t, r.DoneTime.IsZero())
		if i > 0 {
			// In order of acceptance.
			require.Less(t, refNumber(t, h.reports[i-1].Reference), refNumber(t, r.Reference))
		}
	}
	h.mu.Unlock()

	counts, err := ReadLog(logPath)
	require.NoError(t, err)
	require.Len(t, counts, 20)
	res = ch.Send(context.Background(), in[:2])
	require.NoError(t, res[0].Err)
	counts, err = ReadLog(logPath)
	require.NoError(t, err)
	require.Equal(t, 2, counts[1])
	require.Equal(t, 1, counts[3])
}

func refNumber(t *testing.T, ref string) int {
	t.Helper()
	_, n, ok := strings.Cut(ref, "-")
	require.True(t, ok)
	var v int
	for _, c := range n {
		v = v*10 + int(c-'0')
	}
	return v
}

func TestFailures(t *testing.T) {
	t.Parallel()
	ch, h := newSim(t, `{"failRate": 1}`)
	for _, r := range ch.Send(context.Background(), msgs(5)) {
		require.Error(t, r.Err)
		require.False(t, channels.IsPermanent(r.Err))
		require.Equal(t, CodeThrottled, r.ErrorCode)
	}
	ch, _ = newSim(t, `{"permanentFailRate": 1}`)
	for _, r := range ch.Send(context.Background(), msgs(5)) {
		require.True(t, channels.IsPermanent(r.Err))
		require.Equal(t, CodeRejected, r.ErrorCode)
	}
	require.Zero(t, h.reportCount())

	ch, h = newSim(t, `{"undeliveredRate": 1, "reportDelay": "1ms"}`)
	for _, r := range ch.Send(context.Background(), msgs(5)) {
		require.NoError(t, r.Err)
	}
	require.Eventually(t, func() bool { return h.reportCount() == 5 }, 5*time.Second, time.Millisecond)
	h.mu.Lock()
	for _, r := range h.reports {
		require.False(t, r.Delivered)
		require.Equal(t, CodeUndelivered, r.ErrorCode)
	}
	h.mu.Unlock()

	ch, h = newSim(t, `{"noReportRate": 1, "reportDelay": "1ms"}`)
	for _, r := range ch.Send(context.Background(), msgs(5)) {
		require.NoError(t, r.Err)
	}
	require.Zero(t, ch.reports.len())
}

func TestReportRetriedInOrder(t *testing.T) {
	t.Parallel()
	ch, h := newSim(t, `{"reportDelay": "1ms"}`)
	h.mu.Lock()
	h.failNext = 2
	h.mu.Unlock()
	ch.Send(context.Background(), msgs(3))
	ch.Send(context.Background(), msgs(3))
	require.Eventually(t, func() bool { return h.reportCount() == 6 }, 5*time.Second, time.Millisecond)
	h.mu.Lock()
	defer h.mu.Unlock()
	require.GreaterOrEqual(t, h.calls, 3)
	for i := 1; i < len(h.reports); i++ {
		require.Less(t, refNumber(t, h.reports[i-1].Reference), refNumber(t, h.reports[i].Reference))
	}
}

func TestLatencyHonoursContext(t *testing.T) {
	t.Parallel()
	ch, _ := newSim(t, `{"latency": "1h"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	res := ch.Send(ctx, msgs(2))
	for _, r := range res {
		require.ErrorIs(t, r.Err, context.DeadlineExceeded)
	}
}

func TestIncoming(t *testing.T) {
	t.Parallel()
	_, h := newSim(t, `{"incomingEvery": "2ms"}`)
	<-h.got
	<-h.got
	h.mu.Lock()
	defer h.mu.Unlock()
	require.GreaterOrEqual(t, len(h.incoming), 2)
	require.NotEqual(t, h.incoming[0].Reference, h.incoming[1].Reference)
}

func TestReadLogIgnoresTornLine(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "log")
	require.NoError(t, os.WriteFile(path, []byte("1\t1\ta-1\n2\t1\ta-2\n1\t2\ta-3\n3\t1\ta-"), 0o644))
	counts, err := ReadLog(path)
	require.NoError(t, err)
	require.Equal(t, map[int64]int{1: 2, 2: 1}, counts)

	require.NoError(t, os.WriteFile(path, []byte("x\t1\ta\n"), 0o644))
	_, err = ReadLog(path)
	require.ErrorContains(t, err, "line 1")
}

func TestParts(t *testing.T) {
	t.Parallel()
	require.Equal(t, 1, Parts(""))
	require.Equal(t, 1, Parts(strings.Repeat("a", 160)))
	require.Equal(t, 2, Parts(strings.Repeat("a", 161)))
	require.Equal(t, 2, Parts(strings.Repeat("a", 306)))
	require.Equal(t, 3, Parts(strings.Repeat("a", 307)))
	require.Equal(t, 1, Parts(strings.Repeat("é", 70)))
	require.Equal(t, 2, Parts(strings.Repeat("ж", 71)))
}
