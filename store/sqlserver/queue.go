package sqlserver

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/hermod-sms/hermod/store"
)

// pickHints are the table hints of every "pick the next rows" subquery: take
// update locks row by row, skip rows another session holds (Babelfish waits
// instead: correctness never depends on skipping), and read with locks even
// when the database runs read-committed snapshot (the Azure SQL default).
const pickHints = "WITH (UPDLOCK, READPAST, ROWLOCK, READCOMMITTEDLOCK)"

// staged is T-SQL for column col of the row of the staging table variable
// table (keyed by ID) that belongs to the updated message: the UPDATEs
// that take their values from a staging table read them through such
// correlated subqueries rather than a join, because Babelfish cannot
// combine OUTPUT with a SET that reads a joined table. On SQL Server each
// is a seek on the table variable's primary key.
func staged(table, col string) string {
	return "(SELECT s." + col + " FROM " + table + " AS s WHERE s.ID = hermod.Messages.ID)"
}

// batchLimit clamps a row limit to (0, maxBatch]; 0 or less takes def.
func batchLimit(n, def int) int64 {
	if n <= 0 {
		n = def
	}
	return int64(min(n, maxBatch))
}

// buildRoute builds MessageRoute's batch. The due rows are picked in
// ScheduledTime order and changed in one UPDATE: EXPIRED when ValidUntil
// passed, else QUEUED on their own channel if it exists, else QUEUED on
// channels[ID % len(channels)] if unassigned, else NOCHANNEL. The result is
// one row per changed message: ID, new Status, ChannelID. The channel's
// existence is an EXISTS in the SET expressions, not a join: Babelfish
// cannot combine OUTPUT with a SET that reads a joined table.
func buildRoute(channels []int64, limit int64) (string, []any) {
	var a args
	roundRobin := "CAST(NULL AS INT)"
	if len(channels) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "CASE hermod.Messages.ID %% %d", len(channels))
		for i, id := range channels {
			fmt.Fprintf(&b, " WHEN %d THEN %s", i, a.add(chanArg(id)))
		}
		b.WriteString(" END")
		roundRobin = b.String()
	}
	const expired = "(hermod.Messages.ValidUntil IS NOT NULL AND hermod.Messages.ValidUntil <= @now)"
	const channelExists = "EXISTS (SELECT 1 FROM hermod.Channels AS c WHERE c.ID = hermod.Messages.ChannelID)"
	queued := "((hermod.Messages.ChannelID IS NULL AND " + roundRobin + " IS NOT NULL) OR (hermod.Messages.ChannelID IS NOT NULL AND " + channelExists + "))"
	newChannel := "CASE WHEN hermod.Messages.ChannelID IS NULL AND NOT " + expired + " THEN " + roundRobin + " ELSE hermod.Messages.ChannelID END"
	newStatus := "CASE WHEN " + expired + " THEN N'EXPIRED' WHEN " + queued + " THEN N'QUEUED' ELSE N'NOCHANNEL' END"
	noChannelWhy := "CASE WHEN hermod.Messages.ChannelID IS NULL THEN N'no enabled channel can send it'" +
		" ELSE N'channel ' + CONVERT(NVARCHAR(20), hermod.Messages.ChannelID) + N' does not exist' END"
	validUntil := stamp("hermod.Messages.ValidUntil")
	details := "CASE WHEN " + expired + " THEN N'ValidUntil ' + " + validUntil + " + N' passed before the message was routed'" +
		" WHEN " + queued + " THEN NULL ELSE " + noChannelWhy + " END"
	traceText := "CASE WHEN " + expired + " THEN N'ValidUntil ' + " + validUntil + " + N' passed before routing'" +
		" WHEN " + queued + " THEN N'routed to channel ' + CONVERT(NVARCHAR(20), " + newChannel + ")" +
		" ELSE " + noChannelWhy + " END"

	q := batchPrefix + `DECLARE @routed TABLE (ID BIGINT NOT NULL, Status NVARCHAR(16) NOT NULL, ChannelID INT NULL);
UPDATE hermod.Messages SET
	ChannelID = ` + newChannel + `,
	Status = ` + newStatus + `,
	TriggerStatus = CASE WHEN ` + queued + ` AND NOT ` + expired + ` THEN hermod.Messages.TriggerStatus ELSE N'' END,
	StatusDetails = ` + details + `,
	LastUpdate = @now,
	Trace = ` + appendTrace("hermod.Messages", newStatus, traceText) + `
OUTPUT inserted.ID, inserted.Status, inserted.ChannelID INTO @routed (ID, Status, ChannelID)
WHERE hermod.Messages.ID IN (SELECT TOP (` + a.add(limit) + `) q.ID FROM hermod.Messages AS q ` + pickHints + `
		WHERE q.Status = N'SCHEDULED' AND q.Direction = N'OUT'
		  AND (q.ScheduledTime IS NULL OR q.ScheduledTime <= @now)
		ORDER BY q.ScheduledTime, q.ID)
  AND hermod.Messages.Status = N'SCHEDULED';
SELECT r.ID, r.Status, r.ChannelID FROM @routed AS r;
`
	return q, a.vals
}

