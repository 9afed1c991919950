package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/hermod-sms/hermod/engine"
	"github.com/hermod-sms/hermod/store/open"
)

// parentNodeEnv is set in the environment of a channel's child process,
// `hermod channel run NAME` started by `hermod run` for a channel whose
// settings say "process": "child": the node name of the parent. A process
// with it set logs JSON to standard error (the parent copies it into its
// own log), ignores log.file, and stops when its standard input closes.
const parentNodeEnv = "HERMOD_PARENT_NODE"

// childEnvDrop are variables a child process does not get: it works on the
// database, never through a server's API.
var childEnvDrop = []string{"HERMOD_SERVER=", "HERMOD_API_KEY="}

// childCommand is engine.Config.ChildCommand: this executable, run as
// `hermod channel run NAME` on the same database and configuration. The
// settings travel in the environment, which only the same user can read,
// never on the command line: a database password must not show in ps.
func (a *app) childCommand(p engine.ChildProcess) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the hermod executable to run channel %s in a child process: %w", p.Channel, err)
	}
	env := make([]string, 0, len(os.Environ())+10)
	for _, kv := range os.Environ() {
		drop := false
		for _, prefix := range childEnvDrop {
			drop = drop || strings.HasPrefix(kv, prefix)
		}
		if !drop {
			env = append(env, kv)
		}
	}
	env = append(env,
		"HERMOD_DB="+a.childDB(),
		"HERMOD_NODE="+p.Node,
		parentNodeEnv+"="+p.ParentNode,
		"HERMOD_LOG_FORMAT=json",
		"HERMOD_LOG_LEVEL="+a.cfg.Log.Level,
		// This process migrated (or checked) the schema already.
		"HERMOD_NO_MIGRATE=true",
		"HERMOD_API_LISTEN=off",
	)
	if a.configPath != "" {
		env = append(env, "HERMOD_CONFIG="+a.configPath)
	}
	if a.cfg.Postgres.Schema != "" {
		env = append(env, "HERMOD_POSTGRES_SCHEMA="+a.cfg.Postgres.Schema)
	}
	cmd := exec.Command(exe, "channel", "run", p.Channel)
	cmd.Env = env
	return cmd, nil
}

// childDB is the database URL for a child process: a SQLite path made
// absolute, so that the child opens the same file.
func (a *app) childDB() string {
	base := a.dir
	if base == "" {
		base, _ = os.Getwd()
	}
	return open.SQLiteURL(a.cfg.DB, base)
}

// isChild reports whether this process is a channel's child process.
func (a *app) isChild() bool { return a.getenv(parentNodeEnv) != "" }

// untilEndOfInput returns a context that ends with ctx or when standard
// input reaches end of file: the parent closes it to stop a child, on
// every platform (Windows has no SIGTERM), and it closes by itself when
// the parent dies.
func untilEndOfInput(ctx context.Context, in io.Reader) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		_, err := io.Copy(io.Discard, in)
		if err == nil {
			err = errors.New("standard input closed: the parent hermod asks this channel process to stop")
		}
		cancel(err)
	}()
	return ctx, func() { cancel(context.Canceled) }
}
