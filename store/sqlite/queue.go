package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/hermod-sms/hermod/store"
)

// defaultBatch bounds the maintenance statements when the caller gives no
// limit.
const defaultBatch = 1000

// dueScheduledWhere is true for due SCHEDULED outgoing messages.
const dueScheduledWhere = `Status = 'SCHEDULED' AND Direction = 'OUT'
	  AND (ScheduledTime IS NULL OR ScheduledTime <= ` + nowSQL + `)`

// dueScheduledSQL selects the IDs of due SCHEDULED outgoing messages, oldest
// schedule first; it takes the row limit as its one parameter.
const dueScheduledSQL = `SELECT ID FROM Messages WHERE ` + dueScheduledWhere + `
	ORDER BY ScheduledTime, ID LIMIT ?`

// claimableWhere is true for the due QUEUED messages of the channel whose
// ID is bound to the parameter channel ("?3").
func claimableWhere(channel string) string {
	return `Status = 'QUEUED' AND ChannelID = ` + channel + `
	  AND (NextAttemptTime IS NULL OR NextAttemptTime <= ` + nowSQL + `)
	  AND (ValidUntil IS NULL OR ValidUntil > ` + nowSQL + `)`
}

// leaseExpiredWhere is true for SENDING messages whose lease expired.
const leaseExpiredWhere = `Status = 'SENDING' AND LeaseExpires <= ` + nowSQL

// Sweep conditions; noReportWhere takes the age modifier as ?2 and
// stalePendingWhere as ?1.
const (
	noReportWhere = `Status = 'SENT' AND RequestDeliveryReport = 1
				  AND SentTime <= strftime('%Y-%m-%d %H:%M:%f','now',?2)`
	queuedExpiredWhere = `Status = 'QUEUED' AND ValidUntil IS NOT NULL AND ValidUntil <= ` + nowSQL
	stalePendingWhere  = `ReceivedTime <= strftime('%Y-%m-%d %H:%M:%f','now',?1)`
)

// anyRow reports whether query, a SELECT, returns a row, on a read
// connection. The polling methods ask it first: an idle engine's polls then
// read, and leave SQLite's one write lock to the writers (the sqlite3 shell,
// an application inserting messages). A row committed just after the look
// is found by the next poll, which the commit's notification brings early.
func (s *Store) anyRow(ctx context.Context, doing, query string, args ...any) (bool, error) {
	var found bool
	err := s.read.QueryRowContext(ctx, `SELECT EXISTS (`+query+`)`, args...).Scan(&found)
	if err != nil {
		return false, s.mapError(err, doing)
	}
	return found, nil
}

// scanChanges appends to list a store.Change with the given status for each
// row of rows, an UPDATE's RETURNING ID, ChannelID, and closes rows.
func scanChanges(rows *sql.Rows, status string, list []store.Change) ([]store.Change, error) {
	defer rows.Close()
	for rows.Next() {
		var id int64
		var ch sql.NullInt64
		if err := rows.Scan(&id, &ch); err != nil {
			return list, err
		}
		list = append(list, store.Change{ID: id, Status: status, ChannelID: ch.Int64})
	}
	return list, rows.Err()
}