// MessageRoute moves due SCHEDULED outgoing messages to QUEUED on a channel,
// or to NOCHANNEL or EXPIRED, in one statement.
func (s *Store) MessageRoute(ctx context.Context, p store.RouteParams) (store.RouteResult, error) {
	if len(p.Channels) > maxParams-10 {
		return store.RouteResult{}, fmt.Errorf("route messages: %d channels: give at most %d: %w", len(p.Channels), maxParams-10, store.ErrInvalid)
	}
	q, vals := buildRoute(p.Channels, batchLimit(p.Limit, defaultBatch))
	var res store.RouteResult
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res = store.RouteResult{}
		rows, err := tx.QueryContext(ctx, q, vals...)
		if err != nil {
			return err
		}
		defer rows.Close()
		if res.Changes, err = scanChanges(rows, nil); err != nil {
			return err
		}
		for _, c := range res.Changes {
			switch c.Status {
			case store.StatusQueued:
				res.Queued++
			case store.StatusExpired:
				res.Expired++
			default:
				res.NoChannel++
			}
		}
		return nil
	})
	if err != nil {
		return store.RouteResult{}, mapError(err, "route messages")
	}
	return res, nil
}

// scanChanges appends to list a store.Change for each row of the current
// result set of rows, (ID, Status, ChannelID), without closing rows. The
// status is one of the store's constants (whatever case the server
// returns it in); an unknown one is an error.
func scanChanges(rows *sql.Rows, list []store.Change) ([]store.Change, error) {
	for rows.Next() {
		var c store.Change
		var status string
		var ch sql.NullInt64
		if err := rows.Scan(&c.ID, &status, &ch); err != nil {
			return list, err
		}
		switch strings.ToUpper(status) {
		case store.StatusQueued:
			c.Status = store.StatusQueued
		case store.StatusNoChannel:
			c.Status = store.StatusNoChannel
		case store.StatusExpired:
			c.Status = store.StatusExpired
		case store.StatusDelivered:
			c.Status = store.StatusDelivered
		case store.StatusNotDelivered:
			c.Status = store.StatusNotDelivered
		case store.StatusNoReport:
			c.Status = store.StatusNoReport
		default:
			return list, fmt.Errorf("message %d changed to unexpected status %q", c.ID, status)
		}
		c.ChannelID = ch.Int64
		list = append(list, c)
	}
	return list, rows.Err()
}

// nextChanges moves rows to its next result set, if there is one, and
// appends its changes to list (scanChanges). The rest of the current
// result set is read first: on Babelfish, NextResultSet called before
// Next has returned false loses the next result set.
func nextChanges(rows *sql.Rows, list []store.Change) ([]store.Change, error) {
	for rows.Next() {
	}
	if !rows.NextResultSet() {
		return list, rows.Err()
	}
	return scanChanges(rows, list)
}

// claimSQL is the claim: BRIEF's portable form. The picked IDs go through
// OUTPUT ... INTO a table variable and are read back in the same
// transaction, because a bare OUTPUT clause fails on a table with triggers.
var claimSQL = batchPrefix + `DECLARE @claimed TABLE (ID BIGINT NOT NULL PRIMARY KEY);
UPDATE hermod.Messages SET
	Status = N'SENDING',
	Attempts = hermod.Messages.Attempts + 1,
	LeaseOwner = @p1,
	LeaseExpires = ` + addDuration("@now", "@p2", "@p3") + `,
	LastUpdate = @now,
	Trace = ` + appendTrace("hermod.Messages", "N'SENDING'", "N'claimed by ' + @p1 + N', attempt ' + CONVERT(NVARCHAR(20), hermod.Messages.Attempts + 1)") + `
OUTPUT inserted.ID INTO @claimed (ID)
WHERE hermod.Messages.ID IN (SELECT TOP (@p5) q.ID FROM hermod.Messages AS q ` + pickHints + `
		WHERE q.Status = N'QUEUED' AND q.ChannelID = @p4
		  AND (q.NextAttemptTime IS NULL OR q.NextAttemptTime <= @now)
		  AND (q.ValidUntil IS NULL OR q.ValidUntil > @now)
		ORDER BY q.Priority DESC, q.ID)
  AND hermod.Messages.Status = N'QUEUED';
SELECT ` + messageColumns + `
FROM hermod.Messages AS m JOIN @claimed AS c ON c.ID = m.ID
ORDER BY m.Priority DESC, m.ID;
`

