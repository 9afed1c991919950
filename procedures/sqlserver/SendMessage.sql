-- hermod.SendMessage: the in-database API to send a text message.
--
--   DECLARE @id BIGINT;
--   EXEC hermod.SendMessage @ToAddress = N'+31612345678', @Body = N'Hello',
--        @ClientReference = N'order-4711', @ID = @id OUTPUT;
--
-- Inserts one outgoing message (Status SCHEDULED, routed when due) and
-- returns its ID in @ID and as a result set (ID, Existing). A
-- @ClientReference that already exists inserts nothing and returns the
-- existing message's ID with Existing = 1, also when two callers race: the
-- unique index UX_Messages_ClientReference is the guard and its error
-- (2627/2601) is caught. @Channel names a channel (hermod.Channels.Name);
-- NULL lets the router choose. @ScheduledTime is UTC; NULL sends now.
--
-- Errors: 50001 invalid argument (empty @ToAddress, unknown @Channel).
--
-- Portable T-SQL (SQL Server 2016+, Azure SQL, Babelfish): no CREATE OR
-- ALTER, no MERGE. Re-running this script keeps the permissions granted on
-- the procedure.
-- The procedure keeps the ANSI_NULLS and QUOTED_IDENTIFIER settings of the
-- session that ALTERs it, and a procedure that changes hermod.Messages (which
-- has filtered indexes) fails with error 1934 unless both were ON. sqlcmd
-- starts with QUOTED_IDENTIFIER OFF: set both here, a batch before ALTER.
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
IF OBJECT_ID(N'hermod.SendMessage', N'P') IS NULL
    EXEC(N'CREATE PROCEDURE hermod.SendMessage AS RETURN 0');
GO
ALTER PROCEDURE hermod.SendMessage
    @ToAddress NVARCHAR(64),
    @Body NVARCHAR(MAX),
    @FromAddress NVARCHAR(64) = NULL,
    @Channel NVARCHAR(64) = NULL,
    @ScheduledTime DATETIME2(3) = NULL,
    @Priority INT = 0,
    @ClientReference NVARCHAR(100) = NULL,
    @ID BIGINT = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT ON;

    DECLARE @now DATETIME2(3) = SYSUTCDATETIME();
    DECLARE @ChannelID INT = NULL;
    DECLARE @error NVARCHAR(2048);
    DECLARE @inserted TABLE (ID BIGINT NOT NULL);

    SET @ID = NULL;

    IF @ToAddress IS NULL OR LTRIM(RTRIM(@ToAddress)) = N''
    BEGIN
        THROW 50001, N'hermod.SendMessage: @ToAddress is empty: give the recipient''s number, e.g. N''+31612345678''', 1;
    END;

    IF @ClientReference = N''
        SET @ClientReference = NULL;
    IF @FromAddress = N''
        SET @FromAddress = NULL;

    IF @Channel IS NOT NULL AND @Channel <> N''
    BEGIN
        SELECT @ChannelID = c.ID FROM hermod.Channels AS c WHERE c.Name = @Channel;
        IF @ChannelID IS NULL
        BEGIN
            SET @error = CONCAT(N'hermod.SendMessage: there is no channel named "', @Channel,
                N'": pass the Name of a row of hermod.Channels, or NULL to let the router choose');
            THROW 50001, @error, 1;
        END;
    END;

    IF @ClientReference IS NOT NULL
    BEGIN
        SELECT @ID = m.ID FROM hermod.Messages AS m WHERE m.ClientReference = @ClientReference;
        IF @ID IS NOT NULL
        BEGIN
            SELECT @ID AS ID, CAST(1 AS BIT) AS Existing;
            RETURN 0;
        END;
    END;

    BEGIN TRY
        INSERT INTO hermod.Messages
            (ToAddress, Body, FromAddress, ChannelID, ScheduledTime, Priority,
             ClientReference, CreatedTime, LastUpdate, Trace)
        OUTPUT inserted.ID INTO @inserted (ID)
        VALUES
            (@ToAddress, COALESCE(@Body, N''), @FromAddress, @ChannelID, @ScheduledTime,
             COALESCE(@Priority, 0), @ClientReference, @now, @now,
             CONCAT(CONVERT(NVARCHAR(19), @now, 120), N'.',
             RIGHT(CONCAT(N'00', DATEPART(MILLISECOND, @now)), 3), N' SCHEDULED created by hermod.SendMessage', NCHAR(10)));

        SELECT @ID = i.ID FROM @inserted AS i;
        SELECT @ID AS ID, CAST(0 AS BIT) AS Existing;
        RETURN 0;
    END TRY
    BEGIN CATCH
        -- Another caller inserted the same ClientReference between our
        -- SELECT and our INSERT: return that message. A doomed transaction
        -- (XACT_ABORT ON in the caller) cannot read any more: re-raise.
        IF ERROR_NUMBER() IN (2627, 2601) AND @ClientReference IS NOT NULL AND XACT_STATE() <> -1
        BEGIN
            SELECT @ID = m.ID FROM hermod.Messages AS m WHERE m.ClientReference = @ClientReference;
            IF @ID IS NOT NULL
            BEGIN
                SELECT @ID AS ID, CAST(1 AS BIT) AS Existing;
                RETURN 0;
            END;
        END;
        THROW;
    END CATCH;
END;
