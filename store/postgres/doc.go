// Package postgres is Hermod's PostgreSQL store: store.Store, store.Migrator
// and store.Notifier over pgx v5 (pgxpool, no database/sql on the hot path).
//
// Every object lives in one schema (hermod by default, Options.Schema). The
// migrations under sql/postgres and the repeatable scripts under
// procedures/postgres use unqualified names and run with search_path set to
// that schema; the pool's connections set the same search_path, and the
// functions carry SET search_path FROM CURRENT, so that
// SELECT hermod.SendMessage('+31612345678', 'hello') works from any session.
//
// Queue work is claimed with FOR UPDATE SKIP LOCKED, so several nodes can
// route and claim at the same time. Batch operations send their whole batch
// as arrays in one statement (unnest), and operations made of several
// statements are pipelined in one round trip and one transaction.
//
// Inserting into Messages fires a statement-level trigger that runs
// pg_notify('hermod_messages', <schema>); Store.Notifications listens for it
// on a dedicated connection.
package postgres
