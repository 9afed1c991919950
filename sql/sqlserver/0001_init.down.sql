-- Reverts version 1: drops the repeatable objects (procedures, views,
-- functions) that procedures/sqlserver created in the schema hermod, then the
-- tables. The schema itself stays: Hermod keeps its migrations table
-- (hermod.SchemaMigrations) in it. One batch, no GO lines.

DECLARE @drop NVARCHAR(400);

WHILE 1 = 1
BEGIN
    SET @drop = NULL;

    SELECT TOP (1) @drop = N'DROP '
        + CASE o.type
            WHEN 'P' THEN N'PROCEDURE'
            WHEN 'V' THEN N'VIEW'
            ELSE N'FUNCTION'
          END
        + N' hermod.' + QUOTENAME(o.name)
    FROM sys.objects AS o
    WHERE o.schema_id = SCHEMA_ID(N'hermod')
      AND o.type IN ('P', 'V', 'FN', 'IF', 'TF')
    ORDER BY CASE o.type WHEN 'V' THEN 0 WHEN 'P' THEN 1 ELSE 2 END, o.name;

    IF @drop IS NULL
        BREAK;

    EXEC sp_executesql @drop;
END;

DROP TABLE IF EXISTS hermod.ApiKeys;
DROP TABLE IF EXISTS hermod.Leaders;
DROP TABLE IF EXISTS hermod.Nodes;
DROP TABLE IF EXISTS hermod.Options;
DROP TABLE IF EXISTS hermod.Channels;
DROP TABLE IF EXISTS hermod.PendingReports;
DROP TABLE IF EXISTS hermod.MessageParts;
DROP TABLE IF EXISTS hermod.Messages;
