package sqlserver

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/hermod-sms/hermod/store"
)

var channelName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

const channelColumns = `c.ID, c.Name, c.Type, c.Settings, c.Enabled, c.Node, c.Status, c.StatusDetails,
	c.StatusNode, c.StatusTime, c.CreatedTime, c.LastUpdate`

func scanChannel(row interface{ Scan(...any) error }) (*store.Channel, error) {
	var (
		c                             store.Channel
		node, details, statusNode     sql.NullString
		statusTime, created, lastUpdt sql.NullTime
	)
	if err := row.Scan(&c.ID, &c.Name, &c.Type, &c.Settings, &c.Enabled, &node, &c.Status, &details,
		&statusNode, &statusTime, &created, &lastUpdt); err != nil {
		return nil, err
	}
	c.Node, c.StatusDetails, c.StatusNode = node.String, details.String, statusNode.String
	c.StatusTime, c.CreatedTime, c.LastUpdate = utc(statusTime), utc(created), utc(lastUpdt)
	return &c, nil
}

func validateChannel(c *store.Channel) error {
	if !channelName.MatchString(c.Name) {
		return fmt.Errorf("channel name %q: use 1 to 64 letters, digits, '_', '.' or '-': %w", c.Name, store.ErrInvalid)
	}
	if c.Type == "" {
		return fmt.Errorf("channel %q: Type is required (simulator, smpp, http, ...): %w", c.Name, store.ErrInvalid)
	}
	if len(c.Type) > 32 {
		return fmt.Errorf("channel %q: Type %q is longer than 32 characters: %w", c.Name, c.Type, store.ErrInvalid)
	}
	if len(c.Node) > 128 {
		return fmt.Errorf("channel %q: Node is longer than 128 characters: %w", c.Name, store.ErrInvalid)
	}
	return validateSettings(c.Name, c.Settings)
}

// validateSettings checks that a channel's Settings are a JSON object ("" is
// stored as {}).
func validateSettings(name, settings string) error {
	if settings == "" {
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(settings), &obj); err != nil || obj == nil {
		return fmt.Errorf("channel %q: Settings must be a JSON object such as {\"host\":\"smsc.example.com\"}: %w", name, store.ErrInvalid)
	}
	return nil
}

func settingsOrEmpty(s string) string {
	if s == "" {
		return "{}"
	}
	return s
}

// ChannelList returns every channel ordered by ID.
func (s *Store) ChannelList(ctx context.Context) ([]*store.Channel, error) {
	rows, err := s.db.QueryContext(ctx, channelListSQL)
	if err != nil {
		return nil, mapError(err, "list channels")
	}
	defer rows.Close()
	var out []*store.Channel
	for rows.Next() {
		c, err := scanChannel(rows)
		if err != nil {
			return nil, mapError(err, "list channels")
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, mapError(err, "list channels")
	}
	return out, nil
}

// ChannelGet returns a channel by name, or store.ErrNotFound.
func (s *Store) ChannelGet(ctx context.Context, name string) (*store.Channel, error) {
	c, err := scanChannel(s.db.QueryRowContext(ctx, channelGetSQL, name))
	if errNoRows(err) {
		return nil, fmt.Errorf("channel %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, mapError(err, fmt.Sprintf("read channel %q", name))
	}
	return c, nil
}

const channelCreateSQL = batchPrefix + `DECLARE @ids TABLE (ID INT NOT NULL);
INSERT INTO hermod.Channels (Name, Type, Settings, Enabled, Node, CreatedTime, LastUpdate)
OUTPUT inserted.ID INTO @ids (ID)
VALUES (@p1, @p2, @p3, @p4, @p5, @now, @now);
SELECT ` + channelColumns + ` FROM hermod.Channels AS c JOIN @ids AS i ON i.ID = c.ID;`

// ChannelCreate inserts a channel and returns it with ID set.
func (s *Store) ChannelCreate(ctx context.Context, c store.Channel) (*store.Channel, error) {
	if err := validateChannel(&c); err != nil {
		return nil, fmt.Errorf("create channel: %w", err)
	}
	var out *store.Channel
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = scanChannel(tx.QueryRowContext(ctx, channelCreateSQL, c.Name, c.Type, settingsOrEmpty(c.Settings), c.Enabled, nstr(c.Node)))
		return err
	})
	if err != nil {
		return nil, mapError(err, fmt.Sprintf("create channel %q", c.Name))
	}
	return out, nil
}

