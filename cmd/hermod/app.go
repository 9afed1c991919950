package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hermod-sms/hermod/store/open"
)

// app is one invocation of the command line. Its streams, environment and
// working directory are injected so that tests run commands in-process and
// in parallel.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// dir is the directory relative paths (the default hermod.db, the
	// default hermod.yaml) are resolved against; "" is the working
	// directory. A service sets it to the executable's directory.
	dir string

	// Global flags, shared by every command.
	flagDB, flagConfig, flagLogLevel, flagLogFormat, flagNode string
	flagNoMigrate                                             bool
	// flagAPIListen is --api-listen; nil when not given ("" turns the API
	// off, so "not given" needs its own value).
	flagAPIListen *string
	// flagServer and flagAPIKey make the commands that support it work
	// through a Hermod server's HTTP API instead of the database.
	flagServer, flagAPIKey string
	// serviceMode is set when running under a service manager.
	serviceMode bool
	// dbExplicit is set once the configuration is loaded: the database was
	// named by a flag, the environment or the configuration file.
	dbExplicit bool

	cfg    Config
	loaded bool
	// configPath is the configuration file that was read (absolute), ""
	// for none; a channel's child process reads the same.
	configPath string
	logger     *slog.Logger
	// logFile is the open log.file, if any.
	logFile *os.File
}

func newApp(stdout, stderr io.Writer, getenv func(string) string, dir string) *app {
	return &app{stdout: stdout, stderr: stderr, getenv: getenv, dir: dir}
}

// usageError is a mistake on the command line; it exits with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// errHelp ends a command after it printed its help: exit status 0.
var errHelp = errors.New("help shown")

// command is one (sub)command.
type command struct {
	name    string
	summary string
	run     func(a *app, ctx context.Context, args []string) error
	sub     []*command
}

func commands() []*command {
	return []*command{
		{name: "run", summary: "run the server (engine, channels and HTTP API) until interrupted", run: (*app).cmdRun},
		{name: "serve", summary: "run an API-only node: the HTTP API and the engine without channels", run: (*app).cmdServe},
		{name: "send", summary: "queue an outgoing message and print its ID", run: (*app).cmdSend},
		{name: "messages", summary: "list and show messages", sub: []*command{
			{name: "list", summary: "list messages, newest first", run: (*app).cmdMessagesList},
			{name: "show", summary: "show one message with its parts and trace", run: (*app).cmdMessagesShow},
		}},
		{name: "channels", summary: "list and configure channels", sub: []*command{
			{name: "list", summary: "list channels with their runtime status", run: (*app).cmdChannelsList},
			{name: "add", summary: "add a channel: add NAME --type TYPE [--settings JSON]", run: (*app).cmdChannelsAdd},
			{name: "enable", summary: "enable a channel", run: (*app).cmdChannelsEnable},
			{name: "disable", summary: "disable a channel", run: (*app).cmdChannelsDisable},
			{name: "delete", summary: "delete a channel", run: (*app).cmdChannelsDelete},
		}},
		{name: "channel", summary: "run a single channel (child-process mode)", sub: []*command{
			{name: "run", summary: "run one channel's engine loop: channel run NAME", run: (*app).cmdChannelRun},
		}},
		{name: "apikey", summary: "create, list and revoke HTTP API keys", sub: []*command{
			{name: "create", summary: "create a key and print it (once): create NAME [--scopes send,read,admin] [--allow-ip CIDR,...] [--rate N]", run: (*app).cmdAPIKeyCreate},
			{name: "list", summary: "list the keys (never their secret)", run: (*app).cmdAPIKeyList},
			{name: "revoke", summary: "revoke a key: revoke NAME|ID", run: (*app).cmdAPIKeyRevoke},
		}},
		{name: "migrate", summary: "apply, roll back or inspect schema migrations", sub: []*command{
			{name: "up", summary: "apply every pending migration", run: (*app).cmdMigrateUp},
			{name: "down", summary: "roll back N migrations (default 1; \"all\" for every one)", run: (*app).cmdMigrateDown},
			{name: "status", summary: "print the current and latest schema version", run: (*app).cmdMigrateStatus},
		}},
		{name: "service", summary: "install and control hermod as a system service", sub: []*command{
			{name: "install", summary: "install the service (with the global flags given)", run: (*app).cmdServiceInstall},
			{name: "uninstall", summary: "remove the service", run: (*app).cmdServiceUninstall},
			{name: "start", summary: "start the installed service", run: (*app).cmdServiceStart},
			{name: "stop", summary: "stop the service", run: (*app).cmdServiceStop},
			{name: "status", summary: "print whether the service runs", run: (*app).cmdServiceStatus},
			{name: "run", summary: "run under the service manager (used by the installed service)", run: (*app).cmdServiceRun},
		}},
		{name: "bench", summary: "measure throughput and latency on a scratch database", run: (*app).cmdBench},
		{name: "version", summary: "print the version", run: (*app).cmdVersion},
	}
}