// MessageClaim makes up to p.Limit (at most 1,000) due QUEUED messages of
// one channel SENDING under a lease, highest Priority first, in one
// statement, and returns them in that order.
func (s *Store) MessageClaim(ctx context.Context, p store.ClaimParams) ([]*store.Message, error) {
	if p.Owner == "" {
		return nil, fmt.Errorf("claim messages: Owner is required: give the node's name: %w", store.ErrInvalid)
	}
	if p.Limit <= 0 {
		return nil, nil
	}
	secs, millis := durationArgs(p.Lease)
	var out []*store.Message
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, claimSQL, p.Owner, secs, millis, chanArg(p.ChannelID), batchLimit(p.Limit, 0))
		if err != nil {
			return err
		}
		out, err = scanMessages(rows)
		return err
	})
	if err != nil {
		return nil, mapError(err, fmt.Sprintf("claim messages of channel %d", p.ChannelID))
	}
	// ORDER BY already sorts them; keep the contract even if a server
	// returns them otherwise.
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Priority != out[j].Priority {
			return out[i].Priority > out[j].Priority
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// lastByID keeps the last entry for each ID, in first-seen order: a batch
// that names a message twice applies its last word.
func lastByID[T any](ps []T, id func(T) int64) []T {
	index := map[int64]int{}
	var out []T
	for _, p := range ps {
		if i, ok := index[id(p)]; ok {
			out[i] = p
			continue
		}
		index[id(p)] = len(out)
		out = append(out, p)
	}
	return out
}

// reportTableSQL declares @r, the delivery reports applyReportsSQL applies,
// and @settled, the messages it settles.
const reportTableSQL = `DECLARE @r TABLE (Ord BIGINT NOT NULL PRIMARY KEY, ChannelID INT NOT NULL,
	Reference NVARCHAR(100) NOT NULL, Status NVARCHAR(16) NOT NULL, ErrorCode NVARCHAR(64) NULL,
	DoneTime DATETIME2(3) NULL, MessageID BIGINT NULL, PartNumber INT NULL);
DECLARE @settled TABLE (ID BIGINT NOT NULL, Status NVARCHAR(16) NOT NULL, ChannelID INT NULL);
DECLARE @t TABLE (ID BIGINT NOT NULL PRIMARY KEY, Delivered INT NOT NULL, NotDelivered INT NOT NULL,
	LastDone DATETIME2(3) NULL, BadPart INT NOT NULL, BadError NVARCHAR(64) NOT NULL);
`

// settledSQL returns the messages applyReportsSQL settled, as the batch's
// last result set.
const settledSQL = "SELECT s.ID, s.Status, s.ChannelID FROM @settled AS s;\n"

// applyReportsSQL applies the reports in @r: each finds the part with its
// (ChannelID, Reference), the newest message's if a provider reused a
// reference; the last report for a part wins. Then every message whose parts
// changed becomes NOTDELIVERED if a part is not delivered, or DELIVERED
// (DeliveredTime the last part's) once every part is; those messages go to
// @settled. Reports that found no part keep MessageID NULL.
var applyReportsSQL = `UPDATE r SET MessageID = (SELECT MAX(p.MessageID) FROM hermod.MessageParts AS p
		WHERE p.ChannelID = r.ChannelID AND p.Reference = r.Reference)
FROM @r AS r;
UPDATE r SET PartNumber = (SELECT MIN(p.PartNumber) FROM hermod.MessageParts AS p
		WHERE p.MessageID = r.MessageID AND p.ChannelID = r.ChannelID AND p.Reference = r.Reference)
FROM @r AS r
WHERE r.MessageID IS NOT NULL;
UPDATE p SET Status = r.Status, ErrorCode = r.ErrorCode, DeliveredTime = COALESCE(r.DoneTime, @now)
FROM hermod.MessageParts AS p
JOIN @r AS r ON r.MessageID = p.MessageID AND r.PartNumber = p.PartNumber
WHERE r.Ord = (SELECT MAX(r2.Ord) FROM @r AS r2 WHERE r2.MessageID = r.MessageID AND r2.PartNumber = r.PartNumber);
INSERT INTO @t (ID, Delivered, NotDelivered, LastDone, BadPart, BadError)
SELECT p.MessageID,
	SUM(CASE WHEN p.Status = N'DELIVERED' THEN 1 ELSE 0 END),
	SUM(CASE WHEN p.Status = N'NOTDELIVERED' THEN 1 ELSE 0 END),
	MAX(p.DeliveredTime),
	MIN(CASE WHEN p.Status = N'NOTDELIVERED' THEN p.PartNumber ELSE 2147483647 END),
	MAX(CASE WHEN p.Status = N'NOTDELIVERED' THEN COALESCE(p.ErrorCode, N'') ELSE N'' END)
FROM hermod.MessageParts AS p
WHERE p.MessageID IN (SELECT r.MessageID FROM @r AS r WHERE r.MessageID IS NOT NULL)
GROUP BY p.MessageID;
UPDATE hermod.Messages SET
	Status = ` + reportStatus + `,
	TriggerStatus = N'',
	DeliveredTime = CASE WHEN ` + notDelivered + ` THEN hermod.Messages.DeliveredTime ELSE ` + staged("@t", "LastDone") + ` END,
	ErrorCode = CASE WHEN ` + notDelivered + ` THEN NULLIF(` + staged("@t", "BadError") + `, N'') ELSE NULL END,
	StatusDetails = CASE WHEN ` + notDelivered + ` THEN ` + notDeliveredWhy + ` ELSE NULL END,
	LastUpdate = @now,
	Trace = ` + appendTrace("hermod.Messages", reportStatus, "CASE WHEN "+notDelivered+" THEN "+notDeliveredWhy+
	" WHEN hermod.Messages.TotalParts > 1 THEN N'all ' + CONVERT(NVARCHAR(20), hermod.Messages.TotalParts) + N' parts delivered' ELSE N'delivered' END") + `
OUTPUT inserted.ID, inserted.Status, inserted.ChannelID INTO @settled (ID, Status, ChannelID)
WHERE hermod.Messages.Status IN (N'SENT', N'NOREPORT')
  AND EXISTS (SELECT 1 FROM @t AS t WHERE t.ID = hermod.Messages.ID
	AND (t.NotDelivered > 0 OR (hermod.Messages.TotalParts > 0 AND t.Delivered >= hermod.Messages.TotalParts)));
`

// The settling UPDATE reads the per-message part counts of @t through
// correlated subqueries (staged), not a join: see staged.
var (
	notDelivered    = staged("@t", "NotDelivered") + " > 0"
	reportStatus    = "CASE WHEN " + notDelivered + " THEN N'NOTDELIVERED' ELSE N'DELIVERED' END"
	notDeliveredWhy = "N'part ' + CONVERT(NVARCHAR(20), " + staged("@t", "BadPart") + ") + N' not delivered'" +
		" + CASE WHEN " + staged("@t", "BadError") + " = N'' THEN N'' ELSE N' (error ' + " + staged("@t", "BadError") + " + N')' END"
)

// buildMarkSent builds the batch for one chunk of MessageMarkSent: the
// messages, then their parts, then the pending reports of those parts. It
// returns two result sets: the count of messages made SENT, then the
// messages the pending reports settled.
func buildMarkSent(ps []store.SentParams) (string, []any) {
	var a args
	var b strings.Builder
	b.WriteString(batchPrefix)
	b.WriteString(`DECLARE @v TABLE (ID BIGINT NOT NULL PRIMARY KEY, Owner NVARCHAR(128) NOT NULL,
	Reference NVARCHAR(100) NULL, TotalParts INT NOT NULL, Note NVARCHAR(MAX) NOT NULL);
DECLARE @parts TABLE (MessageID BIGINT NOT NULL, PartNumber INT NOT NULL, Reference NVARCHAR(100) NULL,
	SentTime DATETIME2(3) NULL, PRIMARY KEY (MessageID, PartNumber));
DECLARE @done TABLE (ID BIGINT NOT NULL PRIMARY KEY, ChannelID INT NULL);
`)
	b.WriteString(reportTableSQL)
	b.WriteString("INSERT INTO @v (ID, Owner, Reference, TotalParts, Note) VALUES\n")
	type part struct {
		msg  int64
		n    int
		ref  string
		sent any
	}
	var parts []part
	for i, p := range ps {
		list := p.Parts
		if len(list) == 0 {
			list = []store.Part{{PartNumber: 1, Reference: p.Reference}}
		}
		ref := p.Reference
		if ref == "" {
			ref = list[0].Reference
		}
		note := store.OneLine(p.Note)
		if note == "" {
			note = "accepted by the provider"
		}
		if ref != "" {
			note += ", reference " + ref
		}
		if len(list) > 1 {
			note += ", " + strconv.Itoa(len(list)) + " parts"
		}
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, "(%s, %s, %s, %s, %s)", a.add(p.ID), a.add(p.Owner), a.add(nstr(ref)), a.add(int64(len(list))), a.add(note))
		seen := map[int]int{}
		for j, pt := range list {
			n := pt.PartNumber
			if n <= 0 {
				n = j + 1
			}
			if k, ok := seen[n]; ok {
				parts[k] = part{p.ID, n, pt.Reference, dt(pt.SentTime)}
				continue
			}
			seen[n] = len(parts)
			parts = append(parts, part{p.ID, n, pt.Reference, dt(pt.SentTime)})
		}
	}
	// Padding rows (see bucket) have negative IDs: they match no message.
	for i := len(ps); i < bucket(len(ps)); i++ {
		fmt.Fprintf(&b, ",\n(%s, %s, %s, %s, %s)", a.add(int64(-i)), a.add(""), a.add(nullString), a.add(int64(0)), a.add(""))
	}
	for i := len(parts); i < bucket(len(parts)); i++ {
		parts = append(parts, part{int64(-i), 1, "", nullDateTime})
	}
	b.WriteString(";\nINSERT INTO @parts (MessageID, PartNumber, Reference, SentTime) VALUES\n")
	for i, pt := range parts {
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, "(%s, %s, %s, %s)", a.add(pt.msg), a.add(int64(pt.n)), a.add(nstr(pt.ref)), a.add(pt.sent))
	}
	b.WriteString(`;
UPDATE hermod.Messages SET
	Status = N'SENT',
	TriggerStatus = N'',
	SentTime = @now,
	Reference = ` + staged("@v", "Reference") + `,
	TotalParts = ` + staged("@v", "TotalParts") + `,
	LeaseOwner = NULL,
	LeaseExpires = NULL,
	NextAttemptTime = NULL,
	ErrorCode = NULL,
	StatusDetails = NULL,
	LastUpdate = @now,
	Trace = ` + appendTrace("hermod.Messages", "N'SENT'", staged("@v", "Note")) + `
OUTPUT inserted.ID, inserted.ChannelID INTO @done (ID, ChannelID)
WHERE hermod.Messages.Status = N'SENDING'
  AND EXISTS (SELECT 1 FROM @v AS v WHERE v.ID = hermod.Messages.ID AND v.Owner = hermod.Messages.LeaseOwner);
DELETE p FROM hermod.MessageParts AS p JOIN @done AS d ON d.ID = p.MessageID;
INSERT INTO hermod.MessageParts (MessageID, PartNumber, ChannelID, Reference, Status, SentTime)
SELECT x.MessageID, x.PartNumber, d.ChannelID, x.Reference, N'SENT', COALESCE(x.SentTime, @now)
FROM @parts AS x JOIN @done AS d ON d.ID = x.MessageID;
IF EXISTS (SELECT 1 FROM hermod.PendingReports)
BEGIN
	INSERT INTO @r (Ord, ChannelID, Reference, Status, ErrorCode, DoneTime)
	SELECT pr.ID, pr.ChannelID, pr.Reference, pr.Status, pr.ErrorCode, pr.DoneTime
	FROM hermod.PendingReports AS pr
	WHERE EXISTS (SELECT 1 FROM hermod.MessageParts AS p JOIN @done AS d ON d.ID = p.MessageID
		WHERE p.ChannelID = pr.ChannelID AND p.Reference = pr.Reference);
	DELETE pr FROM hermod.PendingReports AS pr JOIN @r AS r ON r.Ord = pr.ID;
` + applyReportsSQL + `END;
SELECT COUNT(*) FROM @done;
` + settledSQL)
	return b.String(), a.vals
}

