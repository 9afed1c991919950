// Package procedures embeds the repeatable scripts (stored procedures,
// functions, views, triggers) that are applied after the migrations, one
// folder per server backend. SQLite has none: its store implements the same
// operations as Go-side SQL.
//
// On SQL Server every file is portable T-SQL (SQL Server 2016+, Azure SQL,
// Babelfish): no CREATE OR ALTER; a stub is created with EXEC when the object
// is missing, then ALTERed in a second batch after a GO line. On PostgreSQL
// files use CREATE OR REPLACE. Files are applied in name order.
package procedures
