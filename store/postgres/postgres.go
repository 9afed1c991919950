package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hermod-sms/hermod/store"
)

// DefaultSchema is the schema that holds Hermod's objects when
// Options.Schema is empty.
const DefaultSchema = "hermod"

// Options configures Open.
type Options struct {
	// Logger receives the store's logs; nil discards them.
	Logger *slog.Logger
	// Schema holds every Hermod object; "" means DefaultSchema. It must be a
	// lower-case identifier ([a-z_][a-z0-9_]*), so that unquoted SQL such
	// as hermod.Messages names it.
	Schema string
	// NoMigrate skips the migrations and repeatable scripts that Open
	// otherwise applies (for databases whose schema a DBA manages: run
	// "hermod migrate" or MigrateUp yourself).
	NoMigrate bool
}

// Store is the PostgreSQL implementation of store.Store, store.Migrator and
// store.Notifier. It is safe for concurrent use.
type Store struct {
	pool   *pgxpool.Pool
	schema string
	logger *slog.Logger
	// addr is host:port, for error messages (never the password).
	addr string

	closeOnce sync.Once
	closed    chan struct{}
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Migrator = (*Store)(nil)
	_ store.Notifier = (*Store)(nil)
)

var schemaPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Open connects to the PostgreSQL database at url (a postgres:// URL or a
// key=value connection string), checks that it answers and, unless
// opts.NoMigrate, creates the schema if needed and applies the migrations and
// repeatable scripts.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	schema := opts.Schema
	if schema == "" {
		schema = DefaultSchema
	}
	if !schemaPattern.MatchString(schema) {
		return nil, fmt.Errorf("postgres: schema %q: %w: use a lower-case identifier of letters, digits and _ (for example %q)", schema, store.ErrInvalid, DefaultSchema)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx redacts the password in its parse errors.
		return nil, fmt.Errorf("postgres: the connection URL is not valid (expected postgres://user:password@host:port/database?sslmode=disable): %w", err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "hermod"
	}
	// Times are written as UTC wall-clock values into TIMESTAMP columns;
	// a UTC session keeps now() and casts from timestamptz consistent.
	cfg.ConnConfig.RuntimeParams["timezone"] = "UTC"

	s := &Store{
		schema: schema,
		logger: logger,
		addr:   fmt.Sprintf("%s:%d", cfg.ConnConfig.Host, cfg.ConnConfig.Port),
		closed: make(chan struct{}),
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, s.connectError(err)
	}
	s.pool = pool
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, s.connectError(err)
	}
	if !opts.NoMigrate {
		if err := s.MigrateUp(ctx); err != nil {
			pool.Close()
			return nil, err
		}
	}
	return s, nil
}

// connectError says which server could not be reached, without the
// password.
func (s *Store) connectError(err error) error {
	return fmt.Errorf("postgres: cannot connect to %s: %w (check that the server runs and accepts connections there, and the user, database and sslmode in the URL)", s.addr, err)
}

// Backend returns "postgres".
func (s *Store) Backend() string { return "postgres" }

// Schema returns the schema that holds Hermod's objects.
func (s *Store) Schema() string { return s.schema }

// DropSchema drops the store's schema with every object in it: for scratch
// schemas (hermod bench, tests). The data is gone for good.
func (s *Store) DropSchema(ctx context.Context) error {
	// The name was validated by Open: it needs no quoting.
	if _, err := s.pool.Exec(ctx, `DROP SCHEMA IF EXISTS `+s.schema+` CASCADE`); err != nil {
		return mapError("drop schema "+s.schema, err)
	}
	return nil
}

// Pool returns the underlying connection pool, for tests and tools that
// need raw access. The engine never uses it.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return s.connectError(err)
	}
	return nil
}

// Close stops the notification listeners and closes the pool.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.pool.Close()
	})
	return nil
}

// constraintHelp explains each named constraint in words, with the fix.
// PostgreSQL reports constraint names in lower case.
var constraintHelp = map[string]string{
	"ck_messages_toaddress":       "ToAddress must not be empty: give the recipient's number",
	"ck_messages_direction":       "Direction must be 'OUT' or 'IN'",
	"ck_messages_status":          "Status must be one of the statuses listed in docs/schema.md (SCHEDULED, QUEUED, SENT, ...)",
	"ux_messages_clientreference": "ClientReference is already used by another message: use a new idempotency key or read the existing message",
	"ck_messageparts_partnumber":  "PartNumber must be 1 or more",
	"ck_messageparts_status":      "a part's Status must be SENT, DELIVERED or NOTDELIVERED",
	"pk_messageparts":             "the message already has a part with this PartNumber: number parts 1, 2, 3 ...",
	"ck_pendingreports_status":    "a delivery report's Status must be DELIVERED or NOTDELIVERED",
	"ck_channels_name":            "a channel Name must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '.' and '-'",
	"ck_channels_type":            "a channel Type must not be empty: name a registered channel type such as \"simulator\" or \"smpp\"",
	"uq_channels_name":            "a channel with this Name already exists: choose another name or update that channel",
	"ck_apikeys_name":             "an API key Name must not be empty",
	"ck_apikeys_hash":             "an API key Hash must not be empty: store the hex SHA-256 of the key",
	"uq_apikeys_name":             "an API key with this Name already exists: choose another name or revoke that key",
	"uq_apikeys_hash":             "an API key with this Hash already exists: generate a new key",
}

