package postgres_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/store"
)

// BenchmarkCycle measures the store's share of sending a message end to
// end: insert -> route -> claim -> sent -> delivered, in batches, one
// iteration per batch. It reports messages per second.
//
//	HERMOD_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//	  go test ./store/postgres -run '^$' -bench Cycle -benchtime 20x
func BenchmarkCycle(b *testing.B) {
	for _, batch := range []int{100, 500, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			benchmarkCycle(b, batch)
		})
	}
}

func benchmarkCycle(b *testing.B, batch int) {
	s := newTestStore(b)
	ctx := b.Context()
	c, err := s.ChannelCreate(ctx, store.Channel{Name: "bench", Type: "simulator", Enabled: true})
	require.NoError(b, err)
	channels := []int64{c.ID}

	msgs := make([]store.NewMessage, batch)
	sent := make([]store.SentParams, 0, batch)
	reports := make([]store.ReportParams, 0, batch)
	ref := 0
	var steps [5]time.Duration
	lap := time.Now()
	mark := func(i int) {
		now := time.Now()
		steps[i] += now.Sub(lap)
		lap = now
	}
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		for i := range msgs {
			msgs[i] = store.NewMessage{ToAddress: "+31612345678", Body: "benchmark message body of a typical length"}
		}
		lap = time.Now()
		_, err := s.MessageInsert(ctx, msgs)
		require.NoError(b, err)
		mark(0)
		r, err := s.MessageRoute(ctx, store.RouteParams{Channels: channels, Limit: batch})
		require.NoError(b, err)
		require.Equal(b, batch, r.Queued)
		mark(1)
		claimed, err := s.MessageClaim(ctx, store.ClaimParams{ChannelID: c.ID, Limit: batch, Owner: "bench", Lease: time.Minute})
		require.NoError(b, err)
		require.Len(b, claimed, batch)
		mark(2)
		sent, reports = sent[:0], reports[:0]
		for _, m := range claimed {
			ref++
			id := fmt.Sprintf("ref%d", ref)
			sent = append(sent, store.SentParams{ID: m.ID, Owner: "bench", Reference: id})
			reports = append(reports, store.ReportParams{ChannelID: c.ID, Reference: id, Status: store.PartDelivered})
		}
		lap = time.Now()
		n, err := s.MessageMarkSent(ctx, sent)
		require.NoError(b, err)
		require.Equal(b, batch, n)
		mark(3)
		res, err := s.MessageReportApply(ctx, reports)
		require.NoError(b, err)
		require.Equal(b, batch, res.Matched)
		mark(4)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "msgs/s")
	for i, name := range []string{"insert", "route", "claim", "sent", "report"} {
		b.ReportMetric(float64(steps[i].Microseconds())/float64(b.N*batch), name+"-µs/msg")
	}
}