const channelUpdateSQL = batchPrefix + `DECLARE @done TABLE (ID INT NOT NULL);
UPDATE c SET Type = @p2, Settings = @p3, Enabled = @p4, Node = @p5, LastUpdate = @now
OUTPUT inserted.ID INTO @done (ID)
FROM hermod.Channels AS c
WHERE c.ID = @p1;
SELECT COUNT(*) FROM @done;`

// ChannelUpdate changes Type, Settings, Enabled and Node of the channel with
// c.ID.
func (s *Store) ChannelUpdate(ctx context.Context, c store.Channel) error {
	if c.Type == "" {
		return fmt.Errorf("update channel %d: Type is required (simulator, smpp, http, ...): %w", c.ID, store.ErrInvalid)
	}
	if err := validateSettings(c.Name, c.Settings); err != nil {
		return fmt.Errorf("update channel %d: %w", c.ID, err)
	}
	ok, err := changeOne(ctx, s.db, channelUpdateSQL, chanArg(c.ID), c.Type, settingsOrEmpty(c.Settings), c.Enabled, nstr(c.Node))
	if err != nil {
		return mapError(err, fmt.Sprintf("update channel %d", c.ID))
	}
	if !ok {
		return fmt.Errorf("update channel %d: %w", c.ID, store.ErrNotFound)
	}
	return nil
}

const channelDeleteSQL = batchPrefix + `DECLARE @done TABLE (ID INT NOT NULL);
DELETE c OUTPUT deleted.ID INTO @done (ID) FROM hermod.Channels AS c WHERE c.ID = @p1;
SELECT COUNT(*) FROM @done;`

// ChannelDelete deletes a channel by ID. Its messages keep their ChannelID.
func (s *Store) ChannelDelete(ctx context.Context, id int64) error {
	ok, err := changeOne(ctx, s.db, channelDeleteSQL, chanArg(id))
	if err != nil {
		return mapError(err, fmt.Sprintf("delete channel %d", id))
	}
	if !ok {
		return fmt.Errorf("delete channel %d: %w", id, store.ErrNotFound)
	}
	return nil
}

const channelStatusSQL = batchPrefix + `DECLARE @done TABLE (ID INT NOT NULL);
UPDATE c SET Status = LEFT(@p2, 32), StatusDetails = LEFT(@p3, 1000), StatusNode = @p4, StatusTime = @now
OUTPUT inserted.ID INTO @done (ID)
FROM hermod.Channels AS c
WHERE c.ID = @p1;
SELECT COUNT(*) FROM @done;`

// ChannelSetStatus records a channel's runtime status.
func (s *Store) ChannelSetStatus(ctx context.Context, p store.ChannelStatusParams) error {
	if p.Status == "" {
		return fmt.Errorf("set the status of channel %d: Status is required: %w", p.ID, store.ErrInvalid)
	}
	ok, err := changeOne(ctx, s.db, channelStatusSQL, chanArg(p.ID), p.Status, nstr(p.Details), nstr(p.Node))
	if err != nil {
		return mapError(err, fmt.Sprintf("set the status of channel %d", p.ID))
	}
	if !ok {
		return fmt.Errorf("set the status of channel %d: %w", p.ID, store.ErrNotFound)
	}
	return nil
}

// upsert runs a batch built by upsertSQL; when a concurrent insert of the
// same key wins (2627/2601), it runs the batch again, and the UPDATE then
// finds the row.
func (s *Store) upsert(ctx context.Context, doing, query string, vals ...any) error {
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		_, err = s.db.ExecContext(ctx, query, vals...)
		if err == nil || !isDuplicate(err) {
			break
		}
	}
	return mapError(err, doing)
}

// upsertSQL is UPDATE, then INSERT ... WHERE NOT EXISTS when the UPDATE
// changed nothing: the portable replacement of MERGE. where picks the row
// to update, key (a condition on the key alone) guards the insert, and the
// primary key guards the race: upsert runs the batch again on its error.
// Changes are counted through OUTPUT ... INTO, not @@ROWCOUNT, so that
// triggers cannot disturb them.
func upsertSQL(table, keyCol, update, where, key, insertCols, insertVals string) string {
	return batchPrefix + `DECLARE @done TABLE (K NVARCHAR(128) NOT NULL);
UPDATE t SET ` + update + `
OUTPUT inserted.` + keyCol + ` INTO @done (K)
FROM ` + table + ` AS t
WHERE ` + where + `;
IF NOT EXISTS (SELECT 1 FROM @done)
	INSERT INTO ` + table + ` (` + insertCols + `)
	SELECT ` + insertVals + `
	WHERE NOT EXISTS (SELECT 1 FROM ` + table + ` AS t WHERE ` + key + `);`
}

