package postgres

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/hermod-sms/hermod/store"
)

// Default batch sizes when a caller passes no limit.
const (
	defaultRouteLimit = 1000
	defaultClaimLimit = 100
	defaultSweepLimit = 1000
)

// routeSQL locks due SCHEDULED rows (both arms use IX_Messages_Scheduled:
// ScheduledTime NULL in ID order, passed ScheduledTime in time order) with
// SKIP LOCKED so that several nodes route at once, decides each row's fate
// and updates them in the same statement. The first arm orders by
// (ScheduledTime, ID), which is ID order among the NULLs, so that it reads
// the index in its own order and stops after $2 rows: ORDER BY ID alone
// made PostgreSQL read and sort every unscheduled row of the backlog.
var routeSQL = `
WITH unscheduled AS (
	SELECT ID, ChannelID, ValidUntil FROM Messages
	WHERE Status = 'SCHEDULED' AND ScheduledTime IS NULL AND Direction = 'OUT'
	ORDER BY ScheduledTime, ID LIMIT $2 FOR UPDATE SKIP LOCKED
), scheduled AS (
	SELECT ID, ChannelID, ValidUntil FROM Messages
	WHERE Status = 'SCHEDULED' AND ScheduledTime <= ` + nowSQL + ` AND Direction = 'OUT'
	ORDER BY ScheduledTime, ID LIMIT $2 FOR UPDATE SKIP LOCKED
), due AS (
	SELECT * FROM unscheduled UNION ALL SELECT * FROM scheduled LIMIT $2
), x AS (
	SELECT d.ID,
		CASE
			WHEN d.ValidUntil IS NOT NULL AND d.ValidUntil <= ` + nowSQL + ` THEN 'EXPIRED'
			WHEN d.ChannelID IS NULL AND cardinality($1::bigint[]) = 0 THEN 'NOCHANNEL'
			WHEN d.ChannelID IS NULL THEN 'QUEUED'
			WHEN EXISTS (SELECT 1 FROM Channels c WHERE c.ID = d.ChannelID) THEN 'QUEUED'
			ELSE 'NOCHANNEL'
		END AS NewStatus,
		COALESCE(d.ChannelID, (($1::bigint[])[d.ID % NULLIF(cardinality($1::bigint[]), 0) + 1])::int) AS NewChannel,
		CASE
			WHEN d.ValidUntil IS NOT NULL AND d.ValidUntil <= ` + nowSQL + ` THEN 'ValidUntil passed before the message was sent'
			WHEN d.ChannelID IS NULL THEN 'no enabled channel can send it'
			ELSE 'channel ' || d.ChannelID || ' does not exist'
		END AS Why
	FROM due d
), upd AS (
	UPDATE Messages m
	SET Status = x.NewStatus,
		ChannelID = CASE WHEN x.NewStatus = 'QUEUED' THEN x.NewChannel ELSE m.ChannelID END,
		TriggerStatus = CASE WHEN x.NewStatus = 'QUEUED' THEN m.TriggerStatus ELSE '' END,
		StatusDetails = CASE WHEN x.NewStatus = 'QUEUED' THEN NULL ELSE x.Why END,
		LastUpdate = ` + nowSQL + `,
		Trace = ` + traceSQL("m.Trace", "x.NewStatus", "CASE WHEN x.NewStatus = 'QUEUED' THEN 'routed to channel ' || x.NewChannel ELSE x.Why END") + `
	FROM x WHERE m.ID = x.ID
	RETURNING m.ID, x.NewStatus, m.ChannelID
)
SELECT ID, NewStatus, ChannelID FROM upd`

// MessageRoute moves due SCHEDULED outgoing messages to QUEUED on a channel
// (round robin by ID over p.Channels when none is set), or to NOCHANNEL or
// EXPIRED.
func (s *Store) MessageRoute(ctx context.Context, p store.RouteParams) (store.RouteResult, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = defaultRouteLimit
	}
	channels := p.Channels
	if channels == nil {
		channels = []int64{}
	}
	rows, err := s.pool.Query(ctx, routeSQL, channels, limit)
	if err != nil {
		return store.RouteResult{}, mapError("route messages", err)
	}
	defer rows.Close()
	var r store.RouteResult
	for rows.Next() {
		var c store.Change
		var status string
		var ch *int64
		if err := rows.Scan(&c.ID, &status, &ch); err != nil {
			return store.RouteResult{}, mapError("route messages", err)
		}
		if ch != nil {
			c.ChannelID = *ch
		}
		switch status {
		case store.StatusQueued:
			c.Status = store.StatusQueued
			r.Queued++
		case store.StatusExpired:
			c.Status = store.StatusExpired
			r.Expired++
		default:
			c.Status = store.StatusNoChannel
			r.NoChannel++
		}
		r.Changes = append(r.Changes, c)
	}
	if err := rows.Err(); err != nil {
		return store.RouteResult{}, mapError("route messages", err)
	}
	return r, nil
}