// maxSentParts is the most parts one message of MessageMarkSent may have:
// its parts, padded to their bucket, must fit the parameter limit.
const maxSentParts = 256

// MessageMarkSent makes claimed messages SENT, writes their parts and
// applies the delivery reports that arrived before them, one batch per
// chunk, in one transaction.
func (s *Store) MessageMarkSent(ctx context.Context, ps []store.SentParams) (int, error) {
	res, err := s.MessageMarkSentSettled(ctx, ps)
	return res.Changed, err
}

var _ store.SentSettler = (*Store)(nil)

// MessageMarkSentSettled is MessageMarkSent that also names the messages
// the pending reports settled (store.SentSettler).
func (s *Store) MessageMarkSentSettled(ctx context.Context, ps []store.SentParams) (store.SentResult, error) {
	ps = lastByID(ps, func(p store.SentParams) int64 { return p.ID })
	if len(ps) == 0 {
		return store.SentResult{}, nil
	}
	for _, p := range ps {
		if n := 5 + 4*bucket(len(p.Parts)); n > maxParams {
			return store.SentResult{}, fmt.Errorf("mark message %d sent: %d parts: give at most %d: %w", p.ID, len(p.Parts), maxSentParts, store.ErrInvalid)
		}
	}
	// Chunk so that messages and their parts stay under the parameter limit.
	var groups [][]store.SentParams
	var cur []store.SentParams
	// Chunk so that messages and their parts, each padded to its bucket,
	// stay under the parameter limit.
	nparts := 0
	for _, p := range ps {
		need := max(1, len(p.Parts))
		if len(cur) > 0 && (5*bucket(len(cur)+1)+4*bucket(nparts+need) > maxParams || len(cur) >= 128) {
			groups = append(groups, cur)
			cur, nparts = nil, 0
		}
		cur = append(cur, p)
		nparts += need
	}
	groups = append(groups, cur)

	var res store.SentResult
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res = store.SentResult{}
		for _, g := range groups {
			q, vals := buildMarkSent(g)
			if err := queryCountAndChanges(ctx, tx, q, vals, &res.Settled, &res.Changed); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return store.SentResult{}, mapError(err, "mark messages sent")
	}
	return res, nil
}

