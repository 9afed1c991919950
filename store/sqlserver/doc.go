// Package sqlserver is Hermod's store on Microsoft SQL Server 2016 and later,
// Azure SQL Database, Azure SQL Managed Instance and Babelfish for
// PostgreSQL: the primary production backend.
//
// Open takes a go-mssqldb URL:
//
//	sqlserver://hermod:secret@db.example.com?database=sms
//	sqlserver://hermod:secret@db.example.com/SQLEXPRESS?database=sms
//	azuresql://myserver.database.windows.net?database=sms&fedauth=ActiveDirectoryDefault
//
// An azuresql:// URL authenticates with Microsoft Entra ID through
// go-mssqldb's azuread connector; the fedauth parameter names the method
// (ActiveDirectoryDefault, ActiveDirectoryManagedIdentity,
// ActiveDirectoryServicePrincipal, ...).
//
// Every object lives in the schema hermod. The versioned migrations
// (github.com/hermod-sms/hermod/sql, folder sqlserver) are applied through
// golang-migrate, which records the version in hermod.SchemaMigrations; then
// the repeatable scripts (github.com/hermod-sms/hermod/procedures, folder
// sqlserver: hermod.SendMessage, hermod.CancelMessage, ...) are applied batch
// by batch, split on GO lines the way sqlcmd splits them.
//
// All T-SQL is portable to SQL Server, Azure SQL and Babelfish: no MERGE, no
// CREATE OR ALTER, no WAITFOR, no UPDATE through a CTE or derived table. Work
// is claimed in one statement,
//
//	UPDATE hermod.Messages SET Status = N'SENDING', ...
//	OUTPUT inserted.ID INTO @claimed
//	WHERE hermod.Messages.ID IN (SELECT TOP (@n) ID FROM hermod.Messages
//	               WITH (UPDLOCK, READPAST, ROWLOCK, READCOMMITTEDLOCK)
//	               WHERE Status = N'QUEUED' AND ChannelID = @channel ...
//	               ORDER BY Priority DESC, ID)
//
// which skips rows other nodes hold (Babelfish waits instead: only speed
// depends on skipping), reads with locks even under read-committed snapshot
// (the Azure SQL default), and stays far below the 5,000 locks at which SQL
// Server escalates to a table lock. Results of data changes go through
// OUTPUT ... INTO a table variable rather than straight to the client,
// because SQL Server refuses a bare OUTPUT clause on a table that has
// triggers, and users put their business rules into triggers on
// hermod.Messages.
//
// Parameters match the column types so that indexes are used: strings go as
// NVARCHAR (go-mssqldb's default for Go strings) and instants as DATETIME2
// (civil.DateTime), not as the DATETIMEOFFSET go-mssqldb uses for time.Time.
// NULLs are typed (sql.NullString, sql.NullInt32, sql.NullInt64,
// mssql.NullDateTime), never a Go nil: SQL Server then keeps one plan per
// statement, and Babelfish refuses untyped NULLs. "Now" is always
// SYSUTCDATETIME() on the server. Columns are read by position, never by
// name, because Babelfish may return names in lower case.
//
// # SQL Server, Azure SQL and Babelfish
//
// Open reads what the server is (Store.Server: SERVERPROPERTY('babelfish'),
// @@VERSION, EngineEdition). The T-SQL is the same on all of them; what
// keeps it portable, with SQL Server's semantics:
//
//   - Every UPDATE or DELETE with OUTPUT names its table itself, without an
//     alias and FROM (columns as hermod.Messages.Col): Babelfish 4.3 turns
//     UPDATE m ... OUTPUT ... FROM hermod.Messages AS m into a join of the
//     table with itself without a condition, quadratic in the table's size
//     (routing 1,000 rows of a 4,000-row table: 11 s with the alias, 21 ms
//     without, see docs/benchmarks.md).
//   - An UPDATE that takes its values from a staging table variable reads
//     them through correlated subqueries on the table variable's key, and
//     checks a row's existence elsewhere with EXISTS, rather than joining:
//     Babelfish cannot combine OUTPUT with a SET that reads a joined table.
//     Each statement still changes its rows in one statement under the same
//     row locks.
//   - Trace stamps are built from CONVERT style 120 and DATEPART(MILLISECOND)
//     (Babelfish's style 121 drops trailing zeros), and a result set is read
//     to its end before the next one (Babelfish loses the next one
//     otherwise).
//   - Lists of rows are padded to a power of two (see bucket): SQL Server
//     caches one plan per bucket instead of one per count, and Babelfish,
//     which compiles every new statement text once per session (up to a
//     second), stops compiling almost every batch.
//   - The procedures are callable both as RPC and with EXEC in a batch;
//     Babelfish does not return output parameters of an EXEC inside a
//     parameterised batch (sp_executesql), which SQL Server does.
//   - On Babelfish READPAST waits instead of skipping a locked row: claims
//     stay correct, concurrent claimers serialise more. A transaction
//     that Babelfish fails with "missing FROM-clause entry for table """
//     (the first run of a cached UPDATE ... OUTPUT INTO after a trigger or
//     index changed the table) runs again, as a deadlock victim does.
//   - The repeatable scripts are applied only when their checksum (kept in
//     hermod.Options as hermod.procedures.checksum) changed or an object is
//     missing; the schema version is read directly, golang-migrate runs only
//     when it is behind.
package sqlserver