// appendChanges appends to list a store.Change with the given status for
// each row of rows (ID, ChannelID), and closes rows.
func appendChanges(rows pgx.Rows, status string, list []store.Change) ([]store.Change, error) {
	defer rows.Close()
	for rows.Next() {
		var id int64
		var ch *int64
		if err := rows.Scan(&id, &ch); err != nil {
			return list, err
		}
		c := store.Change{ID: id, Status: status}
		if ch != nil {
			c.ChannelID = *ch
		}
		list = append(list, c)
	}
	return list, rows.Err()
}

// settledArrays is how the report statements return the messages they
// settled: three aligned arrays (one aggregation over one input, so their
// elements come in the same order), NULL when none.
type settledArrays struct {
	ids       []int64
	delivered []bool
	channels  []int64
}

// appendTo appends the settled messages to list.
func (a *settledArrays) appendTo(list []store.Change) []store.Change {
	for i, id := range a.ids {
		c := store.Change{ID: id, Status: store.StatusNotDelivered, ChannelID: a.channels[i]}
		if a.delivered[i] {
			c.Status = store.StatusDelivered
		}
		list = append(list, c)
	}
	return list
}

// settledSelect aggregates the rows of the CTE (or table) from, with
// columns ID, Status and ChannelID, into settledArrays' three columns.
func settledSelect(from string) string {
	return `SELECT array_agg(ID), array_agg(Status = 'DELIVERED'), array_agg(COALESCE(ChannelID, 0)::bigint) FROM ` + from
}

var claimSQL = `
WITH picked AS (
	SELECT ID FROM Messages
	WHERE Status = 'QUEUED' AND ChannelID = $1
	  AND (NextAttemptTime IS NULL OR NextAttemptTime <= ` + nowSQL + `)
	  AND (ValidUntil IS NULL OR ValidUntil > ` + nowSQL + `)
	ORDER BY Priority DESC, ID
	LIMIT $2
	FOR UPDATE SKIP LOCKED
)
UPDATE Messages m
SET Status = 'SENDING',
	Attempts = m.Attempts + 1,
	LeaseOwner = $3::text,
	LeaseExpires = ` + nowSQL + ` + $4::bigint * interval '1 millisecond',
	LastUpdate = ` + nowSQL + `,
	Trace = ` + traceSQL("m.Trace", "'SENDING'", "'attempt ' || (m.Attempts + 1) || ' by ' || $3::text") + `
FROM picked WHERE m.ID = picked.ID
RETURNING ` + messageColumns

// MessageClaim takes due QUEUED messages of one channel under a lease,
// highest Priority first then lowest ID.
func (s *Store) MessageClaim(ctx context.Context, p store.ClaimParams) ([]*store.Message, error) {
	if p.Owner == "" {
		return nil, fmt.Errorf("postgres: claim messages: Owner is empty: give the node's name: %w", store.ErrInvalid)
	}
	limit := p.Limit
	if limit <= 0 {
		limit = defaultClaimLimit
	}
	rows, err := s.pool.Query(ctx, claimSQL, p.ChannelID, limit, p.Owner, millis(p.Lease))
	if err != nil {
		return nil, mapError("claim messages", err)
	}
	msgs, err := collectMessages(rows)
	if err != nil {
		return nil, mapError("claim messages", err)
	}
	slices.SortFunc(msgs, func(a, b *store.Message) int {
		if a.Priority != b.Priority {
			return b.Priority - a.Priority
		}
		return int(a.ID - b.ID)
	})
	return msgs, nil
}