// queryCountAndChanges runs a batch whose first result set is one row of
// counts, scanned into counts (nullable: NULL is 0) and added to them,
// and whose next result set, if any, lists changes (scanChanges), which
// are appended to changes.
func queryCountAndChanges(ctx context.Context, tx *sql.Tx, q string, vals []any, changes *[]store.Change, counts ...*int) error {
	rows, err := tx.QueryContext(ctx, q, vals...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	got := make([]sql.NullInt64, len(counts))
	dest := make([]any, len(counts))
	for i := range got {
		dest[i] = &got[i]
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	for i, c := range counts {
		*c += int(got[i].Int64)
	}
	if *changes, err = nextChanges(rows, *changes); err != nil {
		return err
	}
	return rows.Close()
}

// buildMarkRetry builds the batch that returns claimed messages to QUEUED.
func buildMarkRetry(ps []store.RetryParams) (string, []any) {
	var a args
	var b strings.Builder
	b.WriteString(batchPrefix)
	b.WriteString(`DECLARE @done TABLE (ID BIGINT NOT NULL);
DECLARE @v TABLE (ID BIGINT NOT NULL PRIMARY KEY, Owner NVARCHAR(128) NOT NULL, DelaySeconds INT NOT NULL,
	DelayMillis INT NOT NULL, Delay NVARCHAR(64) NOT NULL, ErrorCode NVARCHAR(MAX) NULL, Error NVARCHAR(MAX) NULL);
INSERT INTO @v (ID, Owner, DelaySeconds, DelayMillis, Delay, ErrorCode, Error) VALUES
`)
	for i, p := range ps {
		if i > 0 {
			b.WriteString(",\n")
		}
		secs, millis := durationArgs(p.Delay)
		fmt.Fprintf(&b, "\t(%s, %s, %s, %s, %s, %s, %s)",
			a.add(p.ID), a.add(p.Owner), a.add(secs), a.add(millis), a.add(p.Delay.String()), a.add(nstr(p.ErrorCode)), a.add(nstr(store.OneLine(p.Error))))
	}
	// Padding rows (see bucket) have negative IDs: they match no message.
	for i := len(ps); i < bucket(len(ps)); i++ {
		fmt.Fprintf(&b, ",\n\t(%s, %s, %s, %s, %s, %s, %s)",
			a.add(int64(-i)), a.add(""), a.add(int32(0)), a.add(int32(0)), a.add(""), a.add(nullString), a.add(nullString))
	}
	b.WriteString(`;
UPDATE hermod.Messages SET
	Status = N'QUEUED',
	NextAttemptTime = ` + addDuration("@now", staged("@v", "DelaySeconds"), staged("@v", "DelayMillis")) + `,
	LeaseOwner = NULL,
	LeaseExpires = NULL,
	ErrorCode = LEFT(` + staged("@v", "ErrorCode") + `, 64),
	StatusDetails = LEFT(` + staged("@v", "Error") + `, 1000),
	LastUpdate = @now,
	Trace = ` + appendTrace("hermod.Messages", "N'QUEUED'", "N'retry after ' + "+staged("@v", "Delay")+" + N': ' + COALESCE("+staged("@v", "Error")+", N'temporary error')") + `
OUTPUT inserted.ID INTO @done (ID)
WHERE hermod.Messages.Status = N'SENDING'
  AND EXISTS (SELECT 1 FROM @v AS v WHERE v.ID = hermod.Messages.ID AND v.Owner = hermod.Messages.LeaseOwner);
SELECT COUNT(*) FROM @done;
`)
	return b.String(), a.vals
}

// MessageMarkRetry returns claimed messages to QUEUED with NextAttemptTime
// = now + Delay, clearing the lease.
func (s *Store) MessageMarkRetry(ctx context.Context, ps []store.RetryParams) (int, error) {
	ps = lastByID(ps, func(p store.RetryParams) int64 { return p.ID })
	return s.markMany(ctx, "mark messages for retry", len(ps), 7, func(i, j int) (string, []any) {
		return buildMarkRetry(ps[i:j])
	})
}

// buildMarkFailed builds the batch that makes claimed messages FAILED.
func buildMarkFailed(ps []store.FailParams) (string, []any) {
	var a args
	var b strings.Builder
	b.WriteString(batchPrefix)
	b.WriteString(`DECLARE @done TABLE (ID BIGINT NOT NULL);
DECLARE @v TABLE (ID BIGINT NOT NULL PRIMARY KEY, Owner NVARCHAR(128) NOT NULL,
	ErrorCode NVARCHAR(MAX) NULL, Error NVARCHAR(MAX) NULL);
INSERT INTO @v (ID, Owner, ErrorCode, Error) VALUES
`)
	for i, p := range ps {
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, "\t(%s, %s, %s, %s)", a.add(p.ID), a.add(p.Owner), a.add(nstr(p.ErrorCode)), a.add(nstr(store.OneLine(p.Error))))
	}
	// Padding rows (see bucket) have negative IDs: they match no message.
	for i := len(ps); i < bucket(len(ps)); i++ {
		fmt.Fprintf(&b, ",\n\t(%s, %s, %s, %s)", a.add(int64(-i)), a.add(""), a.add(nullString), a.add(nullString))
	}
	b.WriteString(`;
UPDATE hermod.Messages SET
	Status = N'FAILED',
	TriggerStatus = N'',
	LeaseOwner = NULL,
	LeaseExpires = NULL,
	NextAttemptTime = NULL,
	ErrorCode = LEFT(` + staged("@v", "ErrorCode") + `, 64),
	StatusDetails = LEFT(` + staged("@v", "Error") + `, 1000),
	LastUpdate = @now,
	Trace = ` + appendTrace("hermod.Messages", "N'FAILED'", "COALESCE("+staged("@v", "Error")+", N'failed')") + `
OUTPUT inserted.ID INTO @done (ID)
WHERE hermod.Messages.Status = N'SENDING'
  AND EXISTS (SELECT 1 FROM @v AS v WHERE v.ID = hermod.Messages.ID AND v.Owner = hermod.Messages.LeaseOwner);
SELECT COUNT(*) FROM @done;
`)
	return b.String(), a.vals
}

// MessageMarkFailed makes claimed messages FAILED.
func (s *Store) MessageMarkFailed(ctx context.Context, ps []store.FailParams) (int, error) {
	ps = lastByID(ps, func(p store.FailParams) int64 { return p.ID })
	return s.markMany(ctx, "mark messages failed", len(ps), 4, func(i, j int) (string, []any) {
		return buildMarkFailed(ps[i:j])
	})
}

// markMany runs build over chunks of n items in one transaction and sums the
// counts the batches return.
func (s *Store) markMany(ctx context.Context, doing string, n, perItem int, build func(i, j int) (string, []any)) (int, error) {
	if n == 0 {
		return 0, nil
	}
	changed := 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		changed = 0
		for _, c := range chunks(n, perItem, maxBatch) {
			q, vals := build(c[0], c[1])
			var k int
			if err := tx.QueryRowContext(ctx, q, vals...).Scan(&k); err != nil {
				return err
			}
			changed += k
		}
		return nil
	})
	if err != nil {
		return 0, mapError(err, doing)
	}
	return changed, nil
}

