package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hermod-sms/hermod/store"
)

// Channels.

const channelColumns = `ID, Name, Type, Settings, Enabled, Node, Status, StatusDetails, StatusNode, StatusTime, CreatedTime, LastUpdate`

func scanChannel(r rowScanner) (*store.Channel, error) {
	var (
		c                                   store.Channel
		enabled                             int64
		node, details, statusNode           sql.NullString
		statusTime, createdTime, lastUpdate sql.NullString
	)
	if err := r.Scan(&c.ID, &c.Name, &c.Type, &c.Settings, &enabled, &node, &c.Status, &details, &statusNode,
		&statusTime, &createdTime, &lastUpdate); err != nil {
		return nil, err
	}
	c.Enabled = enabled != 0
	c.Node = node.String
	c.StatusDetails = details.String
	c.StatusNode = statusNode.String
	c.StatusTime = parseTime(statusTime)
	c.CreatedTime = parseTime(createdTime)
	c.LastUpdate = parseTime(lastUpdate)
	return &c, nil
}

// validateChannel checks what the schema's constraints check, with a
// clearer message.
func validateChannel(c *store.Channel, checkName bool) error {
	if checkName && c.Name == "" || len(c.Name) > 64 || strings.IndexFunc(c.Name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-')
	}) >= 0 && checkName {
		return fmt.Errorf("channel name %q: a channel Name is 1 to 64 characters from A-Z, a-z, 0-9, '_', '.' and '-': %w", c.Name, store.ErrInvalid)
	}
	if c.Type == "" {
		return fmt.Errorf("channel %q: Type is required: name a registered channel type such as \"simulator\": %w", c.Name, store.ErrInvalid)
	}
	if c.Settings == "" {
		c.Settings = "{}"
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(c.Settings), &obj); err != nil || obj == nil {
		return fmt.Errorf("channel %q: Settings must be a JSON object such as {}: %w", c.Name, store.ErrInvalid)
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ChannelList returns every channel ordered by ID.
func (s *Store) ChannelList(ctx context.Context) ([]*store.Channel, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+channelColumns+` FROM Channels ORDER BY ID`)
	if err != nil {
		return nil, s.mapError(err, "list channels")
	}
	defer rows.Close()
	var out []*store.Channel
	for rows.Next() {
		c, err := scanChannel(rows)
		if err != nil {
			return nil, s.mapError(err, "list channels")
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, s.mapError(err, "list channels")
	}
	return out, nil
}

// ChannelGet returns a channel by name, or store.ErrNotFound.
func (s *Store) ChannelGet(ctx context.Context, name string) (*store.Channel, error) {
	c, err := scanChannel(s.read.QueryRowContext(ctx, `SELECT `+channelColumns+` FROM Channels WHERE Name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("channel %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, s.mapError(err, fmt.Sprintf("get channel %q", name))
	}
	return c, nil
}

// ChannelCreate inserts a channel and returns it as stored.
func (s *Store) ChannelCreate(ctx context.Context, c store.Channel) (*store.Channel, error) {
	if err := validateChannel(&c, true); err != nil {
		return nil, err
	}
	var out *store.Channel
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = scanChannel(tx.QueryRowContext(ctx, `INSERT INTO Channels (Name, Type, Settings, Enabled, Node)
			VALUES (?, ?, ?, ?, ?) RETURNING `+channelColumns,
			c.Name, c.Type, c.Settings, boolInt(c.Enabled), strArg(c.Node)))
		return s.mapError(err, fmt.Sprintf("create channel %q", c.Name))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ChannelUpdate changes Type, Settings, Enabled and Node of channel c.ID.
func (s *Store) ChannelUpdate(ctx context.Context, c store.Channel) error {
	if c.Name == "" {
		c.Name = "#" + strconv.FormatInt(c.ID, 10) // for error messages only: the name is not changed
	}
	if err := validateChannel(&c, false); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `UPDATE Channels SET Type = ?, Settings = ?, Enabled = ?, Node = ?,
			LastUpdate = `+nowSQL+` WHERE ID = ?`, c.Type, c.Settings, boolInt(c.Enabled), strArg(c.Node), c.ID)
		if err != nil {
			return s.mapError(err, fmt.Sprintf("update channel %d", c.ID))
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return fmt.Errorf("update channel %d: %w", c.ID, store.ErrNotFound)
		}
		return nil
	})
}

// ChannelDelete deletes a channel by ID.
func (s *Store) ChannelDelete(ctx context.Context, id int64) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `DELETE FROM Channels WHERE ID = ?`, id)
		if err != nil {
			return s.mapError(err, fmt.Sprintf("delete channel %d", id))
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return fmt.Errorf("delete channel %d: %w", id, store.ErrNotFound)
		}
		return nil
	})
}

// ChannelSetStatus records a channel's runtime status.
func (s *Store) ChannelSetStatus(ctx context.Context, p store.ChannelStatusParams) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `UPDATE Channels SET Status = ?, StatusDetails = ?, StatusNode = ?,
			StatusTime = `+nowSQL+` WHERE ID = ?`, p.Status, strArg(p.Details), strArg(p.Node), p.ID)
		if err != nil {
			return s.mapError(err, fmt.Sprintf("set the status of channel %d", p.ID))
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return fmt.Errorf("set the status of channel %d: %w", p.ID, store.ErrNotFound)
		}
		return nil
	})
}

// Nodes.

// NodeHeartbeat inserts or refreshes a node's row.
func (s *Store) NodeHeartbeat(ctx context.Context, p store.NodeParams) error {
	if p.Name == "" {
		return fmt.Errorf("node heartbeat: Name is required: %w", store.ErrInvalid)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO Nodes (Name, Host, PID, Version, StartedTime, HeartbeatTime)
			VALUES (?, ?, ?, ?, `+nowSQL+`, `+nowSQL+`)
			ON CONFLICT (Name) DO UPDATE SET Host = excluded.Host, PID = excluded.PID, Version = excluded.Version,
				HeartbeatTime = excluded.HeartbeatTime`, p.Name, strArg(p.Host), p.PID, strArg(p.Version))
		return s.mapError(err, fmt.Sprintf("heartbeat of node %q", p.Name))
	})
}

