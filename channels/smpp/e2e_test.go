package smpp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/channels/smpp/smsctest"
	"github.com/hermod-sms/hermod/engine"
	"github.com/hermod-sms/hermod/store"
	"github.com/hermod-sms/hermod/store/storetest/testdb"
	"github.com/hermod-sms/hermod/store/storetest/teststore"
)

// e2eBackends runs f on a fresh store of each backend: SQLite, PostgreSQL
// (HERMOD_TEST_POSTGRES) and SQL Server (HERMOD_TEST_SQLSERVER).
func e2eBackends(t *testing.T, f func(t *testing.T, s store.Store)) {
	testdb.Run(t, func(t *testing.T, backend string) {
		t.Parallel()
		f(t, teststore.Open(t, backend))
	})
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestEndToEndThroughEngine sends a mix of short, long, GSM-extension and
// UCS-2 emoji messages from the database through the engine and the SMPP
// channel to the test SMSC, which drops every connection half way and
// refuses binds for a while. Every message must end DELIVERED with every
// part matched to its report; a part the SMSC got twice must be one that
// was in flight without a response, and its message's Trace says so.
//
// HERMOD_SMPP_E2E_MESSAGES (default 400) and HERMOD_SMPP_E2E_REFUSE
// (default 2s) scale it up to the acceptance run: 10000 and 20s.
// HERMOD_SMPP_E2E_LEASE (default 3m) sets the engine's lease; the send
// timeout is half of it.
func TestEndToEndThroughEngine(t *testing.T) {
	t.Parallel()
	n := envInt("HERMOD_SMPP_E2E_MESSAGES", 400)
	refuse := envDuration("HERMOD_SMPP_E2E_REFUSE", 2*time.Second)
	lease := envDuration("HERMOD_SMPP_E2E_LEASE", 3*time.Minute)
	e2eBackends(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		srv, err := smsctest.Start(smsctest.Config{IDFormat: "hex", ReceiptIDFormat: "decimal", IDPad: 10})
		require.NoError(t, err)
		t.Cleanup(srv.Close)
		settings, _ := json.Marshal(map[string]any{
			"host": srv.Host(), "port": srv.Port(), "systemId": "hermod", "password": "secret",
			"binds": 2, "window": 100, "responseIdFormat": "hex", "reportIdFormat": "decimal",
			"reconnectMin": "100ms", "reconnectMax": "1s", "responseTimeout": "5s", "batchSize": 500, "bindWait": "2m",
		})
		ch, err := s.ChannelCreate(ctx, store.Channel{Name: "smpp1", Type: "smpp", Settings: string(settings), Enabled: true})
		require.NoError(t, err)

		logs := newFakeHost(t).log
		if os.Getenv("HERMOD_TEST_VERBOSE") == "" {
			logs = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
		}
		e, err := engine.New(engine.Config{
			Store: s, Logger: logs, Lease: lease, SendTimeout: lease / 2,
			RetryBase: 50 * time.Millisecond, RetryMax: time.Second, PollMax: 20 * time.Millisecond,
			ChannelRefresh: 100 * time.Millisecond, RestartBackoff: 50 * time.Millisecond, ClaimBatch: 500,
		})
		require.NoError(t, err)
		require.NoError(t, e.Start(ctx))
		t.Cleanup(func() {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = e.Stop(sctx)
		})

		start := time.Now()
		var ids []int64
		dest := map[string]int64{}
		for from := 0; from < n; from += 500 {
			var batch []store.NewMessage
			for i := from; i < min(n, from+500); i++ {
				to := fmt.Sprintf("+4479%08d", i)
				batch = append(batch, store.NewMessage{ToAddress: to, FromAddress: "Hermod", Body: mixedBody(i), ChannelID: ch.ID})
			}
			res, err := s.MessageInsert(ctx, batch)
			require.NoError(t, err)
			for i, r := range res {
				ids = append(ids, r.ID)
				dest[strings.TrimPrefix(batch[i].ToAddress, "+")] = r.ID
			}
		}
		e.Nudge()

		// Half way: drop every connection and refuse binds for a while.
		dropped := make(chan struct{})
		go func() {
			defer close(dropped)
			for srv.SubmitCount() < n {
				time.Sleep(2 * time.Millisecond)
			}
			srv.RefuseBinds(0, refuse)
			srv.DisconnectAll()
		}()

		deadline := time.Now().Add(refuse + time.Duration(n/50+60)*time.Second)
		for {
			counts, err := s.MessageCountByStatus(ctx, store.DirectionOut)
			require.NoError(t, err)
			delivered := counts[store.StatusDelivered]
			if delivered >= n {
				break
			}
			if time.Now().After(deadline) {
				counts := map[string]int{}
				for _, id := range ids {
					m, err := s.MessageGet(ctx, id)
					require.NoError(t, err)
					counts[m.Status]++
				}
				var dump strings.Builder
				_ = pprof.Lookup("goroutine").WriteTo(&dump, 1)
				t.Logf("goroutines:\n%s", dump.String())
				t.Fatalf("after %v only %d of %d delivered: %v", time.Since(start), delivered, n, counts)
			}
			time.Sleep(250 * time.Millisecond)
		}
		elapsed := time.Since(start)
		<-dropped
		require.GreaterOrEqual(t, srv.Binds(), 3, "the channel rebound after the drop")

		// Count what the SMSC accepted per part.
		accepted := map[string]int{}
		for _, sub := range srv.Submits() {
			if sub.Status == 0 {
				accepted[submitKey(sub)]++
			}
		}
		twice := map[int64]bool{}
		partsAccepted := 0
		for key, c := range accepted {
			partsAccepted++
			if c > 1 {
				twice[dest[strings.SplitN(key, "|", 2)[0]]] = true
			}
		}
		totalParts := 0
		for _, id := range ids {
			m, err := s.MessageGet(ctx, id)
			require.NoError(t, err)
			require.Equal(t, store.StatusDelivered, m.Status, "message %d", id)
			parts, err := s.MessageParts(ctx, id)
			require.NoError(t, err)
			require.Len(t, parts, m.TotalParts, "message %d", id)
			for _, p := range parts {
				require.Equal(t, store.PartDelivered, p.Status, "message %d part %d", id, p.PartNumber)
			}
			totalParts += m.TotalParts
			if twice[id] {
				require.True(t, strings.Contains(m.Trace, "may be delivered twice") || strings.Contains(m.Trace, "may have been delivered") ||
					strings.Contains(m.Trace, "may have been sent"),
					"message %d was sent twice without a word in its Trace:\n%s", id, m.Trace)
			}
		}
		require.Equal(t, totalParts, partsAccepted, "every part reached the SMSC")
		t.Logf("%s: %d messages (%d parts) DELIVERED in %v (%.0f msg/s) with a disconnect and %v of refused binds; %d messages had a part sent twice",
			t.Name(), n, totalParts, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), refuse, len(twice))
	})
}
