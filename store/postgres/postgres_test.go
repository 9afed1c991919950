package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/store/postgres"
)

// testURL returns HERMOD_TEST_POSTGRES or skips the test (fails it when
// HERMOD_REQUIRE_POSTGRES is set).
func testURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("HERMOD_TEST_POSTGRES")
	if url == "" {
		if os.Getenv("HERMOD_REQUIRE_POSTGRES") != "" {
			t.Fatal("HERMOD_REQUIRE_POSTGRES is set but HERMOD_TEST_POSTGRES is not")
		}
		t.Skip("HERMOD_TEST_POSTGRES is not set (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
	}
	return url
}

// newTestStore opens a store in a fresh schema hermod_t_<random>, migrated,
// and drops the schema when the test ends.
func newTestStore(t testing.TB) *postgres.Store {
	t.Helper()
	return openTestStore(t, testURL(t))
}

// openTestStore is newTestStore with an explicit URL.
func openTestStore(t testing.TB, url string) *postgres.Store {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "hermod_t_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	s, err := postgres.Open(ctx, url, postgres.Options{Schema: schema})
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := s.Pool().Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
		s.Close()
		require.NoError(t, err)
	})
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
