package api

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/store"
)

func TestFilterEval(t *testing.T) {
	t.Parallel()
	m := &store.Message{
		ID: 10, Direction: "OUT", Status: "SENT", ToAddress: "+31612345678", Body: "It's here",
		FromTON: -1, FromNPI: -1, DataCoding: -1, Priority: 2, ChannelID: 3, BatchID: "b1",
		CreatedTime: time.Date(2030, 1, 2, 10, 0, 0, 0, time.UTC),
	}
	cases := map[string]bool{
		"":                                    true,
		"Status = 'SENT'":                     true,
		"status='sent'":                       false, // = is exact
		"ToAddress LIKE '+31%'":               true,
		"ToAddress like '+3_6%'":              true,
		"ToAddress NOT LIKE '+31%'":           false,
		"Body LIKE '%IT''S%'":                 true, // LIKE ignores case; '' is a quote
		"Status IN ('QUEUED', 'SENT')":        true,
		"Status NOT IN ('QUEUED', 'SENT')":    false,
		"FromAddress IS NULL":                 true,
		"FromAddress IS NOT NULL":             false,
		"FromAddress = ''":                    false, // NULL = x is unknown
		"NOT (FromAddress = 'x')":             false, // NOT unknown is unknown
		"FromAddress = 'x' OR ID = 10":        true,
		"DataCoding IS NULL AND Priority > 1": true,
		"Priority BETWEEN 1 AND 2":            true,
		"Priority NOT BETWEEN 1 AND 2":        false,
		"ID <> 10":                            false,
		"ID != 11":                            true,
		"ID >= 10 AND ID <= 10":               true,
		"CreatedTime >= '2030-01-02'":         true,
		"CreatedTime < '2030-01-02 09:59:59'": false,
		"hermod.Messages.ChannelID = 3":       true,
		"[BatchID] = 'b1'":                    true,
		"Status = N'SENT'":                    true,
		"(Status = 'SENT' OR Status = 'X') AND NOT Direction = 'IN'": true,
		"RequestDeliveryReport = 0":                                  true,
	}
	for src, want := range cases {
		n, err := parseFilter(src)
		require.NoError(t, err, src)
		require.Equal(t, want, matches(n, m), src)
	}
}

func TestFilterRejects(t *testing.T) {
	t.Parallel()
	for _, src := range []string{
		"Status = 'SENT'; DELETE FROM Messages",
		"Status = 'SENT' -- comment",
		"Status = 'SENT' /* x */",
		"Secret = 1",
		"Status = (SELECT 1)",
		"GETDATE() > CreatedTime",
		"Status = NULL",
		"ID = 'x'",
		"CreatedTime > 'tomorrow'",
		"Status LIKE 5",
		"ID LIKE '1%'",
		"Status = 'unterminated",
		"(Status = 'SENT'",
		"Status = 'SENT' Status = 'X'",
		"Status IS 'SENT'",
		"Status NOT = 'x'",
		"1 = 1",
		"Status = 'a' OR",
	} {
		_, err := parseFilter(src)
		require.Error(t, err, src)
		var fe *FilterError
		require.ErrorAs(t, err, &fe, src)
	}
}

func TestFilterPushDown(t *testing.T) {
	t.Parallel()
	n, err := parseFilter("Status IN ('SENT','QUEUED') AND Direction = 'OUT' AND ChannelID = 4 AND BatchID = 'b' AND CreatedTime >= '2030-01-01' AND CreatedTime < '2030-02-01' AND (ID = 1 OR Body LIKE 'x%')")
	require.NoError(t, err)
	var f store.MessageFilter
	pushDown(n, &f)
	require.Equal(t, []string{"SENT", "QUEUED"}, f.Status)
	require.Equal(t, "OUT", f.Direction)
	require.Equal(t, int64(4), f.ChannelID)
	require.Equal(t, "b", f.BatchID)
	require.Equal(t, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), f.Since)
	require.Equal(t, time.Date(2030, 2, 1, 0, 0, 0, 0, time.UTC), f.Until)

	// Nothing under OR or NOT is pushed down.
	n, err = parseFilter("Status = 'SENT' OR BatchID = 'b'")
	require.NoError(t, err)
	f = store.MessageFilter{}
	pushDown(n, &f)
	require.Equal(t, store.MessageFilter{}, f)
}

func TestLikeMatch(t *testing.T) {
	t.Parallel()
	require.True(t, likeMatch("abc", "a%"))
	require.True(t, likeMatch("abc", "%c"))
	require.True(t, likeMatch("abc", "a_c"))
	require.True(t, likeMatch("abc", "%%%"))
	require.True(t, likeMatch("", "%"))
	require.False(t, likeMatch("abc", "a_"))
	require.True(t, likeMatch("aXbXc", "a%b%c"))
	require.False(t, likeMatch("ab", "a%b%c"))
}

func FuzzFilter(f *testing.F) {
	for _, s := range []string{"Status = 'SENT'", "ToAddress LIKE '+31%' AND NOT (ID IN (1,2))", "CreatedTime BETWEEN '2030-01-01' AND '2030-02-01'", "(((", "'", "[x"} {
		f.Add(s)
	}
	m := &store.Message{ID: 1, Status: "SENT", ToAddress: "+31612345678", FromTON: -1, FromNPI: -1, DataCoding: -1}
	f.Fuzz(func(t *testing.T, src string) {
		n, err := parseFilter(src)
		if err != nil {
			return
		}
		_ = matches(n, m)
		var mf store.MessageFilter
		if n != nil {
			pushDown(n, &mf)
		}
	})
}
