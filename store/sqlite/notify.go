package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/hermod-sms/hermod/store"
)

// DefaultNotifyInterval is how often Notifications looks at the database
// file for commits when Options.NotifyInterval is zero.
const DefaultNotifyInterval = 10 * time.Millisecond

const (
	// notifyDebounce is the shortest time between two wake-ups: the first
	// commit after a quiet spell wakes at once, the rest of a burst within
	// this time make one more wake-up.
	notifyDebounce   = 10 * time.Millisecond
	notifyBackoffMin = 100 * time.Millisecond
	notifyBackoffMax = 30 * time.Second
)

var _ store.Notifier = (*Store)(nil)

// Notifications returns a channel that receives a value after a commit to
// the database file by any connection other than the watcher's own: another
// process (the sqlite3 shell, an application inserting messages), and this
// store's write connection as well.
//
// SQLite has no LISTEN/NOTIFY. The store watches PRAGMA data_version on a
// dedicated read-only connection every Options.NotifyInterval: the value
// changes when another connection has committed, and in WAL mode reading it
// costs no disk I/O and takes no lock a writer waits for. Bursts are
// debounced (the first change after a quiet spell wakes at once, the rest
// within 10ms make one more wake-up), and the channel has a buffer of one,
// so a slow reader sees one pending wake-up, never a backlog. An idle
// database never changes, so an idle engine is never woken.
//
// An error on the watching connection is logged once, and the connection is
// reopened with backoff; the channel then receives one value, since commits
// may have been missed. The channel is closed when ctx ends or the store is
// closed. With a negative Options.NotifyInterval it never receives a value.
func (s *Store) Notifications(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	s.mu.Lock()
	if s.isClosed {
		s.mu.Unlock()
		close(out)
		return out
	}
	s.watchers.Add(1)
	s.mu.Unlock()

	w := &watcher{s: s, out: out}
	// The baseline is read before returning, so that a commit made after
	// this call returns is never taken for the starting state.
	if s.notifyInterval > 0 {
		w.err = w.connect(ctx)
	}
	go w.run(ctx)
	return out
}

// watcher is one subscription's watch on PRAGMA data_version.
type watcher struct {
	s       *Store
	out     chan struct{}
	db      *sql.DB   // one read-only connection, this watcher's own
	conn    *sql.Conn // data_version is per connection: always the same one
	stmt    *sql.Stmt
	version int64
	err     error // the last connect or read failed
}

// connect opens the watcher's connection and reads the baseline version.
func (w *watcher) connect(ctx context.Context) error {
	w.disconnect()
	db, err := sql.Open("sqlite", dsn(w.s.path, false))
	if err != nil {
		return fmt.Errorf("sqlite %q: open the notification connection: %w", w.s.path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return fmt.Errorf("sqlite %q: open the notification connection: %w", w.s.path, err)
	}
	stmt, err := conn.PrepareContext(ctx, `PRAGMA data_version`)
	if err != nil {
		conn.Close()
		db.Close()
		return fmt.Errorf("sqlite %q: prepare PRAGMA data_version: %w", w.s.path, err)
	}
	w.db, w.conn, w.stmt = db, conn, stmt
	if err := w.read(); err != nil {
		w.disconnect()
		return err
	}
	return nil
}

// read updates w.version from the database. It runs without ctx: the read
// takes microseconds, and a cancellable context would cost two goroutines per
// read (database/sql's and the driver's interrupt watchers), most of the
// cost of watching.
func (w *watcher) read() error {
	if err := w.stmt.QueryRow().Scan(&w.version); err != nil {
		return fmt.Errorf("sqlite %q: read PRAGMA data_version: %w", w.s.path, err)
	}
	return nil
}

// disconnect closes the watcher's connection, if open.
func (w *watcher) disconnect() {
	if w.db == nil {
		return
	}
	w.stmt.Close()
	w.conn.Close()
	w.db.Close()
	w.db, w.conn, w.stmt = nil, nil, nil
}

// signal delivers a wake-up without blocking; one pending is enough.
func (w *watcher) signal() {
	select {
	case w.out <- struct{}{}:
	default:
	}
}

func (w *watcher) run(ctx context.Context) {
	s := w.s
	defer s.watchers.Done()
	defer close(w.out)
	defer w.disconnect()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	if s.notifyInterval <= 0 {
		<-ctx.Done()
		return
	}

	tick := time.NewTicker(s.notifyInterval)
	defer tick.Stop()
	backoff := notifyBackoffMin
	var (
		pending   bool      // a change not yet signalled
		coolUntil time.Time // no wake-up before this
	)
	for {
		if w.err != nil {
			// One warning per outage; the retries during it are logged at
			// debug level only.
			s.logger.Warn("sqlite: notification watcher failed; retrying (wake-ups come from polling meanwhile)",
				"path", s.path, "error", w.err, "retry_in", backoff)
			for w.err != nil {
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, notifyBackoffMax)
				if w.err = w.connect(ctx); w.err != nil {
					if ctx.Err() != nil {
						return
					}
					s.logger.Debug("sqlite: notification watcher still failing", "path", s.path, "error", w.err, "retry_in", backoff)
				}
			}
			s.logger.Info("sqlite: notification watcher recovered", "path", s.path)
			backoff = notifyBackoffMin
			// Commits during the outage made no sound.
			pending = true
		}

		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		before := w.version
		if w.err = w.read(); w.err != nil {
			if ctx.Err() != nil {
				return
			}
			w.disconnect()
			continue
		}
		if w.version != before {
			pending = true
		}
		if now := time.Now(); pending && !now.Before(coolUntil) {
			w.signal()
			pending = false
			coolUntil = now.Add(notifyDebounce)
		}
	}
}