// MessageRoute moves due SCHEDULED messages to QUEUED on a channel, or to
// NOCHANNEL or EXPIRED, in one transaction.
func (s *Store) MessageRoute(ctx context.Context, p store.RouteParams) (store.RouteResult, error) {
	var res store.RouteResult
	limit := p.Limit
	if limit <= 0 {
		limit = defaultBatch
	}
	if due, err := s.anyRow(ctx, "route messages", `SELECT 1 FROM Messages WHERE `+dueScheduledWhere); err != nil || !due {
		return res, err
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// Validity ran out before the message could even be routed.
		res = store.RouteResult{}
		expired, err := tx.QueryContext(ctx, `UPDATE Messages SET Status = 'EXPIRED', TriggerStatus = '',
			StatusDetails = 'ValidUntil ' || ValidUntil || ' passed before the message was routed',
			LastUpdate = `+nowSQL+`, Trace = `+traceSQL(`'EXPIRED ValidUntil ' || ValidUntil || ' passed before routing'`)+`
			WHERE ID IN (SELECT ID FROM Messages
				WHERE `+dueScheduledWhere+`
				  AND ValidUntil IS NOT NULL AND ValidUntil <= `+nowSQL+`
				ORDER BY ScheduledTime, ID LIMIT ?)
			RETURNING ID, ChannelID`, limit)
		if err != nil {
			return s.mapError(err, "route messages: expire")
		}
		if res.Changes, err = scanChanges(expired, store.StatusExpired, nil); err != nil {
			return s.mapError(err, "route messages: expire")
		}
		res.Expired = len(res.Changes)
		if limit -= res.Expired; limit <= 0 {
			return nil
		}

		// Round robin over p.Channels by ID for unassigned messages; an
		// assigned message keeps its channel if the channel exists.
		var roundRobin string
		if len(p.Channels) > 0 {
			var b strings.Builder
			fmt.Fprintf(&b, "CASE ID %% %d", len(p.Channels))
			for i, id := range p.Channels {
				fmt.Fprintf(&b, " WHEN %d THEN %d", i, id)
			}
			b.WriteString(" END")
			roundRobin = b.String()
		} else {
			roundRobin = "NULL"
		}
		exists := `EXISTS (SELECT 1 FROM Channels c WHERE c.ID = Messages.ChannelID)`
		queued := `(ChannelID IS NULL AND ` + roundRobin + ` IS NOT NULL) OR (ChannelID IS NOT NULL AND ` + exists + `)`
		why := `CASE WHEN ChannelID IS NULL THEN 'no enabled channel can send it'
			ELSE 'channel ' || ChannelID || ' does not exist' END`
		rows, err := tx.QueryContext(ctx, `UPDATE Messages SET
			ChannelID = COALESCE(ChannelID, `+roundRobin+`),
			Status = CASE WHEN `+queued+` THEN 'QUEUED' ELSE 'NOCHANNEL' END,
			TriggerStatus = CASE WHEN `+queued+` THEN TriggerStatus ELSE '' END,
			StatusDetails = CASE WHEN `+queued+` THEN NULL ELSE `+why+` END,
			LastUpdate = `+nowSQL+`,
			Trace = `+traceSQL(`CASE WHEN `+queued+`
				THEN 'QUEUED routed to channel ' || COALESCE(ChannelID, `+roundRobin+`)
				ELSE 'NOCHANNEL ' || `+why+` END`)+`
			WHERE ID IN (`+dueScheduledSQL+`)
			RETURNING ID, Status = 'QUEUED', ChannelID`, limit)
		if err != nil {
			return s.mapError(err, "route messages")
		}
		defer rows.Close()
		for rows.Next() {
			var c store.Change
			var queued bool
			var ch sql.NullInt64
			if err := rows.Scan(&c.ID, &queued, &ch); err != nil {
				return s.mapError(err, "route messages")
			}
			c.ChannelID = ch.Int64
			if queued {
				c.Status = store.StatusQueued
				res.Queued++
			} else {
				c.Status = store.StatusNoChannel
				res.NoChannel++
			}
			res.Changes = append(res.Changes, c)
		}
		return s.mapError(rows.Err(), "route messages")
	})
	if err != nil {
		return store.RouteResult{}, err
	}
	return res, nil
}

