package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/store/postgres"
	"github.com/hermod-sms/hermod/store/storetest/testdb"
)

// testURL returns HERMOD_TEST_POSTGRES or skips the test (fails it when
// HERMOD_REQUIRE_POSTGRES is set).
func testURL(t testing.TB) string {
	t.Helper()
	return testdb.PostgresURL(t)
}

// newTestStore opens a store in a fresh schema hermod_t_<random>, migrated,
// and drops the schema when the test ends.
func newTestStore(t testing.TB) *postgres.Store {
	t.Helper()
	return openTestStore(t, testURL(t))
}

// openTestStore is newTestStore with an explicit URL (of the database of
// HERMOD_TEST_POSTGRES, with parameters of its own).
func openTestStore(t testing.TB, url string) *postgres.Store {
	t.Helper()
	_, schema := testdb.NewPostgres(t)
	s, err := postgres.Open(context.Background(), url, postgres.Options{Schema: schema})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// withParam adds a query parameter to a connection URL.
func withParam(url, key, value string) string {
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + key + "=" + value
}
