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
//	UPDATE m SET Status = N'SENDING', ... OUTPUT inserted.ID INTO @claimed
//	FROM hermod.Messages m
//	WHERE m.ID IN (SELECT TOP (@n) ID FROM hermod.Messages
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
// "Now" is always SYSUTCDATETIME() on the server. Columns are read by
// position, never by name, because Babelfish may return names in lower case.
package sqlserver
