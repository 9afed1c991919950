package storetest

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hermod-sms/hermod/store"
)

func (r *runner) testChannel(t *testing.T) {
	t.Run("CreateGetList", func(t *testing.T) {
		b := r.setup(t)
		list, err := b.s.ChannelList(b.ctx)
		require.NoError(t, err)
		require.Empty(t, list)

		c, err := b.s.ChannelCreate(b.ctx, store.Channel{Name: "smpp-1.eu_west", Type: "smpp", Settings: `{"host":"smsc.example.com","port":2775}`, Enabled: true, Node: "node-a"})
		require.NoError(t, err)
		require.NotZero(t, c.ID)
		require.Equal(t, "smpp-1.eu_west", c.Name)
		require.Equal(t, "smpp", c.Type)
		require.JSONEq(t, `{"host":"smsc.example.com","port":2775}`, c.Settings)
		require.True(t, c.Enabled)
		require.Equal(t, "node-a", c.Node)
		require.Equal(t, "stopped", c.Status)
		requireRecent(t, c.CreatedTime, "CreatedTime")
		requireRecent(t, c.LastUpdate, "LastUpdate")

		d, err := b.s.ChannelCreate(b.ctx, store.Channel{Name: "sim", Type: "simulator"})
		require.NoError(t, err)
		require.Greater(t, d.ID, c.ID)
		require.False(t, d.Enabled)
		require.JSONEq(t, `{}`, d.Settings, "empty Settings are stored as {}")
		require.Equal(t, "", d.Node)

		got, err := b.s.ChannelGet(b.ctx, "smpp-1.eu_west")
		require.NoError(t, err)
		require.Equal(t, c, got)

		list, err = b.s.ChannelList(b.ctx)
		require.NoError(t, err)
		require.Equal(t, []*store.Channel{c, d}, list)

		_, err = b.s.ChannelGet(b.ctx, "nope")
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("DuplicateName", func(t *testing.T) {
		b := r.setup(t)
		CreateChannel(t, b.s, "dup")
		_, err := b.s.ChannelCreate(b.ctx, store.Channel{Name: "dup", Type: "simulator"})
		require.ErrorIs(t, err, store.ErrConflict)
		list, err := b.s.ChannelList(b.ctx)
		require.NoError(t, err)
		require.Len(t, list, 1)
	})

	t.Run("Invalid", func(t *testing.T) {
		b := r.setup(t)
		for _, c := range []store.Channel{
			{Name: "", Type: "simulator"},
			{Name: "has space", Type: "simulator"},
			{Name: "semi;colon", Type: "simulator"},
			{Name: "x123456789012345678901234567890123456789012345678901234567890abcd", Type: "simulator"}, // 65
			{Name: "notype", Type: ""},
			{Name: "badjson", Type: "simulator", Settings: "{not json"},
			{Name: "array", Type: "simulator", Settings: "[1,2]"},
		} {
			_, err := b.s.ChannelCreate(b.ctx, c)
			require.ErrorIs(t, err, store.ErrInvalid, "%+v", c)
		}
		list, err := b.s.ChannelList(b.ctx)
		require.NoError(t, err)
		require.Empty(t, list)
	})

	t.Run("Update", func(t *testing.T) {
		b := r.setup(t)
		c := CreateChannel(t, b.s, "upd")
		c.Type = "http"
		c.Settings = `{"url":"https://example.com"}`
		c.Enabled = false
		c.Node = "node-b"
		require.NoError(t, b.s.ChannelUpdate(b.ctx, *c))
		got, err := b.s.ChannelGet(b.ctx, "upd")
		require.NoError(t, err)
		require.Equal(t, "http", got.Type)
		require.JSONEq(t, `{"url":"https://example.com"}`, got.Settings)
		require.False(t, got.Enabled)
		require.Equal(t, "node-b", got.Node)
		require.False(t, got.LastUpdate.Before(c.LastUpdate))

		got.Node = ""
		got.Enabled = true
		require.NoError(t, b.s.ChannelUpdate(b.ctx, *got))
		again, err := b.s.ChannelGet(b.ctx, "upd")
		require.NoError(t, err)
		require.Equal(t, "", again.Node)
		require.True(t, again.Enabled)

		// Only the ID names the channel; the Name is not changed.
		require.NoError(t, b.s.ChannelUpdate(b.ctx, store.Channel{ID: c.ID, Type: "simulator", Enabled: true}))
		again, err = b.s.ChannelGet(b.ctx, "upd")
		require.NoError(t, err)
		require.Equal(t, "simulator", again.Type)
		require.JSONEq(t, `{}`, again.Settings)

		got.ID += 1000
		require.ErrorIs(t, b.s.ChannelUpdate(b.ctx, *got), store.ErrNotFound)
	})

	t.Run("Delete", func(t *testing.T) {
		b := r.setup(t)
		c := CreateChannel(t, b.s, "del")
		keep := CreateChannel(t, b.s, "keep")
		require.NoError(t, b.s.ChannelDelete(b.ctx, c.ID))
		_, err := b.s.ChannelGet(b.ctx, "del")
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorIs(t, b.s.ChannelDelete(b.ctx, c.ID), store.ErrNotFound)
		list, err := b.s.ChannelList(b.ctx)
		require.NoError(t, err)
		require.Equal(t, []*store.Channel{keep}, list)

		// The name can be used again; messages of the old channel stay.
		CreateChannel(t, b.s, "del")
	})

	t.Run("SetStatus", func(t *testing.T) {
		b := r.setup(t)
		c := CreateChannel(t, b.s, "st")
		require.NoError(t, b.s.ChannelSetStatus(b.ctx, store.ChannelStatusParams{ID: c.ID, Node: "node-a", Status: "bound", Details: "bound to smsc:2775"}))
		got, err := b.s.ChannelGet(b.ctx, "st")
		require.NoError(t, err)
		require.Equal(t, "bound", got.Status)
		require.Equal(t, "bound to smsc:2775", got.StatusDetails)
		require.Equal(t, "node-a", got.StatusNode)
		requireRecent(t, got.StatusTime, "StatusTime")
		require.Equal(t, c.Type, got.Type, "configuration is untouched")

		require.NoError(t, b.s.ChannelSetStatus(b.ctx, store.ChannelStatusParams{ID: c.ID, Node: "node-a", Status: "stopped"}))
		got, err = b.s.ChannelGet(b.ctx, "st")
		require.NoError(t, err)
		require.Equal(t, "stopped", got.Status)
		require.Equal(t, "", got.StatusDetails)

		require.ErrorIs(t, b.s.ChannelSetStatus(b.ctx, store.ChannelStatusParams{ID: c.ID + 1000, Status: "running"}), store.ErrNotFound)
	})
}

func (r *runner) testNode(t *testing.T) {
	t.Run("Heartbeat", func(t *testing.T) {
		b := r.setup(t)
		require.NoError(t, b.s.NodeHeartbeat(b.ctx, store.NodeParams{Name: "b-node", Host: "host-b", PID: 42, Version: "1.0.0"}))
		require.NoError(t, b.s.NodeHeartbeat(b.ctx, store.NodeParams{Name: "a-node", Host: "host-a", PID: 7, Version: "1.0.0"}))
		nodes, err := b.s.NodeList(b.ctx)
		require.NoError(t, err)
		require.Len(t, nodes, 2)
		require.Equal(t, "a-node", nodes[0].Name, "ordered by Name")
		require.Equal(t, "b-node", nodes[1].Name)
		require.Equal(t, "host-b", nodes[1].Host)
		require.Equal(t, 42, nodes[1].PID)
		require.Equal(t, "1.0.0", nodes[1].Version)
		requireRecent(t, nodes[1].StartedTime, "StartedTime")
		requireRecent(t, nodes[1].HeartbeatTime, "HeartbeatTime")
		first := nodes[1]

		require.NoError(t, b.s.NodeHeartbeat(b.ctx, store.NodeParams{Name: "b-node", Host: "host-b", PID: 43, Version: "1.0.1"}))
		nodes, err = b.s.NodeList(b.ctx)
		require.NoError(t, err)
		require.Len(t, nodes, 2)
		require.Equal(t, 43, nodes[1].PID)
		require.Equal(t, "1.0.1", nodes[1].Version)
		require.True(t, first.StartedTime.Equal(nodes[1].StartedTime), "StartedTime is kept")
		require.False(t, nodes[1].HeartbeatTime.Before(first.HeartbeatTime))

		require.NoError(t, b.s.NodeDelete(b.ctx, "a-node"))
		nodes, err = b.s.NodeList(b.ctx)
		require.NoError(t, err)
		require.Len(t, nodes, 1)
		require.Equal(t, "b-node", nodes[0].Name)
	})
	t.Run("DeleteStale", func(t *testing.T) {
		b := r.setup(t)
		require.NoError(t, b.s.NodeHeartbeat(b.ctx, store.NodeParams{Name: "n1"}))
		require.NoError(t, b.s.NodeHeartbeat(b.ctx, store.NodeParams{Name: "n2"}))
		n, err := b.s.NodeDeleteStale(b.ctx, time.Hour)
		require.NoError(t, err)
		require.Zero(t, n)
		n, err = b.s.NodeDeleteStale(b.ctx, -time.Second)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		nodes, err := b.s.NodeList(b.ctx)
		require.NoError(t, err)
		require.Empty(t, nodes)
	})
}

func (r *runner) testLeader(t *testing.T) {
	t.Run("ElectExtendResign", func(t *testing.T) {
		b := r.setup(t)
		leader, err := b.s.LeaderGet(b.ctx, "default")
		require.NoError(t, err)
		require.Equal(t, "", leader)

		ok, err := b.s.LeaderElect(b.ctx, store.LeaderParams{Name: "default", Node: "a", TTL: time.Minute})
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = b.s.LeaderElect(b.ctx, store.LeaderParams{Name: "default", Node: "b", TTL: time.Minute})
		require.NoError(t, err)
		require.False(t, ok, "a live leader keeps its place")
		ok, err = b.s.LeaderElect(b.ctx, store.LeaderParams{Name: "default", Node: "a", TTL: time.Minute})
		require.NoError(t, err)
		require.True(t, ok, "the leader extends its lease")
		leader, err = b.s.LeaderGet(b.ctx, "default")
		require.NoError(t, err)
		require.Equal(t, "a", leader)

		require.NoError(t, b.s.LeaderResign(b.ctx, store.LeaderParams{Name: "default", Node: "b"}))
		leader, err = b.s.LeaderGet(b.ctx, "default")
		require.NoError(t, err)
		require.Equal(t, "a", leader, "only the leader can resign")

		require.NoError(t, b.s.LeaderResign(b.ctx, store.LeaderParams{Name: "default", Node: "a"}))
		leader, err = b.s.LeaderGet(b.ctx, "default")
		require.NoError(t, err)
		require.Equal(t, "", leader)
		ok, err = b.s.LeaderElect(b.ctx, store.LeaderParams{Name: "default", Node: "b", TTL: time.Minute})
		require.NoError(t, err)
		require.True(t, ok, "after a resignation another node is elected")
	})
	t.Run("StealAfterExpiry", func(t *testing.T) {
		b := r.setup(t)
		_, err := b.s.LeaderElect(b.ctx, store.LeaderParams{Name: "default", Node: "a", TTL: -time.Second})
		require.NoError(t, err)
		leader, err := b.s.LeaderGet(b.ctx, "default")
		require.NoError(t, err)
		require.Equal(t, "", leader, "an expired lease has no leader")
		ok, err := b.s.LeaderElect(b.ctx, store.LeaderParams{Name: "default", Node: "b", TTL: time.Minute})
		require.NoError(t, err)
		require.True(t, ok)
		leader, err = b.s.LeaderGet(b.ctx, "default")
		require.NoError(t, err)
		require.Equal(t, "b", leader)
		ok, err = b.s.LeaderElect(b.ctx, store.LeaderParams{Name: "default", Node: "a", TTL: time.Minute})
		require.NoError(t, err)
		require.False(t, ok)
	})
	t.Run("NamesAreIndependent", func(t *testing.T) {
		b := r.setup(t)
		ok, err := b.s.LeaderElect(b.ctx, store.LeaderParams{Name: "default", Node: "a", TTL: time.Minute})
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = b.s.LeaderElect(b.ctx, store.LeaderParams{Name: "archiver", Node: "b", TTL: time.Minute})
		require.NoError(t, err)
		require.True(t, ok)
		leader, err := b.s.LeaderGet(b.ctx, "archiver")
		require.NoError(t, err)
		require.Equal(t, "b", leader)
	})
}

func (r *runner) testOption(t *testing.T) {
	t.Run("SetGet", func(t *testing.T) {
		b := r.setup(t)
		_, err := b.s.OptionGet(b.ctx, "missing")
		require.ErrorIs(t, err, store.ErrNotFound)
		require.NoError(t, b.s.OptionSet(b.ctx, "archive.days", "30"))
		v, err := b.s.OptionGet(b.ctx, "archive.days")
		require.NoError(t, err)
		require.Equal(t, "30", v)
		require.NoError(t, b.s.OptionSet(b.ctx, "archive.days", "90"))
		v, err = b.s.OptionGet(b.ctx, "archive.days")
		require.NoError(t, err)
		require.Equal(t, "90", v)
		require.NoError(t, b.s.OptionSet(b.ctx, "empty", ""))
		v, err = b.s.OptionGet(b.ctx, "empty")
		require.NoError(t, err)
		require.Equal(t, "", v)
	})
}

func (r *runner) testAPIKey(t *testing.T) {
	const (
		hash1 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
		hash2 = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"
	)
	t.Run("CreateListByHash", func(t *testing.T) {
		b := r.setup(t)
		k, err := b.s.APIKeyCreate(b.ctx, store.APIKey{Name: "crm", Prefix: "hk_abc", Hash: hash1, Scopes: "send,read", AllowedIPs: "10.0.0.0/8", RateLimit: 50})
		require.NoError(t, err)
		require.NotZero(t, k.ID)
		requireRecent(t, k.CreatedTime, "CreatedTime")
		require.True(t, k.RevokedTime.IsZero())
		require.Equal(t, "crm", k.Name)
		require.Equal(t, "hk_abc", k.Prefix)
		require.Equal(t, hash1, k.Hash)
		require.Equal(t, "send,read", k.Scopes)
		require.Equal(t, "10.0.0.0/8", k.AllowedIPs)
		require.Equal(t, 50, k.RateLimit)

		k2, err := b.s.APIKeyCreate(b.ctx, store.APIKey{Name: "ops", Prefix: "hk_def", Hash: hash2})
		require.NoError(t, err)
		require.Equal(t, "", k2.Scopes)
		require.Zero(t, k2.RateLimit)

		got, err := b.s.APIKeyByHash(b.ctx, hash1)
		require.NoError(t, err)
		require.Equal(t, k, got)
		_, err = b.s.APIKeyByHash(b.ctx, "0000")
		require.ErrorIs(t, err, store.ErrNotFound)

		list, err := b.s.APIKeyList(b.ctx)
		require.NoError(t, err)
		require.Equal(t, []*store.APIKey{k, k2}, list)
	})
	t.Run("Duplicates", func(t *testing.T) {
		b := r.setup(t)
		_, err := b.s.APIKeyCreate(b.ctx, store.APIKey{Name: "crm", Prefix: "hk_a", Hash: hash1})
		require.NoError(t, err)
		_, err = b.s.APIKeyCreate(b.ctx, store.APIKey{Name: "crm", Prefix: "hk_b", Hash: hash2})
		require.ErrorIs(t, err, store.ErrConflict, "same name")
		_, err = b.s.APIKeyCreate(b.ctx, store.APIKey{Name: "other", Prefix: "hk_a", Hash: hash1})
		require.ErrorIs(t, err, store.ErrConflict, "same hash")
	})
	t.Run("Revoke", func(t *testing.T) {
		b := r.setup(t)
		k1, err := b.s.APIKeyCreate(b.ctx, store.APIKey{Name: "crm", Prefix: "hk_a", Hash: hash1})
		require.NoError(t, err)
		k2, err := b.s.APIKeyCreate(b.ctx, store.APIKey{Name: "ops", Prefix: "hk_b", Hash: hash2})
		require.NoError(t, err)

		require.NoError(t, b.s.APIKeyRevoke(b.ctx, "crm"))
		got, err := b.s.APIKeyByHash(b.ctx, hash1)
		require.NoError(t, err)
		requireRecent(t, got.RevokedTime, "RevokedTime")

		require.NoError(t, b.s.APIKeyRevoke(b.ctx, strconv.FormatInt(k2.ID, 10)), "by ID")
		got, err = b.s.APIKeyByHash(b.ctx, hash2)
		require.NoError(t, err)
		require.False(t, got.RevokedTime.IsZero())

		require.ErrorIs(t, b.s.APIKeyRevoke(b.ctx, "nobody"), store.ErrNotFound)
		require.ErrorIs(t, b.s.APIKeyRevoke(b.ctx, strconv.FormatInt(k1.ID+k2.ID+100, 10)), store.ErrNotFound)

		list, err := b.s.APIKeyList(b.ctx)
		require.NoError(t, err)
		require.Len(t, list, 2, "revoked keys are listed")
	})
	t.Run("NameBeforeID", func(t *testing.T) {
		b := r.setup(t)
		k1, err := b.s.APIKeyCreate(b.ctx, store.APIKey{Name: "first", Prefix: "hk_a", Hash: hash1})
		require.NoError(t, err)
		// A key whose name is the other key's ID: the name wins.
		_, err = b.s.APIKeyCreate(b.ctx, store.APIKey{Name: strconv.FormatInt(k1.ID, 10), Prefix: "hk_b", Hash: hash2})
		require.NoError(t, err)
		require.NoError(t, b.s.APIKeyRevoke(b.ctx, strconv.FormatInt(k1.ID, 10)))
		got, err := b.s.APIKeyByHash(b.ctx, hash1)
		require.NoError(t, err)
		require.True(t, got.RevokedTime.IsZero(), "nameOrID is tried as a name first")
		got, err = b.s.APIKeyByHash(b.ctx, hash2)
		require.NoError(t, err)
		require.False(t, got.RevokedTime.IsZero())
	})
}
