package sqlserver

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/hermod-sms/hermod/store"
)

// messageColumns lists the columns of Messages in the order scanMessage
// reads them; rows are read by position, never by name.
const messageColumns = `m.ID, m.Direction, m.Status, m.TriggerStatus, m.ChannelID, m.ToAddress,
	m.FromAddress, m.FromTON, m.FromNPI, m.Body, m.DataCoding, m.Priority, m.RequestDeliveryReport,
	m.ScheduledTime, m.ValidUntil, m.Reference, m.TotalParts, m.Attempts, m.NextAttemptTime,
	m.LeaseOwner, m.LeaseExpires, m.CreatedTime, m.SentTime, m.DeliveredTime, m.ReceivedTime,
	m.LastUpdate, m.ErrorCode, m.StatusDetails, m.BatchID, m.CampaignID, m.ClientReference,
	m.CustomField1, m.CustomField2, m.Trace, m.StatusCallback, m.StatusCallbackMask`

// scanMessage reads one row of messageColumns.
func scanMessage(row interface{ Scan(...any) error }) (*store.Message, error) {
	var (
		m                                                store.Message
		channelID, fromTON, fromNPI, dataCoding          sql.NullInt64
		from, ref, leaseOwner, errorCode, details        sql.NullString
		batchID, campaignID, clientRef, custom1, custom2 sql.NullString
		scheduled, validUntil, nextAttempt, leaseExpires sql.NullTime
		created, sent, delivered, received, lastUpdate   sql.NullTime
		callback                                         sql.NullString
		callbackMask                                     sql.NullInt64
	)
	err := row.Scan(&m.ID, &m.Direction, &m.Status, &m.TriggerStatus, &channelID, &m.ToAddress,
		&from, &fromTON, &fromNPI, &m.Body, &dataCoding, &m.Priority, &m.RequestDeliveryReport,
		&scheduled, &validUntil, &ref, &m.TotalParts, &m.Attempts, &nextAttempt,
		&leaseOwner, &leaseExpires, &created, &sent, &delivered, &received,
		&lastUpdate, &errorCode, &details, &batchID, &campaignID, &clientRef,
		&custom1, &custom2, &m.Trace, &callback, &callbackMask)
	if err != nil {
		return nil, err
	}
	m.ChannelID = channelID.Int64
	m.FromAddress = from.String
	m.FromTON, m.FromNPI, m.DataCoding = orMinusOne(fromTON), orMinusOne(fromNPI), orMinusOne(dataCoding)
	m.ScheduledTime, m.ValidUntil, m.NextAttemptTime = utc(scheduled), utc(validUntil), utc(nextAttempt)
	m.Reference, m.LeaseOwner, m.LeaseExpires = ref.String, leaseOwner.String, utc(leaseExpires)
	m.CreatedTime, m.SentTime, m.DeliveredTime = utc(created), utc(sent), utc(delivered)
	m.ReceivedTime, m.LastUpdate = utc(received), utc(lastUpdate)
	m.ErrorCode, m.StatusDetails = errorCode.String, details.String
	m.BatchID, m.CampaignID, m.ClientReference = batchID.String, campaignID.String, clientRef.String
	m.CustomField1, m.CustomField2 = custom1.String, custom2.String
	m.StatusCallback, m.StatusCallbackMask = callback.String, int(callbackMask.Int64)
	return &m, nil
}

func orMinusOne(v sql.NullInt64) int {
	if !v.Valid {
		return -1
	}
	return int(v.Int64)
}

// scanMessages reads every row and closes rows.
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
	if strings.TrimSpace(m.ToAddress) == "" {
		return fmt.Errorf("message %d of the batch: ToAddress is required: give the recipient's number: %w", i, store.ErrInvalid)
	}
	if !m.ValidUntil.IsZero() && !m.ScheduledTime.IsZero() && !m.ValidUntil.After(m.ScheduledTime) {
		return fmt.Errorf("message %d of the batch: ValidUntil (%s) is not after ScheduledTime (%s): the message could never be sent: %w",
			i, m.ValidUntil.UTC().Format(time.RFC3339), m.ScheduledTime.UTC().Format(time.RFC3339), store.ErrInvalid)
	}
	if m.ChannelID < 0 {
		return fmt.Errorf("message %d of the batch: ChannelID %d is negative: give a channel's ID or 0 to let the router choose: %w", i, m.ChannelID, store.ErrInvalid)
	}
	return nil
}