// NodeList returns every node ordered by Name.
func (s *Store) NodeList(ctx context.Context) ([]store.Node, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT Name, Host, PID, Version, StartedTime, HeartbeatTime FROM Nodes ORDER BY Name`)
	if err != nil {
		return nil, s.mapError(err, "list nodes")
	}
	defer rows.Close()
	var out []store.Node
	for rows.Next() {
		var (
			n                  store.Node
			host, version      sql.NullString
			pid                sql.NullInt64
			started, heartbeat sql.NullString
		)
		if err := rows.Scan(&n.Name, &host, &pid, &version, &started, &heartbeat); err != nil {
			return nil, s.mapError(err, "list nodes")
		}
		n.Host = host.String
		n.PID = int(pid.Int64)
		n.Version = version.String
		n.StartedTime = parseTime(started)
		n.HeartbeatTime = parseTime(heartbeat)
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, s.mapError(err, "list nodes")
	}
	return out, nil
}

// NodeDelete removes a node's row; a missing node is not an error.
func (s *Store) NodeDelete(ctx context.Context, name string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM Nodes WHERE Name = ?`, name)
		return s.mapError(err, fmt.Sprintf("delete node %q", name))
	})
}

// NodeDeleteStale removes nodes without a heartbeat for olderThan.
func (s *Store) NodeDeleteStale(ctx context.Context, olderThan time.Duration) (int, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `DELETE FROM Nodes WHERE HeartbeatTime <= `+nowPlusSQL, modifier(-olderThan))
		if err != nil {
			return s.mapError(err, "delete stale nodes")
		}
		n, _ = r.RowsAffected()
		return nil
	})
	return int(n), err
}

// Leaders.

// LeaderElect makes p.Node the leader of p.Name when there is none or its
// lease expired, or extends the lease when p.Node already leads.
func (s *Store) LeaderElect(ctx context.Context, p store.LeaderParams) (bool, error) {
	if p.Name == "" || p.Node == "" {
		return false, fmt.Errorf("leader election: Name and Node are required: %w", store.ErrInvalid)
	}
	var leads bool
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `INSERT INTO Leaders (Name, Node, ElectedTime, ExpiresTime)
			VALUES (?1, ?2, `+nowSQL+`, strftime('%Y-%m-%d %H:%M:%f','now',?3))
			ON CONFLICT (Name) DO UPDATE SET
				ElectedTime = CASE WHEN Leaders.Node = excluded.Node THEN Leaders.ElectedTime ELSE excluded.ElectedTime END,
				Node = excluded.Node, ExpiresTime = excluded.ExpiresTime
			WHERE Leaders.Node = excluded.Node OR Leaders.ExpiresTime <= `+nowSQL+`
			RETURNING Node`, p.Name, p.Node, modifier(p.TTL))
		if err != nil {
			return s.mapError(err, fmt.Sprintf("elect a leader of %q", p.Name))
		}
		defer rows.Close()
		leads = rows.Next()
		return s.mapError(rows.Err(), fmt.Sprintf("elect a leader of %q", p.Name))
	})
	if err != nil {
		return false, err
	}
	return leads, nil
}

// LeaderResign gives up leadership if p.Node holds it.
func (s *Store) LeaderResign(ctx context.Context, p store.LeaderParams) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM Leaders WHERE Name = ? AND Node = ?`, p.Name, p.Node)
		return s.mapError(err, fmt.Sprintf("resign the leadership of %q", p.Name))
	})
}

// LeaderGet returns the current leader's node name, "" if none or expired.
func (s *Store) LeaderGet(ctx context.Context, name string) (string, error) {
	var node string
	err := s.read.QueryRowContext(ctx, `SELECT Node FROM Leaders WHERE Name = ? AND ExpiresTime > `+nowSQL, name).Scan(&node)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", s.mapError(err, fmt.Sprintf("get the leader of %q", name))
	}
	return node, nil
}

// Options.

// OptionGet returns an option's value, or store.ErrNotFound.
func (s *Store) OptionGet(ctx context.Context, name string) (string, error) {
	var v string
	err := s.read.QueryRowContext(ctx, `SELECT Value FROM Options WHERE Name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("option %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return "", s.mapError(err, fmt.Sprintf("get option %q", name))
	}
	return v, nil
}