// markSentSQL makes claimed rows SENT and writes their parts in one
// statement. Parts left over from an earlier attempt with more parts are
// deleted; parts of this attempt replace earlier ones.
var markSentSQL = `
WITH input AS (
	SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::int[], $5::text[])
		AS t(ID, Owner, Reference, TotalParts, Note)
), upd AS (
	UPDATE Messages m
	SET Status = 'SENT',
		SentTime = ` + nowSQL + `,
		Reference = NULLIF(left(i.Reference, 100), ''),
		TotalParts = i.TotalParts,
		LeaseOwner = NULL, LeaseExpires = NULL, NextAttemptTime = NULL,
		ErrorCode = NULL, StatusDetails = NULL, TriggerStatus = '',
		LastUpdate = ` + nowSQL + `,
		Trace = ` + traceSQL("m.Trace", "'SENT'",
	`'accepted, reference ' || COALESCE(NULLIF(i.Reference, ''), '(none)') || CASE WHEN i.TotalParts > 1 THEN ', ' || i.TotalParts || ' parts' ELSE '' END || CASE WHEN i.Note <> '' THEN ': ' || i.Note ELSE '' END`) + `
	FROM input i
	WHERE m.ID = i.ID AND m.Status = 'SENDING' AND m.LeaseOwner = i.Owner
	RETURNING m.ID, m.ChannelID, i.TotalParts
), parts AS (
	INSERT INTO MessageParts (MessageID, PartNumber, ChannelID, Reference, Status, SentTime)
	SELECT p.MessageID, p.PartNumber, u.ChannelID, NULLIF(left(p.Reference, 100), ''), 'SENT', ` + nowSQL + `
	FROM unnest($6::bigint[], $7::int[], $8::text[]) AS p(MessageID, PartNumber, Reference)
	JOIN upd u ON u.ID = p.MessageID
	ON CONFLICT (MessageID, PartNumber) DO UPDATE
	SET ChannelID = EXCLUDED.ChannelID, Reference = EXCLUDED.Reference, Status = 'SENT',
		ErrorCode = NULL, SentTime = EXCLUDED.SentTime, DeliveredTime = NULL
), stale AS (
	DELETE FROM MessageParts mp USING upd u
	WHERE mp.MessageID = u.ID AND mp.PartNumber > u.TotalParts
)
SELECT count(*) FROM upd`

// pendingForMessagesSrc is the report source that takes the PendingReports
// matching the parts of the messages in $1 out of the table. The EXISTS
// gate makes it free while PendingReports is empty (the usual case), and
// the join with unnest keeps the plan linear in the batch size.
const pendingForMessagesSrc = `
	DELETE FROM PendingReports pr
	USING unnest($1::bigint[]) AS ids(ID), MessageParts p
	WHERE EXISTS (SELECT 1 FROM PendingReports)
	  AND p.MessageID = ids.ID AND pr.ChannelID = p.ChannelID AND pr.Reference = p.Reference
	RETURNING pr.ChannelID, pr.Reference, pr.Status, COALESCE(pr.ErrorCode, '') AS ErrorCode, pr.DoneTime, pr.ID AS Ord`

// pendingAllSrc takes every PendingReport whose part now exists.
const pendingAllSrc = `
	DELETE FROM PendingReports pr USING MessageParts p
	WHERE pr.ChannelID = p.ChannelID AND pr.Reference = p.Reference
	RETURNING pr.ChannelID, pr.Reference, pr.Status, COALESCE(pr.ErrorCode, '') AS ErrorCode, pr.DoneTime, pr.ID AS Ord`

// reportInputSrc reads reports passed as arrays.
const reportInputSrc = `
	SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::timestamp[])
		WITH ORDINALITY AS t(ChannelID, Reference, Status, ErrorCode, DoneTime, Ord)`

// reportMessagesSetting is the transaction-local setting through which
// the statement of applyReportsSQL hands the IDs of the multi-part messages
// it touched to finishMultiPartSQL, the next statement of the same
// transaction.
const reportMessagesSetting = "hermod.report_messages"