// MessageClaim makes up to p.Limit due QUEUED messages of one channel
// SENDING under a lease, in one UPDATE ... RETURNING.
func (s *Store) MessageClaim(ctx context.Context, p store.ClaimParams) ([]*store.Message, error) {
	if p.Owner == "" {
		return nil, fmt.Errorf("claim messages: Owner is required: give the node's name: %w", store.ErrInvalid)
	}
	if p.Limit <= 0 {
		return nil, nil
	}
	doing := fmt.Sprintf("claim messages of channel %d", p.ChannelID)
	if found, err := s.anyRow(ctx, doing, `SELECT 1 FROM Messages WHERE `+claimableWhere("?1"), p.ChannelID); err != nil || !found {
		return nil, err
	}
	var out []*store.Message
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE Messages SET Status = 'SENDING', Attempts = Attempts + 1,
			LeaseOwner = ?1, LeaseExpires = strftime('%Y-%m-%d %H:%M:%f','now',?2), LastUpdate = `+nowSQL+`,
			Trace = `+traceSQL(`'SENDING claimed by ' || ?1 || ', attempt ' || (Attempts + 1)`)+`
			WHERE ID IN (SELECT ID FROM Messages
				WHERE `+claimableWhere("?3")+`
				ORDER BY Priority DESC, ID LIMIT ?4)
			RETURNING `+messageColumns, p.Owner, modifier(p.Lease), p.ChannelID, p.Limit)
		if err != nil {
			return s.mapError(err, doing)
		}
		out, err = scanMessages(rows)
		return s.mapError(err, doing)
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Priority != out[j].Priority {
			return out[i].Priority > out[j].Priority
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// markSentSQL makes the messages of a JSON array of
// [id, owner, reference, totalParts, note] SENT when they are SENDING under
// that owner, and returns the IDs it changed.
var markSentSQL = `UPDATE Messages SET Status = 'SENT', TriggerStatus = '',
		SentTime = n.now, Reference = j.ref, TotalParts = j.parts, LeaseOwner = NULL, LeaseExpires = NULL,
		NextAttemptTime = NULL, ErrorCode = NULL, StatusDetails = NULL, LastUpdate = n.now,
		Trace = Trace || n.now || ' SENT ' || j.note || char(10)
	FROM (SELECT value ->> 0 AS id, value ->> 1 AS owner, value ->> 2 AS ref, value ->> 3 AS parts, value ->> 4 AS note
		FROM json_each(?)) AS j,
		(SELECT ` + nowSQL + ` AS now) AS n
	WHERE Messages.ID = j.id AND Messages.Status = 'SENDING' AND Messages.LeaseOwner = j.owner
	RETURNING ID, ChannelID`

// insertPartsSQL writes the parts of a JSON array of [messageID,
// partNumber, reference], taking ChannelID from the message.
var insertPartsSQL = `INSERT INTO MessageParts (MessageID, PartNumber, ChannelID, Reference, Status, SentTime)
	SELECT m.ID, j.value ->> 1, m.ChannelID, j.value ->> 2, 'SENT', n.now
	FROM json_each(?) AS j JOIN Messages AS m ON m.ID = (j.value ->> 0), (SELECT ` + nowSQL + ` AS now) AS n
	WHERE true
	ON CONFLICT (MessageID, PartNumber) DO UPDATE SET ChannelID = excluded.ChannelID,
		Reference = excluded.Reference, Status = 'SENT', ErrorCode = NULL,
		SentTime = excluded.SentTime, DeliveredTime = NULL`

// MessageMarkSent makes claimed messages SENT, writes their parts and
// applies the delivery reports that arrived before them: three statements
// for the whole batch, more only when reports are pending.
func (s *Store) MessageMarkSent(ctx context.Context, ps []store.SentParams) (int, error) {
	res, err := s.MessageMarkSentSettled(ctx, ps)
	return res.Changed, err
}

var _ store.SentSettler = (*Store)(nil)

// MessageMarkSentSettled is MessageMarkSent that also names the messages
// the pending reports settled (store.SentSettler).
func (s *Store) MessageMarkSentSettled(ctx context.Context, ps []store.SentParams) (store.SentResult, error) {
	if len(ps) == 0 {
		return store.SentResult{}, nil
	}
	// The last entry for an ID wins, as if they were applied in order.
	byID := make(map[int64]int, len(ps))
	rows := make([][]any, 0, len(ps))
	partsOf := make([][]store.Part, 0, len(ps))
	for _, p := range ps {
		parts := p.Parts
		if len(parts) == 0 {
			parts = []store.Part{{PartNumber: 1, Reference: p.Reference}}
		}
		ref := p.Reference
		if ref == "" {
			ref = parts[0].Reference
		}
		note := store.OneLine(p.Note)
		if note == "" {
			note = "accepted by the provider"
		}
		if ref != "" {
			note += ", reference " + ref
		}
		if len(parts) > 1 {
			note += ", " + strconv.Itoa(len(parts)) + " parts"
		}
		row := []any{p.ID, p.Owner, strArg(ref), len(parts), note}
		if i, ok := byID[p.ID]; ok {
			rows[i], partsOf[i] = row, parts
			continue
		}
		byID[p.ID] = len(rows)
		rows = append(rows, row)
		partsOf = append(partsOf, parts)
	}
	batch, err := json.Marshal(rows)
	if err != nil {
		return store.SentResult{}, fmt.Errorf("mark messages sent: %w", err)
	}

	changed := 0
	var settled []store.Change
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		changed, settled = 0, nil
		res, err := tx.QueryContext(ctx, markSentSQL, string(batch))
		if err != nil {
			return s.mapError(err, "mark messages sent")
		}
		channelOf := map[int64]int64{}
		for res.Next() {
			var id int64
			var ch sql.NullInt64
			if err := res.Scan(&id, &ch); err != nil {
				res.Close()
				return s.mapError(err, "mark messages sent")
			}
			channelOf[id] = ch.Int64
		}
		res.Close()
		if err := res.Err(); err != nil {
			return s.mapError(err, "mark messages sent")
		}
		changed = len(channelOf)
		if changed == 0 {
			return nil
		}

		var partRows [][]any
		for id := range channelOf {
			for i, pt := range partsOf[byID[id]] {
				n := pt.PartNumber
				if n <= 0 {
					n = i + 1
				}
				partRows = append(partRows, []any{id, n, strArg(pt.Reference)})
			}
		}
		partBatch, err := json.Marshal(partRows)
		if err != nil {
			return fmt.Errorf("mark messages sent: %w", err)
		}
		if _, err := tx.ExecContext(ctx, insertPartsSQL, string(partBatch)); err != nil {
			return s.mapError(err, "mark messages sent: write their parts")
		}

		// Reports rarely come before their submit response: look for them
		// only when there are any.
		var anyPending bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM PendingReports)`).Scan(&anyPending); err != nil {
			return s.mapError(err, "mark messages sent")
		}
		if !anyPending {
			return nil
		}
		ra := &reportApplier{s: s, tx: tx}
		defer ra.close()
		for id, ch := range channelOf {
			for _, pt := range partsOf[byID[id]] {
				if pt.Reference == "" {
					continue
				}
				if err := ra.applyPending(ctx, ch, pt.Reference); err != nil {
					return err
				}
			}
		}
		if err := ra.finish(ctx); err != nil {
			return err
		}
		settled = ra.settled
		return nil
	})
	if err != nil {
		return store.SentResult{}, err
	}
	return store.SentResult{Changed: changed, Settled: settled}, nil
}

