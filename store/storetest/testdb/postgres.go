package testdb

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// cleanupTimeout bounds dropping a test's schema or database.
const cleanupTimeout = 2 * time.Minute

// NewPostgres creates a fresh schema hermod_t_<random> in the database of
// HERMOD_TEST_POSTGRES (skipping t without it) and drops it, with everything
// in it, when t ends. Open the store with that schema.
func NewPostgres(t testing.TB) (url, schema string) {
	t.Helper()
	url = PostgresURL(t)
	schema = randomName("hermod_t_")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pgExec(ctx, url, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("testdb: create the PostgreSQL schema %s in %s: %v", schema, PostgresEnv, err)
	}
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		if err := pgExec(ctx, url, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			t.Errorf("testdb: drop the PostgreSQL schema %s: %v", schema, err)
		}
	})
	return url, schema
}

// pgExec runs one statement on a connection of its own.
func pgExec(ctx context.Context, url, sql string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}
