-- Version 2: the application's status callback (Kannel's dlr-url and
-- dlr-mask). StatusCallback is the URL to call when the message reaches a
-- status StatusCallbackMask selects; StatusCallbackMask holds Kannel's
-- dlr-mask bits (1 delivered, 2 not delivered, 8 sent, 16 failed), NULL for
-- every final status. See docs/schema.md and docs/api.md.
--
-- One batch, no GO lines: nothing below reads the new columns, so they need
-- not exist when the batch is compiled.
IF COL_LENGTH(N'hermod.Messages', N'StatusCallback') IS NULL
    ALTER TABLE hermod.Messages ADD StatusCallback NVARCHAR(1000) NULL;

IF COL_LENGTH(N'hermod.Messages', N'StatusCallbackMask') IS NULL
    ALTER TABLE hermod.Messages ADD StatusCallbackMask INT NULL;
