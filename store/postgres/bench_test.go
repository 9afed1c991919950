package postgres_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/store"
	"github.com/hermod-sms/hermod/store/postgres"
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
	s := newBenchStore(b)
	ctx := b.Context()
	cpu0, pg0 := cpuTime(b, s)
	wal0 := walPosition(b, s)
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
	cpu1, pg1 := cpuTime(b, s)
	wal1 := walPosition(b, s)
	msgsPerCPUSecond := float64(b.N*batch) / (cpu1 - cpu0).Seconds()
	b.ReportMetric(float64((pg1-pg0).Microseconds())/float64(b.N*batch), "pg-cpu-µs/msg")
	b.ReportMetric(float64((cpu1-cpu0-(pg1-pg0)).Microseconds())/float64(b.N*batch), "go-cpu-µs/msg")
	b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "msgs/s")
	// On a shared machine wall time says little: the CPU time that this
	// process and its PostgreSQL backends used is the stable figure. A
	// single busy core does msgs/cpu-s messages per second.
	b.ReportMetric(msgsPerCPUSecond, "msgs/cpu-s")
	// WAL is written by every session of the server: the figure is exact
	// only on a server that runs nothing else.
	b.ReportMetric(float64(wal1-wal0)/float64(b.N*batch), "wal-B/msg")
	for i, name := range []string{"insert", "route", "claim", "sent", "report"} {
		b.ReportMetric(float64(steps[i].Microseconds())/float64(b.N*batch), name+"-µs/msg")
	}
}

// cpuTime returns the CPU time used so far by this process and its
// PostgreSQL backends together, and by the backends serving s alone (when the server runs on this machine and
// its /proc entries are readable; otherwise this process only).
func cpuTime(b *testing.B, s *postgres.Store) (total, pg time.Duration) {
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	total = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	rows, err := s.Pool().Query(b.Context(),
		`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = current_setting('application_name') AND backend_type = 'client backend'`)
	require.NoError(b, err)
	var pids []int
	for rows.Next() {
		var pid int
		require.NoError(b, rows.Scan(&pid))
		pids = append(pids, pid)
	}
	require.NoError(b, rows.Err())
	ticks := 100.0 // USER_HZ on Linux
	for _, pid := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		utime, _ := strconv.ParseFloat(fields[11], 64)
		stime, _ := strconv.ParseFloat(fields[12], 64)
		pg += time.Duration((utime + stime) / ticks * float64(time.Second))
	}
	return total + pg, pg
}

// walPosition returns the server's current WAL insert position in bytes.
func walPosition(b *testing.B, s *postgres.Store) int64 {
	var pos int64
	require.NoError(b, s.Pool().QueryRow(b.Context(), `SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn`).Scan(&pos))
	return pos
}

// BenchmarkCycleParallel runs the cycle of BenchmarkCycle in two pipelines
// at once, each on its own channel, as an engine with several channels
// does; one iteration is one batch of 500 in each pipeline.
func BenchmarkCycleParallel(b *testing.B) {
	const batch, workers = 500, 2
	s := newBenchStore(b)
	ctx := b.Context()
	cpu0, _ := cpuTime(b, s)
	start := time.Now()
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			errs <- func() error {
				c, err := s.ChannelCreate(ctx, store.Channel{Name: fmt.Sprintf("bench%d", w), Type: "simulator", Enabled: true})
				if err != nil {
					return err
				}
				msgs := make([]store.NewMessage, batch)
				for i := range msgs {
					msgs[i] = store.NewMessage{ToAddress: "+31612345678", Body: "benchmark message body of a typical length", ChannelID: c.ID}
				}
				for n := range b.N {
					if _, err := s.MessageInsert(ctx, msgs); err != nil {
						return err
					}
					var claimed []*store.Message
					for len(claimed) < batch {
						if _, err := s.MessageRoute(ctx, store.RouteParams{Channels: []int64{c.ID}, Limit: batch}); err != nil {
							return err
						}
						got, err := s.MessageClaim(ctx, store.ClaimParams{ChannelID: c.ID, Limit: batch - len(claimed), Owner: "bench", Lease: time.Minute})
						if err != nil {
							return err
						}
						claimed = append(claimed, got...)
					}
					sent := make([]store.SentParams, len(claimed))
					reports := make([]store.ReportParams, len(claimed))
					for i, m := range claimed {
						ref := fmt.Sprintf("w%d-%d-%d", w, n, i)
						sent[i] = store.SentParams{ID: m.ID, Owner: "bench", Reference: ref}
						reports[i] = store.ReportParams{ChannelID: c.ID, Reference: ref, Status: store.PartDelivered}
					}
					if _, err := s.MessageMarkSent(ctx, sent); err != nil {
						return err
					}
					res, err := s.MessageReportApply(ctx, reports)
					if err != nil {
						return err
					}
					if res.Matched != batch {
						return fmt.Errorf("matched %d of %d reports", res.Matched, batch)
					}
				}
				return nil
			}()
		}()
	}
	for range workers {
		require.NoError(b, <-errs)
	}
	b.StopTimer()
	cpu1, _ := cpuTime(b, s)
	total := float64(b.N * batch * workers)
	b.ReportMetric(total/time.Since(start).Seconds(), "msgs/s")
	b.ReportMetric(total/(cpu1-cpu0).Seconds(), "msgs/cpu-s")
}

// newBenchStore opens a fresh store whose connections carry an
// application_name of their own, so that cpuTime finds its backends only.
func newBenchStore(b *testing.B) *postgres.Store {
	return openTestStore(b, withParam(testURL(b), "application_name", fmt.Sprintf("hermod-bench-%d", time.Now().UnixNano())))
}
