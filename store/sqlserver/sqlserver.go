package sqlserver

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/golang-sql/civil"
	mssql "github.com/microsoft/go-mssqldb"
	"github.com/microsoft/go-mssqldb/azuread"

	"github.com/hermod-sms/hermod/store"
)

// Schema is the SQL Server schema that holds every Hermod object.
const Schema = "hermod"

// maxBatch bounds every statement that changes many rows: far below the
// 5,000 locks at which SQL Server escalates row locks to a table lock.
const maxBatch = 1000

// defaultBatch is the row limit of maintenance statements called without one.
const defaultBatch = 1000

// maxParams is the number of parameters one statement may carry; SQL Server
// allows 2,100 per request, a few are kept for the fixed ones.
const maxParams = 2000

// Options configure Open.
type Options struct {
	// Logger receives the store's log lines; nil discards them.
	Logger *slog.Logger
	// NoMigrate skips applying the migrations and the repeatable scripts in
	// Open. The caller then runs MigrateUp itself (or knows the schema is
	// current, e.g. when a DBA applies the scripts).
	NoMigrate bool
}

// Store is store.Store and store.Migrator on one SQL Server, Azure SQL or
// Babelfish database. It is safe for concurrent use.
type Store struct {
	logger    *slog.Logger
	connector driver.Connector
	db        *sql.DB
	redacted  string // the URL without its password, for messages
	server    Server
}

// Server describes the T-SQL engine a Store talks to, read at connect time.
// The store's T-SQL is one dialect for all of them; where only SQL Server
// can do something well, the store chooses the SQL Server path or a
// fallback from this.
type Server struct {
	// Babelfish is true on Babelfish for PostgreSQL (SERVERPROPERTY
	// ('babelfish') = 1): READPAST waits instead of skipping, and
	// partition SWITCH, WAITFOR and output parameters of EXEC in a
	// parameterised batch do not exist.
	Babelfish bool
	// Version is @@VERSION's first line, e.g. "Microsoft SQL Server 2022
	// (RTM) - 16.0.1000.6 (X64)".
	Version string
	// ProductVersion is SERVERPROPERTY('ProductVersion'), e.g. 16.0.1000.6.
	ProductVersion string
	// EngineEdition is SERVERPROPERTY('EngineEdition'): 5 is Azure SQL
	// Database, 8 Azure SQL Managed Instance; 0 when unknown.
	EngineEdition int
}

// Azure reports Azure SQL Database or Managed Instance.
func (v Server) Azure() bool { return v.EngineEdition == 5 || v.EngineEdition == 8 }

func (v Server) String() string {
	switch {
	case v.Babelfish:
		return "Babelfish (" + v.Version + ")"
	case v.EngineEdition == 5:
		return "Azure SQL Database " + v.ProductVersion
	case v.EngineEdition == 8:
		return "Azure SQL Managed Instance " + v.ProductVersion
	}
	return v.Version
}

// detectServer reads what the server is.
func detectServer(ctx context.Context, db *sql.DB) (Server, error) {
	var (
		v         Server
		babelfish sql.NullInt64
		edition   sql.NullInt64
		product   sql.NullString
	)
	err := db.QueryRowContext(ctx, `SELECT @@VERSION, CAST(SERVERPROPERTY('babelfish') AS INT),
	CAST(SERVERPROPERTY('ProductVersion') AS NVARCHAR(128)), CAST(SERVERPROPERTY('EngineEdition') AS INT);`).Scan(&v.Version, &babelfish, &product, &edition)
	if err != nil {
		return v, mapError(err, "read the server's version")
	}
	v.Babelfish = babelfish.Int64 == 1 || strings.Contains(v.Version, "Babelfish")
	if i := strings.IndexAny(v.Version, "\r\n"); i >= 0 && !v.Babelfish {
		v.Version = strings.TrimSpace(v.Version[:i])
	} else if v.Babelfish {
		// "Babelfish for PostgreSQL ... PostgreSQL 16.4 on ... (Babelfish 4.3.0)": keep the last line.
		lines := strings.Split(strings.TrimSpace(v.Version), "\n")
		v.Version = strings.TrimSpace(lines[len(lines)-1])
	}
	v.ProductVersion, v.EngineEdition = product.String, int(edition.Int64)
	return v, nil
}

// Server describes the engine the store is connected to.
func (s *Store) Server() Server { return s.server }

var (
	_ store.Store    = (*Store)(nil)
	_ store.Migrator = (*Store)(nil)
)