// insertColumns are the columns MessageInsert writes from a NewMessage, in
// the order of insertValues; they are also the columns of the staging table
// variable @v, with the types of hermod.Messages.
var insertColumns = []struct{ name, typ string }{
	{"ToAddress", "NVARCHAR(64)"},
	{"FromAddress", "NVARCHAR(64)"},
	{"FromTON", "INT"},
	{"FromNPI", "INT"},
	{"Body", "NVARCHAR(MAX)"},
	{"DataCoding", "INT"},
	{"ChannelID", "INT"},
	{"Priority", "INT"},
	{"ScheduledTime", "DATETIME2(3)"},
	{"ValidUntil", "DATETIME2(3)"},
	{"RequestDeliveryReport", "BIT"},
	{"BatchID", "NVARCHAR(100)"},
	{"CampaignID", "NVARCHAR(100)"},
	{"ClientReference", "NVARCHAR(100)"},
	{"CustomField1", "NVARCHAR(1000)"},
	{"CustomField2", "NVARCHAR(1000)"},
	{"StatusCallback", "NVARCHAR(1000)"},
	{"StatusCallbackMask", "INT"},
}

func insertValues(m *store.NewMessage) []any {
	return []any{
		m.ToAddress, nstr(m.FromAddress), intPtr(m.FromTON), intPtr(m.FromNPI), m.Body,
		intPtr(m.DataCoding), chanArg(m.ChannelID), int64(m.Priority), dt(m.ScheduledTime),
		dt(m.ValidUntil), !m.NoDeliveryReport, nstr(m.BatchID), nstr(m.CampaignID),
		nstr(m.ClientReference), nstr(m.CustomField1), nstr(m.CustomField2),
		nstr(m.StatusCallback), maskArg(m.StatusCallbackMask),
	}
}

// padValues are the parameters of a padding row of buildInsert (see
// bucket): typed NULLs of the columns' types, ToAddress NULL marking it.
func padValues() []any {
	return []any{
		nullString, nullString, nullBigInt, nullBigInt, nullString,
		nullBigInt, nullInt, nullBigInt, nullDateTime,
		nullDateTime, sql.NullBool{}, nullString, nullString,
		nullString, nullString, nullString,
		nullString, nullInt,
	}
}

// maskArg passes a StatusCallbackMask as INT, an INT NULL when 0.
func maskArg(v int) any {
	if v == 0 {
		return nullInt
	}
	return int32(v)
}

// buildInsert builds the batch that inserts msgs. It stages the rows in a
// table variable, finds ClientReferences that exist already (with the
// database's collation, as the unique index compares them), inserts the
// rest in one INSERT ... SELECT ... ORDER BY (SQL Server assigns IDENTITY
// values in the ORDER BY order), and returns two result sets: the new IDs
// in ascending order, then (Ord, ID) of every row that matched an existing
// message or an earlier row of the same batch.
func buildInsert(msgs []store.NewMessage) (string, []any) {
	var a args
	var b strings.Builder
	b.WriteString(batchPrefix)
	b.WriteString("DECLARE @v TABLE (Ord INT NOT NULL PRIMARY KEY")
	for _, c := range insertColumns {
		b.WriteString(", " + c.name + " " + c.typ + " NULL")
	}
	b.WriteString(", ExistingID BIGINT NULL);\nDECLARE @ids TABLE (ID BIGINT NOT NULL);\nINSERT INTO @v (Ord")
	for _, c := range insertColumns {
		b.WriteString(", " + c.name)
	}
	b.WriteString(") VALUES\n")
	for i := range bucket(len(msgs)) {
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, "(%d", i)
		vals := padValues()
		if i < len(msgs) {
			vals = insertValues(&msgs[i])
		}
		for _, v := range vals {
			b.WriteString(", " + a.add(v))
		}
		b.WriteString(")")
	}
	b.WriteString(`;
DELETE FROM @v WHERE ToAddress IS NULL;
UPDATE v SET ExistingID = m.ID
FROM @v AS v JOIN hermod.Messages AS m ON m.ClientReference = v.ClientReference
WHERE v.ClientReference IS NOT NULL;
INSERT INTO hermod.Messages (`)
	for _, c := range insertColumns {
		b.WriteString(c.name + ", ")
	}
	b.WriteString(`CreatedTime, LastUpdate, Trace)
OUTPUT inserted.ID INTO @ids (ID)
SELECT `)
	for _, c := range insertColumns {
		b.WriteString("v." + c.name + ", ")
	}
	b.WriteString(`@now, @now, ` + traceLine("N'SCHEDULED'", "N'created'") + `
FROM @v AS v
WHERE v.ExistingID IS NULL
  AND NOT EXISTS (SELECT 1 FROM @v AS d WHERE d.ClientReference = v.ClientReference AND d.Ord < v.Ord)
ORDER BY v.Ord;
SELECT ID FROM @ids ORDER BY ID;
SELECT v.Ord, m.ID
FROM @v AS v JOIN hermod.Messages AS m ON m.ClientReference = v.ClientReference
WHERE v.ExistingID IS NOT NULL
   OR EXISTS (SELECT 1 FROM @v AS d WHERE d.ClientReference = v.ClientReference AND d.Ord < v.Ord);
`)
	return b.String(), a.vals
}

