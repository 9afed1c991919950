-- Hermod schema, version 1, for SQL Server 2016+, Azure SQL and Babelfish.
--
-- golang-migrate sends this file to the server as ONE batch: it must not
-- contain GO lines. CREATE SCHEMA has to be the first statement of its batch,
-- so it runs through EXEC. Every constraint and index is named so that a
-- later migration can drop or change it.
--
-- Times are UTC, DATETIME2(3). Strings are NVARCHAR because go-mssqldb sends
-- Go strings as NVARCHAR: matching types keep the indexes usable. The queue
-- indexes are filtered on Status, so a row leaves them as soon as it reaches
-- a terminal status.

-- Filtered indexes need these ON (sqlcmd starts with QUOTED_IDENTIFIER OFF).
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;

IF SCHEMA_ID(N'hermod') IS NULL
    EXEC(N'CREATE SCHEMA hermod');

CREATE TABLE hermod.Messages (
    ID BIGINT IDENTITY(1, 1) NOT NULL,
    Direction NVARCHAR(3) NOT NULL
        CONSTRAINT DF_Messages_Direction DEFAULT (N'OUT'),
    Status NVARCHAR(16) NOT NULL
        CONSTRAINT DF_Messages_Status DEFAULT (N'SCHEDULED'),
    TriggerStatus NVARCHAR(16) NOT NULL
        CONSTRAINT DF_Messages_TriggerStatus DEFAULT (N''),
    ChannelID INT NULL,
    ToAddress NVARCHAR(64) NOT NULL,
    FromAddress NVARCHAR(64) NULL,
    FromTON INT NULL,
    FromNPI INT NULL,
    Body NVARCHAR(MAX) NOT NULL
        CONSTRAINT DF_Messages_Body DEFAULT (N''),
    DataCoding INT NULL,
    Priority INT NOT NULL
        CONSTRAINT DF_Messages_Priority DEFAULT (0),
    RequestDeliveryReport BIT NOT NULL
        CONSTRAINT DF_Messages_RequestDeliveryReport DEFAULT (1),
    ScheduledTime DATETIME2(3) NULL,
    ValidUntil DATETIME2(3) NULL,
    Reference NVARCHAR(100) NULL,
    TotalParts INT NOT NULL
        CONSTRAINT DF_Messages_TotalParts DEFAULT (0),
    Attempts INT NOT NULL
        CONSTRAINT DF_Messages_Attempts DEFAULT (0),
    NextAttemptTime DATETIME2(3) NULL,
    LeaseOwner NVARCHAR(128) NULL,
    LeaseExpires DATETIME2(3) NULL,
    CreatedTime DATETIME2(3) NOT NULL
        CONSTRAINT DF_Messages_CreatedTime DEFAULT (SYSUTCDATETIME()),
    SentTime DATETIME2(3) NULL,
    DeliveredTime DATETIME2(3) NULL,
    ReceivedTime DATETIME2(3) NULL,
    LastUpdate DATETIME2(3) NOT NULL
        CONSTRAINT DF_Messages_LastUpdate DEFAULT (SYSUTCDATETIME()),
    ErrorCode NVARCHAR(64) NULL,
    StatusDetails NVARCHAR(1000) NULL,
    BatchID NVARCHAR(100) NULL,
    CampaignID NVARCHAR(100) NULL,
    ClientReference NVARCHAR(100) NULL,
    CustomField1 NVARCHAR(1000) NULL,
    CustomField2 NVARCHAR(1000) NULL,
    Trace NVARCHAR(MAX) NOT NULL
        CONSTRAINT DF_Messages_Trace DEFAULT (N''),
    CONSTRAINT PK_Messages PRIMARY KEY CLUSTERED (ID),
    CONSTRAINT CK_Messages_Direction CHECK (Direction IN (N'OUT', N'IN')),
    CONSTRAINT CK_Messages_Status CHECK (Status IN (
        N'CREATING', N'SCHEDULED', N'QUEUED', N'SENDING', N'SENT',
        N'DELIVERED', N'NOTDELIVERED', N'NOREPORT', N'FAILED', N'BLOCKED',
        N'NOCHANNEL', N'DAILYLIMIT', N'EXPIRED', N'CANCELLED', N'RECEIVED')),
    CONSTRAINT CK_Messages_ToAddress CHECK (ToAddress <> N'')
);

