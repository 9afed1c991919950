package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/hermod-sms/hermod/store"
)

const channelColumns = `ID, Name, Type, Settings, Enabled, COALESCE(Node, ''), Status,
	COALESCE(StatusDetails, ''), COALESCE(StatusNode, ''), StatusTime, CreatedTime, LastUpdate`

func scanChannel(row pgx.Row) (*store.Channel, error) {
	var (
		c                        store.Channel
		id                       int32
		status, created, updated pgtype.Timestamp
	)
	if err := row.Scan(&id, &c.Name, &c.Type, &c.Settings, &c.Enabled, &c.Node, &c.Status,
		&c.StatusDetails, &c.StatusNode, &status, &created, &updated); err != nil {
		return nil, err
	}
	c.ID, c.StatusTime, c.CreatedTime, c.LastUpdate = int64(id), status.Time, created.Time, updated.Time
	return &c, nil
}

// ChannelList returns every channel ordered by ID.
func (s *Store) ChannelList(ctx context.Context) ([]*store.Channel, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+channelColumns+` FROM Channels ORDER BY ID`)
	if err != nil {
		return nil, mapError("list channels", err)
	}
	defer rows.Close()
	var out []*store.Channel
	for rows.Next() {
		c, err := scanChannel(rows)
		if err != nil {
			return nil, mapError("list channels", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, mapError("list channels", err)
	}
	return out, nil
}

// ChannelGet returns a channel by name, or store.ErrNotFound.
func (s *Store) ChannelGet(ctx context.Context, name string) (*store.Channel, error) {
	c, err := scanChannel(s.pool.QueryRow(ctx, `SELECT `+channelColumns+` FROM Channels WHERE Name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: channel %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, mapError(fmt.Sprintf("get channel %q", name), err)
	}
	return c, nil
}

// channelSettings returns c's settings, "{}" when empty, or ErrInvalid when
// they are not a JSON object.
func channelSettings(c store.Channel) (string, error) {
	settings := strings.TrimSpace(c.Settings)
	if settings == "" {
		return "{}", nil
	}
	if !json.Valid([]byte(settings)) || settings[0] != '{' {
		return "", fmt.Errorf("postgres: channel %q: Settings must be a JSON object such as {\"url\": \"...\"}: %w", c.Name, store.ErrInvalid)
	}
	return settings, nil
}

// ChannelCreate inserts a channel and returns it with ID set.
func (s *Store) ChannelCreate(ctx context.Context, c store.Channel) (*store.Channel, error) {
	settings, err := channelSettings(c)
	if err != nil {
		return nil, err
	}
	status := c.Status
	if status == "" {
		status = "stopped"
	}
	out, err := scanChannel(s.pool.QueryRow(ctx, `
INSERT INTO Channels (Name, Type, Settings, Enabled, Node, Status, StatusDetails)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING `+channelColumns, c.Name, c.Type, settings, c.Enabled, nullString(c.Node), status, nullString(c.StatusDetails)))
	if err != nil {
		return nil, mapError(fmt.Sprintf("create channel %q", c.Name), err)
	}
	return out, nil
}

// ChannelUpdate changes Type, Settings, Enabled and Node of the channel with
// c.ID.
func (s *Store) ChannelUpdate(ctx context.Context, c store.Channel) error {
	settings, err := channelSettings(c)
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `
UPDATE Channels SET Type = $2, Settings = $3, Enabled = $4, Node = $5, LastUpdate = `+nowSQL+`
WHERE ID = $1`, c.ID, c.Type, settings, c.Enabled, nullString(c.Node))
	if err != nil {
		return mapError(fmt.Sprintf("update channel %d", c.ID), err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: channel %d: %w", c.ID, store.ErrNotFound)
	}
	return nil
}

// ChannelDelete deletes a channel by ID.
func (s *Store) ChannelDelete(ctx context.Context, id int64) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM Channels WHERE ID = $1`, id)
	if err != nil {
		return mapError(fmt.Sprintf("delete channel %d", id), err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: channel %d: %w", id, store.ErrNotFound)
	}
	return nil
}

// ChannelSetStatus records a channel's runtime status.
func (s *Store) ChannelSetStatus(ctx context.Context, p store.ChannelStatusParams) error {
	tag, err := s.pool.Exec(ctx, `
UPDATE Channels SET Status = $2, StatusDetails = NULLIF(left($3, 1000), ''), StatusNode = $4, StatusTime = `+nowSQL+`
WHERE ID = $1`, p.ID, p.Status, p.Details, nullString(p.Node))
	if err != nil {
		return mapError(fmt.Sprintf("set status of channel %d", p.ID), err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: channel %d: %w", p.ID, store.ErrNotFound)
	}
	return nil
}

// NodeHeartbeat inserts or refreshes a node's row.
func (s *Store) NodeHeartbeat(ctx context.Context, p store.NodeParams) error {
	_, err := s.pool.Exec(ctx, `
INSERT INTO Nodes (Name, Host, PID, Version, StartedTime, HeartbeatTime)
VALUES ($1, $2, $3, $4, `+nowSQL+`, `+nowSQL+`)
ON CONFLICT (Name) DO UPDATE
SET Host = EXCLUDED.Host, PID = EXCLUDED.PID, Version = EXCLUDED.Version, HeartbeatTime = EXCLUDED.HeartbeatTime`,
		p.Name, nullString(p.Host), p.PID, nullString(p.Version))
	return mapError(fmt.Sprintf("heartbeat of node %q", p.Name), err)
}

// NodeList returns every node ordered by Name.
func (s *Store) NodeList(ctx context.Context) ([]store.Node, error) {
	rows, err := s.pool.Query(ctx, `
SELECT Name, COALESCE(Host, ''), COALESCE(PID, 0), COALESCE(Version, ''), StartedTime, HeartbeatTime
FROM Nodes ORDER BY Name`)
	if err != nil {
		return nil, mapError("list nodes", err)
	}
	defer rows.Close()
	var out []store.Node
	for rows.Next() {
		var n store.Node
		if err := rows.Scan(&n.Name, &n.Host, &n.PID, &n.Version, &n.StartedTime, &n.HeartbeatTime); err != nil {
			return nil, mapError("list nodes", err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, mapError("list nodes", err)
	}
	return out, nil
}

// NodeDelete removes a node's row.
func (s *Store) NodeDelete(ctx context.Context, name string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM Nodes WHERE Name = $1`, name)
	return mapError(fmt.Sprintf("delete node %q", name), err)
}

// NodeDeleteStale removes nodes without a heartbeat for olderThan.
func (s *Store) NodeDeleteStale(ctx context.Context, olderThan time.Duration) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM Nodes WHERE HeartbeatTime < `+nowSQL+` - $1::bigint * interval '1 millisecond'`, millis(olderThan))
	if err != nil {
		return 0, mapError("delete stale nodes", err)
	}
	return int(tag.RowsAffected()), nil
}

// LeaderElect makes p.Node the leader of p.Name when nobody leads or the
// lease expired, or extends its lease when it already leads.
func (s *Store) LeaderElect(ctx context.Context, p store.LeaderParams) (bool, error) {
	var node string
	err := s.pool.QueryRow(ctx, `
INSERT INTO Leaders (Name, Node, ElectedTime, ExpiresTime)
VALUES ($1, $2, `+nowSQL+`, `+nowSQL+` + $3::bigint * interval '1 millisecond')
ON CONFLICT (Name) DO UPDATE
SET Node = EXCLUDED.Node,
    ElectedTime = CASE WHEN Leaders.Node = EXCLUDED.Node AND Leaders.ExpiresTime >= `+nowSQL+`
                       THEN Leaders.ElectedTime ELSE EXCLUDED.ElectedTime END,
    ExpiresTime = EXCLUDED.ExpiresTime
WHERE Leaders.Node = EXCLUDED.Node OR Leaders.ExpiresTime < `+nowSQL+`
RETURNING Node`, p.Name, p.Node, millis(p.TTL)).Scan(&node)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, mapError(fmt.Sprintf("elect leader of %q", p.Name), err)
	}
	return node == p.Node, nil
}

// LeaderResign gives up leadership if p.Node holds it.
func (s *Store) LeaderResign(ctx context.Context, p store.LeaderParams) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM Leaders WHERE Name = $1 AND Node = $2`, p.Name, p.Node)
	return mapError(fmt.Sprintf("resign leadership of %q", p.Name), err)
}

// LeaderGet returns the current leader's node name ("" if none or expired).
func (s *Store) LeaderGet(ctx context.Context, name string) (string, error) {
	var node string
	err := s.pool.QueryRow(ctx, `SELECT Node FROM Leaders WHERE Name = $1 AND ExpiresTime >= `+nowSQL, name).Scan(&node)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", mapError(fmt.Sprintf("get leader of %q", name), err)
	}
	return node, nil
}

const apiKeyColumns = `ID, Name, Prefix, Hash, Scopes, AllowedIPs, RateLimit, CreatedTime, RevokedTime`

func scanAPIKey(row pgx.Row) (*store.APIKey, error) {
	var (
		k       store.APIKey
		revoked pgtype.Timestamp
	)
	if err := row.Scan(&k.ID, &k.Name, &k.Prefix, &k.Hash, &k.Scopes, &k.AllowedIPs, &k.RateLimit, &k.CreatedTime, &revoked); err != nil {
		return nil, err
	}
	k.RevokedTime = revoked.Time
	return &k, nil
}

// APIKeyCreate stores a key and returns it with ID and CreatedTime set.
func (s *Store) APIKeyCreate(ctx context.Context, k store.APIKey) (*store.APIKey, error) {
	out, err := scanAPIKey(s.pool.QueryRow(ctx, `
INSERT INTO ApiKeys (Name, Prefix, Hash, Scopes, AllowedIPs, RateLimit, RevokedTime)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING `+apiKeyColumns, k.Name, k.Prefix, k.Hash, k.Scopes, k.AllowedIPs, k.RateLimit, nullTime(k.RevokedTime)))
	if err != nil {
		return nil, mapError(fmt.Sprintf("create API key %q", k.Name), err)
	}
	return out, nil
}

// APIKeyList returns every key, revoked ones too, ordered by ID.
func (s *Store) APIKeyList(ctx context.Context) ([]*store.APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+apiKeyColumns+` FROM ApiKeys ORDER BY ID`)
	if err != nil {
		return nil, mapError("list API keys", err)
	}
	defer rows.Close()
	var out []*store.APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, mapError("list API keys", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, mapError("list API keys", err)
	}
	return out, nil
}

// APIKeyByHash returns the key with this hash, or store.ErrNotFound.
func (s *Store) APIKeyByHash(ctx context.Context, hash string) (*store.APIKey, error) {
	k, err := scanAPIKey(s.pool.QueryRow(ctx, `SELECT `+apiKeyColumns+` FROM ApiKeys WHERE Hash = $1`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		// The hash is a secret's digest: it is not repeated in the error.
		return nil, fmt.Errorf("postgres: API key: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, mapError("get API key", err)
	}
	return k, nil
}

// APIKeyRevoke sets RevokedTime on the key with this name, or else this ID.
// Revoking a revoked key keeps its first RevokedTime.
func (s *Store) APIKeyRevoke(ctx context.Context, nameOrID string) error {
	const q = `UPDATE ApiKeys SET RevokedTime = COALESCE(RevokedTime, ` + nowSQL + `) WHERE `
	tag, err := s.pool.Exec(ctx, q+`Name = $1`, nameOrID)
	if err != nil {
		return mapError(fmt.Sprintf("revoke API key %q", nameOrID), err)
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	if id, perr := strconv.ParseInt(nameOrID, 10, 64); perr == nil {
		tag, err = s.pool.Exec(ctx, q+`ID = $1`, id)
		if err != nil {
			return mapError(fmt.Sprintf("revoke API key %d", id), err)
		}
		if tag.RowsAffected() > 0 {
			return nil
		}
	}
	return fmt.Errorf("postgres: API key %q (no key has this name or ID): %w", nameOrID, store.ErrNotFound)
}

// OptionGet returns an option's value, or store.ErrNotFound.
func (s *Store) OptionGet(ctx context.Context, name string) (string, error) {
	var v string
	err := s.pool.QueryRow(ctx, `SELECT Value FROM Options WHERE Name = $1`, name).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("postgres: option %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return "", mapError(fmt.Sprintf("get option %q", name), err)
	}
	return v, nil
}

// OptionSet inserts or replaces an option.
func (s *Store) OptionSet(ctx context.Context, name, value string) error {
	_, err := s.pool.Exec(ctx, `
INSERT INTO Options (Name, Value, LastUpdate) VALUES ($1, $2, `+nowSQL+`)
ON CONFLICT (Name) DO UPDATE SET Value = EXCLUDED.Value, LastUpdate = EXCLUDED.LastUpdate`, name, value)
	return mapError(fmt.Sprintf("set option %q", name), err)
}
