package sqlserver

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/golang-migrate/migrate/v4"
	migratesqlserver "github.com/golang-migrate/migrate/v4/database/sqlserver"
	"github.com/golang-migrate/migrate/v4/source"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	mssql "github.com/microsoft/go-mssqldb"

	"github.com/hermod-sms/hermod/procedures"
	schema "github.com/hermod-sms/hermod/sql"
)

// MigrationsTable is the table, in the schema hermod, where golang-migrate
// records the schema version.
const MigrationsTable = "SchemaMigrations"

// ensureSchemaSQL creates the schema hermod, which must exist before
// golang-migrate creates its version table in it. CREATE SCHEMA must start
// its batch, hence EXEC.
const ensureSchemaSQL = `IF SCHEMA_ID(N'hermod') IS NULL EXEC(N'CREATE SCHEMA hermod');`

// proceduresLockSQL serializes nodes that apply the repeatable scripts at
// the same time (two nodes starting together would race on the
// IF OBJECT_ID(...) IS NULL EXEC(N'CREATE ...') stubs). The lock belongs to
// the transaction and ends with it.
const proceduresLockSQL = `DECLARE @result INT;
EXEC @result = sp_getapplock @Resource = N'hermod.procedures', @LockMode = N'Exclusive',
	@LockOwner = N'Transaction', @LockTimeout = 60000;
IF @result < 0
	RAISERROR(N'could not take the application lock hermod.procedures within 60 seconds: another node is applying the procedures', 16, 1);`