// MessageMarkRetry returns claimed messages to QUEUED with NextAttemptTime
// = now + Delay.
func (s *Store) MessageMarkRetry(ctx context.Context, ps []store.RetryParams) (int, error) {
	if len(ps) == 0 {
		return 0, nil
	}
	changed := 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		changed = 0
		stmt, err := tx.PrepareContext(ctx, `UPDATE Messages SET Status = 'QUEUED',
			NextAttemptTime = strftime('%Y-%m-%d %H:%M:%f','now',?1), LeaseOwner = NULL, LeaseExpires = NULL,
			ErrorCode = ?2, StatusDetails = ?3, LastUpdate = `+nowSQL+`,
			Trace = `+traceSQL(`'QUEUED retry after ' || ?4 || ': ' || COALESCE(?3, 'temporary error')`)+`
			WHERE ID = ?5 AND Status = 'SENDING' AND LeaseOwner = ?6`)
		if err != nil {
			return s.mapError(err, "mark messages for retry")
		}
		defer stmt.Close()
		for _, p := range ps {
			r, err := stmt.ExecContext(ctx, modifier(p.Delay), strArg(p.ErrorCode), strArg(store.OneLine(p.Error)),
				p.Delay.String(), p.ID, p.Owner)
			if err != nil {
				return s.mapError(err, fmt.Sprintf("mark message %d for retry", p.ID))
			}
			n, _ := r.RowsAffected()
			changed += int(n)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return changed, nil
}

// MessageMarkFailed makes claimed messages FAILED.
func (s *Store) MessageMarkFailed(ctx context.Context, ps []store.FailParams) (int, error) {
	if len(ps) == 0 {
		return 0, nil
	}
	changed := 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		changed = 0
		stmt, err := tx.PrepareContext(ctx, `UPDATE Messages SET Status = 'FAILED', TriggerStatus = '',
			LeaseOwner = NULL, LeaseExpires = NULL, NextAttemptTime = NULL,
			ErrorCode = ?1, StatusDetails = ?2, LastUpdate = `+nowSQL+`,
			Trace = `+traceSQL(`'FAILED ' || COALESCE(?2, 'failed')`)+`
			WHERE ID = ?3 AND Status = 'SENDING' AND LeaseOwner = ?4`)
		if err != nil {
			return s.mapError(err, "mark messages failed")
		}
		defer stmt.Close()
		for _, p := range ps {
			r, err := stmt.ExecContext(ctx, strArg(p.ErrorCode), strArg(store.OneLine(p.Error)), p.ID, p.Owner)
			if err != nil {
				return s.mapError(err, fmt.Sprintf("mark message %d failed", p.ID))
			}
			n, _ := r.RowsAffected()
			changed += int(n)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return changed, nil
}

// reportApplier applies delivery reports inside one transaction: each
// report updates its part, then finish settles the status of every message
// touched, in two statements.
type reportApplier struct {
	s       *Store
	tx      *sql.Tx
	stmts   map[string]*sql.Stmt
	touched map[int64]bool
	now     string         // the transaction's now, for the per-report statements
	settled []store.Change // messages finish made DELIVERED or NOTDELIVERED
}

func (ra *reportApplier) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := ra.stmts[q]; ok {
		return st, nil
	}
	st, err := ra.tx.PrepareContext(ctx, q)
	if err != nil {
		return nil, ra.s.mapError(err, "apply delivery reports")
	}
	if ra.stmts == nil {
		ra.stmts = map[string]*sql.Stmt{}
	}
	ra.stmts[q] = st
	return st, nil
}

func (ra *reportApplier) close() {
	for _, st := range ra.stmts {
		st.Close()
	}
}

var (
	// reportPartSQL updates the newest part with this reference.
	reportPartSQL = `UPDATE MessageParts SET Status = ?1, ErrorCode = ?2, DeliveredTime = COALESCE(?3, ?6)
		WHERE rowid = (SELECT rowid FROM MessageParts WHERE ChannelID = ?4 AND Reference = ?5
			ORDER BY MessageID DESC LIMIT 1)
		RETURNING MessageID`
	// settleNotDeliveredSQL makes the messages of a JSON array of IDs
	// NOTDELIVERED when one of their parts is.
	settleNotDeliveredSQL = `UPDATE Messages SET Status = 'NOTDELIVERED', TriggerStatus = '',
		ErrorCode = f.ErrorCode, StatusDetails = f.why, LastUpdate = n.now,
		Trace = Trace || n.now || ' NOTDELIVERED ' || f.why || char(10)
		FROM (SELECT p.MessageID, p.ErrorCode,
				'part ' || p.PartNumber || ' not delivered' || COALESCE(' (error ' || p.ErrorCode || ')', '') AS why,
				row_number() OVER (PARTITION BY p.MessageID ORDER BY p.PartNumber) AS k
			FROM MessageParts AS p
			WHERE p.MessageID IN (SELECT value FROM json_each(?1)) AND p.Status = 'NOTDELIVERED') AS f,
			(SELECT ` + nowSQL + ` AS now) AS n
		WHERE Messages.ID = f.MessageID AND f.k = 1 AND Messages.Status IN ('SENT', 'NOREPORT')
		RETURNING ID, ChannelID`
	// settleDeliveredSQL makes the messages of a JSON array of IDs
	// DELIVERED when all their parts are.
	settleDeliveredSQL = `UPDATE Messages SET Status = 'DELIVERED', TriggerStatus = '',
		DeliveredTime = d.last, ErrorCode = NULL, StatusDetails = NULL, LastUpdate = n.now,
		Trace = Trace || n.now || ' DELIVERED ' ||
			CASE WHEN Messages.TotalParts > 1 THEN 'all ' || Messages.TotalParts || ' parts delivered' ELSE 'delivered' END || char(10)
		FROM (SELECT p.MessageID, COUNT(*) AS delivered, MAX(p.DeliveredTime) AS last
			FROM MessageParts AS p
			WHERE p.MessageID IN (SELECT value FROM json_each(?1)) AND p.Status = 'DELIVERED'
			GROUP BY p.MessageID) AS d,
			(SELECT ` + nowSQL + ` AS now) AS n
		WHERE Messages.ID = d.MessageID AND Messages.Status IN ('SENT', 'NOREPORT')
		  AND Messages.TotalParts > 0 AND d.delivered >= Messages.TotalParts
		RETURNING ID, ChannelID`
)

// apply applies one report to its part; matched is false when no part has
// its reference yet. The message's status is settled by finish.
func (ra *reportApplier) apply(ctx context.Context, channelID int64, ref, status, errorCode string, done any) (matched bool, err error) {
	st, err := ra.stmt(ctx, reportPartSQL)
	if err != nil {
		return false, err
	}
	var msgID int64
	if ra.now == "" {
		ra.now = nowText()
	}
	err = st.QueryRowContext(ctx, status, strArg(errorCode), done, channelID, ref, ra.now).Scan(&msgID)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, ra.s.mapError(err, fmt.Sprintf("apply the delivery report for reference %q", ref))
	}
	if ra.touched == nil {
		ra.touched = map[int64]bool{}
	}
	ra.touched[msgID] = true
	return true, nil
}