var nodeHeartbeatSQL = upsertSQL("hermod.Nodes", "Name",
	"Host = @p2, PID = @p3, Version = @p4, HeartbeatTime = @now",
	"t.Name = @p1",
	"t.Name = @p1",
	"Name, Host, PID, Version, StartedTime, HeartbeatTime",
	"@p1, @p2, @p3, @p4, @now, @now")

// NodeHeartbeat inserts or refreshes a node's row.
func (s *Store) NodeHeartbeat(ctx context.Context, p store.NodeParams) error {
	if p.Name == "" {
		return fmt.Errorf("node heartbeat: Name is required: %w", store.ErrInvalid)
	}
	return s.upsert(ctx, fmt.Sprintf("heartbeat of node %q", p.Name), nodeHeartbeatSQL,
		p.Name, nstr(p.Host), int64(p.PID), nstr(p.Version))
}

// NodeList returns every node ordered by Name.
func (s *Store) NodeList(ctx context.Context) ([]store.Node, error) {
	rows, err := s.db.QueryContext(ctx, nodeListSQL)
	if err != nil {
		return nil, mapError(err, "list nodes")
	}
	defer rows.Close()
	var out []store.Node
	for rows.Next() {
		var (
			n                store.Node
			host, version    sql.NullString
			pid              sql.NullInt64
			started, beating sql.NullTime
		)
		if err := rows.Scan(&n.Name, &host, &pid, &version, &started, &beating); err != nil {
			return nil, mapError(err, "list nodes")
		}
		n.Host, n.PID, n.Version = host.String, int(pid.Int64), version.String
		n.StartedTime, n.HeartbeatTime = utc(started), utc(beating)
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, mapError(err, "list nodes")
	}
	return out, nil
}

// NodeDelete removes a node's row.
func (s *Store) NodeDelete(ctx context.Context, name string) error {
	if _, err := s.db.ExecContext(ctx, nodeDeleteSQL, name); err != nil {
		return mapError(err, fmt.Sprintf("delete node %q", name))
	}
	return nil
}

var nodeDeleteStaleSQL = batchPrefix + `DECLARE @done TABLE (Name NVARCHAR(128) NOT NULL);
DELETE n OUTPUT deleted.Name INTO @done (Name)
FROM hermod.Nodes AS n
WHERE n.HeartbeatTime < ` + addDuration("@now", "@p1", "@p2") + `;
SELECT COUNT(*) FROM @done;`

// NodeDeleteStale removes nodes without a heartbeat for olderThan.
func (s *Store) NodeDeleteStale(ctx context.Context, olderThan time.Duration) (int, error) {
	secs, millis := durationArgs(-olderThan)
	var n int
	if err := s.db.QueryRowContext(ctx, nodeDeleteStaleSQL, secs, millis).Scan(&n); err != nil {
		return 0, mapError(err, "delete stale nodes")
	}
	return n, nil
}

// leaderElectSQL takes or extends the lease of @p1 for @p2: the UPDATE takes
// over an expired lease or extends our own, the INSERT creates the row when
// there is none; the primary key guards the race. The result is the leader
// after the call.
var leaderElectSQL = upsertSQL("hermod.Leaders", "Name",
	"Node = @p2, ElectedTime = CASE WHEN t.Node = @p2 THEN t.ElectedTime ELSE @now END, ExpiresTime = "+addDuration("@now", "@p3", "@p4"),
	"t.Name = @p1 AND (t.Node = @p2 OR t.ExpiresTime <= @now)",
	"t.Name = @p1",
	"Name, Node, ElectedTime, ExpiresTime",
	"@p1, @p2, @now, "+addDuration("@now", "@p3", "@p4")) + `
SELECT l.Node FROM hermod.Leaders AS l WHERE l.Name = @p1 AND l.ExpiresTime > @now;`