-- The router: due SCHEDULED rows in ScheduledTime order (Direction included
-- so that the pick never looks up the row).
CREATE NONCLUSTERED INDEX IX_Messages_Scheduled
    ON hermod.Messages (ScheduledTime, ID)
    INCLUDE (Direction)
    WHERE Status = N'SCHEDULED';

-- The claim: one channel's QUEUED rows, highest priority first. Covering, so
-- that the TOP (@n) ... WITH (UPDLOCK, READPAST) pick never touches the heap
-- of terminal rows.
CREATE NONCLUSTERED INDEX IX_Messages_Queued
    ON hermod.Messages (ChannelID, Priority DESC, ID)
    INCLUDE (NextAttemptTime, ValidUntil)
    WHERE Status = N'QUEUED';

-- The lease rescuer.
CREATE NONCLUSTERED INDEX IX_Messages_Sending
    ON hermod.Messages (LeaseExpires)
    INCLUDE (LeaseOwner)
    WHERE Status = N'SENDING';

-- The NOREPORT sweep.
CREATE NONCLUSTERED INDEX IX_Messages_Sent
    ON hermod.Messages (SentTime)
    WHERE Status = N'SENT' AND RequestDeliveryReport = 1;

-- The application's idempotency key: unique when given.
CREATE UNIQUE NONCLUSTERED INDEX UX_Messages_ClientReference
    ON hermod.Messages (ClientReference)
    WHERE ClientReference IS NOT NULL;

CREATE NONCLUSTERED INDEX IX_Messages_Created
    ON hermod.Messages (CreatedTime);

CREATE NONCLUSTERED INDEX IX_Messages_ToAddress
    ON hermod.Messages (ToAddress);

CREATE TABLE hermod.MessageParts (
    MessageID BIGINT NOT NULL,
    PartNumber INT NOT NULL,
    ChannelID INT NULL,
    Reference NVARCHAR(100) NULL,
    Status NVARCHAR(16) NOT NULL
        CONSTRAINT DF_MessageParts_Status DEFAULT (N'SENT'),
    ErrorCode NVARCHAR(64) NULL,
    SentTime DATETIME2(3) NULL,
    DeliveredTime DATETIME2(3) NULL,
    CONSTRAINT PK_MessageParts PRIMARY KEY CLUSTERED (MessageID, PartNumber),
    CONSTRAINT CK_MessageParts_Status CHECK (Status IN (N'SENT', N'DELIVERED', N'NOTDELIVERED')),
    CONSTRAINT CK_MessageParts_PartNumber CHECK (PartNumber >= 1)
);

-- Delivery reports find their part by (ChannelID, Reference).
CREATE NONCLUSTERED INDEX IX_MessageParts_Reference
    ON hermod.MessageParts (ChannelID, Reference)
    WHERE Reference IS NOT NULL;

CREATE TABLE hermod.PendingReports (
    ID BIGINT IDENTITY(1, 1) NOT NULL,
    ChannelID INT NOT NULL,
    Reference NVARCHAR(100) NOT NULL,
    Status NVARCHAR(16) NOT NULL,
    ErrorCode NVARCHAR(64) NULL,
    DoneTime DATETIME2(3) NULL,
    ReceivedTime DATETIME2(3) NOT NULL
        CONSTRAINT DF_PendingReports_ReceivedTime DEFAULT (SYSUTCDATETIME()),
    CONSTRAINT PK_PendingReports PRIMARY KEY CLUSTERED (ID),
    CONSTRAINT CK_PendingReports_Status CHECK (Status IN (N'DELIVERED', N'NOTDELIVERED'))
);

CREATE NONCLUSTERED INDEX IX_PendingReports_Reference
    ON hermod.PendingReports (ChannelID, Reference);

CREATE NONCLUSTERED INDEX IX_PendingReports_Received
    ON hermod.PendingReports (ReceivedTime);

