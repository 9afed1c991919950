package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/hermod-sms/hermod/store"
)

// messageColumns selects a Message from Messages aliased m, in the order
// scanMessage reads them.
const messageColumns = `m.ID, m.Direction, m.Status, m.TriggerStatus, COALESCE(m.ChannelID, 0),
	m.ToAddress, COALESCE(m.FromAddress, ''), COALESCE(m.FromTON, -1), COALESCE(m.FromNPI, -1),
	m.Body, COALESCE(m.DataCoding, -1), m.Priority, m.RequestDeliveryReport,
	m.ScheduledTime, m.ValidUntil, COALESCE(m.Reference, ''), m.TotalParts, m.Attempts,
	m.NextAttemptTime, COALESCE(m.LeaseOwner, ''), m.LeaseExpires, m.CreatedTime,
	m.SentTime, m.DeliveredTime, m.ReceivedTime, m.LastUpdate,
	COALESCE(m.ErrorCode, ''), COALESCE(m.StatusDetails, ''), COALESCE(m.BatchID, ''),
	COALESCE(m.CampaignID, ''), COALESCE(m.ClientReference, ''),
	COALESCE(m.CustomField1, ''), COALESCE(m.CustomField2, ''), m.Trace,
	COALESCE(m.StatusCallback, ''), COALESCE(m.StatusCallbackMask, 0)`

// scanMessage reads one row selected with messageColumns.
func scanMessage(row pgx.Row) (*store.Message, error) {
	var (
		m                                      store.Message
		channelID                              int32
		scheduled, valid, next, lease, created pgtype.Timestamp
		sent, delivered, received, lastUpdate  pgtype.Timestamp
	)
	err := row.Scan(&m.ID, &m.Direction, &m.Status, &m.TriggerStatus, &channelID,
		&m.ToAddress, &m.FromAddress, &m.FromTON, &m.FromNPI,
		&m.Body, &m.DataCoding, &m.Priority, &m.RequestDeliveryReport,
		&scheduled, &valid, &m.Reference, &m.TotalParts, &m.Attempts,
		&next, &m.LeaseOwner, &lease, &created,
		&sent, &delivered, &received, &lastUpdate,
		&m.ErrorCode, &m.StatusDetails, &m.BatchID,
		&m.CampaignID, &m.ClientReference,
		&m.CustomField1, &m.CustomField2, &m.Trace,
		&m.StatusCallback, &m.StatusCallbackMask)
	if err != nil {
		return nil, err
	}
	m.ChannelID = int64(channelID)
	m.ScheduledTime = scheduled.Time
	m.ValidUntil = valid.Time
	m.NextAttemptTime = next.Time
	m.LeaseExpires = lease.Time
	m.CreatedTime = created.Time
	m.SentTime = sent.Time
	m.DeliveredTime = delivered.Time
	m.ReceivedTime = received.Time
	m.LastUpdate = lastUpdate.Time
	return &m, nil
}

