package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/hermod-sms/hermod/api/client"
	"github.com/hermod-sms/hermod/channels"
	"github.com/hermod-sms/hermod/engine"
	"github.com/hermod-sms/hermod/store"
)

func toClientChannel(c *store.Channel) client.Channel {
	out := client.Channel{
		ID: c.ID, Name: c.Name, Type: c.Type, Enabled: c.Enabled, Node: c.Node, Status: c.Status,
		StatusDetails: c.StatusDetails, StatusNode: c.StatusNode, StatusTime: c.StatusTime,
		CreatedTime: c.CreatedTime, LastUpdate: c.LastUpdate,
	}
	if json.Valid([]byte(c.Settings)) {
		out.Settings = client.RawJSON(c.Settings)
	}
	return out
}

// maskedSecret replaces a secret setting's value for callers without the
// admin scope.
const maskedSecret = "xxxxx"

// secretSetting matches the names of settings that hold a secret (an SMPP
// bind password, an HTTP gateway's API key or token).
var secretSetting = regexp.MustCompile(`(?i)pass|secret|token|apikey|api_key|credential`)

// channelView is c as the caller of r may see it: a key without the admin
// scope (which alone can change channels) gets the values of secret
// settings masked, so that a read key handed to a dashboard does not
// carry the SMSC's password.
func channelView(r *http.Request, c *store.Channel) client.Channel {
	out := toClientChannel(c)
	if p, _ := r.Context().Value(principalKey{}).(*principal); p != nil && slices.Contains(p.scopes, ScopeAdmin) {
		return out
	}
	out.Settings = maskSecrets(out.Settings)
	return out
}

// maskSecrets returns settings with the values of keys that name a secret
// replaced by maskedSecret, in nested objects too. Settings that are not
// valid JSON are dropped rather than risk showing a secret.
func maskSecrets(settings client.RawJSON) client.RawJSON {
	if len(settings) == 0 {
		return settings
	}
	out, ok := maskValue(json.RawMessage(settings))
	if !ok {
		return nil
	}
	return client.RawJSON(out)
}

// maskValue masks the secrets in one JSON value; it reports false when v
// is not valid JSON.
func maskValue(v json.RawMessage) (json.RawMessage, bool) {
	switch t := bytes.TrimSpace(v); {
	case len(t) > 0 && t[0] == '{':
		var m map[string]json.RawMessage
		if err := json.Unmarshal(t, &m); err != nil {
			return nil, false
		}
		for k, e := range m {
			if secretSetting.MatchString(k) && string(e) != `""` && string(e) != "null" {
				m[k] = json.RawMessage(`"` + maskedSecret + `"`)
				continue
			}
			masked, ok := maskValue(e)
			if !ok {
				return nil, false
			}
			m[k] = masked
		}
		out, err := json.Marshal(m)
		return out, err == nil
	case len(t) > 0 && t[0] == '[':
		var a []json.RawMessage
		if err := json.Unmarshal(t, &a); err != nil {
			return nil, false
		}
		for i, e := range a {
			masked, ok := maskValue(e)
			if !ok {
				return nil, false
			}
			a[i] = masked
		}
		out, err := json.Marshal(a)
		return out, err == nil
	default:
		return v, json.Valid(t)
	}
}

func (s *Server) handleChannelList(w http.ResponseWriter, r *http.Request) *problem {
	list, err := s.store.ChannelList(r.Context())
	if err != nil {
		return storeProblem(err, "list channels")
	}
	out := client.ChannelList{Channels: make([]client.Channel, 0, len(list))}
	for _, c := range list {
		out.Channels = append(out.Channels, channelView(r, c))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) channel(r *http.Request) (*store.Channel, *problem) {
	name := r.PathValue("name")
	c, err := s.store.ChannelGet(r.Context(), name)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalid):
		return nil, notFound("there is no channel named %q: GET /api/v1/channels lists them", name)
	case err != nil:
		return nil, storeProblem(err, "read channel "+name)
	}
	return c, nil
}

