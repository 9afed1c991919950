package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hermod-sms/hermod/store"
)

// Kannel's dlr-mask bits, which StatusCallbackMask holds, and the %d value
// a status callback substitutes for each status.
const (
	dlrDelivered       = 1  // DELIVERED
	dlrUndelivered     = 2  // NOTDELIVERED
	dlrQueued          = 4  // buffered by the SMSC: Hermod has no such status
	dlrSMSCSuccess     = 8  // SENT (accepted by the provider)
	dlrSMSCFailure     = 16 // FAILED or EXPIRED
	dlrMaskAll         = 0  // no mask (NULL): every final status
	callbackQueueSize  = 4096
	callbackSubscribe  = 1024
	callbackWorkers    = 8
	callbackAttempts   = 4
	callbackTimeout    = 10 * time.Second
	callbackRetryDelay = time.Second
)

// dlrType is the Kannel DLR type of a status, 0 for a status without one
// (NOREPORT), and whether the status calls a status callback at all.
func dlrType(status string) (int, bool) {
	switch status {
	case store.StatusDelivered:
		return dlrDelivered, true
	case store.StatusNotDelivered:
		return dlrUndelivered, true
	case store.StatusSent:
		return dlrSMSCSuccess, true
	case store.StatusFailed, store.StatusExpired:
		return dlrSMSCFailure, true
	case store.StatusNoReport:
		return 0, true
	}
	return 0, false
}

// callbackWanted tells whether a message whose StatusCallbackMask is mask
// is called back for status. A zero mask (NULL) selects every final status
// (all but SENT); a NOREPORT, which has no Kannel bit, only calls back then.
func callbackWanted(mask int, status string) bool {
	typ, ok := dlrType(status)
	if !ok {
		return false
	}
	if mask == dlrMaskAll {
		return status != store.StatusSent
	}
	return mask&typ != 0
}

// expandCallback substitutes Kannel's escapes in a dlr-url for one status
// change of m: %d the DLR type, %p the receiver, %P the sender, %A the
// status, %T the Unix time of the change, %I the Hermod message ID, %i the
// channel ID, %% a percent sign. Substituted values are query-escaped;
// unknown escapes are left as they are.
func expandCallback(raw string, m *store.Message, e Event) string {
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '%' || i+1 == len(raw) {
			b.WriteByte(c)
			continue
		}
		var v string
		switch raw[i+1] {
		case 'd':
			typ, _ := dlrType(e.Status)
			v = strconv.Itoa(typ)
		case 'p':
			v = m.ToAddress
		case 'P':
			v = m.FromAddress
		case 'A':
			v = e.Status
		case 'T':
			v = strconv.FormatInt(e.Time.Unix(), 10)
		case 'I':
			v = strconv.FormatInt(m.ID, 10)
		case 'i':
			ch := e.ChannelID
			if ch == 0 {
				ch = m.ChannelID
			}
			v = strconv.FormatInt(ch, 10)
		case '%':
			b.WriteByte('%')
			i++
			continue
		default:
			b.WriteByte(c)
			continue
		}
		b.WriteString(url.QueryEscape(v))
		i++
	}
	return b.String()
}

// validCallbackURL checks a status callback URL: absolute http or https
// with a host.
func validCallbackURL(raw string) error {
	if len(raw) > 1000 {
		return errors.New("longer than 1000 characters")
	}
	// Escapes such as %d are not valid URL escapes: check the URL with
	// them substituted.
	u, err := url.Parse(expandCallback(raw, &store.Message{}, Event{}))
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return errors.New("give an absolute http:// or https:// URL")
	}
	return nil
}

// safeURL is what the log says of a callback URL: scheme, host and path,
// never the query, which may carry the application's credentials.
func safeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Scheme + "://" + u.Host + u.Path
}