// MigrateUp applies every pending migration of sql/sqlserver, then every
// repeatable script of procedures/sqlserver.
func (s *Store) MigrateUp(ctx context.Context) error {
	current, err := s.schemaCurrent(ctx)
	if err != nil {
		return err
	}
	if current {
		return s.applyProcedures(ctx)
	}
	err = s.withMigrate(ctx, func(m *migrate.Migrate) error {
		before, _, _ := m.Version()
		err := m.Up()
		if errors.Is(err, migrate.ErrNoChange) {
			return nil
		}
		if err != nil {
			return err
		}
		after, _, _ := m.Version()
		s.logger.Info("migrated the SQL Server schema", "from", before, "to", after)
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrate the SQL Server schema up: %w", err)
	}
	if err := s.applyProcedures(ctx); err != nil {
		return err
	}
	return nil
}

// schemaCurrent reports whether golang-migrate's version table says the
// schema is at the latest version and clean. Every node checks this at every
// start; reading the table directly costs one round trip, where
// golang-migrate's own check (session lock, version table, source) takes
// more than a second on Babelfish. Anything else goes through golang-migrate.
func (s *Store) schemaCurrent(ctx context.Context) (bool, error) {
	latest, err := latestVersion()
	if err != nil {
		return false, err
	}
	var version sql.NullInt64
	var dirty sql.NullBool
	err = s.db.QueryRowContext(ctx, `IF OBJECT_ID(N'hermod.`+MigrationsTable+`', N'U') IS NOT NULL
	SELECT TOP (1) version, dirty FROM hermod.`+MigrationsTable+`
ELSE
	SELECT CAST(NULL AS BIGINT), CAST(NULL AS BIT);`).Scan(&version, &dirty)
	if err != nil && !errNoRows(err) {
		return false, mapError(err, "read the SQL Server schema version")
	}
	return version.Valid && uint(version.Int64) == latest && !dirty.Bool, nil
}

// MigrateDown rolls back n migrations (n <= 0: all). Rolling back the first
// migration also drops the procedures, views and functions in the schema
// hermod.
func (s *Store) MigrateDown(ctx context.Context, n int) error {
	err := s.withMigrate(ctx, func(m *migrate.Migrate) error {
		var err error
		if n <= 0 {
			err = m.Down()
		} else {
			err = m.Steps(-n)
			if isShortLimit(err) {
				err = m.Down()
			}
		}
		if errors.Is(err, migrate.ErrNoChange) || errors.Is(err, migrate.ErrNilVersion) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("migrate the SQL Server schema down by %d: %w", n, err)
	}
	return nil
}

func isShortLimit(err error) bool {
	var sl migrate.ErrShortLimit
	return errors.As(err, &sl)
}

// MigrateStatus reports the current and the latest version, and whether a
// failed migration left the schema dirty.
func (s *Store) MigrateStatus(ctx context.Context) (current, latest uint, dirty bool, err error) {
	latest, err = latestVersion()
	if err != nil {
		return 0, 0, false, err
	}
	err = s.withMigrate(ctx, func(m *migrate.Migrate) error {
		v, d, err := m.Version()
		if errors.Is(err, migrate.ErrNilVersion) {
			return nil
		}
		current, dirty = v, d
		return err
	})
	if err != nil {
		return 0, 0, false, fmt.Errorf("read the SQL Server schema version: %w", err)
	}
	return current, latest, dirty, nil
}

// latestVersion is the highest migration version embedded in the binary.
func latestVersion() (uint, error) {
	src, err := migrationSource()
	if err != nil {
		return 0, err
	}
	defer src.Close()
	v, err := src.First()
	if err != nil {
		return 0, fmt.Errorf("read the embedded SQL Server migrations: %w", err)
	}
	for {
		next, err := src.Next(v)
		if errors.Is(err, os.ErrNotExist) {
			return v, nil
		}
		if err != nil {
			return 0, fmt.Errorf("read the embedded SQL Server migrations: %w", err)
		}
		v = next
	}
}

func migrationSource() (source.Driver, error) {
	src, err := iofs.New(schema.SQLServer, "sqlserver")
	if err != nil {
		return nil, fmt.Errorf("open the embedded SQL Server migrations: %w", err)
	}
	return src, nil
}

// withMigrate runs fn with a golang-migrate instance on a connection pool of
// its own: golang-migrate's sqlserver driver pins one connection for its
// session lock and closes the whole pool when it is closed.
func (s *Store) withMigrate(ctx context.Context, fn func(m *migrate.Migrate) error) error {
	db := sql.OpenDB(s.connector)
	defer db.Close()
	db.SetMaxOpenConns(2)

	if _, err := db.ExecContext(ctx, ensureSchemaSQL); err != nil {
		return mapError(err, "create the schema hermod (the login needs CREATE SCHEMA permission, or a DBA creates it)")
	}
	driver, err := migratesqlserver.WithInstance(db, &migratesqlserver.Config{
		MigrationsTable: MigrationsTable,
		SchemaName:      Schema,
	})
	if err != nil {
		return fmt.Errorf("prepare golang-migrate's version table hermod.%s: %w", MigrationsTable, err)
	}
	src, err := migrationSource()
	if err != nil {
		driver.Close()
		return err
	}
	m, err := migrate.NewWithInstance("iofs", src, "sqlserver", driver)
	if err != nil {
		src.Close()
		driver.Close()
		return fmt.Errorf("start golang-migrate: %w", err)
	}
	m.Log = migrateLogger{s: s}
	defer m.Close()

	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			m.GracefulStop <- true
		case <-done:
		}
	}()
	if err := fn(m); err != nil {
		return err
	}
	return ctx.Err()
}

// migrateLogger sends golang-migrate's lines to the store's logger.
type migrateLogger struct{ s *Store }

func (l migrateLogger) Printf(format string, v ...any) {
	l.s.logger.Debug(strings.TrimSpace(fmt.Sprintf(format, v...)), "component", "migrate")
}

func (l migrateLogger) Verbose() bool { return false }

// script is one repeatable script, split into batches.
type script struct {
	Name    string
	Batches []batch
}