// Main runs the command line and returns the process exit status: 0 on
// success, 1 when the command failed, 2 for a usage or configuration error.
// Errors are one line on standard error, without a stack trace or password.
func (a *app) Main(ctx context.Context, args []string) int {
	err := a.dispatch(ctx, args)
	if a.logFile != nil {
		defer a.logFile.Close()
	}
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	}
	msg := strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
	if a.cfg.DB != "" {
		msg = open.Scrub(errors.New(msg), a.cfg.DB).Error()
	}
	if a.flagDB != "" {
		msg = open.Scrub(errors.New(msg), a.flagDB).Error()
	}
	if key := a.apiKey(); len(key) >= 8 {
		msg = strings.ReplaceAll(msg, key, "xxxxx")
	}
	fmt.Fprintf(a.stderr, "hermod: %s\n", msg)
	var ue *usageError
	var ce *configError
	if errors.As(err, &ue) || errors.As(err, &ce) || errors.Is(err, open.ErrUnsupported) {
		return 2
	}
	return 1
}

func (a *app) dispatch(ctx context.Context, args []string) error {
	// Global flags may come before the command.
	fs := a.newFlagSet("hermod")
	if err := fs.Parse(args); err != nil {
		return a.flagError(fs, "hermod", err)
	}
	args = fs.Args()
	list := commands()
	path := "hermod"
	for {
		if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
			if len(args) == 0 && path == "hermod" {
				a.printCommands(a.stderr, path, list)
				return usagef("no command given: try hermod run")
			}
			a.printCommands(a.stdout, path, list)
			if len(args) == 0 {
				return usagef("%s needs a subcommand", path)
			}
			return errHelp
		}
		var c *command
		for _, x := range list {
			if x.name == args[0] {
				c = x
			}
		}
		if c == nil {
			return usagef("unknown command %q for %s: run %s help to list the commands", args[0], path, path)
		}
		path += " " + c.name
		args = args[1:]
		if c.sub == nil {
			return c.run(a, ctx, args)
		}
		list = c.sub
	}
}

func (a *app) printCommands(w io.Writer, path string, list []*command) {
	fmt.Fprintf(w, "Usage: %s COMMAND [flags]\n\nCommands:\n", path)
	for _, c := range list {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nGlobal flags (any command): --db URL, --config FILE, --no-migrate, --log-level LEVEL, --log-format text|json, --node NAME, --api-listen ADDR\n")
	fmt.Fprintf(w, "Remote operation (send, messages, channels, apikey): --server URL --api-key KEY (env HERMOD_SERVER, HERMOD_API_KEY)\n")
}

// newFlagSet returns a flag set holding the global flags.
func (a *app) newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&a.flagDB, "db", a.flagDB, "database URL: sqlite://PATH, postgres://..., sqlserver://..., azuresql://... (env HERMOD_DB)")
	fs.StringVar(&a.flagConfig, "config", a.flagConfig, "YAML configuration file (env HERMOD_CONFIG; default hermod.yaml if present)")
	fs.BoolVar(&a.flagNoMigrate, "no-migrate", a.flagNoMigrate, "do not migrate the schema on start (env HERMOD_NO_MIGRATE)")
	fs.StringVar(&a.flagLogLevel, "log-level", a.flagLogLevel, "debug, info, warn or error (env HERMOD_LOG_LEVEL)")
	fs.StringVar(&a.flagLogFormat, "log-format", a.flagLogFormat, "text or json (env HERMOD_LOG_FORMAT)")
	fs.StringVar(&a.flagNode, "node", a.flagNode, "node name; channels pinned to a node run only there (env HERMOD_NODE)")
	fs.Func("api-listen", "address of the HTTP API, host:port (default "+defaultAPIListen+"); off serves none (env HERMOD_API_LISTEN)", func(v string) error {
		a.flagAPIListen = &v
		return nil
	})
	fs.StringVar(&a.flagServer, "server", a.flagServer, "work through the HTTP API of the hermod server at this URL instead of the database (env HERMOD_SERVER)")
	fs.StringVar(&a.flagAPIKey, "api-key", a.flagAPIKey, "API key for --server; prefer the environment, which other users cannot see (env HERMOD_API_KEY)")
	return fs
}

// parse parses a command's flags, which may be mixed with its positional
// arguments, and checks the number of positional arguments.
func (a *app) parse(fs *flag.FlagSet, usage string, args []string, minPos, maxPos int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, a.flagError(fs, usage, err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) < minPos || (maxPos >= 0 && len(pos) > maxPos) {
		return nil, usagef("usage: %s", usage)
	}
	return pos, nil
}

func (a *app) flagError(fs *flag.FlagSet, usage string, err error) error {
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(a.stdout, "Usage: %s\n\nFlags:\n", usage)
		fs.SetOutput(a.stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
		return errHelp
	}
	return usagef("%v (usage: %s; -h lists the flags)", err, usage)
}