// applyReportsSQL builds the statement that applies the reports of the CTE
// src (ChannelID, Reference, Status, ErrorCode, DoneTime, Ord) to their
// parts, and settles the single-part messages at once: such a message
// follows its one part (DELIVERED, or NOTDELIVERED with the part's
// ErrorCode), and its UPDATE re-checks the status it waited for. The
// multi-part messages of the updated parts are locked, in ID order, after
// the parts are written, and their IDs are left in reportMessagesSetting for
// finishMultiPartSQL, which must run next in the same transaction. With
// keepUnmatched, reports that found no part are stored in PendingReports.
// It returns (matched reports, stored reports, the setting's value).
//
// Two transactions applying reports for different parts of one message:
// the one that locks the message second waits until the first commits, so
// finishMultiPartSQL's snapshot, taken after the lock, sees every part. The
// locks are taken after the parts' row locks and in ID order; the parts'
// row locks are the ones MarkSent takes after its message's, so a report
// for a message that is being sent again at that very moment can deadlock,
// which withRetry retries.
func applyReportsSQL(src string, keepUnmatched bool) string {
	q := `
WITH src AS (` + src + `
), rd AS (
	SELECT DISTINCT ON (ChannelID, Reference) ChannelID, Reference, Status, ErrorCode, DoneTime
	FROM src ORDER BY ChannelID, Reference, Ord DESC
), pu AS (
	UPDATE MessageParts p
	SET Status = rd.Status,
		ErrorCode = NULLIF(left(rd.ErrorCode, 64), ''),
		DeliveredTime = COALESCE(rd.DoneTime, ` + nowSQL + `)
	FROM rd WHERE p.ChannelID = rd.ChannelID AND p.Reference = rd.Reference
	RETURNING p.MessageID, p.PartNumber, p.ChannelID, p.Reference, p.Status, p.ErrorCode, p.DeliveredTime
), single AS (
	UPDATE Messages m
	SET Status = pu.Status,
		DeliveredTime = CASE WHEN pu.Status = 'DELIVERED' THEN pu.DeliveredTime END,
		ErrorCode = CASE WHEN pu.Status = 'DELIVERED' THEN NULL ELSE pu.ErrorCode END,
		StatusDetails = CASE WHEN pu.Status = 'DELIVERED' THEN NULL ELSE 'part ' || pu.PartNumber || ' was not delivered' END,
		TriggerStatus = '',
		LastUpdate = ` + nowSQL + `,
		Trace = ` + traceSQL("m.Trace", "pu.Status",
		`CASE WHEN pu.Status = 'DELIVERED' THEN '1 of 1 parts delivered' ELSE 'part ' || pu.PartNumber || ' was not delivered' || CASE WHEN pu.ErrorCode IS NOT NULL THEN ', error ' || pu.ErrorCode ELSE '' END END`) + `
	FROM pu
	WHERE m.ID = pu.MessageID AND m.TotalParts <= 1 AND m.Status IN ('SENT', 'NOREPORT')
	RETURNING m.ID, m.Status, m.ChannelID
), multi AS (
	SELECT m.ID FROM Messages m
	WHERE m.ID IN (SELECT MessageID FROM pu) AND m.TotalParts > 1
	ORDER BY m.ID
	FOR UPDATE
)`
	matched := `(SELECT count(*) FROM src s WHERE EXISTS (SELECT 1 FROM pu WHERE pu.ChannelID = s.ChannelID AND pu.Reference = s.Reference))`
	setting := `set_config('` + reportMessagesSetting + `', COALESCE((SELECT array_agg(ID)::text FROM multi), ''), true)`
	settled := `settled.*`
	from := ` FROM (` + settledSelect("single") + `) AS settled`
	if keepUnmatched {
		q += `, pend AS (
	INSERT INTO PendingReports (ChannelID, Reference, Status, ErrorCode, DoneTime)
	SELECT s.ChannelID, left(s.Reference, 100), s.Status, NULLIF(left(s.ErrorCode, 64), ''), s.DoneTime
	FROM src s
	WHERE NOT EXISTS (SELECT 1 FROM pu WHERE pu.ChannelID = s.ChannelID AND pu.Reference = s.Reference)
	ORDER BY s.Ord
	RETURNING 1
)
SELECT ` + matched + `, (SELECT count(*) FROM pend), ` + setting + `, ` + settled + from
	} else {
		q += `
SELECT (SELECT count(*) FROM src), 0::bigint, ` + setting + `, ` + settled + from
	}
	return q
}

