-- Reverts version 2. One batch, no GO lines.
IF COL_LENGTH(N'hermod.Messages', N'StatusCallbackMask') IS NOT NULL
    ALTER TABLE hermod.Messages DROP COLUMN StatusCallbackMask;

IF COL_LENGTH(N'hermod.Messages', N'StatusCallback') IS NOT NULL
    ALTER TABLE hermod.Messages DROP COLUMN StatusCallback;
