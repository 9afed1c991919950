-- hermod.CancelMessage: cancel a message that has not been sent yet.
--
--   EXEC hermod.CancelMessage @ID = 42;
--
-- A SCHEDULED or QUEUED message becomes CANCELLED (a Trace line says so and
-- TriggerStatus is reset so that triggers see the new state). Any other
-- status raises error 50009 (it is being sent, or already final); a missing
-- message raises 50004. Returns 0 on success.
--
-- Portable T-SQL (SQL Server 2016+, Azure SQL, Babelfish): no CREATE OR
-- ALTER. The change is read back through OUTPUT ... INTO a table variable, not
-- @@ROWCOUNT, so that a user's trigger on hermod.Messages cannot disturb it.
-- The UPDATE names the table itself, without an alias and FROM: Babelfish
-- fails every later call in the same session ("internal error occurred")
-- when a procedure's UPDATE m ... OUTPUT ... INTO @table FROM ... AS m
-- runs a second time.
-- The procedure keeps the ANSI_NULLS and QUOTED_IDENTIFIER settings of the
-- session that ALTERs it, and a procedure that changes hermod.Messages (which
-- has filtered indexes) fails with error 1934 unless both were ON. sqlcmd
-- starts with QUOTED_IDENTIFIER OFF: set both here, a batch before ALTER.
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
IF OBJECT_ID(N'hermod.CancelMessage', N'P') IS NULL
    EXEC(N'CREATE PROCEDURE hermod.CancelMessage AS RETURN 0');
GO
ALTER PROCEDURE hermod.CancelMessage
    @ID BIGINT
AS
BEGIN
    SET NOCOUNT ON;

    DECLARE @now DATETIME2(3) = SYSUTCDATETIME();
    DECLARE @status NVARCHAR(16);
    DECLARE @error NVARCHAR(2048);
    DECLARE @cancelled TABLE (ID BIGINT NOT NULL);

    UPDATE hermod.Messages
    SET Status = N'CANCELLED',
        TriggerStatus = N'',
        StatusDetails = N'cancelled by hermod.CancelMessage',
        LastUpdate = @now,
        Trace = CONCAT(Trace, CONVERT(NVARCHAR(19), @now, 120), N'.',
             RIGHT(CONCAT(N'00', DATEPART(MILLISECOND, @now)), 3),
            N' CANCELLED by hermod.CancelMessage (was ', Status, N')', NCHAR(10))
    OUTPUT inserted.ID INTO @cancelled (ID)
    WHERE ID = @ID
      AND Status IN (N'SCHEDULED', N'QUEUED');

    IF EXISTS (SELECT 1 FROM @cancelled)
        RETURN 0;

    SELECT @status = m.Status FROM hermod.Messages AS m WHERE m.ID = @ID;
    IF @status IS NULL
    BEGIN
        SET @error = CONCAT(N'hermod.CancelMessage: there is no message with ID ', @ID);
        THROW 50004, @error, 1;
    END;

    SET @error = CONCAT(N'hermod.CancelMessage: message ', @ID, N' is ', @status,
        N': only SCHEDULED or QUEUED messages can be cancelled');
    THROW 50009, @error, 1;
END;