// finishMultiPartSQL settles the multi-part messages that applyReportsSQL
// locked, from all their parts as they are now: DELIVERED when every part
// is delivered (DeliveredTime = the last part's), NOTDELIVERED as soon as
// one part is not (ErrorCode and StatusDetails name the first such part).
// Without multi-part messages it does nothing. It returns the messages it
// settled as settledArrays.
var finishMultiPartSQL = `
WITH ids AS (
	SELECT DISTINCT unnest(COALESCE(NULLIF(current_setting('` + reportMessagesSetting + `', true), ''), '{}')::bigint[]) AS ID
), agg AS (
	SELECT p.MessageID,
		count(*) AS Total,
		count(*) FILTER (WHERE p.Status = 'DELIVERED') AS Delivered,
		count(*) FILTER (WHERE p.Status = 'NOTDELIVERED') AS Failed,
		max(p.DeliveredTime) AS Done,
		(array_agg(COALESCE(p.ErrorCode, '') ORDER BY p.PartNumber) FILTER (WHERE p.Status = 'NOTDELIVERED'))[1] AS ErrorCode,
		(array_agg(p.PartNumber ORDER BY p.PartNumber) FILTER (WHERE p.Status = 'NOTDELIVERED'))[1] AS FailedPart
	FROM ids JOIN MessageParts p ON p.MessageID = ids.ID
	GROUP BY p.MessageID
), upd AS (
UPDATE Messages m
SET Status = CASE WHEN a.Failed > 0 THEN 'NOTDELIVERED' ELSE 'DELIVERED' END,
	DeliveredTime = CASE WHEN a.Failed > 0 THEN NULL ELSE a.Done END,
	ErrorCode = CASE WHEN a.Failed > 0 THEN NULLIF(a.ErrorCode, '') ELSE NULL END,
	StatusDetails = CASE WHEN a.Failed > 0 THEN 'part ' || a.FailedPart || ' was not delivered' ELSE NULL END,
	TriggerStatus = '',
	LastUpdate = ` + nowSQL + `,
	Trace = ` + traceSQL("m.Trace", "CASE WHEN a.Failed > 0 THEN 'NOTDELIVERED' ELSE 'DELIVERED' END",
	`CASE WHEN a.Failed > 0 THEN 'part ' || a.FailedPart || ' was not delivered' || CASE WHEN COALESCE(a.ErrorCode, '') <> '' THEN ', error ' || a.ErrorCode ELSE '' END ELSE a.Total || ' of ' || a.Total || ' parts delivered' END`) + `
FROM agg a
WHERE m.ID = a.MessageID AND m.Status IN ('SENT', 'NOREPORT')
  AND (a.Failed > 0 OR (a.Delivered = a.Total AND a.Total >= m.TotalParts))
RETURNING m.ID, m.Status, m.ChannelID
)
` + settledSelect("upd")

var (
	applyInputReportsSQL   = applyReportsSQL(reportInputSrc, true)
	applyPendingForSentSQL = applyReportsSQL(pendingForMessagesSrc, false)
	applyPendingAllSQL     = applyReportsSQL(pendingAllSrc, false)
)

// MessageMarkSent makes claimed messages SENT, writes their parts and
// applies the PendingReports that were waiting for those parts, in one
// round trip and one transaction.
func (s *Store) MessageMarkSent(ctx context.Context, p []store.SentParams) (int, error) {
	res, err := s.MessageMarkSentSettled(ctx, p)
	return res.Changed, err
}

var _ store.SentSettler = (*Store)(nil)

