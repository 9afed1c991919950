package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/store"
	"github.com/hermod-sms/hermod/store/sqlite"
	"github.com/hermod-sms/hermod/store/storetest"
)

// newTestStore opens a migrated store on a fresh file in t's temporary
// directory and closes it when t ends.
func newTestStore(t testing.TB) *sqlite.Store {
	t.Helper()
	return newTestStoreAt(t, filepath.Join(t.TempDir(), "hermod.db"))
}

// newTestStoreAt opens a migrated store on path and closes it when t ends.
func newTestStoreAt(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return newTestStore(t) })
}
