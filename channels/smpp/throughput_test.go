package smpp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/channels/smpp/smsctest"
	"github.com/hermod-sms/hermod/engine"
	"github.com/hermod-sms/hermod/store"
)

// TestThroughputThroughEngine measures the SMPP channel end to end, the
// way an application uses Hermod: rows are inserted in batches of 1000
// while the engine runs (it is never nudged: it finds them by polling or
// LISTEN/NOTIFY), the engine claims them, the channel submits them to the
// test SMSC over loopback, the SMSC answers and sends a delivery receipt
// for each, and the run ends when every message is DELIVERED. The figure
// is messages per second from the first INSERT to the last DELIVERED
// commit. No outage: this is the steady-state path.
//
// It runs only when HERMOD_SMPP_THROUGHPUT is set to the number of
// messages (on SQLite, on PostgreSQL with HERMOD_TEST_POSTGRES and on SQL
// Server with HERMOD_TEST_SQLSERVER):
//
//	HERMOD_SMPP_THROUGHPUT=50000 HERMOD_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//	  go test -run TestThroughputThroughEngine -v -count 1 ./channels/smpp/
//
// HERMOD_SMPP_THROUGHPUT_MIXED=1 sends the e2e mix (short, long GSM with
// extension characters, long UCS-2 with emoji) instead of short messages.
// HERMOD_SMPP_THROUGHPUT_BINDS, _WINDOW, _BATCH and _CONCURRENCY override
// the channel's binds (2), window (100), batchSize (200) and concurrency (2).
// HERMOD_SMPP_THROUGHPUT_RECEIPT_DELAY (a duration, default 0: at once)
// delays the SMSC's receipts after each submit_sm_resp.
// HERMOD_SMPP_THROUGHPUT_PROFILE=DIR writes CPU and block profiles of the
// run to DIR (one backend at a time then: -run 'TestThroughputThroughEngine/sqlite').
func TestThroughputThroughEngine(t *testing.T) {
	n := envInt("HERMOD_SMPP_THROUGHPUT", 0)
	if n == 0 {
		t.Skip("set HERMOD_SMPP_THROUGHPUT to the number of messages to measure the throughput through the engine")
	}
	profileDir := os.Getenv("HERMOD_SMPP_THROUGHPUT_PROFILE")
	mixed := os.Getenv("HERMOD_SMPP_THROUGHPUT_MIXED") != ""
	var profileOnce sync.Mutex // profiles are process-wide: one run at a time
	e2eBackends(t, func(t *testing.T, s store.Store) {
		if profileDir != "" {
			profileOnce.Lock()
			defer profileOnce.Unlock()
		}
		ctx := context.Background()
		srv, err := smsctest.Start(smsctest.Config{ReceiptDelay: envDuration("HERMOD_SMPP_THROUGHPUT_RECEIPT_DELAY", 0)})
		require.NoError(t, err)
		t.Cleanup(srv.Close)
		settings, _ := json.Marshal(map[string]any{
			"host": srv.Host(), "port": srv.Port(), "systemId": "hermod", "password": "secret",
			"binds": envInt("HERMOD_SMPP_THROUGHPUT_BINDS", 2), "window": envInt("HERMOD_SMPP_THROUGHPUT_WINDOW", 100),
			"batchSize": envInt("HERMOD_SMPP_THROUGHPUT_BATCH", 200), "concurrency": envInt("HERMOD_SMPP_THROUGHPUT_CONCURRENCY", 2),
			"statsInterval": "-1s",
		})
		ch, err := s.ChannelCreate(ctx, store.Channel{Name: "smpp1", Type: "smpp", Settings: string(settings), Enabled: true})
		require.NoError(t, err)
		logs := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
		e, err := engine.New(engine.Config{Store: s, Logger: logs})
		require.NoError(t, err)

		if profileDir != "" {
			name := strings.ReplaceAll(t.Name(), "/", "_")
			f, err := os.Create(filepath.Join(profileDir, name+".cpu.prof"))
			require.NoError(t, err)
			require.NoError(t, pprof.StartCPUProfile(f))
			runtime.SetBlockProfileRate(int(10 * time.Microsecond))
			defer func() {
				pprof.StopCPUProfile()
				_ = f.Close()
				b, err := os.Create(filepath.Join(profileDir, name+".block.prof"))
				if err == nil {
					_ = pprof.Lookup("block").WriteTo(b, 0)
					_ = b.Close()
				}
				runtime.SetBlockProfileRate(0)
			}()
		}
		require.NoError(t, e.Start(ctx))
		t.Cleanup(func() {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = e.Stop(sctx)
		})
		// Wait until the channel is bound, so that the figure measures the
		// steady state and not the bind.
		require.Eventually(t, func() bool {
			c, err := s.ChannelGet(ctx, "smpp1")
			return err == nil && srv.Bound() == 2 && c != nil
		}, 30*time.Second, 10*time.Millisecond)

		start := time.Now()
		insertErr := make(chan error, 1)
		lastID := make(chan int64, 1)
		go func() {
			var last int64
			for from := 0; from < n; from += 1000 {
				batch := make([]store.NewMessage, 0, 1000)
				for i := from; i < min(n, from+1000); i++ {
					body := fmt.Sprintf("throughput message %d", i)
					if mixed {
						body = mixedBody(i)
					}
					batch = append(batch, store.NewMessage{ToAddress: fmt.Sprintf("+4479%08d", i), FromAddress: "Hermod", Body: body, ChannelID: ch.ID})
				}
				res, err := s.MessageInsert(ctx, batch)
				if err != nil {
					insertErr <- err
					return
				}
				last = res[len(res)-1].ID
			}
			lastID <- last
			insertErr <- nil
		}()
		var last int64
		select {
		case last = <-lastID:
		case err := <-insertErr:
			require.NoError(t, err)
		}
		inserted := time.Since(start)
		require.NoError(t, <-insertErr)
		// Wait as hermod bench does, so that the wait costs the database
		// little: the last message by primary key every 50ms, a count
		// every 2s or when that message is final.
		// No progress for 30s is a stall: fail with the status counts and
		// every goroutine's stack, rather than wait for leases to expire.
		var lastCount, lastChange time.Time
		var prev map[string]int
		for {
			m, err := s.MessageGet(ctx, last)
			require.NoError(t, err)
			if m.Status == store.StatusDelivered || time.Since(lastCount) > 2*time.Second {
				lastCount = time.Now()
				counts, err := s.MessageCountByStatus(ctx, store.DirectionOut)
				require.NoError(t, err)
				if counts[store.StatusDelivered] >= n {
					break
				}
				if !maps.Equal(counts, prev) {
					prev, lastChange = counts, time.Now()
				} else if time.Since(lastChange) > 30*time.Second {
					var dump strings.Builder
					_ = pprof.Lookup("goroutine").WriteTo(&dump, 1)
					t.Logf("goroutines:\n%s", dump.String())
					t.Fatalf("stalled: no message changed status for 30s after %v: %v; channel %+v", time.Since(start), counts, srv.Bound())
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		elapsed := time.Since(start)
		// The figure from the database's own clock, as hermod bench
		// computes it: first CreatedTime to the last DELIVERED commit.
		var first, lastUpdate time.Time
		for after := int64(0); ; {
			page, err := s.MessageList(ctx, store.MessageFilter{Direction: store.DirectionOut, AfterID: after, Ascending: true, Limit: 10000})
			require.NoError(t, err)
			if len(page) == 0 {
				break
			}
			for _, m := range page {
				after = m.ID
				if first.IsZero() || m.CreatedTime.Before(first) {
					first = m.CreatedTime
				}
				if m.LastUpdate.After(lastUpdate) {
					lastUpdate = m.LastUpdate
				}
			}
		}
		span := lastUpdate.Sub(first)
		accepted := 0
		seen := map[string]int{}   // part -> times accepted
		dests := map[string]bool{} // messages that reached the SMSC
		for _, sub := range srv.Submits() {
			if sub.Status == 0 {
				accepted++
				seen[submitKey(sub)]++
				dests[sub.PDU.Dest] = true
			}
		}
		twice := 0
		for _, c := range seen {
			if c > 1 {
				twice++
			}
		}
		require.Equal(t, n, len(dests), "every message reached the SMSC")
		t.Logf("%s: %d messages inserted in %v (%.0f msg/s), all DELIVERED after %v (wall clock); throughput %.0f msg/s end to end (first INSERT to last DELIVERED commit, database clock: %v); %d submits accepted, %d parts sent twice",
			t.Name(), n, inserted.Round(time.Millisecond), float64(n)/inserted.Seconds(), elapsed.Round(time.Millisecond),
			float64(n)/span.Seconds(), span.Round(time.Millisecond), accepted, twice)
	})
}