// MessageMarkSentSettled is MessageMarkSent that also names the messages
// the pending reports settled (store.SentSettler).
func (s *Store) MessageMarkSentSettled(ctx context.Context, p []store.SentParams) (store.SentResult, error) {
	if len(p) == 0 {
		return store.SentResult{}, nil
	}
	var (
		ids, owners, refs, notes = make([]int64, len(p)), make([]string, len(p)), make([]string, len(p)), make([]string, len(p))
		totals                   = make([]int32, len(p))
		partIDs                  []int64
		partNums                 []int32
		partRefs                 []string
	)
	for i, sp := range p {
		ids[i], owners[i], refs[i], notes[i] = sp.ID, sp.Owner, sp.Reference, sp.Note
		parts := sp.Parts
		if len(parts) == 0 {
			// A single-part message: its part carries the message's reference.
			parts = []store.Part{{PartNumber: 1, Reference: sp.Reference}}
		}
		totals[i] = int32(len(parts))
		for j, part := range parts {
			n := part.PartNumber
			if n <= 0 {
				n = j + 1
			}
			partIDs = append(partIDs, sp.ID)
			partNums = append(partNums, int32(n))
			partRefs = append(partRefs, part.Reference)
		}
	}
	var res store.SentResult
	// A batch outside a transaction runs in one implicit transaction. A
	// retry builds a new batch: pgx ties a sent batch to its connection.
	err := s.withRetry(ctx, "mark sent", func() error {
		res = store.SentResult{}
		b := &pgx.Batch{}
		b.Queue(markSentSQL, ids, owners, refs, totals, notes, partIDs, partNums, partRefs).QueryRow(func(row pgx.Row) error {
			return row.Scan(&res.Changed)
		})
		queueApplyReports(b, applyPendingForSentSQL, nil, &res.Settled, ids)
		return s.pool.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return store.SentResult{}, mapError("mark messages sent", err)
	}
	return res, nil
}

// MessageMarkRetry returns claimed messages to QUEUED with NextAttemptTime
// = now + Delay.
func (s *Store) MessageMarkRetry(ctx context.Context, p []store.RetryParams) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	ids, owners, delays, codes, errs := make([]int64, len(p)), make([]string, len(p)), make([]int64, len(p)), make([]string, len(p)), make([]string, len(p))
	for i, r := range p {
		ids[i], owners[i], delays[i], codes[i], errs[i] = r.ID, r.Owner, millis(r.Delay), r.ErrorCode, r.Error
	}
	var tag pgconn.CommandTag
	err := s.withRetry(ctx, "mark retry", func() (err error) {
		tag, err = s.pool.Exec(ctx, `
UPDATE Messages m
SET Status = 'QUEUED',
	NextAttemptTime = `+nowSQL+` + i.DelayMs * interval '1 millisecond',
	LeaseOwner = NULL, LeaseExpires = NULL,
	ErrorCode = NULLIF(left(i.ErrorCode, 64), ''),
	StatusDetails = NULLIF(left(i.Error, 1000), ''),
	LastUpdate = `+nowSQL+`,
	Trace = `+traceSQL("m.Trace", "'QUEUED'", `'retry in ' || round(i.DelayMs / 1000.0, 3) || 's' || CASE WHEN i.ErrorCode <> '' THEN ' (' || i.ErrorCode || ')' ELSE '' END || CASE WHEN i.Error <> '' THEN ': ' || i.Error ELSE '' END`)+`
FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[]) AS i(ID, Owner, DelayMs, ErrorCode, Error)
WHERE m.ID = i.ID AND m.Status = 'SENDING' AND m.LeaseOwner = i.Owner`, ids, owners, delays, codes, errs)
		return err
	})
	if err != nil {
		return 0, mapError("mark messages for retry", err)
	}
	return int(tag.RowsAffected()), nil
}

// MessageMarkFailed makes claimed messages FAILED.
func (s *Store) MessageMarkFailed(ctx context.Context, p []store.FailParams) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	ids, owners, codes, errs := make([]int64, len(p)), make([]string, len(p)), make([]string, len(p)), make([]string, len(p))
	for i, f := range p {
		ids[i], owners[i], codes[i], errs[i] = f.ID, f.Owner, f.ErrorCode, f.Error
	}
	var tag pgconn.CommandTag
	err := s.withRetry(ctx, "mark failed", func() (err error) {
		tag, err = s.pool.Exec(ctx, `
UPDATE Messages m
SET Status = 'FAILED',
	NextAttemptTime = NULL, LeaseOwner = NULL, LeaseExpires = NULL,
	ErrorCode = NULLIF(left(i.ErrorCode, 64), ''),
	StatusDetails = NULLIF(left(i.Error, 1000), ''),
	TriggerStatus = '',
	LastUpdate = `+nowSQL+`,
	Trace = `+traceSQL("m.Trace", "'FAILED'", `CASE WHEN i.ErrorCode <> '' THEN '(' || i.ErrorCode || ') ' ELSE '' END || i.Error`)+`
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS i(ID, Owner, ErrorCode, Error)
WHERE m.ID = i.ID AND m.Status = 'SENDING' AND m.LeaseOwner = i.Owner`, ids, owners, codes, errs)
		return err
	})
	if err != nil {
		return 0, mapError("mark messages failed", err)
	}
	return int(tag.RowsAffected()), nil
}

