package smpp_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/channels"
	"github.com/hermod-sms/hermod/channels/smpp/smsctest"
)

// requireAllMatched checks that every part of every result got exactly one
// report and that no report names an unknown part.
func requireAllMatched(t *testing.T, results []channels.Result, host *fakeHost) {
	t.Helper()
	want := map[string]bool{}
	for _, r := range results {
		require.NoError(t, r.Err, "message %d", r.ID)
		for _, p := range r.Parts {
			require.NotEmpty(t, p.Reference)
			require.False(t, want[p.Reference], "reference %s used twice", p.Reference)
			want[p.Reference] = true
		}
	}
	require.Eventually(t, func() bool { return len(host.Reports()) >= len(want) }, 10*time.Second, 10*time.Millisecond,
		"reports: got %d of %d", len(host.Reports()), len(want))
	seen := map[string]bool{}
	for _, rep := range host.Reports() {
		require.True(t, want[rep.Reference], "report for unknown reference %q", rep.Reference)
		require.False(t, seen[rep.Reference], "two reports for %q", rep.Reference)
		require.True(t, rep.Delivered)
		seen[rep.Reference] = true
	}
}

func TestSendMixedAllReported(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		cfg      smsctest.Config
		settings map[string]any
	}{
		{"udh8 hex", smsctest.Config{}, map[string]any{"responseIdFormat": "hex", "reportIdFormat": "hex"}},
		{"udh16 decimal-vs-hex", smsctest.Config{IDFormat: "hex", ReceiptIDFormat: "decimal", IDPad: 10},
			map[string]any{"splitMethod": "udh16", "responseIdFormat": "hex", "reportIdFormat": "decimal"}},
		{"sar text ids with zeros", smsctest.Config{IDPad: 12, ReceiptTLVs: true}, map[string]any{"splitMethod": "sar", "binds": 2}},
		{"payload, receipts first", smsctest.Config{Receipts: smsctest.ReceiptsBefore}, map[string]any{"splitMethod": "payload"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tc.cfg, tc.settings)
			var msgs []channels.Message
			for i := range 40 {
				msgs = append(msgs, msg(int64(i+1), "+3161234567"+string(rune('0'+i%10)), mixedBody(i)))
			}
			results := b.ch.Send(context.Background(), msgs)
			require.Len(t, results, len(msgs))
			parts := 0
			for i, r := range results {
				require.Equal(t, msgs[i].ID, r.ID)
				require.NoError(t, r.Err)
				if tc.settings["splitMethod"] != "payload" && i%4 == 1 || i%4 == 2 && tc.settings["splitMethod"] != "payload" {
					require.GreaterOrEqual(t, len(r.Parts), 3, "message %d", i)
				}
				parts += len(r.Parts)
			}
			require.Len(t, b.srv.Submits(), parts, "one submit_sm per part, nothing twice")
			requireAllMatched(t, results, b.host)
		})
	}
}