// load builds the configuration: defaults, then the file, then the
// environment, then flags. It also sets up the logger.
func (a *app) load() error {
	if a.loaded {
		return nil
	}
	cfg := defaults()
	path, explicit := a.flagConfig, true
	if path == "" {
		path = a.getenv("HERMOD_CONFIG")
	}
	if path == "" {
		path, explicit = defaultConfigFile, false
	}
	full := resolve(a.dir, path)
	if explicit {
		if err := loadConfigFile(full, &cfg); err != nil {
			return err
		}
		a.configPath = full
	} else if _, err := os.Stat(full); err == nil {
		if err := loadConfigFile(full, &cfg); err != nil {
			return err
		}
		a.configPath = full
	}
	if a.configPath != "" {
		if abs, err := filepath.Abs(a.configPath); err == nil {
			a.configPath = abs
		}
	}
	if err := applyEnv(&cfg, a.getenv); err != nil {
		return err
	}
	if a.flagDB != "" {
		cfg.DB = a.flagDB
	}
	if a.flagNode != "" {
		cfg.Node = a.flagNode
	}
	if a.flagLogLevel != "" {
		cfg.Log.Level = a.flagLogLevel
	}
	if a.flagLogFormat != "" {
		cfg.Log.Format = a.flagLogFormat
	}
	if a.flagNoMigrate {
		cfg.NoMigrate = true
	}
	if a.flagAPIListen != nil {
		cfg.API.Listen = *a.flagAPIListen
	}
	if cfg.DB != defaultDB {
		a.dbExplicit = true
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	if cfg.Node == "" {
		cfg.Node = generateNodeName()
	}
	if cfg.Log.Level == "" {
		cfg.Log.Level = "warn"
		if a.serviceMode {
			cfg.Log.Level = "info"
		}
	}
	a.cfg = cfg
	logOut := a.stderr
	// A channel's child process logs to standard error, which its parent
	// copies into its own log (and file).
	if cfg.Log.File != "" && !a.isChild() {
		path := resolve(a.dir, cfg.Log.File)
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			return configErrorf("log file %s cannot be opened for writing (%v): fix log.file or create its directory", path, err)
		}
		a.logFile = f
		logOut = f
	}
	a.logger = newLogger(logOut, cfg.Log)
	a.loaded = true
	return nil
}

func newLogger(w io.Writer, lc LogConfig) *slog.Logger {
	var level slog.Level
	switch strings.ToLower(lc.Level) {
	case "debug":
		level = slog.LevelDebug
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(lc.Format, "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// generateNodeName returns host-pid-random, unique per process.
func generateNodeName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "hermod"
	}
	if i := strings.IndexByte(host, '.'); i > 0 {
		host = host[:i]
	}
	var b [2]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// openStore loads the configuration and opens the database. migrate false
// never migrates (the migrate command itself).
func (a *app) openStore(ctx context.Context, migrate bool) (open.Store, error) {
	if a.flagServer != "" {
		return nil, usagef("this command works on the database, not through --server: run it without --server where the database is reachable (--db / HERMOD_DB / db:)")
	}
	if err := a.load(); err != nil {
		return nil, err
	}
	s, err := open.Open(ctx, a.cfg.DB, open.Options{
		Logger:    a.logger,
		Schema:    a.cfg.Postgres.Schema,
		NoMigrate: a.cfg.NoMigrate || !migrate,
		BaseDir:   a.dir,
	})
	if err != nil {
		if errors.Is(err, open.ErrUnsupported) {
			return nil, err
		}
		if strings.Contains(err.Error(), "(check ") {
			return nil, err // the backend already says what to check
		}
		return nil, fmt.Errorf("%w (check --db / HERMOD_DB / db: and that the database server is running and reachable)", err)
	}
	if migrate && a.cfg.NoMigrate {
		// The DBA migrates by hand: say so when the schema is behind,
		// instead of failing later on a missing table.
		cur, latest, dirty, err := s.MigrateStatus(ctx)
		switch {
		case err != nil:
			s.Close()
			return nil, fmt.Errorf("read the schema version of %s: %w", a.dbDisplay(), err)
		case dirty:
			s.Close()
			return nil, fmt.Errorf("the schema of %s is marked dirty by a failed migration (version %d): repair it, then run hermod migrate up", a.dbDisplay(), cur)
		case cur < latest:
			s.Close()
			return nil, fmt.Errorf("the schema of %s is at version %d, this hermod needs %d: run hermod migrate up (or start without --no-migrate)", a.dbDisplay(), cur, latest)
		case cur > latest:
			a.logger.Warn("the database schema is newer than this hermod; upgrade hermod", "schema_version", cur, "known_version", latest)
		}
	}
	return s, nil
}

// dbDisplay is the database URL fit to print: password masked, a SQLite
// path made absolute.
func (a *app) dbDisplay() string {
	if p, ok := open.SQLitePath(a.cfg.DB, a.dir); ok {
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		return "sqlite://" + filepath.ToSlash(p)
	}
	return open.Redact(a.cfg.DB)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