// callbacks calls the status callbacks (Kannel's dlr-url) of messages
// whose status changes. See RunCallbacks.
type callbacks struct {
	store    store.Store
	log      *slog.Logger
	client   *http.Client
	queue    chan Event
	attempts int
	delay    time.Duration // before the second attempt; doubles after
}

func (s *Server) newCallbacks() *callbacks {
	return &callbacks{
		store:    s.store,
		log:      s.log,
		client:   &http.Client{Timeout: callbackTimeout},
		queue:    make(chan Event, callbackQueueSize),
		attempts: callbackAttempts,
		delay:    s.callbackDelay,
	}
}

// RunCallbacks calls status callbacks until ctx ends: for every SENT,
// DELIVERED, NOTDELIVERED, FAILED, EXPIRED or NOREPORT event of
// Config.Events whose message has a StatusCallback selected by its
// StatusCallbackMask, it sends an HTTP GET to the URL with Kannel's escapes
// substituted. Calls run on a few workers with a 10 s timeout each; a
// network error or a 5xx answer is retried a few times with a growing
// delay. The event stream is never held up: when the queue is full an
// event is dropped with a warning. Callbacks are fired in-process by the
// node that made the transition, so a node that dies between the commit
// and the call loses them. Serve runs it for a *Server; without
// Config.Events it returns at once.
func (s *Server) RunCallbacks(ctx context.Context) {
	if s.cfg.Events == nil {
		return
	}
	cb := s.newCallbacks()
	events, stop := s.cfg.Events.Subscribe(callbackSubscribe)
	defer stop()
	var wg sync.WaitGroup
	for range callbackWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cb.work(ctx)
		}()
	}
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-events:
			if !ok {
				<-ctx.Done()
				return
			}
			if _, ok := dlrType(e.Status); !ok {
				continue
			}
			select {
			case cb.queue <- e:
			default:
				cb.log.WarnContext(ctx, "api: status callback queue full; event dropped",
					slog.Int64("message", e.MessageID), slog.String("status", e.Status))
			}
		}
	}
}

func (cb *callbacks) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-cb.queue:
			cb.handle(ctx, e)
		}
	}
}

// handle calls the callback of one event's message, if it has one that
// wants this status.
func (cb *callbacks) handle(ctx context.Context, e Event) {
	m, err := cb.store.MessageGet(ctx, e.MessageID)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
			cb.log.WarnContext(ctx, "api: status callback: read the message", slog.Int64("message", e.MessageID), slog.Any("error", err))
		}
		return
	}
	if m.StatusCallback == "" || !callbackWanted(m.StatusCallbackMask, e.Status) {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	target := expandCallback(m.StatusCallback, m, e)
	delay := cb.delay
	for attempt := 1; ; attempt++ {
		retry, err := cb.call(ctx, target)
		if err == nil {
			cb.log.DebugContext(ctx, "api: status callback called", slog.Int64("message", m.ID),
				slog.String("status", e.Status), slog.String("url", safeURL(target)))
			return
		}
		if !retry || attempt >= cb.attempts || ctx.Err() != nil {
			cb.log.WarnContext(ctx, "api: status callback failed", slog.Int64("message", m.ID),
				slog.String("status", e.Status), slog.String("url", safeURL(target)),
				slog.Int("attempts", attempt), slog.Any("error", err))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay *= 2
	}
}

// call makes one GET; retry tells whether a failure is worth another try
// (a network error or a 5xx answer).
func (cb *callbacks) call(ctx context.Context, target string) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return false, fmt.Errorf("build the request: %w", err)
	}
	req.Header.Set("User-Agent", "Hermod")
	resp, err := cb.client.Do(req)
	if err != nil {
		// The error text holds the URL: say only what kind it is.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return true, fmt.Errorf("call: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 500:
		return true, fmt.Errorf("the receiver answered %s", resp.Status)
	case resp.StatusCode >= 400:
		return false, fmt.Errorf("the receiver answered %s (not retried)", resp.Status)
	}
	return false, nil
}