// MessageReportApply applies delivery reports to their parts and messages;
// reports whose part is not known yet wait in PendingReports.
func (s *Store) MessageReportApply(ctx context.Context, p []store.ReportParams) (store.ReportResult, error) {
	if len(p) == 0 {
		return store.ReportResult{}, nil
	}
	channels, refs, statuses, codes := make([]int64, len(p)), make([]string, len(p)), make([]string, len(p)), make([]string, len(p))
	done := make([]pgtype.Timestamp, len(p))
	for i, r := range p {
		if r.Status != store.PartDelivered && r.Status != store.PartNotDelivered {
			return store.ReportResult{}, fmt.Errorf("postgres: apply reports: report %d has Status %q: use %q or %q: %w",
				i, r.Status, store.PartDelivered, store.PartNotDelivered, store.ErrInvalid)
		}
		channels[i], refs[i], statuses[i], codes[i], done[i] = r.ChannelID, r.Reference, r.Status, r.ErrorCode, timestamp(r.DoneTime)
	}
	var res store.ReportResult
	err := s.withRetry(ctx, "apply reports", func() error {
		res = store.ReportResult{}
		b := &pgx.Batch{}
		queueApplyReports(b, applyInputReportsSQL, &res, &res.Settled, channels, refs, statuses, codes, done)
		return s.pool.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return store.ReportResult{}, mapError("apply delivery reports", err)
	}
	return res, nil
}

// queueApplyReports queues a statement of applyReportsSQL and, after it,
// finishMultiPartSQL, which must follow it in the same transaction (a
// batch runs in one). The counts go to res when it is not nil; the
// messages both statements settled are appended to settled.
func queueApplyReports(b *pgx.Batch, apply string, res *store.ReportResult, settled *[]store.Change, args ...any) {
	b.Queue(apply, args...).QueryRow(func(row pgx.Row) error {
		var matched, stored int
		var multi string
		var a settledArrays
		if err := row.Scan(&matched, &stored, &multi, &a.ids, &a.delivered, &a.channels); err != nil {
			return err
		}
		if res != nil {
			res.Matched, res.Pending = matched, stored
		}
		*settled = a.appendTo(*settled)
		return nil
	})
	b.Queue(finishMultiPartSQL).QueryRow(func(row pgx.Row) error {
		var a settledArrays
		if err := row.Scan(&a.ids, &a.delivered, &a.channels); err != nil {
			return err
		}
		*settled = a.appendTo(*settled)
		return nil
	})
}

var rescueSQL = `
WITH picked AS (
	SELECT ID FROM Messages
	WHERE Status = 'SENDING' AND LeaseExpires < ` + nowSQL + `
	ORDER BY LeaseExpires
	LIMIT $1
	FOR UPDATE SKIP LOCKED
)
UPDATE Messages m
SET Status = 'QUEUED', LeaseOwner = NULL, LeaseExpires = NULL, LastUpdate = ` + nowSQL + `,
	Trace = ` + traceSQL("m.Trace", "'QUEUED'", `'lease of ' || COALESCE(m.LeaseOwner, '(unknown)') || ' expired; the message may have been sent (at-least-once)'`) + `
FROM picked WHERE m.ID = picked.ID
RETURNING m.ID, m.ChannelID`

// MessageRescue returns SENDING messages whose lease expired to QUEUED.
func (s *Store) MessageRescue(ctx context.Context, limit int) ([]store.Change, error) {
	if limit <= 0 {
		limit = defaultSweepLimit
	}
	rows, err := s.pool.Query(ctx, rescueSQL, limit)
	if err != nil {
		return nil, mapError("rescue expired leases", err)
	}
	rescued, err := appendChanges(rows, store.StatusQueued, nil)
	if err != nil {
		return nil, mapError("rescue expired leases", err)
	}
	return rescued, nil
}

var sweepNoReportSQL = `
WITH picked AS (
	SELECT ID FROM Messages
	WHERE Status = 'SENT' AND RequestDeliveryReport AND SentTime <= ` + nowSQL + ` - $1::bigint * interval '1 millisecond'
	ORDER BY SentTime
	LIMIT $2
	FOR UPDATE SKIP LOCKED
)
UPDATE Messages m
SET Status = 'NOREPORT', TriggerStatus = '', LastUpdate = ` + nowSQL + `,
	StatusDetails = 'no delivery report within ' || round($1::bigint / 1000.0) || 's',
	Trace = ` + traceSQL("m.Trace", "'NOREPORT'", `'no delivery report within ' || round($1::bigint / 1000.0) || 's'`) + `
FROM picked WHERE m.ID = picked.ID
RETURNING m.ID, m.ChannelID`

var sweepExpiredSQL = `
WITH picked AS (
	SELECT ID FROM Messages
	WHERE Status = 'QUEUED' AND ValidUntil <= ` + nowSQL + `
	LIMIT $1
	FOR UPDATE SKIP LOCKED
)
UPDATE Messages m
SET Status = 'EXPIRED', TriggerStatus = '', NextAttemptTime = NULL, LastUpdate = ` + nowSQL + `,
	StatusDetails = 'ValidUntil passed before the message was sent',
	Trace = ` + traceSQL("m.Trace", "'EXPIRED'", `'ValidUntil passed before the message was sent'`) + `
FROM picked WHERE m.ID = picked.ID
RETURNING m.ID, m.ChannelID`

// MessageSweep makes overdue SENT messages NOREPORT and expired QUEUED
// messages EXPIRED, applies pending reports whose part has appeared since
// (a report and its submit response racing each other), and deletes stale
// pending reports. Everything runs in one round trip and one transaction.
func (s *Store) MessageSweep(ctx context.Context, p store.SweepParams) (store.SweepResult, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = defaultSweepLimit
	}
	var res store.SweepResult
	err := s.withRetry(ctx, "sweep", func() error {
		res = store.SweepResult{}
		b := &pgx.Batch{}
		b.Queue(sweepNoReportSQL, millis(p.NoReportAfter), limit).Query(func(rows pgx.Rows) (err error) {
			res.Changes, err = appendChanges(rows, store.StatusNoReport, res.Changes)
			res.NoReport = len(res.Changes)
			return err
		})
		b.Queue(sweepExpiredSQL, limit).Query(func(rows pgx.Rows) (err error) {
			res.Changes, err = appendChanges(rows, store.StatusExpired, res.Changes)
			res.Expired = len(res.Changes) - res.NoReport
			return err
		})
		queueApplyReports(b, applyPendingAllSQL, nil, &res.Changes)
		b.Queue(`DELETE FROM PendingReports WHERE ReceivedTime <= `+nowSQL+` - $1::bigint * interval '1 millisecond'`,
			millis(p.PendingReportTTL)).Exec(func(tag pgconn.CommandTag) error {
			res.PendingDeleted = int(tag.RowsAffected())
			return nil
		})
		return s.pool.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return store.SweepResult{}, mapError("sweep messages", err)
	}
	return res, nil
}

var receiveSQL = `
WITH input AS MATERIALIZED (
	SELECT nextval('Messages_ID_seq') AS NewID, t.*
	FROM unnest($1::int[], $2::text[], $3::int[], $4::int[], $5::text[], $6::text[], $7::int[],
	            $8::text[], $9::int[], $10::timestamp[])
	     WITH ORDINALITY AS t(ChannelID, FromAddress, FromTON, FromNPI, ToAddress, Body, DataCoding,
	            Reference, TotalParts, ReceivedTime, Ord)
), ins AS (
	INSERT INTO Messages (ID, Direction, Status, ChannelID, FromAddress, FromTON, FromNPI, ToAddress,
	            Body, DataCoding, Reference, TotalParts, ReceivedTime, RequestDeliveryReport, Trace)
	SELECT NewID, 'IN', 'RECEIVED', ChannelID, NULLIF(FromAddress, ''), FromTON, FromNPI, ToAddress,
	       Body, DataCoding, NULLIF(left(Reference, 100), ''), TotalParts,
	       COALESCE(ReceivedTime, ` + nowSQL + `), FALSE,
	       ` + traceSQL("''", "'RECEIVED'", "'on channel ' || COALESCE(ChannelID::text, '(none)')") + `
	FROM input ORDER BY Ord
)
SELECT NewID FROM input ORDER BY Ord`

// MessageReceive stores incoming messages as RECEIVED rows and returns
// their IDs in input order.
func (s *Store) MessageReceive(ctx context.Context, in []store.Incoming) ([]int64, error) {
	if len(in) == 0 {
		return nil, nil
	}
	n := len(in)
	channels := make([]*int64, n)
	from, to, body, refs := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	ton, npi, dc, parts := make([]int32, n), make([]int32, n), make([]int32, n), make([]int32, n)
	received := make([]pgtype.Timestamp, n)
	for i, m := range in {
		channels[i] = nullInt64(m.ChannelID)
		from[i], to[i], body[i], refs[i] = m.FromAddress, m.ToAddress, m.Body, m.Reference
		ton[i], npi[i], dc[i], parts[i] = int32(m.FromTON), int32(m.FromNPI), int32(m.DataCoding), int32(max(m.TotalParts, 1))
		received[i] = timestamp(m.ReceivedTime)
	}
	rows, err := s.pool.Query(ctx, receiveSQL, channels, from, ton, npi, to, body, dc, refs, parts, received)
	if err != nil {
		return nil, mapError("store received messages", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, mapError("store received messages", err)
	}
	return ids, nil
}