// finish settles the messages whose parts apply changed: NOTDELIVERED as
// soon as a part is not delivered, DELIVERED when every part is.
func (ra *reportApplier) finish(ctx context.Context) error {
	if len(ra.touched) == 0 {
		return nil
	}
	ids := make([]int64, 0, len(ra.touched))
	for id := range ra.touched {
		ids = append(ids, id)
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return fmt.Errorf("apply delivery reports: %w", err)
	}
	rows, err := ra.tx.QueryContext(ctx, settleNotDeliveredSQL, string(list))
	if err == nil {
		ra.settled, err = scanChanges(rows, store.StatusNotDelivered, ra.settled)
	}
	if err != nil {
		return ra.s.mapError(err, "apply delivery reports: NOTDELIVERED")
	}
	rows, err = ra.tx.QueryContext(ctx, settleDeliveredSQL, string(list))
	if err == nil {
		ra.settled, err = scanChanges(rows, store.StatusDelivered, ra.settled)
	}
	if err != nil {
		return ra.s.mapError(err, "apply delivery reports: DELIVERED")
	}
	ra.touched = nil
	return nil
}

// applyPending applies and deletes the pending reports for one part that
// was just written.
func (ra *reportApplier) applyPending(ctx context.Context, channelID int64, ref string) error {
	sel, err := ra.stmt(ctx, `DELETE FROM PendingReports WHERE ChannelID = ? AND Reference = ?
		RETURNING ID, Status, ErrorCode, DoneTime`)
	if err != nil {
		return err
	}
	rows, err := sel.QueryContext(ctx, channelID, ref)
	if err != nil {
		return ra.s.mapError(err, fmt.Sprintf("apply pending reports for reference %q", ref))
	}
	type pending struct {
		id              int64
		status          string
		errorCode, done sql.NullString
	}
	var list []pending
	for rows.Next() {
		var p pending
		if err := rows.Scan(&p.id, &p.status, &p.errorCode, &p.done); err != nil {
			rows.Close()
			return ra.s.mapError(err, fmt.Sprintf("apply pending reports for reference %q", ref))
		}
		list = append(list, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return ra.s.mapError(err, fmt.Sprintf("apply pending reports for reference %q", ref))
	}
	sort.Slice(list, func(i, j int) bool { return list[i].id < list[j].id })
	for _, p := range list {
		var done any
		if p.done.Valid {
			done = p.done.String
		}
		if _, err := ra.apply(ctx, channelID, ref, p.status, p.errorCode.String, done); err != nil {
			return err
		}
	}
	return nil
}

// MessageReportApply applies delivery reports to parts; reports whose part
// is not known yet are kept in PendingReports.
func (s *Store) MessageReportApply(ctx context.Context, ps []store.ReportParams) (store.ReportResult, error) {
	var res store.ReportResult
	for i, p := range ps {
		if p.Reference == "" {
			return res, fmt.Errorf("delivery report %d of the batch: Reference is required: %w", i, store.ErrInvalid)
		}
		if p.Status != store.PartDelivered && p.Status != store.PartNotDelivered {
			return res, fmt.Errorf("delivery report %d of the batch: Status %q must be %s or %s: %w",
				i, p.Status, store.PartDelivered, store.PartNotDelivered, store.ErrInvalid)
		}
	}
	if len(ps) == 0 {
		return res, nil
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res = store.ReportResult{}
		ra := &reportApplier{s: s, tx: tx}
		defer ra.close()
		for _, p := range ps {
			matched, err := ra.apply(ctx, p.ChannelID, p.Reference, p.Status, p.ErrorCode, timeArg(p.DoneTime))
			if err != nil {
				return err
			}
			if matched {
				res.Matched++
				continue
			}
			ins, err := ra.stmt(ctx, `INSERT INTO PendingReports (ChannelID, Reference, Status, ErrorCode, DoneTime, ReceivedTime)
				VALUES (?1, ?2, ?3, ?4, COALESCE(?5, ?6), ?6)`)
			if err != nil {
				return err
			}
			if _, err := ins.ExecContext(ctx, p.ChannelID, p.Reference, p.Status, strArg(p.ErrorCode), timeArg(p.DoneTime), ra.now); err != nil {
				return s.mapError(err, fmt.Sprintf("keep the delivery report for reference %q", p.Reference))
			}
			res.Pending++
		}
		if err := ra.finish(ctx); err != nil {
			return err
		}
		res.Settled = ra.settled
		return nil
	})
	if err != nil {
		return store.ReportResult{}, err
	}
	return res, nil
}

