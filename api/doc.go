// Package api is Hermod's HTTP API: the REST endpoints under /api/v1 (send,
// list, read, cancel and reprocess messages; channels; API keys; a
// server-sent-events stream), /healthz and /readyz, the OpenAPI 3.1
// document at /api/openapi.json, and the compatibility endpoints of Auron
// SMS Server (/{channel}/messagedb/...) and Kannel (/cgi-bin/sendsms).
//
// The API holds no SQL: every handler is a thin layer over store.Store, and
// a success is answered only after the store has committed. Errors are RFC
// 9457 problem details naming the field and the fix; a user's mistake is
// never a 500. docs/api.md is the user's guide, and a test runs each of its
// curl examples against a live server.
//
// Wiring it into a command:
//
//	srv, err := api.NewServer(api.Config{
//		Store:       st,         // store.Store (and store.Migrator for /readyz)
//		Engine:      eng,        // anything with Nudge(); optional
//		Events:      events,     // an api.EventSource; optional, see Broadcaster
//		CORSOrigins: cfg.CORS,
//		Version:     version,
//	})
//	err = api.Serve(ctx, api.ServeConfig{Addr: ":8080", CertFile: c, KeyFile: k}, srv)
//
// Small sends share transactions (group commit): concurrent POSTs of up to
// 100 messages are queued, and one goroutine writes everything queued with
// one store.MessageInsert and then answers each request, so that a burst of
// single messages costs a few disk flushes instead of one each. A lone
// request is written at once; two messages with the same ClientReference
// never share a transaction; a group the store refuses as invalid is
// written request by request. docs/benchmarks.md has the figures.
//
// API keys are made with CreateKey (shown once, stored as a SHA-256 hash)
// and revoked with RevokeKey; `hermod apikey create|list|revoke` calls them.
package api