// buildReportApply builds the batch for one chunk of delivery reports.
func buildReportApply(ps []store.ReportParams) (string, []any) {
	var a args
	var b strings.Builder
	b.WriteString(batchPrefix)
	b.WriteString(reportTableSQL)
	b.WriteString("INSERT INTO @r (Ord, ChannelID, Reference, Status, ErrorCode, DoneTime) VALUES\n")
	for i, p := range ps {
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, "(%d, %s, %s, %s, LEFT(CAST(%s AS NVARCHAR(MAX)), 64), %s)",
			i, a.add(chanArg(p.ChannelID)), a.add(p.Reference), a.add(p.Status), a.add(nstr(p.ErrorCode)), a.add(dt(p.DoneTime)))
	}
	// Padding rows (see bucket) have ChannelID 0 and are deleted at once.
	for i := len(ps); i < bucket(len(ps)); i++ {
		fmt.Fprintf(&b, ",\n(%d, %s, %s, %s, LEFT(CAST(%s AS NVARCHAR(MAX)), 64), %s)",
			i, a.add(int32(0)), a.add(""), a.add(""), a.add(nullString), a.add(nullDateTime))
	}
	b.WriteString(";\nDELETE FROM @r WHERE ChannelID = 0;\n")
	b.WriteString(applyReportsSQL)
	b.WriteString(`INSERT INTO hermod.PendingReports (ChannelID, Reference, Status, ErrorCode, DoneTime, ReceivedTime)
SELECT r.ChannelID, r.Reference, r.Status, r.ErrorCode, COALESCE(r.DoneTime, @now), @now
FROM @r AS r
WHERE r.MessageID IS NULL
ORDER BY r.Ord;
SELECT SUM(CASE WHEN r.MessageID IS NOT NULL THEN 1 ELSE 0 END), SUM(CASE WHEN r.MessageID IS NULL THEN 1 ELSE 0 END)
FROM @r AS r;
` + settledSQL)
	return b.String(), a.vals
}

