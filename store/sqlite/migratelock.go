package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"time"
)

// migrateLockStale is how old a migration lock file may be before it is
// taken for the leftover of a process that died while migrating.
const migrateLockStale = 2 * time.Minute

// lockMigrations serializes schema migrations between processes that open
// one database file at once. golang-migrate locks only within a process, and
// SQLite's ALTER TABLE ... ADD COLUMN has no IF NOT EXISTS: without this, the
// second process to apply a migration fails and leaves the version dirty.
//
// The lock is a file beside the database, created exclusively (O_EXCL works
// on every platform and file system SQLite supports); a lock older than
// migrateLockStale is removed. It returns the function that releases it.
func lockMigrations(ctx context.Context, dbPath string) (func(), error) {
	lock := dbPath + ".migrate-lock"
	for {
		f, err := os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			_, _ = f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
			_ = f.Close()
			return func() { _ = os.Remove(lock) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("sqlite %q: create the migration lock %s: %w (the database's folder must be writable)", dbPath, lock, err)
		}
		if st, serr := os.Stat(lock); serr == nil && time.Since(st.ModTime()) > migrateLockStale {
			_ = os.Remove(lock) // left by a process that died while migrating
			continue
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("sqlite %q: wait for another process's migration (lock %s): %w", dbPath, lock, ctx.Err())
		case <-time.After(migrateWaitPoll):
		}
	}
}
