package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// NotifyChannel is the LISTEN/NOTIFY channel that the trigger on Messages
// notifies; the payload is the schema name.
const NotifyChannel = "hermod_messages"

// Timing of the notification listener.
const (
	notifyDebounce   = 10 * time.Millisecond
	notifyBackoffMin = 100 * time.Millisecond
	notifyBackoffMax = 30 * time.Second
)

// Notifications returns a channel that receives a value after messages were
// inserted into this store's schema. Bursts are debounced: the first
// notification wakes at once, the rest of a burst within 10ms make one more
// wake-up. The channel has a buffer of one, so a slow reader sees one
// pending wake-up, never a backlog. A lost connection is re-established
// with backoff (and signals once when back, since notifications may have
// been missed). The channel is closed when ctx ends or the store is closed.
func (s *Store) Notifications(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	go s.listen(ctx, out)
	return out
}

// signal delivers a wake-up without blocking; one pending is enough.
func signal(out chan<- struct{}) {
	select {
	case out <- struct{}{}:
	default:
	}
}

func (s *Store) listen(ctx context.Context, out chan struct{}) {
	defer close(out)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.closed:
			cancel()
		case <-ctx.Done():
		}
	}()

	backoff := notifyBackoffMin
	failing := false // an attempt failed and nothing connected since
	for ctx.Err() == nil {
		connected, err := s.listenOnce(ctx, out)
		if ctx.Err() != nil {
			return
		}
		if connected {
			backoff = notifyBackoffMin
			failing = false
		}
		// One warning per outage; the retries that fail during it are
		// logged at debug level only.
		log := s.logger.Warn
		if failing {
			log = s.logger.Debug
		}
		failing = true
		log("postgres: notification listener lost its connection; retrying",
			"addr", s.addr, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, notifyBackoffMax)
	}
}

// listenOnce connects, LISTENs and forwards notifications until an error or
// the end of ctx. connected reports whether LISTEN succeeded.
func (s *Store) listenOnce(ctx context.Context, out chan struct{}) (connected bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig)
	if err != nil {
		return false, s.connectError(err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return false, err
	}
	// Messages inserted while there was no listener made no sound.
	signal(out)

	notes := make(chan *pgconn.Notification)
	errc := make(chan error, 1)
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	go func() {
		for {
			n, err := conn.WaitForNotification(readCtx)
			if err != nil {
				errc <- err
				return
			}
			select {
			case notes <- n:
			case <-readCtx.Done():
				errc <- readCtx.Err()
				return
			}
		}
	}()
	// The reader must be gone before the connection is closed.
	defer func() {
		stopReading()
		<-errc
	}()

	timer := time.NewTimer(0)
	<-timer.C
	cooling, pending := false, false
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case err := <-errc:
			errc <- err // for the deferred wait
			return true, err
		case n := <-notes:
			if n.Payload != s.schema && n.Payload != "" {
				continue // another installation in the same database
			}
			if cooling {
				pending = true
				continue
			}
			signal(out)
			cooling = true
			timer.Reset(notifyDebounce)
		case <-timer.C:
			cooling = false
			if pending {
				pending = false
				signal(out)
				cooling = true
				timer.Reset(notifyDebounce)
			}
		}
	}
}
