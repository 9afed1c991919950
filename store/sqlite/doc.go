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
// Writes are durable (synchronous=FULL): a message is on disk when the call
// that wrote it returns. Throughput comes from batching: the engine hands
// the store hundreds of rows per call and each call is one transaction with
// its statements prepared once.
//
// Times are stored as TEXT in UTC, 'YYYY-MM-DD HH:MM:SS.SSS', which is what
// strftime('%Y-%m-%d %H:%M:%f','now') gives, so that they compare correctly
// as text in the sqlite3 shell as well as here.
package sqlite