// MessageRescue returns SENDING messages whose lease expired to QUEUED.
func (s *Store) MessageRescue(ctx context.Context, limit int) ([]store.Change, error) {
	if limit <= 0 {
		limit = defaultBatch
	}
	if found, err := s.anyRow(ctx, "rescue messages with expired leases", `SELECT 1 FROM Messages WHERE `+leaseExpiredWhere); err != nil || !found {
		return nil, err
	}
	var rescued []store.Change
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE Messages SET Status = 'QUEUED', LeaseOwner = NULL, LeaseExpires = NULL,
			StatusDetails = 'lease of ' || COALESCE(LeaseOwner, '?') || ' expired; the message may have been sent',
			LastUpdate = `+nowSQL+`,
			Trace = `+traceSQL(`'QUEUED lease of ' || COALESCE(LeaseOwner, '?') || ' expired at ' || COALESCE(LeaseExpires, '?') ||
				'; the message may have been sent already (at-least-once)'`)+`
			WHERE ID IN (SELECT ID FROM Messages WHERE `+leaseExpiredWhere+`
				ORDER BY LeaseExpires LIMIT ?)
			RETURNING ID, ChannelID`, limit)
		if err == nil {
			rescued, err = scanChanges(rows, store.StatusQueued, nil)
		}
		return s.mapError(err, "rescue messages with expired leases")
	})
	if err != nil {
		return nil, err
	}
	return rescued, nil
}

// MessageSweep makes overdue SENT messages NOREPORT and expired QUEUED
// messages EXPIRED, and deletes stale pending reports.
func (s *Store) MessageSweep(ctx context.Context, p store.SweepParams) (store.SweepResult, error) {
	var res store.SweepResult
	limit := p.Limit
	if limit <= 0 {
		limit = defaultBatch
	}
	if found, err := s.anyRow(ctx, "sweep", `SELECT 1 FROM Messages WHERE `+noReportWhere+`
		UNION ALL SELECT 1 FROM Messages WHERE `+queuedExpiredWhere+`
		UNION ALL SELECT 1 FROM PendingReports WHERE `+stalePendingWhere,
		modifier(-p.PendingReportTTL), modifier(-p.NoReportAfter)); err != nil || !found {
		return res, err
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res = store.SweepResult{}
		rows, err := tx.QueryContext(ctx, `UPDATE Messages SET Status = 'NOREPORT', TriggerStatus = '',
			StatusDetails = 'no delivery report within ' || ?1, LastUpdate = `+nowSQL+`,
			Trace = `+traceSQL(`'NOREPORT no delivery report within ' || ?1`)+`
			WHERE ID IN (SELECT ID FROM Messages
				WHERE `+noReportWhere+`
				ORDER BY SentTime LIMIT ?3)
			RETURNING ID, ChannelID`, p.NoReportAfter.String(), modifier(-p.NoReportAfter), limit)
		if err == nil {
			res.Changes, err = scanChanges(rows, store.StatusNoReport, res.Changes)
		}
		if err != nil {
			return s.mapError(err, "sweep: NOREPORT")
		}
		res.NoReport = len(res.Changes)

		rows, err = tx.QueryContext(ctx, `UPDATE Messages SET Status = 'EXPIRED', TriggerStatus = '',
			StatusDetails = 'ValidUntil ' || ValidUntil || ' passed before the message was sent',
			LastUpdate = `+nowSQL+`,
			Trace = `+traceSQL(`'EXPIRED ValidUntil ' || ValidUntil || ' passed before sending'`)+`
			WHERE ID IN (SELECT ID FROM Messages
				WHERE `+queuedExpiredWhere+`
				ORDER BY ID LIMIT ?)
			RETURNING ID, ChannelID`, limit)
		if err == nil {
			res.Changes, err = scanChanges(rows, store.StatusExpired, res.Changes)
		}
		if err != nil {
			return s.mapError(err, "sweep: EXPIRED")
		}
		res.Expired = len(res.Changes) - res.NoReport

		r, err := tx.ExecContext(ctx, `DELETE FROM PendingReports WHERE ID IN (SELECT ID FROM PendingReports
			WHERE `+stalePendingWhere+` ORDER BY ID LIMIT ?2)`,
			modifier(-p.PendingReportTTL), limit)
		if err != nil {
			return s.mapError(err, "sweep: pending reports")
		}
		n, _ := r.RowsAffected()
		res.PendingDeleted = int(n)
		return nil
	})
	if err != nil {
		return store.SweepResult{}, err
	}
	return res, nil
}

// MessageReceive stores incoming messages as RECEIVED rows.
func (s *Store) MessageReceive(ctx context.Context, in []store.Incoming) ([]int64, error) {
	for i, m := range in {
		if m.ToAddress == "" {
			return nil, fmt.Errorf("incoming message %d of the batch: ToAddress is required: the channel must give the number it was received on: %w", i, store.ErrInvalid)
		}
	}
	if len(in) == 0 {
		return nil, nil
	}
	ids := make([]int64, len(in))
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO Messages (Direction, Status, ChannelID, FromAddress, FromTON, FromNPI,
			ToAddress, Body, DataCoding, Reference, TotalParts, RequestDeliveryReport, ReceivedTime, Trace)
			VALUES ('IN', 'RECEIVED', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, COALESCE(?10, `+nowSQL+`),
				`+nowSQL+` || ' RECEIVED' || COALESCE(' on channel ' || ?1, '') || char(10))
			RETURNING ID`)
		if err != nil {
			return s.mapError(err, "store received messages")
		}
		defer stmt.Close()
		for i, m := range in {
			if err := stmt.QueryRowContext(ctx, intArg(m.ChannelID), strArg(m.FromAddress), m.FromTON, m.FromNPI,
				m.ToAddress, m.Body, m.DataCoding, strArg(m.Reference), m.TotalParts, timeArg(m.ReceivedTime)).Scan(&ids[i]); err != nil {
				return s.mapError(err, fmt.Sprintf("store received message %d of the batch", i))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}
