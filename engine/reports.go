package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hermod-sms/hermod/store"
)

// reportChunk is the most reports one MessageReportApply call gets.
const reportChunk = 2000

type reportRequest struct {
	reports []store.ReportParams
	done    chan error
}

// reportBatcher applies delivery reports from every channel in batches:
// callers that arrive within one FlushInterval share one
// MessageReportApply call, and each returns only after that call
// committed (or failed, so that the channel does not acknowledge).
type reportBatcher struct {
	e  *Engine
	in chan *reportRequest
	loop
	applied testSignal[store.ReportResult]
}

func newReportBatcher(e *Engine) *reportBatcher {
	return &reportBatcher{e: e, in: make(chan *reportRequest)}
}

func (b *reportBatcher) Start(ctx context.Context) error {
	return b.loop.start(ctx, "report batcher", b.run)
}

// Stop ends the batcher once no caller waits. Channels are stopped before
// it, so nothing new arrives.
func (b *reportBatcher) Stop(ctx context.Context) { b.loop.drain(ctx) }

var errStopping = errors.New("engine: stopping")

// apply applies reports and returns after they are committed.
func (b *reportBatcher) apply(ctx context.Context, reports []store.ReportParams) error {
	if len(reports) == 0 {
		return nil
	}
	req := &reportRequest{reports: reports, done: make(chan error, 1)}
	select {
	case b.in <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-b.stopping():
		return errStopping
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *reportBatcher) run(ctx context.Context) {
	e := b.e
	stopping := b.stopping()
	for {
		var first *reportRequest
		select {
		case <-ctx.Done():
			return
		case <-stopping:
			return
		case first = <-b.in:
		}
		batch := []*reportRequest{first}
		n := len(first.reports)
		timer := time.NewTimer(e.cfg.FlushInterval)
	gather:
		for n < reportChunk {
			select {
			case r := <-b.in:
				batch = append(batch, r)
				n += len(r.reports)
			case <-timer.C:
				break gather
			case <-ctx.Done():
				break gather
			}
		}
		timer.Stop()
		all := make([]store.ReportParams, 0, n)
		for _, r := range batch {
			all = append(all, r.reports...)
		}
		var res store.ReportResult
		err := e.health.call(ctx, "MessageReportApply", func(ctx context.Context) (err error) {
			res, err = e.store.MessageReportApply(ctx, all)
			return err
		})
		if err != nil {
			err = fmt.Errorf("engine: delivery reports not stored: %w", err)
		} else {
			e.publishChanges(res.Settled)
			b.applied.signal(res)
		}
		for _, r := range batch {
			r.done <- err
		}
	}
}
