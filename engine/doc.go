// Package engine is Hermod's service core: it moves messages through the
// database and drives the channels.
//
// An Engine is a set of small services with one shape (Start, Stop, and
// test signals), each doing one job against the store.Store interface:
//
//   - heartbeat: keeps this node's row in Nodes fresh, deletes it on stop;
//   - elector: holds the "default" leadership lease (Store.LeaderElect) so
//     that singleton work runs on one node of several;
//   - router (every node): moves due SCHEDULED messages to QUEUED on a
//     channel, or to NOCHANNEL or EXPIRED (Store.MessageRoute);
//   - supervisor: reads the Channels table, starts the enabled channels this
//     node may run, restarts one that fails with backoff, stops removed or
//     disabled ones, and publishes their state (Store.ChannelSetStatus); a
//     channel whose settings say "process": "child" runs in a child process
//     built by Config.ChildCommand, which it watches, restarts and stops
//     the same way;
//   - producer (per running channel): workers that claim QUEUED messages
//     under a lease (Store.MessageClaim) and call Channel.Send outside any
//     transaction;
//   - completer: collects send results and writes them in batches, one
//     MessageMarkSent, MessageMarkRetry and MessageMarkFailed call per tick;
//   - report batcher: applies the delivery reports of every channel in
//     batches (Store.MessageReportApply);
//   - rescuer (every node): returns SENDING messages whose lease expired to
//     QUEUED (Store.MessageRescue): delivery is at least once;
//   - sweeper (leader only): NOREPORT and EXPIRED (Store.MessageSweep) and
//     stale nodes (Store.NodeDeleteStale).
//
// The database is the only bus between nodes. Wake-ups come from the store
// when it implements store.Notifier (PostgreSQL LISTEN/NOTIFY), from Nudge
// when Hermod itself inserts, and otherwise from adaptive polling: fast
// while there is work, backing off to Config.PollMax when idle.
//
// A database outage stops no service: a failing store call is logged once
// per incident ("database unavailable", then "database reachable again"
// with the outage's duration), retried with backoff, and work resumes by
// itself. Send results are kept in memory until written; nothing is
// dropped. A channel that panics, hangs or fails never takes down the
// engine or another channel: every call into a channel is guarded, a Send
// that outlives Config.SendTimeout counts as an unknown outcome (the
// messages are retried), and the channel is restarted with backoff.
package engine
