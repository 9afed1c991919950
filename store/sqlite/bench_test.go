package sqlite_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/store"
)

// BenchmarkCycle measures the whole life of outgoing messages through the
// store, each step batched as the engine batches it: insert, route, claim,
// mark sent (one part each), apply the delivery report. One iteration moves
// one batch; msgs/s is the end-to-end rate on a durable (synchronous=FULL)
// WAL database.
//
//	go test ./store/sqlite -run '^$' -bench Cycle -benchtime 20x
func BenchmarkCycle(b *testing.B) {
	for _, batch := range []int{100, 500, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s := newTestStore(b)
			ctx := b.Context()
			ch, err := s.ChannelCreate(ctx, store.Channel{Name: "bench", Type: "simulator", Enabled: true})
			require.NoError(b, err)
			msgs := make([]store.NewMessage, batch)
			for i := range msgs {
				msgs[i] = store.NewMessage{ToAddress: fmt.Sprintf("+3161%07d", i), Body: "benchmark message body of a typical length, about sixty chars"}
			}
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				_, err := s.MessageInsert(ctx, msgs)
				require.NoError(b, err)
				rr, err := s.MessageRoute(ctx, store.RouteParams{Channels: []int64{ch.ID}, Limit: batch})
				require.NoError(b, err)
				require.Equal(b, batch, rr.Queued)
				claimed, err := s.MessageClaim(ctx, store.ClaimParams{ChannelID: ch.ID, Limit: batch, Owner: "bench", Lease: time.Minute})
				require.NoError(b, err)
				require.Len(b, claimed, batch)
				sent := make([]store.SentParams, len(claimed))
				reports := make([]store.ReportParams, len(claimed))
				for i, m := range claimed {
					ref := fmt.Sprintf("%x", m.ID)
					sent[i] = store.SentParams{ID: m.ID, Owner: "bench", Reference: ref, Parts: []store.Part{{PartNumber: 1, Reference: ref}}}
					reports[i] = store.ReportParams{ChannelID: ch.ID, Reference: ref, Status: store.PartDelivered}
				}
				n, err := s.MessageMarkSent(ctx, sent)
				require.NoError(b, err)
				require.Equal(b, batch, n)
				res, err := s.MessageReportApply(ctx, reports)
				require.NoError(b, err)
				require.Equal(b, batch, res.Matched)
			}
			b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkInsert measures MessageInsert alone, in batches of 500.
func BenchmarkInsert(b *testing.B) {
	s := newTestStore(b)
	msgs := make([]store.NewMessage, 500)
	for i := range msgs {
		msgs[i] = store.NewMessage{ToAddress: fmt.Sprintf("+3161%07d", i), Body: "benchmark message body of a typical length, about sixty chars"}
	}
	start := time.Now()
	for b.Loop() {
		_, err := s.MessageInsert(b.Context(), msgs)
		require.NoError(b, err)
	}
	b.ReportMetric(float64(b.N*len(msgs))/time.Since(start).Seconds(), "msgs/s")
}
