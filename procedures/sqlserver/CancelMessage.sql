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
-- ALTER. The status is read under an update lock in the procedure's own
-- transaction and the UPDATE follows only for a cancellable message, so the
-- outcome needs neither @@ROWCOUNT (which a user's trigger on
-- hermod.Messages could disturb) nor OUTPUT ... INTO a table variable
-- (Babelfish fails a procedure's UPDATE ... OUTPUT INTO @table when it runs
-- again in a session after its plan was invalidated, e.g. by a trigger
-- created on the table: "internal error occurred", "missing FROM-clause
-- entry"). Called inside the caller's transaction, it joins it.
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
    SET XACT_ABORT ON;

    BEGIN TRANSACTION;
    SELECT @status = Status FROM hermod.Messages WITH (UPDLOCK, ROWLOCK, READCOMMITTEDLOCK) WHERE ID = @ID;
    IF @status IN (N'SCHEDULED', N'QUEUED')
    BEGIN
        UPDATE hermod.Messages
        SET Status = N'CANCELLED',
            TriggerStatus = N'',
            StatusDetails = N'cancelled by hermod.CancelMessage',
            LastUpdate = @now,
            Trace = CONCAT(Trace, CONVERT(NVARCHAR(19), @now, 120), N'.',
                RIGHT(CONCAT(N'00', DATEPART(MILLISECOND, @now)), 3),
                N' CANCELLED by hermod.CancelMessage (was ', Status, N')', NCHAR(10))
        WHERE ID = @ID;
    END;
    COMMIT TRANSACTION;

    IF @status IN (N'SCHEDULED', N'QUEUED')
        RETURN 0;
    IF @status IS NULL
    BEGIN
        SET @error = CONCAT(N'hermod.CancelMessage: there is no message with ID ', @ID);
        THROW 50004, @error, 1;
    END;

    SET @error = CONCAT(N'hermod.CancelMessage: message ', @ID, N' is ', @status,
        N': only SCHEDULED or QUEUED messages can be cancelled');
    THROW 50009, @error, 1;
END;
