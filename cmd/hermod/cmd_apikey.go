package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"

	"github.com/hermod-sms/hermod/api"
	"github.com/hermod-sms/hermod/api/client"
	"github.com/hermod-sms/hermod/store"
)

// defaultKeyScopes are the scopes of a key created without --scopes: what
// an application that sends and follows its messages needs.
const defaultKeyScopes = "send,read"

func (a *app) cmdAPIKeyCreate(ctx context.Context, args []string) error {
	const usage = "hermod apikey create NAME [--scopes send,read,admin] [--allow-ip CIDR,...] [--rate N]"
	fs := a.newFlagSet("apikey create")
	scopes := fs.String("scopes", defaultKeyScopes, "comma separated: send (submit, cancel, reprocess), read (messages, channels, events), admin (everything)")
	allowIP := fs.String("allow-ip", "", "only from these addresses or CIDR prefixes, comma separated (default: any)")
	rate := fs.Int("rate", 0, "requests per second for this key (0: the server's default, api.rateLimit)")
	pos, err := a.parse(fs, usage, args, 1, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	if *rate < 0 {
		return usagef("--rate %d: give requests per second, or 0 for the server's default", *rate)
	}
	var (
		key string
		row client.APIKey
	)
	c, err := a.remote()
	if err != nil {
		return err
	}
	if c != nil {
		created, err := c.CreateAPIKey(ctx, client.NewAPIKey{Name: name, Scopes: splitList(*scopes), AllowedIPs: splitList(*allowIP), RateLimit: *rate})
		switch {
		case client.StatusOf(err) == http.StatusConflict:
			return keyExistsError(name)
		case client.StatusOf(err) == http.StatusBadRequest:
			return usagef("%v", err)
		case err != nil:
			return a.remoteError(fmt.Sprintf("create API key %q", name), err)
		}
		key, row = created.Key, created.APIKey
	} else {
		s, err := a.openStore(ctx, true)
		if err != nil {
			return err
		}
		defer s.Close()
		k, secret, err := api.CreateKey(ctx, s, name, splitList(*scopes), api.KeyOptions{AllowedIPs: splitList(*allowIP), RateLimit: *rate})
		switch {
		case errors.Is(err, store.ErrConflict):
			return keyExistsError(name)
		case errors.Is(err, store.ErrInvalid):
			return usagef("%v", err)
		case err != nil:
			return err
		}
		key, row = secret, keyView(k)
	}
	// The key alone on standard output, so that KEY=$(hermod apikey
	// create ...) works; what it is on standard error.
	fmt.Fprintln(a.stdout, key)
	fmt.Fprintf(a.stderr, "API key %s created (ID %d, prefix %s, scopes %s); it is shown only this once: keep it secret and send it as \"Authorization: Bearer KEY\" (HERMOD_API_KEY for hermod --server)\n",
		row.Name, row.ID, row.Prefix, strings.Join(row.Scopes, ","))
	return nil
}

func keyExistsError(name string) error {
	return fmt.Errorf("an API key named %q exists already: choose another name (hermod apikey list shows them; a revoked key keeps its name)", name)
}

func (a *app) cmdAPIKeyList(ctx context.Context, args []string) error {
	const usage = "hermod apikey list [--json]"
	fs := a.newFlagSet("apikey list")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if _, err := a.parse(fs, usage, args, 0, 0); err != nil {
		return err
	}
	var keys []client.APIKey
	c, err := a.remote()
	if err != nil {
		return err
	}
	if c != nil {
		if keys, err = c.APIKeys(ctx); err != nil {
			return a.remoteError("list API keys", err)
		}
	} else {
		s, err := a.openStore(ctx, true)
		if err != nil {
			return err
		}
		defer s.Close()
		rows, err := s.APIKeyList(ctx)
		if err != nil {
			return fmt.Errorf("list API keys: %w", err)
		}
		for _, k := range rows {
			keys = append(keys, keyView(k))
		}
	}
	if *asJSON {
		if keys == nil {
			keys = []client.APIKey{}
		}
		return writeJSON(a, keys)
	}
	if len(keys) == 0 {
		fmt.Fprintln(a.stderr, "(no API keys: create one with hermod apikey create NAME --scopes send,read)")
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tPREFIX\tSCOPES\tALLOWED IPS\tRATE\tCREATED\tREVOKED")
	for _, k := range keys {
		rate := "default"
		if k.RateLimit > 0 {
			rate = fmt.Sprintf("%d/s", k.RateLimit)
		}
		ips := strings.Join(k.AllowedIPs, ",")
		if ips == "" {
			ips = "any"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Prefix, strings.Join(k.Scopes, ","), ips, rate,
			fmtTime(k.CreatedTime), fmtTime(k.RevokedTime))
	}
	return tw.Flush()
}

func (a *app) cmdAPIKeyRevoke(ctx context.Context, args []string) error {
	const usage = "hermod apikey revoke NAME|ID"
	fs := a.newFlagSet("apikey revoke")
	pos, err := a.parse(fs, usage, args, 1, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	notFound := fmt.Errorf("there is no API key %q: hermod apikey list shows the keys' names and IDs", name)
	c, err := a.remote()
	if err != nil {
		return err
	}
	if c != nil {
		err := c.RevokeAPIKey(ctx, name)
		if client.StatusOf(err) == http.StatusNotFound {
			return notFound
		}
		if err != nil {
			return a.remoteError(fmt.Sprintf("revoke API key %q", name), err)
		}
		fmt.Fprintf(a.stdout, "API key %s revoked\n", name)
		return nil
	}
	s, err := a.openStore(ctx, true)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := api.RevokeKey(ctx, s, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return notFound
		}
		return err
	}
	fmt.Fprintf(a.stdout, "API key %s revoked; a running hermod refuses it within api.keyCacheTTL (5s by default)\n", name)
	return nil
}

// keyView is what is shown of a stored key: never its hash.
func keyView(k *store.APIKey) client.APIKey {
	return client.APIKey{
		ID: k.ID, Name: k.Name, Prefix: k.Prefix, Scopes: splitList(k.Scopes), AllowedIPs: splitList(k.AllowedIPs),
		RateLimit: k.RateLimit, CreatedTime: k.CreatedTime, RevokedTime: k.RevokedTime,
	}
}