// LeaderElect makes p.Node the leader of p.Name for p.TTL if nobody leads or
// the lease expired, or extends the lease if p.Node leads already.
func (s *Store) LeaderElect(ctx context.Context, p store.LeaderParams) (bool, error) {
	if p.Name == "" || p.Node == "" {
		return false, fmt.Errorf("elect a leader: Name and Node are required: %w", store.ErrInvalid)
	}
	secs, millis := durationArgs(p.TTL)
	var leader sql.NullString
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		leader = sql.NullString{}
		err = s.db.QueryRowContext(ctx, leaderElectSQL, p.Name, p.Node, secs, millis).Scan(&leader)
		if errNoRows(err) {
			err = nil
		}
		if err == nil || !isDuplicate(err) {
			break
		}
		// Another node created the row at the same moment: look again.
	}
	if err != nil {
		return false, mapError(err, fmt.Sprintf("elect a leader of %q", p.Name))
	}
	return leader.Valid && leader.String == p.Node, nil
}

// LeaderResign gives up leadership if p.Node holds it.
func (s *Store) LeaderResign(ctx context.Context, p store.LeaderParams) error {
	if _, err := s.db.ExecContext(ctx, leaderResignSQL, p.Name, p.Node); err != nil {
		return mapError(err, fmt.Sprintf("resign the leadership of %q", p.Name))
	}
	return nil
}

// LeaderGet returns the current leader's node name ("" if none or expired).
func (s *Store) LeaderGet(ctx context.Context, name string) (string, error) {
	var node string
	err := s.db.QueryRowContext(ctx, leaderGetSQL, name).Scan(&node)
	if errNoRows(err) {
		return "", nil
	}
	if err != nil {
		return "", mapError(err, fmt.Sprintf("read the leader of %q", name))
	}
	return node, nil
}

const apiKeyColumns = `k.ID, k.Name, k.Prefix, k.Hash, k.Scopes, k.AllowedIPs, k.RateLimit, k.CreatedTime, k.RevokedTime`

func scanAPIKey(row interface{ Scan(...any) error }) (*store.APIKey, error) {
	var (
		k                store.APIKey
		created, revoked sql.NullTime
	)
	if err := row.Scan(&k.ID, &k.Name, &k.Prefix, &k.Hash, &k.Scopes, &k.AllowedIPs, &k.RateLimit, &created, &revoked); err != nil {
		return nil, err
	}
	k.CreatedTime, k.RevokedTime = utc(created), utc(revoked)
	return &k, nil
}

const apiKeyCreateSQL = batchPrefix + `DECLARE @ids TABLE (ID BIGINT NOT NULL);
INSERT INTO hermod.ApiKeys (Name, Prefix, Hash, Scopes, AllowedIPs, RateLimit, CreatedTime)
OUTPUT inserted.ID INTO @ids (ID)
VALUES (@p1, @p2, @p3, @p4, @p5, @p6, @now);
SELECT ` + apiKeyColumns + ` FROM hermod.ApiKeys AS k JOIN @ids AS i ON i.ID = k.ID;`

// APIKeyCreate stores a key and returns it with ID and CreatedTime set.
func (s *Store) APIKeyCreate(ctx context.Context, k store.APIKey) (*store.APIKey, error) {
	if k.Name == "" || k.Hash == "" {
		return nil, fmt.Errorf("create API key: Name and Hash are required: %w", store.ErrInvalid)
	}
	var out *store.APIKey
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = scanAPIKey(tx.QueryRowContext(ctx, apiKeyCreateSQL, k.Name, k.Prefix, k.Hash, k.Scopes, k.AllowedIPs, int64(k.RateLimit)))
		return err
	})
	if err != nil {
		// The hash is not secret, but keep it out of messages anyway.
		return nil, mapError(err, fmt.Sprintf("create API key %q", k.Name))
	}
	return out, nil
}

// APIKeyList returns every key, revoked ones too, ordered by ID.
func (s *Store) APIKeyList(ctx context.Context) ([]*store.APIKey, error) {
	rows, err := s.db.QueryContext(ctx, apiKeyListSQL)
	if err != nil {
		return nil, mapError(err, "list API keys")
	}
	defer rows.Close()
	var out []*store.APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, mapError(err, "list API keys")
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, mapError(err, "list API keys")
	}
	return out, nil
}

