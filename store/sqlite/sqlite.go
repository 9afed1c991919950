package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/hermod-sms/hermod/store"
	"github.com/hermod-sms/hermod/store/internal/dbsql"
)

// BusyTimeout is how long a write waits for the database lock held by
// another connection (another process, the sqlite3 shell) before failing.
const BusyTimeout = 10 * time.Second

// Options configure Open.
type Options struct {
	// Logger receives the store's log lines; nil discards them.
	Logger *slog.Logger
	// NoMigrate skips applying the schema migrations in Open. The caller
	// then runs MigrateUp itself (or knows the schema is current).
	NoMigrate bool
	// NotifyInterval is how often Notifications checks the database file
	// for commits by other connections (PRAGMA data_version, a read of
	// shared memory in WAL mode). It bounds how late the engine learns of a
	// message another program inserted. Zero means DefaultNotifyInterval;
	// a negative value turns the watching off, leaving the engine to its
	// polling.
	NotifyInterval time.Duration
}

// Store is store.Store, store.Migrator and store.Notifier on one SQLite
// file. It is safe for concurrent use.
type Store struct {
	path   string
	logger *slog.Logger
	write  *sql.DB // exactly one connection: SQLite has one writer
	read   *sql.DB // read-only connections

	notifyInterval time.Duration // <= 0: Notifications never signals
	mu             sync.Mutex
	isClosed       bool
	closed         chan struct{} // closed by Close: ends the watchers
	watchers       sync.WaitGroup
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Migrator = (*Store)(nil)
)

// Open opens (creating it if needed) the SQLite database named by url and,
// unless opts.NoMigrate is set, brings its schema up to date. url is
// "sqlite://relative/path.db", "sqlite:///absolute/path.db" or a bare file
// path.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	path, err := ParseURL(url)
	if err != nil {
		return nil, err
	}
	if err := checkPath(path); err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	write, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		return nil, fmt.Errorf("open sqlite database %q: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxIdleTime(0)
	write.SetConnMaxLifetime(0)
	// The write connection is opened first: it switches the file to WAL,
	// which the read connections then find.
	if err := pingWrite(ctx, write); err != nil {
		write.Close()
		return nil, fmt.Errorf("open sqlite database %q: %w (check that the directory is writable and the file is an SQLite database)", path, err)
	}

	read, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open sqlite database %q for reading: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)

	notifyInterval := opts.NotifyInterval
	if notifyInterval == 0 {
		notifyInterval = DefaultNotifyInterval
	}
	s := &Store{path: path, logger: logger, write: write, read: read,
		notifyInterval: notifyInterval, closed: make(chan struct{})}
	if !opts.NoMigrate {
		if err := s.MigrateUp(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	logger.DebugContext(ctx, "sqlite store opened", "path", path, "read_connections", n)
	return s, nil
}

// pingWrite opens the write connection, whose pragmas switch the file to
// WAL. Switching needs an exclusive lock that SQLite does not wait for, so
// when several processes open a new file together all but one get
// SQLITE_BUSY: they try again, for up to BusyTimeout.
func pingWrite(ctx context.Context, write *sql.DB) error {
	deadline := time.Now().Add(BusyTimeout)
	for {
		err := write.PingContext(ctx)
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// ParseURL returns the file path named by a "sqlite://" URL or a bare path.
// "sqlite://data/hermod.db" is relative to the working directory,
// "sqlite:///var/lib/hermod/hermod.db" is absolute.
func ParseURL(url string) (string, error) {
	path := url
	if rest, ok := strings.CutPrefix(url, "sqlite://"); ok {
		path = rest
	} else if strings.Contains(url, "://") {
		return "", fmt.Errorf("sqlite: %q is not an SQLite URL: use sqlite://relative/path.db, sqlite:///absolute/path.db or a file path: %w", url, store.ErrInvalid)
	}
	switch {
	case path == "":
		return "", fmt.Errorf("sqlite: the URL %q names no file: use sqlite://hermod.db or a file path: %w", url, store.ErrInvalid)
	case path == ":memory:" || strings.HasPrefix(path, "file:"):
		return "", fmt.Errorf("sqlite: %q is not supported: the store needs a file that several connections share; give a file path: %w", url, store.ErrInvalid)
	case strings.ContainsAny(path, "?#"):
		return "", fmt.Errorf("sqlite: %q: options in the URL are not supported (the store sets WAL, busy_timeout and synchronous itself); remove the part after '?': %w", url, store.ErrInvalid)
	}
	return path, nil
}

// checkPath explains up front why a path cannot be opened, because SQLite
// itself only says "unable to open database file".
func checkPath(path string) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("open sqlite database %q: it is a directory: give the path of a file inside it, such as %q", path, filepath.Join(path, "hermod.db"))
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("open sqlite database %q: the directory %q does not exist: create it or choose another path", path, dir)
	case err != nil:
		return fmt.Errorf("open sqlite database %q: %w", path, err)
	case !fi.IsDir():
		return fmt.Errorf("open sqlite database %q: %q is not a directory", path, dir)
	}
	return nil
}

// dsn builds the modernc.org/sqlite data source name for path.
func dsn(path string, write bool) string {
	var b strings.Builder
	b.WriteString(path)
	fmt.Fprintf(&b, "?_pragma=busy_timeout(%d)", BusyTimeout.Milliseconds())
	b.WriteString("&_pragma=foreign_keys(1)")
	if write {
		b.WriteString("&_txlock=immediate")
		b.WriteString("&_pragma=journal_mode(WAL)")
		b.WriteString("&_pragma=synchronous(FULL)")
	} else {
		b.WriteString("&_pragma=query_only(1)")
	}
	b.WriteString("&_pragma=temp_store(MEMORY)")
	return b.String()
}

// Backend returns "sqlite".
func (s *Store) Backend() string { return "sqlite" }

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Ping checks that the database answers on both pools.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.write.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite %q: %w", s.path, err)
	}
	if err := s.read.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite %q: %w", s.path, err)
	}
	return nil
}