// MessageInsert inserts outgoing messages in one transaction. A
// ClientReference that exists already returns that message's ID with
// Existing set. When another session inserts the same ClientReference at
// the same moment, the unique index UX_Messages_ClientReference refuses one
// of the two (error 2601) and the loser runs its transaction again, now
// finding the winner's row.
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
	var err error
	for attempt := 1; ; attempt++ {
		err = s.inTx(ctx, func(tx *sql.Tx) error {
			for _, c := range chunks(len(msgs), len(insertColumns), 100) {
				if err := insertChunk(ctx, tx, msgs[c[0]:c[1]], results[c[0]:c[1]]); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil || !isDuplicate(err) || attempt == 3 {
			break
		}
		s.logger.Debug("a ClientReference was inserted concurrently; inserting again", "attempt", attempt)
	}
	if err != nil {
		return nil, mapError(err, "insert messages")
	}
	return results, nil
}

// insertChunk inserts one chunk of messages and fills its results.
func insertChunk(ctx context.Context, tx *sql.Tx, msgs []store.NewMessage, results []store.InsertResult) error {
	q, vals := buildInsert(msgs)
	rows, err := tx.QueryContext(ctx, q, vals...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return err
		}
		ids = append(ids, id)
	}
	existing := map[int]int64{}
	if rows.NextResultSet() {
		for rows.Next() {
			var ord int
			var id int64
			if err := rows.Scan(&ord, &id); err != nil {
				return err
			}
			existing[ord] = id
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(ids)+len(existing) != len(msgs) {
		return fmt.Errorf("the insert returned %d new and %d existing IDs for %d messages: a trigger on hermod.Messages may have inserted or removed rows", len(ids), len(existing), len(msgs))
	}
	next := 0
	for i := range msgs {
		if id, ok := existing[i]; ok {
			results[i] = store.InsertResult{ID: id, Existing: true}
			continue
		}
		results[i] = store.InsertResult{ID: ids[next]}
		next++
	}
	return nil
}

// MessageGet returns one message, or store.ErrNotFound.
func (s *Store) MessageGet(ctx context.Context, id int64) (*store.Message, error) {
	m, err := scanMessage(s.db.QueryRowContext(ctx, messageGetSQL, id))
	if errNoRows(err) {
		return nil, fmt.Errorf("message %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, mapError(err, fmt.Sprintf("read message %d", id))
	}
	return m, nil
}

// buildList builds MessageList's query.
func buildList(f store.MessageFilter) (string, []any) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 10000)

	var a args
	var where []string
	if len(f.Status) > 0 {
		ph := make([]string, len(f.Status))
		for i, st := range f.Status {
			ph[i] = a.add(st)
		}
		where = append(where, "m.Status IN ("+strings.Join(ph, ", ")+")")
	}
	if f.Direction != "" {
		where = append(where, "m.Direction = "+a.add(f.Direction))
	}
	if f.ChannelID != 0 {
		where = append(where, "m.ChannelID = "+a.add(chanArg(f.ChannelID)))
	}
	if f.Address != "" {
		p := a.add(f.Address)
		where = append(where, "(m.ToAddress = "+p+" OR m.FromAddress = "+p+")")
	}
	if f.BatchID != "" {
		where = append(where, "m.BatchID = "+a.add(f.BatchID))
	}
	if f.CampaignID != "" {
		where = append(where, "m.CampaignID = "+a.add(f.CampaignID))
	}
	if !f.Since.IsZero() {
		where = append(where, "m.CreatedTime >= "+a.add(dt(f.Since)))
	}
	if !f.Until.IsZero() {
		where = append(where, "m.CreatedTime < "+a.add(dt(f.Until)))
	}
	order := "DESC"
	if f.Ascending {
		order = "ASC"
	}
	if f.AfterID != 0 {
		op := "<"
		if f.Ascending {
			op = ">"
		}
		where = append(where, "m.ID "+op+" "+a.add(f.AfterID))
	}
	q := "SELECT TOP (" + a.add(int64(limit)) + ") " + messageColumns + "\nFROM hermod.Messages AS m"
	if len(where) > 0 {
		q += "\nWHERE " + strings.Join(where, "\n  AND ")
	}
	q += "\nORDER BY m.ID " + order + ";"
	return q, a.vals
}

// MessageList returns messages matching the filter, ordered by ID.
func (s *Store) MessageList(ctx context.Context, f store.MessageFilter) ([]*store.Message, error) {
	if len(f.Status) > 500 {
		return nil, fmt.Errorf("list messages: %d statuses in the filter: give at most 500: %w", len(f.Status), store.ErrInvalid)
	}
	q, vals := buildList(f)
	rows, err := s.db.QueryContext(ctx, q, vals...)
	if err != nil {
		return nil, mapError(err, "list messages")
	}
	out, err := scanMessages(rows)
	if err != nil {
		return nil, mapError(err, "list messages")
	}
	return out, nil
}

// MessageParts returns the parts of one message ordered by PartNumber.
func (s *Store) MessageParts(ctx context.Context, id int64) ([]store.Part, error) {
	rows, err := s.db.QueryContext(ctx, messagePartsSQL, id)
	if err != nil {
		return nil, mapError(err, fmt.Sprintf("read the parts of message %d", id))
	}
	defer rows.Close()
	var out []store.Part
	for rows.Next() {
		var (
			p               store.Part
			channelID       sql.NullInt64
			ref, errorCode  sql.NullString
			sent, delivered sql.NullTime
		)
		if err := rows.Scan(&p.MessageID, &p.PartNumber, &channelID, &ref, &p.Status, &errorCode, &sent, &delivered); err != nil {
			return nil, mapError(err, fmt.Sprintf("read the parts of message %d", id))
		}
		p.ChannelID, p.Reference, p.ErrorCode = channelID.Int64, ref.String, errorCode.String
		p.SentTime, p.DeliveredTime = utc(sent), utc(delivered)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, mapError(err, fmt.Sprintf("read the parts of message %d", id))
	}
	return out, nil
}

// statusOf returns a message's status, or store.ErrNotFound.
func statusOf(ctx context.Context, q queryer, id int64) (string, error) {
	var status string
	err := q.QueryRowContext(ctx, messageStatusSQL, id).Scan(&status)
	if errNoRows(err) {
		return "", fmt.Errorf("message %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return "", mapError(err, fmt.Sprintf("read message %d", id))
	}
	return status, nil
}

// changeOne runs a batch that changes at most one message and returns, as
// its one result, the number of rows changed (counted through OUTPUT ...
// INTO, which a user's trigger cannot disturb).
func changeOne(ctx context.Context, q queryer, query string, vals ...any) (bool, error) {
	var n int
	if err := q.QueryRowContext(ctx, query, vals...).Scan(&n); err != nil {
		return false, err
	}
	return n > 0, nil
}

const cancelSQL = batchPrefix + `DECLARE @done TABLE (ID BIGINT NOT NULL);
UPDATE hermod.Messages SET Status = N'CANCELLED', TriggerStatus = N'', StatusDetails = N'cancelled by the application',
	LeaseOwner = NULL, LeaseExpires = NULL, LastUpdate = @now,
	Trace = ` + "hermod.Messages.Trace + @stamp + N' CANCELLED cancelled by the application (was ' + hermod.Messages.Status + N')' + NCHAR(10)" + `
OUTPUT inserted.ID INTO @done (ID)
WHERE hermod.Messages.ID = @p1 AND hermod.Messages.Status IN (N'SCHEDULED', N'QUEUED');
SELECT COUNT(*) FROM @done;`

// MessageCancel makes a SCHEDULED or QUEUED message CANCELLED.
func (s *Store) MessageCancel(ctx context.Context, id int64) error {
	ok, err := changeOne(ctx, s.db, cancelSQL, id)
	if err != nil {
		return mapError(err, fmt.Sprintf("cancel message %d", id))
	}
	if ok {
		return nil
	}
	status, err := statusOf(ctx, s.db, id)
	if err != nil {
		return fmt.Errorf("cancel message %d: %w", id, err)
	}
	return fmt.Errorf("cancel message %d: it is %s: only SCHEDULED or QUEUED messages can be cancelled: %w", id, status, store.ErrConflict)
}

const (
	resendSQL = batchPrefix + `DECLARE @done TABLE (ID BIGINT NOT NULL);
UPDATE hermod.Messages SET Status = N'SCHEDULED', NextAttemptTime = NULL, LeaseOwner = NULL, LeaseExpires = NULL,
	StatusDetails = NULL, LastUpdate = @now,
	Trace = ` + "hermod.Messages.Trace + @stamp + N' SCHEDULED resend requested (was ' + hermod.Messages.Status + N')' + NCHAR(10)" + `
OUTPUT inserted.ID INTO @done (ID)
WHERE hermod.Messages.ID = @p1 AND hermod.Messages.Direction = N'OUT'
  AND hermod.Messages.Status IN (N'FAILED', N'NOCHANNEL', N'BLOCKED', N'DAILYLIMIT', N'EXPIRED', N'NOTDELIVERED', N'NOREPORT');
SELECT COUNT(*) FROM @done;`

	retriggerSQL = batchPrefix + `DECLARE @done TABLE (ID BIGINT NOT NULL);
UPDATE hermod.Messages SET TriggerStatus = N'', LastUpdate = @now,
	Trace = ` + "hermod.Messages.Trace + @stamp + N' ' + hermod.Messages.Status + N' triggers to run again' + NCHAR(10)" + `
OUTPUT inserted.ID INTO @done (ID)
WHERE hermod.Messages.ID = @p1;
SELECT COUNT(*) FROM @done;`
)

// MessageReprocess sends a final message again (resend) or lets the
// triggers run on it again.
func (s *Store) MessageReprocess(ctx context.Context, id int64, resend bool) error {
	if !resend {
		ok, err := changeOne(ctx, s.db, retriggerSQL, id)
		if err != nil {
			return mapError(err, fmt.Sprintf("reprocess message %d", id))
		}
		if !ok {
			return fmt.Errorf("reprocess message %d: %w", id, store.ErrNotFound)
		}
		return nil
	}
	ok, err := changeOne(ctx, s.db, resendSQL, id)
	if err != nil {
		return mapError(err, fmt.Sprintf("resend message %d", id))
	}
	if ok {
		return nil
	}
	status, err := statusOf(ctx, s.db, id)
	if err != nil {
		return fmt.Errorf("resend message %d: %w", id, err)
	}
	return fmt.Errorf("resend message %d: it is %s: only a FAILED, NOCHANNEL, BLOCKED, DAILYLIMIT, EXPIRED, NOTDELIVERED or NOREPORT outgoing message can be sent again: %w",
		id, status, store.ErrConflict)
}

// MessageCountByStatus counts messages per Status for one direction ("" both).
func (s *Store) MessageCountByStatus(ctx context.Context, direction string) (map[string]int, error) {
	q := countByStatusSQL
	var vals []any
	if direction != "" {
		q = countByStatusDirectionSQL
		vals = append(vals, direction)
	}
	rows, err := s.db.QueryContext(ctx, q, vals...)
	if err != nil {
		return nil, mapError(err, "count messages by status")
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var status string
		var n int64
		if err := rows.Scan(&status, &n); err != nil {
			return nil, mapError(err, "count messages by status")
		}
		out[status] = int(n)
	}
	if err := rows.Err(); err != nil {
		return nil, mapError(err, "count messages by status")
	}
	return out, nil
}

// buildReceive builds the batch that stores incoming messages: one INSERT
// ... SELECT ... ORDER BY over a VALUES list, whose IDs come back in
// ascending order, which is the order of the input.
func buildReceive(in []store.Incoming) (string, []any) {
	var a args
	var b strings.Builder
	b.WriteString(batchPrefix)
	b.WriteString(`DECLARE @ids TABLE (ID BIGINT NOT NULL);
INSERT INTO hermod.Messages (Direction, Status, ChannelID, FromAddress, FromTON, FromNPI, ToAddress, Body,
	DataCoding, Reference, TotalParts, RequestDeliveryReport, ReceivedTime, CreatedTime, LastUpdate, Trace)
OUTPUT inserted.ID INTO @ids (ID)
SELECT N'IN', N'RECEIVED', v.ChannelID, v.FromAddress, v.FromTON, v.FromNPI, v.ToAddress, v.Body,
	v.DataCoding, v.Reference, v.TotalParts, 0, COALESCE(v.ReceivedTime, @now), @now, @now,
	` + traceLine("N'RECEIVED'", "N'on channel ' + COALESCE(CONVERT(NVARCHAR(20), v.ChannelID), N'?')") + `
FROM (VALUES
`)
	for i := range bucket(len(in)) {
		if i > 0 {
			b.WriteString(",\n")
		}
		// Padding rows (see bucket) have a NULL ToAddress and are not
		// inserted.
		vals := []any{nullInt, nullString, nullBigInt, nullBigInt, nullString, nullString, nullBigInt, nullString, nullBigInt, nullDateTime}
		if i < len(in) {
			m := &in[i]
			vals = []any{chanArg(m.ChannelID), nstr(m.FromAddress), int64(m.FromTON), int64(m.FromNPI),
				m.ToAddress, m.Body, int64(m.DataCoding), nstr(m.Reference), int64(m.TotalParts), dt(m.ReceivedTime)}
		}
		ph := make([]any, len(vals))
		for j, v := range vals {
			ph[j] = a.add(v)
		}
		fmt.Fprintf(&b, "(%d, CAST(%s AS INT), CAST(%s AS NVARCHAR(64)), %s, %s, CAST(%s AS NVARCHAR(64)), CAST(%s AS NVARCHAR(MAX)), %s, CAST(%s AS NVARCHAR(100)), %s, CAST(%s AS DATETIME2(3)))",
			append([]any{i}, ph...)...)
	}
	b.WriteString(`) AS v (Ord, ChannelID, FromAddress, FromTON, FromNPI, ToAddress, Body, DataCoding, Reference, TotalParts, ReceivedTime)
WHERE v.ToAddress IS NOT NULL
ORDER BY v.Ord;
SELECT ID FROM @ids ORDER BY ID;
`)
	return b.String(), a.vals
}

// MessageReceive stores incoming messages as RECEIVED rows and returns their
// IDs in the order of in, after the commit.
func (s *Store) MessageReceive(ctx context.Context, in []store.Incoming) ([]int64, error) {
	for i, m := range in {
		if m.ToAddress == "" {
			return nil, fmt.Errorf("incoming message %d of the batch: ToAddress is required: the channel must give the number it was received on: %w", i, store.ErrInvalid)
		}
	}
	if len(in) == 0 {
		return nil, nil
	}
	var ids []int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		ids = ids[:0]
		for _, c := range chunks(len(in), 11, 100) {
			q, vals := buildReceive(in[c[0]:c[1]])
			rows, err := tx.QueryContext(ctx, q, vals...)
			if err != nil {
				return err
			}
			n := len(ids)
			for rows.Next() {
				var id int64
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return err
				}
				ids = append(ids, id)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			if got, want := len(ids)-n, c[1]-c[0]; got != want {
				return fmt.Errorf("the insert returned %d IDs for %d messages: a trigger on hermod.Messages may have changed the rows", got, want)
			}
		}
		return nil
	})
	if err != nil {
		return nil, mapError(err, "store received messages")
	}
	return ids, nil
}

// Single-statement queries.
const (
	messageGetSQL    = `SELECT ` + messageColumns + ` FROM hermod.Messages AS m WHERE m.ID = @p1;`
	messageStatusSQL = `SELECT m.Status FROM hermod.Messages AS m WHERE m.ID = @p1;`
	messagePartsSQL  = `SELECT p.MessageID, p.PartNumber, p.ChannelID, p.Reference, p.Status,
	p.ErrorCode, p.SentTime, p.DeliveredTime
FROM hermod.MessageParts AS p WHERE p.MessageID = @p1 ORDER BY p.PartNumber;`
	countByStatusSQL          = `SELECT m.Status, COUNT_BIG(*) FROM hermod.Messages AS m GROUP BY m.Status;`
	countByStatusDirectionSQL = `SELECT m.Status, COUNT_BIG(*) FROM hermod.Messages AS m WHERE m.Direction = @p1 GROUP BY m.Status;`
)