func (s *Server) handleChannelGet(w http.ResponseWriter, r *http.Request) *problem {
	c, p := s.channel(r)
	if p != nil {
		return p
	}
	writeJSON(w, http.StatusOK, channelView(r, c))
	return nil
}

// checkChannel validates a channel's type and settings by building it with
// the registered constructor (which names a wrong setting) without starting it.
func (s *Server) checkChannel(fe *fieldErrors, name, typ string, settings []byte) {
	if typ == "" {
		fe.add("Type", "is empty: give a channel type (%s)", strings.Join(channels.Types(), ", "))
		return
	}
	if len(settings) > 0 {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(settings, &obj); err != nil || obj == nil {
			fe.add("Settings", "must be a JSON object with the settings of a %s channel", typ)
			return
		}
	}
	// The engine's own key ("process": inline or child) is not the channel
	// type's: check it, then hand the rest to the type's constructor.
	_, typeSettings, err := engine.SplitChannelSettings(string(settings))
	if err != nil {
		fe.add("Settings", "%v", err)
		return
	}
	if _, err := channels.New(typ, channels.Config{Name: name, Settings: typeSettings, Logger: slog.New(slog.DiscardHandler)}); err != nil {
		if errors.Is(err, channels.ErrUnknownType) {
			fe.add("Type", "%q is not a channel type: use one of %s", typ, strings.Join(channels.Types(), ", "))
			return
		}
		fe.add("Settings", "%v", err)
	}
}

func (s *Server) handleChannelCreate(w http.ResponseWriter, r *http.Request) *problem {
	body, p := readBody(w, r, 1<<20)
	if p != nil {
		return p
	}
	var req client.NewChannel
	if p := decodeJSON(body, &req); p != nil {
		return p
	}
	var fe fieldErrors
	if !validChannelName(req.Name) {
		fe.add("Name", "%q: give 1 to 64 characters of letters, digits, '_', '.' and '-'", req.Name)
	}
	checkText(&fe, "Node", req.Node, 128)
	s.checkChannel(&fe, req.Name, req.Type, req.Settings)
	if p := fe.problem(); p != nil {
		return p
	}
	settings := "{}"
	if len(req.Settings) > 0 {
		settings = string(req.Settings)
	}
	c, err := s.store.ChannelCreate(r.Context(), store.Channel{
		Name: req.Name, Type: req.Type, Settings: settings, Enabled: req.Enabled == nil || *req.Enabled, Node: req.Node,
	})
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			return conflict("a channel named %q exists already: choose another name, or PATCH /api/v1/channels/%s to change it", req.Name, req.Name)
		}
		return storeProblem(err, "create channel "+req.Name)
	}
	s.nudge()
	w.Header().Set("Location", "/api/v1/channels/"+c.Name)
	writeJSON(w, http.StatusCreated, toClientChannel(c))
	return nil
}

func validChannelName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func (s *Server) handleChannelUpdate(w http.ResponseWriter, r *http.Request) *problem {
	c, p := s.channel(r)
	if p != nil {
		return p
	}
	body, p := readBody(w, r, 1<<20)
	if p != nil {
		return p
	}
	var req client.ChannelUpdate
	if p := decodeJSON(body, &req); p != nil {
		return p
	}
	if req.Type != nil {
		c.Type = *req.Type
	}
	if req.Settings != nil {
		c.Settings = string(req.Settings)
	}
	if req.Enabled != nil {
		c.Enabled = *req.Enabled
	}
	if req.Node != nil {
		c.Node = *req.Node
	}
	var fe fieldErrors
	checkText(&fe, "Node", c.Node, 128)
	if req.Type != nil || req.Settings != nil {
		s.checkChannel(&fe, c.Name, c.Type, []byte(c.Settings))
	}
	if p := fe.problem(); p != nil {
		return p
	}
	return s.saveChannel(w, r, c)
}