// Open connects to the database named by rawURL and, unless opts.NoMigrate
// is set, brings its schema up to date (MigrateUp). rawURL is a go-mssqldb
// URL with the scheme sqlserver:// (SQL logins, Windows or Kerberos
// authentication) or azuresql:// (Microsoft Entra ID authentication named by
// the fedauth parameter).
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	cfg, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.database == "" {
		logger.Warn("the SQL Server URL names no database: Hermod uses the login's default database (often master); add ?database=NAME",
			"url", cfg.redacted)
	}

	connector, err := newConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("open SQL Server database %s: %w (check the URL's parameters against go-mssqldb's documentation)", cfg.redacted, err)
	}

	db := sql.OpenDB(connector)
	// Keep connections: a new session costs a login, and on Babelfish also
	// the compilation of the first run of every statement (up to a second
	// each).
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetMaxIdleConns(16)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to SQL Server %s: %w (check host, port, credentials and that the database exists)", cfg.redacted, err)
	}

	s := &Store{logger: logger, connector: connector, db: db, redacted: cfg.redacted}
	if s.server, err = detectServer(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to SQL Server %s: %w", cfg.redacted, err)
	}
	logger.Debug("connected to the database", "server", s.server.String())
	if !opts.NoMigrate {
		if err := s.MigrateUp(ctx); err != nil {
			db.Close()
			return nil, err
		}
	}
	return s, nil
}

// newConnector makes go-mssqldb's connector for cfg: the azuread one (Entra
// ID authentication) for azuresql:// URLs.
func newConnector(cfg urlConfig) (driver.Connector, error) {
	if cfg.azure {
		return azuread.NewConnector(cfg.dsn)
	}
	return mssql.NewConnector(cfg.dsn)
}

// urlConfig is what parseURL makes of a URL.
type urlConfig struct {
	dsn      string // what go-mssqldb parses: always sqlserver://...
	azure    bool   // use the azuread connector
	database string
	redacted string // the URL without its password
}

// parseURL checks a sqlserver:// or azuresql:// URL and turns it into the
// DSN go-mssqldb parses. It adds "app name=hermod" unless the URL names an
// application, so that a DBA sees Hermod's sessions in sp_who and Extended
// Events.
func parseURL(rawURL string) (urlConfig, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error repeats the URL, password included: don't wrap it.
		return urlConfig{}, fmt.Errorf("parse the SQL Server URL: it is not a valid URL (expected sqlserver://user:password@host?database=name): %w", store.ErrInvalid)
	}
	var cfg urlConfig
	switch strings.ToLower(u.Scheme) {
	case "sqlserver", "mssql":
	case "azuresql":
		cfg.azure = true
	default:
		return urlConfig{}, fmt.Errorf("SQL Server URL %s: unsupported scheme %q: use sqlserver://user:password@host?database=name or azuresql://server.database.windows.net?database=name&fedauth=ActiveDirectoryDefault: %w",
			redactURL(u), u.Scheme, store.ErrInvalid)
	}
	u.Scheme = "sqlserver"
	if u.Host == "" {
		return urlConfig{}, fmt.Errorf("SQL Server URL %s: no host: give the server, e.g. sqlserver://user:password@db.example.com:1433?database=sms: %w",
			redactURL(u), store.ErrInvalid)
	}

	q := u.Query()
	if cfg.azure && q.Get("fedauth") == "" {
		return urlConfig{}, fmt.Errorf("azuresql URL %s: no fedauth parameter: azuresql:// authenticates with Microsoft Entra ID, add e.g. &fedauth=ActiveDirectoryDefault (or use sqlserver:// for a SQL login): %w",
			redactURL(u), store.ErrInvalid)
	}
	cfg.database = q.Get("database")
	if cfg.database == "" {
		cfg.database = q.Get("initial catalog")
	}
	if q.Get("app name") == "" {
		q.Set("app name", "hermod")
		u.RawQuery = q.Encode()
	}
	cfg.dsn = u.String()
	cfg.redacted = redactURL(u)
	return cfg, nil
}

// secretParams are query parameters of go-mssqldb and its azuread connector
// that carry secrets.
var secretParams = map[string]bool{
	"password": true, "pwd": true, "clientsecret": true, "client secret": true,
	"accesstoken": true, "access token": true, "systemaccesstoken": true,
	"userassertion": true, "clientassertion": true, "clientcertpassword": true,
}

// redactURL returns u with the password of its user info and every secret
// query parameter replaced by xxxxx, for messages and logs.
func redactURL(u *url.URL) string {
	c := *u
	if _, ok := c.User.Password(); ok {
		c.User = url.UserPassword(c.User.Username(), "xxxxx")
	}
	q := c.Query()
	changed := false
	for k := range q {
		if secretParams[strings.ToLower(k)] {
			q.Set(k, "xxxxx")
			changed = true
		}
	}
	if changed {
		c.RawQuery = q.Encode()
	}
	return c.String()
}

