package postgres

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/store"
)

// SQLSTATEs of the connection and the server's state are outages; the
// rest are statement errors. (errors_test.go produces them with real
// statements.)
func TestStatementFix(t *testing.T) {
	t.Parallel()
	for _, code := range []string{"08006", "08001", "28P01", "3D000", "40P01", "40001", "53100", "53300", "55P03", "57P01", "57P03", "57014", "58030", "25006", ""} {
		_, ok := statementFix(code)
		require.False(t, ok, "%s is an outage", code)
	}
	for code, fix := range map[string]string{
		"42703": store.FixSchema, "42P01": store.FixSchema, "42883": store.FixSchema,
		"42601": store.FixServer, "42501": store.FixPermission,
		"22P02": store.FixData, "23P01": store.FixData, "P0001": store.FixRaised,
		"0A000": store.FixServer, "XX000": store.FixServer, "25P02": store.FixServer,
	} {
		got, ok := statementFix(code)
		require.True(t, ok, "%s is a statement error", code)
		require.Equal(t, fix, got, code)
	}
}