// Close ends the Notifications watchers and closes both connection pools,
// after letting SQLite refresh the statistics its query planner uses
// (PRAGMA optimize, cheap when nothing changed).
func (s *Store) Close() error {
	s.mu.Lock()
	if !s.isClosed {
		s.isClosed = true
		close(s.closed)
	}
	s.mu.Unlock()
	s.watchers.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := s.write.ExecContext(ctx, `PRAGMA optimize`); err != nil {
		s.logger.Debug("sqlite: PRAGMA optimize on close failed", "path", s.path, "error", err)
	}
	return errors.Join(s.read.Close(), s.write.Close())
}

// inTx runs fn in one IMMEDIATE write transaction and commits it.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite %q: begin: %w", s.path, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite %q: commit: %w", s.path, err)
	}
	return nil
}

// Time handling.

// timeLayout is how every time is stored.
const timeLayout = "2006-01-02 15:04:05.000"

// nowSQL is the database's "now" in the stored form. As an uncorrelated
// scalar subquery it is computed once per statement rather than once per
// row and use, and 'now' is the same instant throughout one statement.
const nowSQL = "(SELECT strftime('%Y-%m-%d %H:%M:%f','now'))"

// nowText is this machine's clock in the stored form. SQLite runs in this
// process on this machine's file, so its 'now' is this clock: per-row
// statements of a batch take it as a parameter, read once per batch, which
// spares SQLite parsing 'now' for every row.
func nowText() string {
	return time.Now().UTC().Format(timeLayout)
}

// nowPlusSQL is the database's now plus a modifier bound to the one
// parameter (see modifier).
const nowPlusSQL = "strftime('%Y-%m-%d %H:%M:%f','now',?)"

// modifier renders d as an SQLite date modifier ("+1.500 seconds").
func modifier(d time.Duration) string {
	return fmt.Sprintf("%+.3f seconds", d.Seconds())
}

// timeArg is t in the stored form, or NULL for the zero time.
func timeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(timeLayout)
}

// parseLayouts are the forms accepted when reading a time back; other
// programs writing to the file may omit milliseconds or use ISO 8601.
var parseLayouts = []string{
	timeLayout,
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04",
	"2006-01-02",
}