// APIKeyByHash returns the key with this hash, or store.ErrNotFound.
func (s *Store) APIKeyByHash(ctx context.Context, hash string) (*store.APIKey, error) {
	k, err := scanAPIKey(s.db.QueryRowContext(ctx, apiKeyByHashSQL, hash))
	if errNoRows(err) {
		return nil, fmt.Errorf("API key with this hash: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, mapError(err, "read an API key by hash")
	}
	return k, nil
}

// apiKeyRevokeSQL revokes by name, or by ID when no name matches and @p2 is
// given. A revoked key keeps its first RevokedTime.
const apiKeyRevokeSQL = batchPrefix + `DECLARE @done TABLE (ID BIGINT NOT NULL);
UPDATE k SET RevokedTime = COALESCE(k.RevokedTime, @now)
OUTPUT inserted.ID INTO @done (ID)
FROM hermod.ApiKeys AS k
WHERE k.Name = @p1;
IF NOT EXISTS (SELECT 1 FROM @done) AND @p2 IS NOT NULL
	UPDATE k SET RevokedTime = COALESCE(k.RevokedTime, @now)
	OUTPUT inserted.ID INTO @done (ID)
	FROM hermod.ApiKeys AS k
	WHERE k.ID = @p2;
SELECT COUNT(*) FROM @done;`

// APIKeyRevoke sets RevokedTime on the key with this name or ID.
func (s *Store) APIKeyRevoke(ctx context.Context, nameOrID string) error {
	var id any = nullBigInt
	if n, err := strconv.ParseInt(nameOrID, 10, 64); err == nil {
		id = n
	}
	ok, err := changeOne(ctx, s.db, apiKeyRevokeSQL, nameOrID, id)
	if err != nil {
		return mapError(err, fmt.Sprintf("revoke API key %q", nameOrID))
	}
	if !ok {
		return fmt.Errorf("revoke API key %q: no key has this name or ID: %w", nameOrID, store.ErrNotFound)
	}
	return nil
}

// OptionGet returns an option's value, or store.ErrNotFound.
func (s *Store) OptionGet(ctx context.Context, name string) (string, error) {
	var v string
	err := s.db.QueryRowContext(ctx, optionGetSQL, name).Scan(&v)
	if errNoRows(err) {
		return "", fmt.Errorf("option %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return "", mapError(err, fmt.Sprintf("read option %q", name))
	}
	return v, nil
}

var optionSetSQL = upsertSQL("hermod.Options", "Name",
	"Value = @p2, LastUpdate = @now",
	"t.Name = @p1",
	"t.Name = @p1",
	"Name, Value, LastUpdate",
	"@p1, @p2, @now")

// OptionSet inserts or replaces an option.
func (s *Store) OptionSet(ctx context.Context, name, value string) error {
	if name == "" {
		return fmt.Errorf("set an option: the name is required: %w", store.ErrInvalid)
	}
	return s.upsert(ctx, fmt.Sprintf("set option %q", name), optionSetSQL, name, value)
}

// Single-statement queries.
const (
	channelListSQL  = `SELECT ` + channelColumns + ` FROM hermod.Channels AS c ORDER BY c.ID;`
	channelGetSQL   = `SELECT ` + channelColumns + ` FROM hermod.Channels AS c WHERE c.Name = @p1;`
	nodeListSQL     = `SELECT n.Name, n.Host, n.PID, n.Version, n.StartedTime, n.HeartbeatTime FROM hermod.Nodes AS n ORDER BY n.Name;`
	nodeDeleteSQL   = `DELETE FROM hermod.Nodes WHERE Name = @p1;`
	leaderResignSQL = `DELETE FROM hermod.Leaders WHERE Name = @p1 AND Node = @p2;`
	leaderGetSQL    = `SELECT l.Node FROM hermod.Leaders AS l WHERE l.Name = @p1 AND l.ExpiresTime > SYSUTCDATETIME();`
	apiKeyListSQL   = `SELECT ` + apiKeyColumns + ` FROM hermod.ApiKeys AS k ORDER BY k.ID;`
	apiKeyByHashSQL = `SELECT ` + apiKeyColumns + ` FROM hermod.ApiKeys AS k WHERE k.Hash = @p1;`
	optionGetSQL    = `SELECT o.Value FROM hermod.Options AS o WHERE o.Name = @p1;`
)
