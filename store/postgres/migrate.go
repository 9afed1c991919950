package postgres

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/golang-migrate/migrate/v4"
	pgxmigrate "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/hermod-sms/hermod/procedures"
	sqlfiles "github.com/hermod-sms/hermod/sql"
)

// migrationsTable is golang-migrate's bookkeeping table, inside the schema.
const migrationsTable = "schema_migrations"

// ensureSchema creates the schema if it is missing. The name was validated
// by Open, so it needs no quoting.
func (s *Store) ensureSchema(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+s.schema)
	var pgErr *pgconn.PgError
	// Two nodes creating it at the same moment: the loser sees a
	// duplicate; the schema exists either way.
	if errors.As(err, &pgErr) && (pgErr.Code == "23505" || pgErr.Code == "42P06") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("postgres: create schema %s: %w (the user needs the CREATE privilege on the database, or a DBA creates the schema)", s.schema, err)
	}
	return nil
}

// migrator opens golang-migrate over a database/sql handle whose connections
// use the schema as search_path, so that the unqualified names of the
// migrations land in it and the migrations table lives there too.
func (s *Store) migrator(ctx context.Context) (*migrate.Migrate, error) {
	if err := s.ensureSchema(ctx); err != nil {
		return nil, err
	}
	db := stdlib.OpenDB(*s.pool.Config().ConnConfig)
	driver, err := pgxmigrate.WithInstance(db, &pgxmigrate.Config{
		SchemaName:      s.schema,
		MigrationsTable: migrationsTable,
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: prepare migrations in schema %s: %w", s.schema, err)
	}
	src, err := iofs.New(sqlfiles.Postgres, "postgres")
	if err != nil {
		driver.Close()
		return nil, fmt.Errorf("postgres: read embedded migrations: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", driver)
	if err != nil {
		driver.Close()
		return nil, fmt.Errorf("postgres: prepare migrations: %w", err)
	}
	m.Log = migrateLogger{s}
	return m, nil
}

// migrateLogger passes golang-migrate's log lines to slog at debug level.
type migrateLogger struct{ s *Store }

func (l migrateLogger) Printf(format string, v ...any) {
	l.s.logger.Debug("migrate: "+strings.TrimSpace(fmt.Sprintf(format, v...)), "schema", l.s.schema)
}

func (l migrateLogger) Verbose() bool { return false }

// migrateError explains a failed migration, dirty schemas in particular.
func (s *Store) migrateError(what string, err error) error {
	var dirty migrate.ErrDirty
	if errors.As(err, &dirty) {
		return fmt.Errorf("postgres: %s: schema %s is marked dirty at version %d by a migration that failed halfway: repair the schema by hand, then set the version with \"hermod migrate force %d\": %w",
			what, s.schema, dirty.Version, dirty.Version, err)
	}
	return fmt.Errorf("postgres: %s in schema %s: %w", what, s.schema, err)
}

// MigrateUp applies every pending migration, then the repeatable scripts.
func (s *Store) MigrateUp(ctx context.Context) error {
	m, err := s.migrator(ctx)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return s.migrateError("apply migrations", err)
	}
	version, _, _ := m.Version()
	s.logger.Debug("migrations applied", "schema", s.schema, "version", version)
	return s.applyProcedures(ctx)
}

// applyProcedures runs the repeatable scripts of procedures/postgres in
// name order, in one transaction, under an advisory lock so that nodes
// starting together do not replace the same function at once.
func (s *Store) applyProcedures(ctx context.Context) error {
	entries, err := fs.ReadDir(procedures.Postgres, "postgres")
	if err != nil {
		return fmt.Errorf("postgres: read embedded procedures: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".sql") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('hermod procedures ' || $1::text))`, s.schema); err != nil {
			return fmt.Errorf("postgres: lock for procedures: %w", err)
		}
		for _, name := range names {
			body, err := fs.ReadFile(procedures.Postgres, path.Join("postgres", name))
			if err != nil {
				return fmt.Errorf("postgres: read procedure script %s: %w", name, err)
			}
			// Without arguments Exec uses the simple protocol, which
			// runs every statement of the file.
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return fmt.Errorf("postgres: apply procedure script procedures/postgres/%s in schema %s: %w", name, s.schema, err)
			}
		}
		return nil
	})
}

// MigrateDown rolls back n migrations (n <= 0: all). Rolling back the first
// migration also drops the functions of the repeatable scripts.
func (s *Store) MigrateDown(ctx context.Context, n int) error {
	m, err := s.migrator(ctx)
	if err != nil {
		return err
	}
	defer m.Close()
	if n <= 0 {
		err = m.Down()
	} else {
		err = m.Steps(-n)
	}
	if err != nil && !errors.Is(err, migrate.ErrNoChange) && !errors.Is(err, os.ErrNotExist) {
		return s.migrateError("roll back migrations", err)
	}
	return nil
}

// MigrateStatus reports the current and the latest version, and whether a
// failed migration left the schema dirty.
func (s *Store) MigrateStatus(ctx context.Context) (current, latest uint, dirty bool, err error) {
	m, err := s.migrator(ctx)
	if err != nil {
		return 0, 0, false, err
	}
	defer m.Close()
	current, dirty, err = m.Version()
	if errors.Is(err, migrate.ErrNilVersion) {
		current, dirty, err = 0, false, nil
	}
	if err != nil {
		return 0, 0, false, s.migrateError("read the migration version", err)
	}
	latest, err = latestVersion()
	if err != nil {
		return 0, 0, false, err
	}
	return current, latest, dirty, nil
}

// latestVersion is the highest version among the embedded migrations.
func latestVersion() (uint, error) {
	src, err := iofs.New(sqlfiles.Postgres, "postgres")
	if err != nil {
		return 0, fmt.Errorf("postgres: read embedded migrations: %w", err)
	}
	defer src.Close()
	v, err := src.First()
	if err != nil {
		return 0, fmt.Errorf("postgres: read embedded migrations: %w", err)
	}
	for {
		next, err := src.Next(v)
		if errors.Is(err, os.ErrNotExist) {
			return v, nil
		}
		if err != nil {
			return 0, fmt.Errorf("postgres: read embedded migrations: %w", err)
		}
		v = next
	}
}