// collectMessages reads every row of rows with scanMessage.
func collectMessages(rows pgx.Rows) ([]*store.Message, error) {
	defer rows.Close()
	var out []*store.Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// insertMessagesSQL inserts a batch given as arrays, numbering the rows from
// the identity sequence first so that every input row learns its ID (a
// RETURNING clause has no defined order). Rows whose ClientReference already
// exists, in the table or earlier in the batch, are skipped by ON CONFLICT
// DO NOTHING; the caller looks their IDs up in a second statement, which
// also sees rows that a racing transaction committed meanwhile.
const insertMessagesSQL = `
WITH input AS MATERIALIZED (
	SELECT nextval('Messages_ID_seq') AS NewID, t.*
	FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::text[], $6::int[], $7::int[],
	            $8::int[], $9::timestamp[], $10::timestamp[], $11::bool[], $12::text[], $13::text[],
	            $14::text[], $15::text[], $16::text[], $17::text[], $18::int[])
	     WITH ORDINALITY AS t(ToAddress, FromAddress, FromTON, FromNPI, Body, DataCoding, ChannelID,
	            Priority, ScheduledTime, ValidUntil, RequestDeliveryReport, BatchID, CampaignID,
	            ClientReference, CustomField1, CustomField2, StatusCallback, StatusCallbackMask, Ord)
), ins AS (
	INSERT INTO Messages (ID, ToAddress, FromAddress, FromTON, FromNPI, Body, DataCoding, ChannelID,
	            Priority, ScheduledTime, ValidUntil, RequestDeliveryReport, BatchID, CampaignID,
	            ClientReference, CustomField1, CustomField2, StatusCallback, StatusCallbackMask)
	SELECT NewID, ToAddress, FromAddress, FromTON, FromNPI, Body, DataCoding, ChannelID,
	       Priority, ScheduledTime, ValidUntil, RequestDeliveryReport, BatchID, CampaignID,
	       ClientReference, CustomField1, CustomField2, StatusCallback, StatusCallbackMask
	FROM input ORDER BY Ord
	ON CONFLICT DO NOTHING
	RETURNING ID
)
SELECT i.NewID, ins.ID IS NOT NULL FROM input i LEFT JOIN ins ON ins.ID = i.NewID ORDER BY i.Ord`

// MessageInsert inserts outgoing messages in one transaction and one
// statement; an existing ClientReference returns the existing ID.
func (s *Store) MessageInsert(ctx context.Context, msgs []store.NewMessage) ([]store.InsertResult, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	n := len(msgs)
	var (
		to, from, body                       = make([]string, n), make([]*string, n), make([]string, n)
		ton, npi, dc                         = make([]*int32, n), make([]*int32, n), make([]*int32, n)
		channel                              = make([]*int64, n)
		prio                                 = make([]int32, n)
		sched, valid                         = make([]pgtype.Timestamp, n), make([]pgtype.Timestamp, n)
		report                               = make([]bool, n)
		batch, campaign, clientRef, cf1, cf2 = make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n)
		callback                             = make([]*string, n)
		callbackMask                         = make([]*int32, n)
	)
	for i, m := range msgs {
		to[i], from[i], body[i] = m.ToAddress, nullString(m.FromAddress), m.Body
		ton[i], npi[i], dc[i] = int32Ptr(m.FromTON), int32Ptr(m.FromNPI), int32Ptr(m.DataCoding)
		channel[i] = nullInt64(m.ChannelID)
		prio[i] = int32(m.Priority)
		sched[i], valid[i] = timestamp(m.ScheduledTime), timestamp(m.ValidUntil)
		report[i] = !m.NoDeliveryReport
		batch[i], campaign[i], clientRef[i] = nullString(m.BatchID), nullString(m.CampaignID), nullString(m.ClientReference)
		cf1[i], cf2[i] = nullString(m.CustomField1), nullString(m.CustomField2)
		callback[i] = nullString(m.StatusCallback)
		if m.StatusCallbackMask != 0 {
			mask := int32(m.StatusCallbackMask)
			callbackMask[i] = &mask
		}
	}

	results := make([]store.InsertResult, n)
	// The insert is one statement and so atomic on its own; the look-up of
	// existing ClientReferences runs after it, outside any transaction, so
	// that it sees rows that racing transactions committed meanwhile.
	err := func() error {
		rows, err := s.pool.Query(ctx, insertMessagesSQL, to, from, ton, npi, body, dc, channel,
			prio, sched, valid, report, batch, campaign, clientRef, cf1, cf2, callback, callbackMask)
		if err != nil {
			return err
		}
		var skipped []string // ClientReferences whose row was not inserted
		for i := 0; rows.Next(); i++ {
			var inserted bool
			if err := rows.Scan(&results[i].ID, &inserted); err != nil {
				rows.Close()
				return err
			}
			if !inserted {
				if msgs[i].ClientReference == "" {
					rows.Close()
					return fmt.Errorf("message %d of the batch was not inserted although it has no ClientReference", i)
				}
				results[i].ID, results[i].Existing = 0, true
				skipped = append(skipped, msgs[i].ClientReference)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(skipped) == 0 {
			return nil
		}
		// A new statement sees rows that racing transactions committed
		// after the insert's snapshot, and this batch's own rows.
		existing := make(map[string]int64, len(skipped))
		rows, err = s.pool.Query(ctx, `SELECT ClientReference, ID FROM Messages WHERE ClientReference = ANY($1)`, skipped)
		if err != nil {
			return err
		}
		for rows.Next() {
			var ref string
			var id int64
			if err := rows.Scan(&ref, &id); err != nil {
				rows.Close()
				return err
			}
			existing[ref] = id
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range results {
			if !results[i].Existing {
				continue
			}
			id, ok := existing[msgs[i].ClientReference]
			if !ok {
				return fmt.Errorf("ClientReference %q conflicted but its message is gone (deleted meanwhile): retry the insert: %w", msgs[i].ClientReference, store.ErrConflict)
			}
			results[i].ID = id
		}
		return nil
	}()
	if err != nil {
		return nil, mapError("insert messages", err)
	}
	return results, nil
}

func int32Ptr(p *int) *int32 {
	if p == nil {
		return nil
	}
	v := int32(*p)
	return &v
}

// timestamp converts t to a nullable TIMESTAMP in UTC (zero: NULL).
func timestamp(t time.Time) pgtype.Timestamp {
	if t.IsZero() {
		return pgtype.Timestamp{}
	}
	return pgtype.Timestamp{Time: t.UTC(), Valid: true}
}

// MessageGet returns one message, or store.ErrNotFound.
func (s *Store) MessageGet(ctx context.Context, id int64) (*store.Message, error) {
	m, err := scanMessage(s.pool.QueryRow(ctx, `SELECT `+messageColumns+` FROM Messages m WHERE m.ID = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: message %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, mapError(fmt.Sprintf("get message %d", id), err)
	}
	return m, nil
}

// MessageList returns messages matching f, ordered by ID (newest first
// unless f.Ascending).
func (s *Store) MessageList(ctx context.Context, f store.MessageFilter) ([]*store.Message, error) {
	var (
		where []string
		args  []any
	)
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "$?", "$"+strconv.Itoa(len(args))))
	}
	if len(f.Status) > 0 {
		add("m.Status = ANY($?::text[])", f.Status)
	}
	if f.Direction != "" {
		add("m.Direction = $?", f.Direction)
	}
	if f.ChannelID != 0 {
		add("m.ChannelID = $?", f.ChannelID)
	}
	if f.Address != "" {
		add("(m.ToAddress = $? OR m.FromAddress = $?)", f.Address)
	}
	if f.BatchID != "" {
		add("m.BatchID = $?", f.BatchID)
	}
	if f.CampaignID != "" {
		add("m.CampaignID = $?", f.CampaignID)
	}
	if !f.Since.IsZero() {
		add("m.CreatedTime >= $?", f.Since.UTC())
	}
	if !f.Until.IsZero() {
		add("m.CreatedTime < $?", f.Until.UTC())
	}
	order := "DESC"
	if f.Ascending {
		order = "ASC"
		if f.AfterID != 0 {
			add("m.ID > $?", f.AfterID)
		}
	} else if f.AfterID != 0 {
		add("m.ID < $?", f.AfterID)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 10000)
	q := `SELECT ` + messageColumns + ` FROM Messages m`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY m.ID ` + order + ` LIMIT ` + strconv.Itoa(limit)
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, mapError("list messages", err)
	}
	msgs, err := collectMessages(rows)
	if err != nil {
		return nil, mapError("list messages", err)
	}
	return msgs, nil
}

// MessageParts returns the parts of one message ordered by PartNumber.
func (s *Store) MessageParts(ctx context.Context, id int64) ([]store.Part, error) {
	rows, err := s.pool.Query(ctx, `
SELECT MessageID, PartNumber, COALESCE(ChannelID, 0), COALESCE(Reference, ''), Status,
       COALESCE(ErrorCode, ''), SentTime, DeliveredTime
FROM MessageParts WHERE MessageID = $1 ORDER BY PartNumber`, id)
	if err != nil {
		return nil, mapError(fmt.Sprintf("parts of message %d", id), err)
	}
	defer rows.Close()
	var parts []store.Part
	for rows.Next() {
		var (
			p               store.Part
			channel         int32
			sent, delivered pgtype.Timestamp
		)
		if err := rows.Scan(&p.MessageID, &p.PartNumber, &channel, &p.Reference, &p.Status, &p.ErrorCode, &sent, &delivered); err != nil {
			return nil, mapError(fmt.Sprintf("parts of message %d", id), err)
		}
		p.ChannelID, p.SentTime, p.DeliveredTime = int64(channel), sent.Time, delivered.Time
		parts = append(parts, p)
	}
	if err := rows.Err(); err != nil {
		return nil, mapError(fmt.Sprintf("parts of message %d", id), err)
	}
	return parts, nil
}

// messageStatus returns a message's status, or store.ErrNotFound.
func (s *Store) messageStatus(ctx context.Context, id int64) (string, error) {
	var status string
	err := s.pool.QueryRow(ctx, `SELECT Status FROM Messages WHERE ID = $1`, id).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("postgres: message %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return "", mapError(fmt.Sprintf("read message %d", id), err)
	}
	return status, nil
}

// MessageCancel makes a SCHEDULED or QUEUED message CANCELLED.
func (s *Store) MessageCancel(ctx context.Context, id int64) error {
	tag, err := s.pool.Exec(ctx, `
UPDATE Messages SET Status = 'CANCELLED', TriggerStatus = '', LeaseOwner = NULL, LeaseExpires = NULL,
       NextAttemptTime = NULL, StatusDetails = 'cancelled by the application', LastUpdate = `+nowSQL+`,
       Trace = `+traceSQL("Trace", "'CANCELLED'", "'cancelled by the application'")+`
WHERE ID = $1 AND Status IN ('SCHEDULED', 'QUEUED')`, id)
	if err != nil {
		return mapError(fmt.Sprintf("cancel message %d", id), err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	status, err := s.messageStatus(ctx, id)
	if err != nil {
		return err
	}
	return fmt.Errorf("postgres: message %d is %s: only SCHEDULED and QUEUED messages can be cancelled: %w", id, status, store.ErrConflict)
}

// resendable are the statuses from which MessageReprocess can send again.
var resendable = []string{
	store.StatusFailed, store.StatusNoChannel, store.StatusBlocked, store.StatusDailyLimit,
	store.StatusExpired, store.StatusNotDelivered, store.StatusNoReport,
}

// MessageReprocess sends a finished outgoing message again (resend) or has
// its triggers run again.
func (s *Store) MessageReprocess(ctx context.Context, id int64, resend bool) error {
	if !resend {
		tag, err := s.pool.Exec(ctx, `UPDATE Messages SET TriggerStatus = '', LastUpdate = `+nowSQL+` WHERE ID = $1`, id)
		if err != nil {
			return mapError(fmt.Sprintf("reprocess message %d", id), err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("postgres: message %d: %w", id, store.ErrNotFound)
		}
		return nil
	}
	tag, err := s.pool.Exec(ctx, `
UPDATE Messages SET Status = 'SCHEDULED', NextAttemptTime = NULL, LeaseOwner = NULL, LeaseExpires = NULL,
       StatusDetails = NULL, LastUpdate = `+nowSQL+`,
       Trace = `+traceSQL("Trace", "'SCHEDULED'", "'reprocessed, was ' || Status")+`
WHERE ID = $1 AND Direction = 'OUT' AND Status = ANY($2::text[])`, id, resendable)
	if err != nil {
		return mapError(fmt.Sprintf("reprocess message %d", id), err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	status, err := s.messageStatus(ctx, id)
	if err != nil {
		return err
	}
	return fmt.Errorf("postgres: message %d is %s: only outgoing messages that are %s can be sent again: %w",
		id, status, strings.Join(resendable, ", "), store.ErrConflict)
}

// MessageCountByStatus counts messages per Status for one direction ("" both).
func (s *Store) MessageCountByStatus(ctx context.Context, direction string) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `
SELECT Status, count(*) FROM Messages WHERE ($1 = '' OR Direction = $1) GROUP BY Status`, direction)
	if err != nil {
		return nil, mapError("count messages", err)
	}
	defer rows.Close()
	counts := make(map[string]int)
	for rows.Next() {
		var status string
		var n int
		if err := rows.Scan(&status, &n); err != nil {
			return nil, mapError("count messages", err)
		}
		counts[status] = n
	}
	if err := rows.Err(); err != nil {
		return nil, mapError("count messages", err)
	}
	return counts, nil
}
