// Package sqlite is Hermod's embedded store: store.Store on a single SQLite
// file through the pure-Go driver modernc.org/sqlite, the backend that
// `hermod run` uses when nothing else is configured.
//
// SQLite allows one writer at a time. The store therefore keeps two
// connection pools on the same file: a write pool of exactly one connection,
// whose transactions begin IMMEDIATE (so that a transaction never has to
// upgrade a read lock, the cause of SQLITE_BUSY errors that busy_timeout
// cannot retry), and a pool of read-only connections that WAL mode lets read
// while a write is under way. Other programs (the sqlite3 shell, an
// application inserting messages) may share the file: every write
// transaction is kept short and waits up to the busy timeout for the lock.
//
// SQLite has no LISTEN/NOTIFY, so Store.Notifications (store.Notifier)
// watches PRAGMA data_version on a read connection of its own every few
// milliseconds: the value moves when any other connection commits, another
// process's included, and in WAL mode reading it costs no disk I/O and
// takes no lock a writer waits for. A message the sqlite3 shell inserts into an idle queue thus
// wakes the engine within Options.NotifyInterval (10ms) rather than at its
// next idle poll (up to 250ms). The engine's polls themselves read first
// (SELECT EXISTS) and open a write transaction only when there is work, so
// that an idle engine neither takes the write lock nor wakes itself: a
// write transaction that changes nothing does not move data_version.
//
// Writes are durable (synchronous=FULL): a message is on disk when the call
// that wrote it returns. Throughput comes from batching: the engine hands
// the store hundreds of rows per call and each call is one transaction with
// its statements prepared once.
//
// Times are stored as TEXT in UTC, 'YYYY-MM-DD HH:MM:SS.SSS', which is what
// strftime('%Y-%m-%d %H:%M:%f','now') gives, so that they compare correctly
// as text in the sqlite3 shell as well as here.
package sqlite