// Backend names the implementation.
func (s *Store) Backend() string { return "sqlserver" }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping SQL Server %s: %w", s.redacted, err)
	}
	return nil
}

// Close releases the connections.
func (s *Store) Close() error {
	return s.db.Close()
}

// DB returns the connection pool, for tests and tools that need raw access
// (the conformance suite's helpers, hermod's db shell). Callers must not
// close it.
func (s *Store) DB() *sql.DB { return s.db }

// inTx runs fn in a read-committed transaction and commits it; any error
// rolls back. Read committed is explicit: the claim's locking hints must
// never run under SNAPSHOT isolation. A transaction chosen as a deadlock
// victim, or that timed out on a lock, runs again (at most three times in
// all), so fn must be safe to repeat.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		err = s.inTxOnce(ctx, fn)
		if err == nil || !isRetryable(err) || ctx.Err() != nil {
			return err
		}
		s.logger.Debug("transaction lost a deadlock or lock wait; running it again", "attempt", attempt, "err", err)
	}
	return err
}

func (s *Store) inTxOnce(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return mapError(err, "begin a transaction")
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return mapError(err, "commit")
	}
	return nil
}

// queryer is what *sql.DB and *sql.Tx share.
type queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Every NULL parameter is typed. A Go nil goes out as TDS type 0x1F (an
// untyped NULL): SQL Server guesses a type for it, Babelfish refuses it
// ("Data type 0x1F is unknown"). A typed NULL keeps the parameter's type
// stable, so SQL Server caches one plan for the statement whether the value
// is NULL or not.
var (
	nullDateTime = mssql.NullDateTime{} // DATETIME2
	nullString   = sql.NullString{}     // NVARCHAR
	nullInt      = sql.NullInt32{}      // INT
	nullBigInt   = sql.NullInt64{}      // BIGINT
)

// dt passes an instant as DATETIME2 (not DATETIMEOFFSET, what go-mssqldb
// makes of a time.Time), in UTC; the zero time is a DATETIME2 NULL.
func dt(t time.Time) any {
	if t.IsZero() {
		return nullDateTime
	}
	return civil.DateTimeOf(t.UTC())
}

// nstr passes a string as NVARCHAR; "" is an NVARCHAR NULL.
func nstr(v string) any {
	if v == "" {
		return nullString
	}
	return v
}

// chanArg passes a channel ID as INT, the type of every ChannelID column
// (go-mssqldb sends int32 as INT and int64 as BIGINT; a BIGINT parameter
// against an INT column converts the column); 0 is an INT NULL.
func chanArg(v int64) any {
	switch {
	case v == 0:
		return nullInt
	case v >= math.MinInt32 && v <= math.MaxInt32:
		return int32(v)
	default:
		return v // no such channel: compare as BIGINT, match nothing
	}
}

// intPtr passes an optional int as BIGINT; nil is a BIGINT NULL.
func intPtr(v *int) any {
	if v == nil {
		return nullBigInt
	}
	return int64(*v)
}

// durationArgs splits d into whole seconds and the remaining milliseconds,
// each an INT (go-mssqldb sends int32 as INT, what DATEADD takes), for
// addDuration. Durations beyond 68 years are clamped.
func durationArgs(d time.Duration) (seconds, millis int32) {
	secs := int64(d / time.Second)
	ms := int64((d % time.Second) / time.Millisecond)
	switch {
	case secs > math.MaxInt32:
		secs, ms = math.MaxInt32, 0
	case secs < -math.MaxInt32:
		secs, ms = -math.MaxInt32, 0
	}
	return int32(secs), int32(ms)
}

// addDuration is T-SQL for expr + a duration given as seconds and
// milliseconds parameters (see durationArgs).
func addDuration(expr, secondsParam, millisParam string) string {
	return "DATEADD(MILLISECOND, " + millisParam + ", DATEADD(SECOND, " + secondsParam + ", " + expr + "))"
}

// utc returns a scanned DATETIME2 as UTC; NULL is the zero time.
func utc(t sql.NullTime) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	v := t.Time
	// DATETIME2 carries no zone: go-mssqldb labels it with the connection's
	// location (UTC unless the URL says otherwise). Keep the wall clock.
	return time.Date(v.Year(), v.Month(), v.Day(), v.Hour(), v.Minute(), v.Second(), v.Nanosecond(), time.UTC)
}

// errNoRows reports sql.ErrNoRows.
func errNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
