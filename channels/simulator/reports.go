package simulator

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/hermod-sms/hermod/channels"
)

// maxReportBatch is the most reports one Host.Report call gets.
const maxReportBatch = 500

type scheduledReport struct {
	due    time.Time
	report channels.Report
}

// reportQueue delivers delivery reports through Host.Report when they are
// due, in the order they were scheduled, in batches, from one goroutine.
// A failing Report call is retried with backoff; later reports wait, so the
// order holds.
type reportQueue struct {
	host channels.Host
	log  *slog.Logger

	mu    sync.Mutex
	queue []scheduledReport
	wake  chan struct{}
}

func newReportQueue(host channels.Host, log *slog.Logger) *reportQueue {
	return &reportQueue{host: host, log: log, wake: make(chan struct{}, 1)}
}

// add schedules reports for due. Reports are kept in the order added; a
// report whose due time is earlier than one before it waits for that one.
func (q *reportQueue) add(due time.Time, reports []channels.Report) {
	q.mu.Lock()
	for _, r := range reports {
		q.queue = append(q.queue, scheduledReport{due: due, report: r})
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// len returns how many reports wait.
func (q *reportQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queue)
}

func (q *reportQueue) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	backoff := time.Duration(0)
	for {
		var wait time.Duration = -1
		var batch []channels.Report
		q.mu.Lock()
		now := time.Now()
		n := 0
		for n < len(q.queue) && n < maxReportBatch && !q.queue[n].due.After(now) {
			n++
		}
		if n > 0 {
			batch = make([]channels.Report, n)
			for i := range n {
				batch[i] = q.queue[i].report
				batch[i].DoneTime = q.queue[i].due.UTC()
			}
		} else if len(q.queue) > 0 {
			wait = q.queue[0].due.Sub(now)
		}
		q.mu.Unlock()

		if len(batch) > 0 {
			if err := q.host.Report(ctx, batch); err != nil {
				if ctx.Err() != nil {
					return
				}
				if backoff == 0 {
					q.log.Warn("simulator: delivery reports not accepted; retrying until they are", "reports", len(batch), "error", err)
				}
				backoff = min(max(2*backoff, 50*time.Millisecond), 5*time.Second)
				wait = backoff
			} else {
				if backoff > 0 {
					q.log.Info("simulator: delivery reports accepted again")
				}
				backoff = 0
				q.mu.Lock()
				q.queue = q.queue[len(batch):]
				if len(q.queue) == 0 {
					q.queue = nil
				}
				q.mu.Unlock()
				continue
			}
		}

		var timerC <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			timerC = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
			if wait >= 0 && backoff > 0 {
				// A failed batch waits out its backoff even when new
				// reports arrive.
				select {
				case <-ctx.Done():
					return
				case <-timerC:
				}
			}
		case <-timerC:
		}
		timer.Stop() // Go 1.23 timers: Stop and Reset need no draining
	}
}
