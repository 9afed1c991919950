package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/hermod-sms/hermod/store"
)

// messageColumns is the column list every message query returns, in the
// order scanMessage reads them.
const messageColumns = `ID, Direction, Status, TriggerStatus, ChannelID, ToAddress, FromAddress,
	FromTON, FromNPI, Body, DataCoding, Priority, RequestDeliveryReport, ScheduledTime, ValidUntil,
	Reference, TotalParts, Attempts, NextAttemptTime, LeaseOwner, LeaseExpires, CreatedTime,
	SentTime, DeliveredTime, ReceivedTime, LastUpdate, ErrorCode, StatusDetails, BatchID,
	CampaignID, ClientReference, CustomField1, CustomField2, Trace, StatusCallback, StatusCallbackMask`

type rowScanner interface{ Scan(dest ...any) error }

// scanMessage reads one row of messageColumns.
func scanMessage(r rowScanner) (*store.Message, error) {
	var (
		m                                                         store.Message
		channelID, fromTON, fromNPI, dataCoding                   sql.NullInt64
		fromAddress, reference, leaseOwner, errorCode, details    sql.NullString
		batchID, campaignID, clientRef, custom1, custom2          sql.NullString
		scheduled, validUntil, nextAttempt, leaseExpires, created sql.NullString
		sent, delivered, received, lastUpdate                     sql.NullString
		requestReport                                             int64
		callback                                                  sql.NullString
		callbackMask                                              sql.NullInt64
	)
	err := r.Scan(&m.ID, &m.Direction, &m.Status, &m.TriggerStatus, &channelID, &m.ToAddress, &fromAddress,
		&fromTON, &fromNPI, &m.Body, &dataCoding, &m.Priority, &requestReport, &scheduled, &validUntil,
		&reference, &m.TotalParts, &m.Attempts, &nextAttempt, &leaseOwner, &leaseExpires, &created,
		&sent, &delivered, &received, &lastUpdate, &errorCode, &details, &batchID,
		&campaignID, &clientRef, &custom1, &custom2, &m.Trace, &callback, &callbackMask)
	if err != nil {
		return nil, err
	}
	m.ChannelID = channelID.Int64
	m.FromAddress = fromAddress.String
	m.FromTON = nullIntOr(fromTON, -1)
	m.FromNPI = nullIntOr(fromNPI, -1)
	m.DataCoding = nullIntOr(dataCoding, -1)
	m.RequestDeliveryReport = requestReport != 0
	m.ScheduledTime = parseTime(scheduled)
	m.ValidUntil = parseTime(validUntil)
	m.Reference = reference.String
	m.NextAttemptTime = parseTime(nextAttempt)
	m.LeaseOwner = leaseOwner.String
	m.LeaseExpires = parseTime(leaseExpires)
	m.CreatedTime = parseTime(created)
	m.SentTime = parseTime(sent)
	m.DeliveredTime = parseTime(delivered)
	m.ReceivedTime = parseTime(received)
	m.LastUpdate = parseTime(lastUpdate)
	m.ErrorCode = errorCode.String
	m.StatusDetails = details.String
	m.BatchID = batchID.String
	m.CampaignID = campaignID.String
	m.ClientReference = clientRef.String
	m.CustomField1 = custom1.String
	m.CustomField2 = custom2.String
	m.StatusCallback = callback.String
	m.StatusCallbackMask = int(callbackMask.Int64)
	return &m, nil
}

func nullIntOr(n sql.NullInt64, def int) int {
	if !n.Valid {
		return def
	}
	return int(n.Int64)
}