// OptionSet inserts or replaces an option.
func (s *Store) OptionSet(ctx context.Context, name, value string) error {
	if name == "" {
		return fmt.Errorf("set option: Name is required: %w", store.ErrInvalid)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO Options (Name, Value, LastUpdate) VALUES (?, ?, `+nowSQL+`)
			ON CONFLICT (Name) DO UPDATE SET Value = excluded.Value, LastUpdate = excluded.LastUpdate`, name, value)
		return s.mapError(err, fmt.Sprintf("set option %q", name))
	})
}

// API keys.

const apiKeyColumns = `ID, Name, Prefix, Hash, Scopes, AllowedIPs, RateLimit, CreatedTime, RevokedTime`

func scanAPIKey(r rowScanner) (*store.APIKey, error) {
	var (
		k                store.APIKey
		created, revoked sql.NullString
	)
	if err := r.Scan(&k.ID, &k.Name, &k.Prefix, &k.Hash, &k.Scopes, &k.AllowedIPs, &k.RateLimit, &created, &revoked); err != nil {
		return nil, err
	}
	k.CreatedTime = parseTime(created)
	k.RevokedTime = parseTime(revoked)
	return &k, nil
}

// APIKeyCreate stores a key and returns it with ID and CreatedTime set.
func (s *Store) APIKeyCreate(ctx context.Context, k store.APIKey) (*store.APIKey, error) {
	switch {
	case k.Name == "":
		return nil, fmt.Errorf("create API key: Name is required: %w", store.ErrInvalid)
	case k.Hash == "":
		return nil, fmt.Errorf("create API key %q: Hash is required: the hex SHA-256 of the key: %w", k.Name, store.ErrInvalid)
	case k.RateLimit < 0:
		return nil, fmt.Errorf("create API key %q: RateLimit %d cannot be negative: %w", k.Name, k.RateLimit, store.ErrInvalid)
	}
	var out *store.APIKey
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = scanAPIKey(tx.QueryRowContext(ctx, `INSERT INTO ApiKeys (Name, Prefix, Hash, Scopes, AllowedIPs, RateLimit, RevokedTime)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING `+apiKeyColumns,
			k.Name, k.Prefix, k.Hash, k.Scopes, k.AllowedIPs, k.RateLimit, timeArg(k.RevokedTime)))
		return s.mapError(err, fmt.Sprintf("create API key %q", k.Name))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// APIKeyList returns every key, revoked ones too, ordered by ID.
func (s *Store) APIKeyList(ctx context.Context) ([]*store.APIKey, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+apiKeyColumns+` FROM ApiKeys ORDER BY ID`)
	if err != nil {
		return nil, s.mapError(err, "list API keys")
	}
	defer rows.Close()
	var out []*store.APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, s.mapError(err, "list API keys")
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, s.mapError(err, "list API keys")
	}
	return out, nil
}

// APIKeyByHash returns the key with this hash, or store.ErrNotFound.
func (s *Store) APIKeyByHash(ctx context.Context, hash string) (*store.APIKey, error) {
	k, err := scanAPIKey(s.read.QueryRowContext(ctx, `SELECT `+apiKeyColumns+` FROM ApiKeys WHERE Hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("API key with this hash: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, s.mapError(err, "get API key by hash")
	}
	return k, nil
}

// APIKeyRevoke sets RevokedTime on the key with this name or, failing
// that, this ID. Revoking a revoked key keeps its first RevokedTime.
func (s *Store) APIKeyRevoke(ctx context.Context, nameOrID string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		const q = `UPDATE ApiKeys SET RevokedTime = COALESCE(RevokedTime, ` + nowSQL + `) WHERE `
		r, err := tx.ExecContext(ctx, q+`Name = ?`, nameOrID)
		if err != nil {
			return s.mapError(err, fmt.Sprintf("revoke API key %q", nameOrID))
		}
		if n, _ := r.RowsAffected(); n > 0 {
			return nil
		}
		if id, perr := strconv.ParseInt(nameOrID, 10, 64); perr == nil {
			r, err := tx.ExecContext(ctx, q+`ID = ?`, id)
			if err != nil {
				return s.mapError(err, fmt.Sprintf("revoke API key %q", nameOrID))
			}
			if n, _ := r.RowsAffected(); n > 0 {
				return nil
			}
		}
		return fmt.Errorf("revoke API key %q: no key has this name or ID: %w", nameOrID, store.ErrNotFound)
	})
}