// parseTime reads a stored time; NULL and unreadable text give the zero
// time.
func parseTime(ns sql.NullString) time.Time {
	if !ns.Valid || ns.String == "" {
		return time.Time{}
	}
	for _, layout := range parseLayouts {
		if t, err := time.ParseInLocation(layout, ns.String, time.UTC); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

// strArg is s, or NULL for "".
func strArg(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// intArg is v, or NULL for 0.
func intArg(v int64) any {
	if v == 0 {
		return nil
	}
	return v
}

// traceSQL appends one Trace line whose "STATUS text" part is the SQL
// expression expr.
func traceSQL(expr string) string {
	return "Trace || " + nowSQL + " || ' ' || " + expr + " || char(10)"
}

// Errors.

// constraintHelp explains each named constraint of the schema: the column
// and how to fix the input.
var constraintHelp = map[string]string{
	"CK_Messages_ToAddress":             "ToAddress is required: give the recipient's number",
	"CK_Messages_Direction":             "Direction must be 'OUT' or 'IN'",
	"CK_Messages_Status":                "Status must be one of the statuses listed in docs/schema.md",
	"CK_Messages_RequestDeliveryReport": "RequestDeliveryReport must be 0 or 1",
	"CK_MessageParts_PartNumber":        "PartNumber starts at 1",
	"CK_MessageParts_Status":            "a part's Status must be SENT, DELIVERED or NOTDELIVERED",
	"CK_PendingReports_Status":          "a report's Status must be DELIVERED or NOTDELIVERED",
	"CK_Channels_Name":                  "a channel Name is 1 to 64 characters from A-Z, a-z, 0-9, '_', '.' and '-'",
	"CK_Channels_Type":                  "a channel Type is required: name a registered channel type such as \"simulator\"",
	"CK_Channels_Settings":              "a channel's Settings must be a JSON object, such as {}",
	"CK_Channels_Enabled":               "Enabled must be 0 or 1",
	"CK_ApiKeys_Name":                   "an API key Name is required",
	"CK_ApiKeys_Hash":                   "an API key Hash is required: the hex SHA-256 of the key",
	"CK_ApiKeys_RateLimit":              "RateLimit cannot be negative",
	"Messages.ClientReference":          "ClientReference is already used by another message: give a new idempotency key",
	"Channels.Name":                     "a channel with this Name already exists: choose another name",
	"ApiKeys.Name":                      "an API key with this Name already exists: choose another name",
	"ApiKeys.Hash":                      "an API key with this Hash already exists: generate a new key",
	"Options.Name":                      "an option with this Name already exists",
	"Nodes.Name":                        "a node with this Name already exists",
}

// mapError turns an SQLite constraint violation into store.ErrInvalid
// (CHECK, NOT NULL) or store.ErrConflict (UNIQUE, PRIMARY KEY) with a
// message naming the column and the fix, marks the other errors of a
// statement as store.ErrStatement (see statementFix), and wraps anything
// else, an outage, with what was being done.
func (s *Store) mapError(err error, doing string) error {
	if err == nil {
		return nil
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		if dbsql.IsConversion(err) {
			return store.Statement(fmt.Errorf("%s: %w", doing, err), store.FixData)
		}
		return fmt.Errorf("%s: %w", doing, err)
	}
	msg := se.Error()
	help := ""
	for key, h := range constraintHelp {
		if strings.Contains(msg, key) {
			help = h
			break
		}
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_CHECK, sqlite3.SQLITE_CONSTRAINT_NOTNULL:
		if help == "" {
			help = msg
		}
		return fmt.Errorf("%s: %s: %w", doing, help, store.ErrInvalid)
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		if help == "" {
			help = msg
		}
		return fmt.Errorf("%s: %s: %w", doing, help, store.ErrConflict)
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_BUSY_SNAPSHOT, sqlite3.SQLITE_LOCKED:
		return fmt.Errorf("%s: the database %q stayed locked by another writer for more than %s: %w", doing, s.path, BusyTimeout, err)
	}
	if fix, ok := statementFix(se.Code()); ok {
		return store.Statement(fmt.Errorf("%s: %w", doing, err), fix)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// statementFix reports whether an SQLite result code is the error of a
// statement (its SQL, data or schema) rather than of the database file or
// its locks, and how to fix it. The outages are the rest: SQLITE_BUSY and
// SQLITE_LOCKED (another writer), SQLITE_IOERR, SQLITE_FULL, SQLITE_NOMEM,
// SQLITE_CANTOPEN, SQLITE_READONLY, SQLITE_CORRUPT and SQLITE_NOTADB (the
// file, the disk or the memory), SQLITE_INTERRUPT (a cancelled call).
func statementFix(code int) (fix string, ok bool) {
	switch code & 0xff { // the primary result code
	case sqlite3.SQLITE_ERROR: // no such table or column, a syntax error
		return store.FixSchema, true
	case sqlite3.SQLITE_CONSTRAINT:
		if code == sqlite3.SQLITE_CONSTRAINT_TRIGGER { // RAISE(ABORT, ...) in a trigger
			return store.FixRaised, true
		}
		return store.FixData, true
	case sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_TOOBIG, sqlite3.SQLITE_RANGE:
		return store.FixData, true
	case sqlite3.SQLITE_MISUSE:
		return store.FixServer, true
	}
	return "", false
}