// scanMessages reads every row of rows and closes it.
func scanMessages(rows *sql.Rows) ([]*store.Message, error) {
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

// validateNew checks a NewMessage before it reaches the database, so that
// the error can say which message of the batch is wrong.
func validateNew(i int, m *store.NewMessage) error {
	if m.ToAddress == "" {
		return fmt.Errorf("message %d of the batch: ToAddress is required: give the recipient's number: %w", i, store.ErrInvalid)
	}
	if !m.ValidUntil.IsZero() && !m.ScheduledTime.IsZero() && !m.ValidUntil.After(m.ScheduledTime) {
		return fmt.Errorf("message %d of the batch: ValidUntil (%s) is not after ScheduledTime (%s): the message could never be sent: %w",
			i, m.ValidUntil.UTC().Format(timeLayout), m.ScheduledTime.UTC().Format(timeLayout), store.ErrInvalid)
	}
	if m.ChannelID < 0 {
		return fmt.Errorf("message %d of the batch: ChannelID %d is negative: give a channel's ID or 0 to let the router choose: %w", i, m.ChannelID, store.ErrInvalid)
	}
	return nil
}

const insertMessageSQL = `INSERT INTO Messages (ToAddress, FromAddress, FromTON, FromNPI, Body, DataCoding,
	ChannelID, Priority, ScheduledTime, ValidUntil, RequestDeliveryReport, BatchID, CampaignID,
	ClientReference, CustomField1, CustomField2, StatusCallback, StatusCallbackMask, CreatedTime, LastUpdate, Trace)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?18, ?19, ?17, ?17, ?17 || ' SCHEDULED created' || char(10))
ON CONFLICT (ClientReference) WHERE ClientReference IS NOT NULL DO NOTHING
RETURNING ID`

// MessageInsert inserts outgoing messages in one transaction. A
// ClientReference that is already present returns that message's ID with
// Existing set; the unique index makes this safe against racing inserts.
func (s *Store) MessageInsert(ctx context.Context, msgs []store.NewMessage) ([]store.InsertResult, error) {
	for i := range msgs {
		if err := validateNew(i, &msgs[i]); err != nil {
			return nil, err
		}
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	results := make([]store.InsertResult, len(msgs))
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, insertMessageSQL)
		if err != nil {
			return s.mapError(err, "insert messages")
		}
		defer ins.Close()
		var existing *sql.Stmt
		now := nowText()
		for i := range msgs {
			m := &msgs[i]
			var dataCoding, fromTON, fromNPI any
			if m.DataCoding != nil {
				dataCoding = *m.DataCoding
			}
			if m.FromTON != nil {
				fromTON = *m.FromTON
			}
			if m.FromNPI != nil {
				fromNPI = *m.FromNPI
			}
			report := 1
			if m.NoDeliveryReport {
				report = 0
			}
			err := ins.QueryRowContext(ctx, m.ToAddress, strArg(m.FromAddress), fromTON, fromNPI, m.Body, dataCoding,
				intArg(m.ChannelID), m.Priority, timeArg(m.ScheduledTime), timeArg(m.ValidUntil), report,
				strArg(m.BatchID), strArg(m.CampaignID), strArg(m.ClientReference),
				strArg(m.CustomField1), strArg(m.CustomField2), now,
				strArg(m.StatusCallback), intArg(int64(m.StatusCallbackMask))).Scan(&results[i].ID)
			if errors.Is(err, sql.ErrNoRows) {
				// The ClientReference is taken: return the message that has it.
				if existing == nil {
					if existing, err = tx.PrepareContext(ctx, `SELECT ID FROM Messages WHERE ClientReference = ?`); err != nil {
						return s.mapError(err, "insert messages")
					}
					defer existing.Close()
				}
				if err := existing.QueryRowContext(ctx, m.ClientReference).Scan(&results[i].ID); err != nil {
					return s.mapError(err, fmt.Sprintf("message %d of the batch: look up ClientReference %q", i, m.ClientReference))
				}
				results[i].Existing = true
				continue
			}
			if err != nil {
				return s.mapError(err, fmt.Sprintf("insert message %d of the batch", i))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// MessageGet returns one message, or store.ErrNotFound.
func (s *Store) MessageGet(ctx context.Context, id int64) (*store.Message, error) {
	row := s.read.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM Messages WHERE ID = ?`, id)
	m, err := scanMessage(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("message %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, s.mapError(err, fmt.Sprintf("get message %d", id))
	}
	return m, nil
}

// Limits of MessageList.
const (
	defaultListLimit = 100
	maxListLimit     = 10000
)

// MessageList returns the messages that match f, ordered by ID (newest
// first unless f.Ascending).
func (s *Store) MessageList(ctx context.Context, f store.MessageFilter) ([]*store.Message, error) {
	var (
		where []string
		args  []any
	)
	if len(f.Status) > 0 {
		where = append(where, "Status IN (?"+strings.Repeat(", ?", len(f.Status)-1)+")")
		for _, st := range f.Status {
			args = append(args, st)
		}
	}
	if f.Direction != "" {
		where = append(where, "Direction = ?")
		args = append(args, f.Direction)
	}
	if f.ChannelID != 0 {
		where = append(where, "ChannelID = ?")
		args = append(args, f.ChannelID)
	}
	if f.Address != "" {
		where = append(where, "(ToAddress = ? OR FromAddress = ?)")
		args = append(args, f.Address, f.Address)
	}
	if f.BatchID != "" {
		where = append(where, "BatchID = ?")
		args = append(args, f.BatchID)
	}
	if f.CampaignID != "" {
		where = append(where, "CampaignID = ?")
		args = append(args, f.CampaignID)
	}
	if !f.Since.IsZero() {
		where = append(where, "CreatedTime >= ?")
		args = append(args, timeArg(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "CreatedTime < ?")
		args = append(args, timeArg(f.Until))
	}
	order := "DESC"
	if f.Ascending {
		order = "ASC"
	}
	if f.AfterID != 0 {
		if f.Ascending {
			where = append(where, "ID > ?")
		} else {
			where = append(where, "ID < ?")
		}
		args = append(args, f.AfterID)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultListLimit
	}
	limit = min(limit, maxListLimit)

	q := `SELECT ` + messageColumns + ` FROM Messages`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY ID " + order + " LIMIT ?"
	args = append(args, limit)
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.mapError(err, "list messages")
	}
	out, err := scanMessages(rows)
	if err != nil {
		return nil, s.mapError(err, "list messages")
	}
	return out, nil
}

// MessageParts returns the parts of one message ordered by PartNumber.
func (s *Store) MessageParts(ctx context.Context, id int64) ([]store.Part, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT MessageID, PartNumber, ChannelID, Reference, Status, ErrorCode, SentTime, DeliveredTime
		FROM MessageParts WHERE MessageID = ? ORDER BY PartNumber`, id)
	if err != nil {
		return nil, s.mapError(err, fmt.Sprintf("list the parts of message %d", id))
	}
	defer rows.Close()
	var out []store.Part
	for rows.Next() {
		var (
			p                           store.Part
			channelID                   sql.NullInt64
			ref, errorCode, sent, deliv sql.NullString
		)
		if err := rows.Scan(&p.MessageID, &p.PartNumber, &channelID, &ref, &p.Status, &errorCode, &sent, &deliv); err != nil {
			return nil, s.mapError(err, fmt.Sprintf("list the parts of message %d", id))
		}
		p.ChannelID = channelID.Int64
		p.Reference = ref.String
		p.ErrorCode = errorCode.String
		p.SentTime = parseTime(sent)
		p.DeliveredTime = parseTime(deliv)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, s.mapError(err, fmt.Sprintf("list the parts of message %d", id))
	}
	return out, nil
}

// statusOf returns a message's current status inside tx, or ErrNotFound.
func (s *Store) statusOf(ctx context.Context, tx *sql.Tx, id int64) (status, direction string, err error) {
	err = tx.QueryRowContext(ctx, `SELECT Status, Direction FROM Messages WHERE ID = ?`, id).Scan(&status, &direction)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", fmt.Errorf("message %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return "", "", s.mapError(err, fmt.Sprintf("read message %d", id))
	}
	return status, direction, nil
}

// MessageCancel makes a SCHEDULED or QUEUED message CANCELLED.
func (s *Store) MessageCancel(ctx context.Context, id int64) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE Messages SET Status = 'CANCELLED', TriggerStatus = '',
			StatusDetails = 'cancelled by the application', LeaseOwner = NULL, LeaseExpires = NULL,
			LastUpdate = `+nowSQL+`, Trace = `+traceSQL(`'CANCELLED cancelled by the application'`)+`
			WHERE ID = ? AND Status IN ('SCHEDULED', 'QUEUED')`, id)
		if err != nil {
			return s.mapError(err, fmt.Sprintf("cancel message %d", id))
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return nil
		}
		status, _, err := s.statusOf(ctx, tx, id)
		if err != nil {
			return err
		}
		return fmt.Errorf("cancel message %d: it is %s; only SCHEDULED or QUEUED messages can be cancelled: %w", id, status, store.ErrConflict)
	})
}

// resendable are the statuses MessageReprocess can send again.
var resendable = []string{store.StatusFailed, store.StatusNoChannel, store.StatusBlocked, store.StatusDailyLimit,
	store.StatusExpired, store.StatusNotDelivered, store.StatusNoReport}

// MessageReprocess acts on a message again: with resend it goes back to
// SCHEDULED, without it its triggers run again.
func (s *Store) MessageReprocess(ctx context.Context, id int64, resend bool) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		status, direction, err := s.statusOf(ctx, tx, id)
		if err != nil {
			return err
		}
		if !resend {
			_, err := tx.ExecContext(ctx, `UPDATE Messages SET TriggerStatus = '', LastUpdate = `+nowSQL+`,
				Trace = `+traceSQL(`Status || ' triggers to run again'`)+` WHERE ID = ?`, id)
			return s.mapError(err, fmt.Sprintf("reprocess message %d", id))
		}
		if direction != store.DirectionOut || !contains(resendable, status) {
			return fmt.Errorf("resend message %d: it is %s %s; only outgoing messages that are %s can be sent again: %w",
				id, direction, status, strings.Join(resendable, ", "), store.ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM MessageParts WHERE MessageID = ?`, id); err != nil {
			return s.mapError(err, fmt.Sprintf("resend message %d: delete its old parts", id))
		}
		_, err = tx.ExecContext(ctx, `UPDATE Messages SET Status = 'SCHEDULED', NextAttemptTime = NULL,
			LeaseOwner = NULL, LeaseExpires = NULL, StatusDetails = NULL, LastUpdate = `+nowSQL+`,
			Trace = `+traceSQL(`'SCHEDULED resend requested (was ' || Status || ')'`)+` WHERE ID = ?`, id)
		return s.mapError(err, fmt.Sprintf("resend message %d", id))
	})
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// MessageCountByStatus counts messages per Status for one direction ("" both).
func (s *Store) MessageCountByStatus(ctx context.Context, direction string) (map[string]int, error) {
	q := `SELECT Status, COUNT(*) FROM Messages`
	var args []any
	if direction != "" {
		q += ` WHERE Direction = ?`
		args = append(args, direction)
	}
	q += ` GROUP BY Status`
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.mapError(err, "count messages")
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var (
			status string
			n      int
		)
		if err := rows.Scan(&status, &n); err != nil {
			return nil, s.mapError(err, "count messages")
		}
		out[status] = n
	}
	if err := rows.Err(); err != nil {
		return nil, s.mapError(err, "count messages")
	}
	return out, nil
}