func (s *Server) saveChannel(w http.ResponseWriter, r *http.Request, c *store.Channel) *problem {
	if err := s.store.ChannelUpdate(r.Context(), *c); err != nil {
		return storeProblem(err, "update channel "+c.Name)
	}
	s.channels.forget()
	s.nudge()
	c2, err := s.store.ChannelGet(r.Context(), c.Name)
	if err != nil {
		return storeProblem(err, "read channel "+c.Name)
	}
	writeJSON(w, http.StatusOK, toClientChannel(c2))
	return nil
}

func (s *Server) handleChannelDelete(w http.ResponseWriter, r *http.Request) *problem {
	c, p := s.channel(r)
	if p != nil {
		return p
	}
	if err := s.store.ChannelDelete(r.Context(), c.ID); err != nil {
		return storeProblem(err, "delete channel "+c.Name)
	}
	s.channels.forget()
	s.nudge()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleChannelStart enables a channel: the node that runs it starts it.
func (s *Server) handleChannelStart(w http.ResponseWriter, r *http.Request) *problem {
	return s.setEnabled(w, r, true)
}

// handleChannelStop disables a channel: the node that runs it stops it.
func (s *Server) handleChannelStop(w http.ResponseWriter, r *http.Request) *problem {
	return s.setEnabled(w, r, false)
}

func (s *Server) setEnabled(w http.ResponseWriter, r *http.Request, on bool) *problem {
	c, p := s.channel(r)
	if p != nil {
		return p
	}
	c.Enabled = on
	return s.saveChannel(w, r, c)
}

func (s *Server) handleKeyList(w http.ResponseWriter, r *http.Request) *problem {
	keys, err := s.store.APIKeyList(r.Context())
	if err != nil {
		return storeProblem(err, "list API keys")
	}
	out := client.APIKeyList{APIKeys: make([]client.APIKey, 0, len(keys))}
	for _, k := range keys {
		out.APIKeys = append(out.APIKeys, toClientKey(k))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func toClientKey(k *store.APIKey) client.APIKey {
	split := func(s string) []string {
		var out []string
		for _, v := range strings.Split(s, ",") {
			if v = strings.TrimSpace(v); v != "" {
				out = append(out, v)
			}
		}
		return out
	}
	return client.APIKey{
		ID: k.ID, Name: k.Name, Prefix: k.Prefix, Scopes: split(k.Scopes), AllowedIPs: split(k.AllowedIPs),
		RateLimit: k.RateLimit, CreatedTime: k.CreatedTime, RevokedTime: k.RevokedTime,
	}
}

func (s *Server) handleKeyCreate(w http.ResponseWriter, r *http.Request) *problem {
	body, p := readBody(w, r, 64<<10)
	if p != nil {
		return p
	}
	var req client.NewAPIKey
	if p := decodeJSON(body, &req); p != nil {
		return p
	}
	row, key, err := CreateKey(r.Context(), s.store, req.Name, req.Scopes, KeyOptions{AllowedIPs: req.AllowedIPs, RateLimit: req.RateLimit})
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			return conflict("an API key named %q exists already: choose another name", req.Name)
		}
		return storeProblem(err, "create the API key")
	}
	s.log.InfoContext(r.Context(), "api: API key created", slog.String("name", row.Name), slog.String("prefix", row.Prefix), slog.String("scopes", row.Scopes))
	writeJSON(w, http.StatusCreated, client.CreatedAPIKey{APIKey: toClientKey(row), Key: key})
	return nil
}

func (s *Server) handleKeyRevoke(w http.ResponseWriter, r *http.Request) *problem {
	name := r.PathValue("name")
	if err := RevokeKey(r.Context(), s.store, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return notFound("there is no API key named %q", name)
		}
		return storeProblem(err, "revoke the API key")
	}
	s.keys.forget()
	s.log.InfoContext(r.Context(), "api: API key revoked", slog.String("name", name))
	w.WriteHeader(http.StatusNoContent)
	return nil
}