// MessageReportApply applies delivery reports to parts; reports whose part
// is not known yet are kept in PendingReports.
func (s *Store) MessageReportApply(ctx context.Context, ps []store.ReportParams) (store.ReportResult, error) {
	for i, p := range ps {
		if p.Reference == "" {
			return store.ReportResult{}, fmt.Errorf("delivery report %d of the batch: Reference is required: %w", i, store.ErrInvalid)
		}
		if p.Status != store.PartDelivered && p.Status != store.PartNotDelivered {
			return store.ReportResult{}, fmt.Errorf("delivery report %d of the batch: Status %q must be %s or %s: %w",
				i, p.Status, store.PartDelivered, store.PartNotDelivered, store.ErrInvalid)
		}
		if p.ChannelID <= 0 {
			return store.ReportResult{}, fmt.Errorf("delivery report %d of the batch: ChannelID is required: give the channel the report came in on: %w", i, store.ErrInvalid)
		}
	}
	var res store.ReportResult
	if len(ps) == 0 {
		return res, nil
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res = store.ReportResult{}
		for _, c := range chunks(len(ps), 5, maxBatch) {
			q, vals := buildReportApply(ps[c[0]:c[1]])
			if err := queryCountAndChanges(ctx, tx, q, vals, &res.Settled, &res.Matched, &res.Pending); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return store.ReportResult{}, mapError(err, "apply delivery reports")
	}
	return res, nil
}

var rescueSQL = batchPrefix + `DECLARE @done TABLE (ID BIGINT NOT NULL, ChannelID INT NULL);
UPDATE hermod.Messages SET
	Status = N'QUEUED',
	LeaseOwner = NULL,
	LeaseExpires = NULL,
	StatusDetails = N'lease of ' + COALESCE(hermod.Messages.LeaseOwner, N'?') + N' expired; the message may have been sent',
	LastUpdate = @now,
	Trace = ` + appendTrace("hermod.Messages", "N'QUEUED'", "N'lease of ' + COALESCE(hermod.Messages.LeaseOwner, N'?') + N' expired at ' + "+
	"COALESCE("+stamp("hermod.Messages.LeaseExpires")+", N'?') + N'; the message may have been sent already (at-least-once)'") + `
OUTPUT inserted.ID, inserted.ChannelID INTO @done (ID, ChannelID)
WHERE hermod.Messages.ID IN (SELECT TOP (@p1) q.ID FROM hermod.Messages AS q ` + pickHints + `
		WHERE q.Status = N'SENDING' AND q.LeaseExpires <= @now
		ORDER BY q.LeaseExpires)
  AND hermod.Messages.Status = N'SENDING';
SELECT d.ID, N'QUEUED', d.ChannelID FROM @done AS d;
`

// MessageRescue returns SENDING messages whose lease expired to QUEUED.
func (s *Store) MessageRescue(ctx context.Context, limit int) ([]store.Change, error) {
	var rescued []store.Change
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, rescueSQL, batchLimit(limit, defaultBatch))
		if err != nil {
			return err
		}
		defer rows.Close()
		rescued, err = scanChanges(rows, nil)
		return err
	})
	if err != nil {
		return nil, mapError(err, "rescue messages with expired leases")
	}
	if len(rescued) > 0 {
		s.logger.Warn("returned messages whose lease expired to the queue; they may be sent twice", "count", len(rescued))
	}
	return rescued, nil
}