CREATE TABLE hermod.Channels (
    ID INT IDENTITY(1, 1) NOT NULL,
    Name NVARCHAR(64) NOT NULL,
    Type NVARCHAR(32) NOT NULL,
    Settings NVARCHAR(MAX) NOT NULL
        CONSTRAINT DF_Channels_Settings DEFAULT (N'{}'),
    Enabled BIT NOT NULL
        CONSTRAINT DF_Channels_Enabled DEFAULT (1),
    Node NVARCHAR(128) NULL,
    Status NVARCHAR(32) NOT NULL
        CONSTRAINT DF_Channels_Status DEFAULT (N'stopped'),
    StatusDetails NVARCHAR(1000) NULL,
    StatusNode NVARCHAR(128) NULL,
    StatusTime DATETIME2(3) NULL,
    CreatedTime DATETIME2(3) NOT NULL
        CONSTRAINT DF_Channels_CreatedTime DEFAULT (SYSUTCDATETIME()),
    LastUpdate DATETIME2(3) NOT NULL
        CONSTRAINT DF_Channels_LastUpdate DEFAULT (SYSUTCDATETIME()),
    CONSTRAINT PK_Channels PRIMARY KEY CLUSTERED (ID),
    CONSTRAINT UQ_Channels_Name UNIQUE (Name),
    CONSTRAINT CK_Channels_Name CHECK (Name <> N''),
    CONSTRAINT CK_Channels_Type CHECK (Type <> N'')
);

CREATE TABLE hermod.Options (
    Name NVARCHAR(128) NOT NULL,
    Value NVARCHAR(MAX) NOT NULL,
    LastUpdate DATETIME2(3) NOT NULL
        CONSTRAINT DF_Options_LastUpdate DEFAULT (SYSUTCDATETIME()),
    CONSTRAINT PK_Options PRIMARY KEY CLUSTERED (Name)
);

CREATE TABLE hermod.Nodes (
    Name NVARCHAR(128) NOT NULL,
    Host NVARCHAR(256) NULL,
    PID INT NULL,
    Version NVARCHAR(64) NULL,
    StartedTime DATETIME2(3) NOT NULL
        CONSTRAINT DF_Nodes_StartedTime DEFAULT (SYSUTCDATETIME()),
    HeartbeatTime DATETIME2(3) NOT NULL,
    CONSTRAINT PK_Nodes PRIMARY KEY CLUSTERED (Name)
);

CREATE TABLE hermod.Leaders (
    Name NVARCHAR(64) NOT NULL,
    Node NVARCHAR(128) NOT NULL,
    ElectedTime DATETIME2(3) NOT NULL
        CONSTRAINT DF_Leaders_ElectedTime DEFAULT (SYSUTCDATETIME()),
    ExpiresTime DATETIME2(3) NOT NULL,
    CONSTRAINT PK_Leaders PRIMARY KEY CLUSTERED (Name)
);

CREATE TABLE hermod.ApiKeys (
    ID BIGINT IDENTITY(1, 1) NOT NULL,
    Name NVARCHAR(100) NOT NULL,
    Prefix NVARCHAR(32) NOT NULL,
    Hash NVARCHAR(64) NOT NULL,
    Scopes NVARCHAR(200) NOT NULL
        CONSTRAINT DF_ApiKeys_Scopes DEFAULT (N''),
    AllowedIPs NVARCHAR(1000) NOT NULL
        CONSTRAINT DF_ApiKeys_AllowedIPs DEFAULT (N''),
    RateLimit INT NOT NULL
        CONSTRAINT DF_ApiKeys_RateLimit DEFAULT (0),
    CreatedTime DATETIME2(3) NOT NULL
        CONSTRAINT DF_ApiKeys_CreatedTime DEFAULT (SYSUTCDATETIME()),
    RevokedTime DATETIME2(3) NULL,
    CONSTRAINT PK_ApiKeys PRIMARY KEY CLUSTERED (ID),
    CONSTRAINT UQ_ApiKeys_Name UNIQUE (Name),
    CONSTRAINT UQ_ApiKeys_Hash UNIQUE (Hash),
    CONSTRAINT CK_ApiKeys_Name CHECK (Name <> N''),
    CONSTRAINT CK_ApiKeys_Hash CHECK (Hash <> N'')
);