// loadScripts reads and splits the repeatable scripts of fsys (the folder
// "sqlserver"), in name order.
func loadScripts(fsys fs.FS) ([]script, error) {
	entries, err := fs.ReadDir(fsys, "sqlserver")
	if err != nil {
		return nil, fmt.Errorf("read the embedded SQL Server procedures: %w", err)
	}
	var out []script
	for _, e := range entries { // fs.ReadDir sorts by name
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		name := path.Join("sqlserver", e.Name())
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read procedures/%s: %w", name, err)
		}
		batches, err := splitBatches(string(data))
		if err != nil {
			return nil, fmt.Errorf("procedures/%s: %w", name, err)
		}
		out = append(out, script{Name: name, Batches: batches})
	}
	return out, nil
}

// proceduresOption is the hermod.Options row that holds the checksum of the
// repeatable scripts last applied.
const proceduresOption = "hermod.procedures.checksum"

// applyProcedures runs the repeatable scripts batch by batch in one
// transaction, under an application lock. Like a repeatable migration it
// runs only when the scripts changed since they were last applied (their
// checksum is kept in hermod.Options) or one of their objects is missing:
// ALTER PROCEDURE is not free (seconds on Babelfish), and every node runs
// this at every start.
func (s *Store) applyProcedures(ctx context.Context) error {
	scripts, err := loadScripts(procedures.SQLServer)
	if err != nil {
		return err
	}
	sum := scriptsChecksum(scripts)
	applied := false
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, proceduresLockSQL); err != nil {
			return mapError(err, "apply the SQL Server procedures")
		}
		current, err := proceduresCurrent(ctx, tx, scripts, sum)
		if err != nil || current {
			return err
		}
		for _, sc := range scripts {
			for _, b := range sc.Batches {
				for range b.Count {
					if _, err := tx.ExecContext(ctx, b.SQL); err != nil {
						return fmt.Errorf("apply procedures/%s at line %d: %w", sc.Name, scriptLine(b, err), err)
					}
				}
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE hermod.Options SET Value = @p2, LastUpdate = SYSUTCDATETIME() WHERE Name = @p1;
IF @@ROWCOUNT = 0 INSERT INTO hermod.Options (Name, Value) VALUES (@p1, @p2);`, proceduresOption, sum); err != nil {
			return mapError(err, "record the checksum of the SQL Server procedures")
		}
		applied = true
		return nil
	})
	if err != nil {
		return fmt.Errorf("apply the SQL Server procedures: %w", err)
	}
	if applied {
		s.logger.Debug("applied the SQL Server procedures", "scripts", len(scripts), "checksum", sum)
	}
	return nil
}

// scriptsChecksum is the SHA-256 of every batch of scripts, in order.
func scriptsChecksum(scripts []script) string {
	h := sha256.New()
	for _, sc := range scripts {
		fmt.Fprintf(h, "%s\n", sc.Name)
		for _, b := range sc.Batches {
			fmt.Fprintf(h, "%d %d\n%s\n", b.Count, len(b.SQL), b.SQL)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// proceduresCurrent reports whether the scripts with checksum sum were
// applied last and every object they create (hermod.<file name>) exists.
func proceduresCurrent(ctx context.Context, tx *sql.Tx, scripts []script, sum string) (bool, error) {
	var recorded sql.NullString
	err := tx.QueryRowContext(ctx, `SELECT Value FROM hermod.Options WHERE Name = @p1;`, proceduresOption).Scan(&recorded)
	if err != nil && !errNoRows(err) {
		return false, mapError(err, "read the checksum of the SQL Server procedures")
	}
	if recorded.String != sum {
		return false, nil
	}
	for _, sc := range scripts {
		var id sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT OBJECT_ID(@p1);`, "hermod."+strings.TrimSuffix(path.Base(sc.Name), ".sql")).Scan(&id); err != nil {
			return false, mapError(err, "look for the SQL Server procedures")
		}
		if !id.Valid {
			return false, nil
		}
	}
	return true, nil
}

// scriptLine maps the line of a server error inside a batch to the line of
// the script file.
func scriptLine(b batch, err error) int {
	var me mssql.Error
	if errors.As(err, &me) && me.LineNo > 0 {
		return b.Line + int(me.LineNo) - 1
	}
	return b.Line
}
