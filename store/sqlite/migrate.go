package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/golang-migrate/migrate/v4"
	migratesqlite "github.com/golang-migrate/migrate/v4/database/sqlite"
	"github.com/golang-migrate/migrate/v4/source/iofs"

	schema "github.com/hermod-sms/hermod/sql"
)

// newMigrate opens a golang-migrate instance over the embedded sqlite
// migrations. It uses its own connection (the migrate driver closes the
// database it is given); call the returned close function when done.
func (s *Store) newMigrate(ctx context.Context) (*migrate.Migrate, func(), error) {
	src, err := iofs.New(schema.SQLite, "sqlite")
	if err != nil {
		return nil, nil, fmt.Errorf("sqlite migrations: read the embedded files: %w", err)
	}
	db, err := sql.Open("sqlite", dsn(s.path, true))
	if err != nil {
		return nil, nil, fmt.Errorf("sqlite migrations: open %q: %w", s.path, err)
	}
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("sqlite migrations: open %q: %w", s.path, err)
	}
	drv, err := migratesqlite.WithInstance(db, &migratesqlite.Config{})
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("sqlite migrations: prepare %q: %w", s.path, err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "sqlite", drv)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("sqlite migrations: %w", err)
	}
	m.Log = migrateLogger{s}
	return m, func() { m.Close() }, nil
}

// migrateWaitPoll is how often MigrateUp looks again at a schema another
// process is migrating.
const migrateWaitPoll = 20 * time.Millisecond

// MigrateUp applies every pending migration under sql/sqlite. SQLite has no
// repeatable scripts (procedures/ holds none for it).
//
// golang-migrate's SQLite driver locks only within this process, and marks
// the version dirty while a migration runs. A schema found dirty is
// therefore taken for another process's migration in progress (two services
// opening a new file together) and looked at again until it is clean, for
// up to BusyTimeout; still dirty then, it is a failed migration.
func (s *Store) MigrateUp(ctx context.Context) error {
	deadline := time.Now().Add(BusyTimeout)
	for {
		err := s.migrateUp(ctx)
		var dirty migrate.ErrDirty
		if !errors.As(err, &dirty) || time.Now().After(deadline) {
			return err
		}
		s.logger.DebugContext(ctx, "sqlite schema is dirty; waiting for another process's migration", "path", s.path, "version", dirty.Version)
		select {
		case <-ctx.Done():
			return fmt.Errorf("sqlite %q: wait for another process's migration: %w", s.path, ctx.Err())
		case <-time.After(migrateWaitPoll):
		}
	}
}

// migrateUp makes one attempt of MigrateUp, holding the migration lock
// shared with other processes.
func (s *Store) migrateUp(ctx context.Context) error {
	unlock, err := lockMigrations(ctx, s.path)
	if err != nil {
		return err
	}
	defer unlock()
	m, done, err := s.newMigrate(ctx)
	if err != nil {
		return err
	}
	defer done()
	before, _, _ := m.Version()
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("sqlite %q: apply migrations: %w (a failed migration leaves the schema dirty: fix the cause, then force the version with the migrate tool)", s.path, err)
	}
	after, _, _ := m.Version()
	if after != before {
		s.logger.InfoContext(ctx, "sqlite schema migrated", "path", s.path, "from", before, "to", after)
	}
	return nil
}

// MigrateDown rolls back n migrations, or all of them when n <= 0.
func (s *Store) MigrateDown(ctx context.Context, n int) error {
	m, done, err := s.newMigrate(ctx)
	if err != nil {
		return err
	}
	defer done()
	if n <= 0 {
		err = m.Down()
	} else {
		err = m.Steps(-n)
	}
	if err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("sqlite %q: roll back migrations: %w", s.path, err)
	}
	return nil
}

// MigrateStatus reports the applied and the latest version and whether a
// failed migration left the schema dirty.
func (s *Store) MigrateStatus(ctx context.Context) (current, latest uint, dirty bool, err error) {
	latest, err = latestVersion()
	if err != nil {
		return 0, 0, false, err
	}
	m, done, err := s.newMigrate(ctx)
	if err != nil {
		return 0, 0, false, err
	}
	defer done()
	current, dirty, err = m.Version()
	if errors.Is(err, migrate.ErrNilVersion) {
		return 0, latest, false, nil
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("sqlite %q: read the schema version: %w", s.path, err)
	}
	return current, latest, dirty, nil
}

// latestVersion is the highest migration version embedded in the binary.
func latestVersion() (uint, error) {
	src, err := iofs.New(schema.SQLite, "sqlite")
	if err != nil {
		return 0, fmt.Errorf("sqlite migrations: read the embedded files: %w", err)
	}
	defer src.Close()
	v, err := src.First()
	if err != nil {
		return 0, fmt.Errorf("sqlite migrations: no migration files embedded: %w", err)
	}
	for {
		next, err := src.Next(v)
		if errors.Is(err, fs.ErrNotExist) {
			return v, nil
		}
		if err != nil {
			return 0, fmt.Errorf("sqlite migrations: %w", err)
		}
		v = next
	}
}

// migrateLogger sends golang-migrate's verbose lines to the store's logger
// at debug level.
type migrateLogger struct{ s *Store }

func (l migrateLogger) Printf(format string, v ...any) {
	l.s.logger.Debug(fmt.Sprintf(format, v...), "path", l.s.path)
}

func (l migrateLogger) Verbose() bool { return false }