// sweepSQL also applies the pending reports whose part exists by now: a
// report and its send result written at the same moment can each miss the
// other's uncommitted rows where reads see the last committed version
// (read-committed snapshot, the Azure SQL default, and Babelfish), leaving
// the report pending beside its part.
var sweepSQL = batchPrefix + reportTableSQL + `DECLARE @noreport TABLE (ID BIGINT NOT NULL, ChannelID INT NULL);
DECLARE @expired TABLE (ID BIGINT NOT NULL, ChannelID INT NULL);
DECLARE @deleted TABLE (ID BIGINT NOT NULL);
UPDATE hermod.Messages SET
	Status = N'NOREPORT',
	TriggerStatus = N'',
	StatusDetails = N'no delivery report within ' + @p1,
	LastUpdate = @now,
	Trace = ` + appendTrace("hermod.Messages", "N'NOREPORT'", "N'no delivery report within ' + @p1") + `
OUTPUT inserted.ID, inserted.ChannelID INTO @noreport (ID, ChannelID)
WHERE hermod.Messages.ID IN (SELECT TOP (@p4) q.ID FROM hermod.Messages AS q ` + pickHints + `
		WHERE q.Status = N'SENT' AND q.RequestDeliveryReport = 1
		  AND q.SentTime <= ` + addDuration("@now", "@p2", "@p3") + `
		ORDER BY q.SentTime)
  AND hermod.Messages.Status = N'SENT';
UPDATE hermod.Messages SET
	Status = N'EXPIRED',
	TriggerStatus = N'',
	StatusDetails = N'ValidUntil ' + ` + stamp("hermod.Messages.ValidUntil") + ` + N' passed before the message was sent',
	LastUpdate = @now,
	Trace = ` + appendTrace("hermod.Messages", "N'EXPIRED'", "N'ValidUntil ' + "+stamp("hermod.Messages.ValidUntil")+" + N' passed before sending'") + `
OUTPUT inserted.ID, inserted.ChannelID INTO @expired (ID, ChannelID)
WHERE hermod.Messages.ID IN (SELECT TOP (@p4) q.ID FROM hermod.Messages AS q ` + pickHints + `
		WHERE q.Status = N'QUEUED' AND q.ValidUntil IS NOT NULL AND q.ValidUntil <= @now
		ORDER BY q.ID)
  AND hermod.Messages.Status = N'QUEUED';
IF EXISTS (SELECT 1 FROM hermod.PendingReports)
BEGIN
	INSERT INTO @r (Ord, ChannelID, Reference, Status, ErrorCode, DoneTime)
	SELECT TOP (@p4) pr.ID, pr.ChannelID, pr.Reference, pr.Status, pr.ErrorCode, pr.DoneTime
	FROM hermod.PendingReports AS pr ` + pickHints + `
	WHERE EXISTS (SELECT 1 FROM hermod.MessageParts AS p WHERE p.ChannelID = pr.ChannelID AND p.Reference = pr.Reference)
	ORDER BY pr.ID;
	DELETE pr FROM hermod.PendingReports AS pr JOIN @r AS r ON r.Ord = pr.ID;
` + applyReportsSQL + `END;
DELETE FROM hermod.PendingReports
OUTPUT deleted.ID INTO @deleted (ID)
WHERE hermod.PendingReports.ID IN (SELECT TOP (@p4) x.ID FROM hermod.PendingReports AS x ` + pickHints + `
		WHERE x.ReceivedTime <= ` + addDuration("@now", "@p5", "@p6") + `
		ORDER BY x.ID);
SELECT (SELECT COUNT(*) FROM @noreport), (SELECT COUNT(*) FROM @expired), (SELECT COUNT(*) FROM @deleted);
SELECT n.ID, N'NOREPORT', n.ChannelID FROM @noreport AS n
UNION ALL
SELECT e.ID, N'EXPIRED', e.ChannelID FROM @expired AS e
UNION ALL
SELECT st.ID, st.Status, st.ChannelID FROM @settled AS st;
`

// MessageSweep makes overdue SENT messages NOREPORT and expired QUEUED
// messages EXPIRED, and deletes stale pending reports, each at most
// p.Limit rows.
func (s *Store) MessageSweep(ctx context.Context, p store.SweepParams) (store.SweepResult, error) {
	nrSecs, nrMillis := durationArgs(-p.NoReportAfter)
	prSecs, prMillis := durationArgs(-p.PendingReportTTL)
	var res store.SweepResult
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res = store.SweepResult{}
		return queryCountAndChanges(ctx, tx, sweepSQL, []any{p.NoReportAfter.String(), nrSecs, nrMillis,
			batchLimit(p.Limit, defaultBatch), prSecs, prMillis}, &res.Changes, &res.NoReport, &res.Expired, &res.PendingDeleted)
	})
	if err != nil {
		return store.SweepResult{}, mapError(err, "sweep messages")
	}
	return res, nil
}