// mapError turns constraint and data errors into store.ErrInvalid and
// store.ErrConflict with a message naming the column or rule and the fix,
// marks the other errors of a statement as store.ErrStatement (see
// statementFix), and wraps other errors, outages, with what was being done.
func mapError(what string, err error) error {
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		if isConversion(err) {
			return store.Statement(fmt.Errorf("postgres: %s: %w", what, err), store.FixData)
		}
		return fmt.Errorf("postgres: %s: %w", what, err)
	}
	help := constraintHelp[strings.ToLower(pgErr.ConstraintName)]
	switch pgErr.Code {
	case "23505": // unique_violation
		if help == "" {
			help = fmt.Sprintf("a row with this value already exists (%s)", pgErr.Detail)
		}
		return fmt.Errorf("postgres: %s: %s: %w", what, help, store.ErrConflict)
	case "23514": // check_violation
		if help == "" {
			help = fmt.Sprintf("the value breaks the rule %s of table %s", pgErr.ConstraintName, pgErr.TableName)
		}
		return fmt.Errorf("postgres: %s: %s: %w", what, help, store.ErrInvalid)
	case "23502": // not_null_violation
		return fmt.Errorf("postgres: %s: column %s of %s must not be NULL: give it a value: %w", what, pgErr.ColumnName, pgErr.TableName, store.ErrInvalid)
	case "22001": // string_data_right_truncation
		return fmt.Errorf("postgres: %s: a value is too long (%s): shorten it to the column's size in docs/schema.md: %w", what, pgErr.Message, store.ErrInvalid)
	case "23503": // foreign_key_violation (raised by SendMessage for an unknown channel)
		return fmt.Errorf("postgres: %s: %s: %w", what, pgErr.Message, store.ErrInvalid)
	}
	if fix, ok := statementFix(pgErr.Code); ok {
		return store.Statement(fmt.Errorf("postgres: %s: %w", what, err), fix)
	}
	return fmt.Errorf("postgres: %s: %w", what, err)
}

// outageClasses are the SQLSTATE classes of a server that cannot serve
// now, whatever the statement: connection exceptions (08), invalid
// authorization and an unknown database (28, 3D: nothing works until the
// URL or the server's configuration is fixed), transaction rollbacks such
// as deadlocks (40), insufficient resources (53), objects locked by
// others (55), operator intervention such as a shutdown or a statement
// timeout (57) and system errors such as I/O (58).
var outageClasses = []string{"08", "28", "3D", "40", "53", "55", "57", "58"}

// statementFix reports whether a SQLSTATE is the error of a statement
// rather than of the server or the connection, and how to fix it. Every
// class that is not an outage class is: the server answered that this
// statement fails (42 syntax error or undefined object, 22 data exception,
// 23 integrity, 0A feature not supported, P0 raised by PL/pgSQL, XX an
// internal error, most often a server bug that one statement triggers).
// 25006, a write on a read-only server (a standby after a failover), is
// an outage.
func statementFix(code string) (fix string, ok bool) {
	if len(code) != 5 || code == "25006" {
		return "", false
	}
	class := code[:2]
	for _, c := range outageClasses {
		if class == c {
			return "", false
		}
	}
	switch {
	case code == "42501": // insufficient_privilege
		return store.FixPermission, true
	case code == "42601": // syntax_error
		return store.FixServer, true
	case class == "42": // undefined table, column or function, wrong types
		return store.FixSchema, true
	case class == "22", class == "23":
		return store.FixData, true
	case class == "P0": // RAISE EXCEPTION in a trigger or function
		return store.FixRaised, true
	}
	return store.FixServer, true
}

// isConversion reports pgx failing to convert a statement's arguments
// (encoding a Go value) or results (scanning a column into a Go value):
// the data or the code is wrong, not the connection.
func isConversion(err error) bool {
	var scanErr pgx.ScanArgError
	return errors.As(err, &scanErr) || strings.Contains(err.Error(), "failed to encode args[")
}

// Helpers that turn Go zero values into NULL, as the store contract says.

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nullInt64(v int64) *int64 {
	if v == 0 {
		return nil
	}
	return &v
}

// nullTime returns nil for the zero time, otherwise the UTC time: pgx writes
// a TIMESTAMP (without time zone) from the wall clock of the value's own
// location, so it must be UTC first.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// millis converts a duration to whole milliseconds for interval arithmetic.
func millis(d time.Duration) int64 { return d.Milliseconds() }

// nowSQL is "now" in UTC as TIMESTAMP: the database's clock, so that nodes
// with skewed clocks agree.
const nowSQL = `(now() AT TIME ZONE 'UTC')`

// traceSQL returns the SQL expression appending one Trace line to the
// column tr: "2006-01-02 15:04:05.000 STATUS text\n". status is an SQL
// expression, text an SQL expression of the line's text, whose line breaks
// become spaces so that one transition stays one line.
func traceSQL(tr, status, text string) string {
	return tr + ` || to_char(` + nowSQL + `, 'YYYY-MM-DD HH24:MI:SS.MS') || ' ' || ` + status + ` || ' ' || translate(` + text + `, E'\r\n', '  ') || E'\n'`
}

// retryable reports whether err is a deadlock or serialization failure:
// the transaction was rolled back and running it again can succeed.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// withRetry runs fn, an operation that is one transaction, again when the
// database rolled it back for a deadlock or serialization failure (two
// batches touching the same rows in different orders), up to three times.
func (s *Store) withRetry(ctx context.Context, what string, fn func() error) error {
	const attempts = 3
	var err error
	for i := range attempts {
		if err = fn(); err == nil || !retryable(err) || ctx.Err() != nil {
			return err
		}
		s.logger.Debug("postgres: transaction rolled back by the database; retrying", "op", what, "attempt", i+1, "err", err)
		time.Sleep(time.Duration(i+1) * 10 * time.Millisecond)
	}
	return err
}
