-- Hermod schema for SQLite (see docs/schema.md).
--
-- Times are TEXT in UTC, 'YYYY-MM-DD HH:MM:SS.SSS', the form
-- strftime('%Y-%m-%d %H:%M:%f','now') gives, so that they compare as text and
-- conditions such as ScheduledTime <= strftime('%Y-%m-%d %H:%M:%f','now')
-- work from the sqlite3 shell. Constraints are named so that an error names
-- the rule that was broken. Every object is created IF NOT EXISTS so that
-- two processes that migrate a new file at the same moment both succeed.

CREATE TABLE IF NOT EXISTS Messages (
    ID                    INTEGER PRIMARY KEY AUTOINCREMENT,
    Direction             TEXT    NOT NULL DEFAULT 'OUT'
        CONSTRAINT CK_Messages_Direction CHECK (Direction IN ('OUT', 'IN')),
    Status                TEXT    NOT NULL DEFAULT 'SCHEDULED'
        CONSTRAINT CK_Messages_Status CHECK (Status IN ('CREATING', 'SCHEDULED', 'QUEUED', 'SENDING', 'SENT',
            'DELIVERED', 'NOTDELIVERED', 'NOREPORT', 'FAILED', 'BLOCKED', 'NOCHANNEL', 'DAILYLIMIT',
            'EXPIRED', 'CANCELLED', 'RECEIVED')),
    TriggerStatus         TEXT    NOT NULL DEFAULT '',
    ChannelID             INTEGER,
    ToAddress             TEXT    NOT NULL
        CONSTRAINT CK_Messages_ToAddress CHECK (ToAddress <> ''),
    FromAddress           TEXT,
    FromTON               INTEGER,
    FromNPI               INTEGER,
    Body                  TEXT    NOT NULL DEFAULT '',
    DataCoding            INTEGER,
    Priority              INTEGER NOT NULL DEFAULT 0,
    RequestDeliveryReport INTEGER NOT NULL DEFAULT 1
        CONSTRAINT CK_Messages_RequestDeliveryReport CHECK (RequestDeliveryReport IN (0, 1)),
    ScheduledTime         TEXT,
    ValidUntil            TEXT,
    Reference             TEXT,
    TotalParts            INTEGER NOT NULL DEFAULT 0,
    Attempts              INTEGER NOT NULL DEFAULT 0,
    NextAttemptTime       TEXT,
    LeaseOwner            TEXT,
    LeaseExpires          TEXT,
    CreatedTime           TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    SentTime              TEXT,
    DeliveredTime         TEXT,
    ReceivedTime          TEXT,
    LastUpdate            TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    ErrorCode             TEXT,
    StatusDetails         TEXT,
    BatchID               TEXT,
    CampaignID            TEXT,
    ClientReference       TEXT,
    CustomField1          TEXT,
    CustomField2          TEXT,
    Trace                 TEXT    NOT NULL DEFAULT ''
);

-- The router: due SCHEDULED rows.
CREATE INDEX IF NOT EXISTS IX_Messages_Scheduled ON Messages (ScheduledTime, ID) WHERE Status = 'SCHEDULED';
-- The claim: QUEUED rows of one channel, highest priority first.
CREATE INDEX IF NOT EXISTS IX_Messages_Queued ON Messages (ChannelID, Priority DESC, ID) WHERE Status = 'QUEUED';
-- The rescuer: expired leases.
CREATE INDEX IF NOT EXISTS IX_Messages_Sending ON Messages (LeaseExpires) WHERE Status = 'SENDING';
-- The NOREPORT sweep.
CREATE INDEX IF NOT EXISTS IX_Messages_Sent ON Messages (SentTime) WHERE Status = 'SENT' AND RequestDeliveryReport = 1;
-- The application's idempotency key.
CREATE UNIQUE INDEX IF NOT EXISTS UX_Messages_ClientReference ON Messages (ClientReference) WHERE ClientReference IS NOT NULL;
CREATE INDEX IF NOT EXISTS IX_Messages_Created ON Messages (CreatedTime);
CREATE INDEX IF NOT EXISTS IX_Messages_ToAddress ON Messages (ToAddress);

-- Every write sets LastUpdate. Hermod sets it itself; this trigger covers
-- writers that do not (an UPDATE from the sqlite3 shell or another program).
CREATE TRIGGER IF NOT EXISTS TR_Messages_LastUpdate AFTER UPDATE ON Messages
FOR EACH ROW WHEN NEW.LastUpdate IS OLD.LastUpdate
BEGIN
    UPDATE Messages SET LastUpdate = strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE ID = NEW.ID;
END;

CREATE TABLE IF NOT EXISTS MessageParts (
    MessageID     INTEGER NOT NULL,
    PartNumber    INTEGER NOT NULL
        CONSTRAINT CK_MessageParts_PartNumber CHECK (PartNumber >= 1),
    ChannelID     INTEGER,
    Reference     TEXT,
    Status        TEXT    NOT NULL DEFAULT 'SENT'
        CONSTRAINT CK_MessageParts_Status CHECK (Status IN ('SENT', 'DELIVERED', 'NOTDELIVERED')),
    ErrorCode     TEXT,
    SentTime      TEXT,
    DeliveredTime TEXT,
    CONSTRAINT PK_MessageParts PRIMARY KEY (MessageID, PartNumber)
);

CREATE INDEX IF NOT EXISTS IX_MessageParts_Reference ON MessageParts (ChannelID, Reference) WHERE Reference IS NOT NULL;

CREATE TABLE IF NOT EXISTS PendingReports (
    ID           INTEGER PRIMARY KEY AUTOINCREMENT,
    ChannelID    INTEGER NOT NULL,
    Reference    TEXT    NOT NULL,
    Status       TEXT    NOT NULL
        CONSTRAINT CK_PendingReports_Status CHECK (Status IN ('DELIVERED', 'NOTDELIVERED')),
    ErrorCode    TEXT,
    DoneTime     TEXT,
    ReceivedTime TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

CREATE INDEX IF NOT EXISTS IX_PendingReports_Reference ON PendingReports (ChannelID, Reference);
CREATE INDEX IF NOT EXISTS IX_PendingReports_Received ON PendingReports (ReceivedTime);

CREATE TABLE IF NOT EXISTS Channels (
    ID            INTEGER PRIMARY KEY AUTOINCREMENT,
    Name          TEXT    NOT NULL
        CONSTRAINT CK_Channels_Name CHECK (length(Name) BETWEEN 1 AND 64 AND Name NOT GLOB '*[^A-Za-z0-9_.-]*'),
    Type          TEXT    NOT NULL
        CONSTRAINT CK_Channels_Type CHECK (Type <> ''),
    Settings      TEXT    NOT NULL DEFAULT '{}'
        CONSTRAINT CK_Channels_Settings CHECK (json_valid(Settings) AND json_type(Settings) = 'object'),
    Enabled       INTEGER NOT NULL DEFAULT 1
        CONSTRAINT CK_Channels_Enabled CHECK (Enabled IN (0, 1)),
    Node          TEXT,
    Status        TEXT    NOT NULL DEFAULT 'stopped',
    StatusDetails TEXT,
    StatusNode    TEXT,
    StatusTime    TEXT,
    CreatedTime   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    LastUpdate    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

CREATE UNIQUE INDEX IF NOT EXISTS UX_Channels_Name ON Channels (Name);

CREATE TABLE IF NOT EXISTS Options (
    Name       TEXT NOT NULL
        CONSTRAINT PK_Options PRIMARY KEY,
    Value      TEXT NOT NULL,
    LastUpdate TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

CREATE TABLE IF NOT EXISTS Nodes (
    Name          TEXT    NOT NULL
        CONSTRAINT PK_Nodes PRIMARY KEY,
    Host          TEXT,
    PID           INTEGER,
    Version       TEXT,
    StartedTime   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    HeartbeatTime TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

CREATE TABLE IF NOT EXISTS Leaders (
    Name        TEXT NOT NULL
        CONSTRAINT PK_Leaders PRIMARY KEY,
    Node        TEXT NOT NULL,
    ElectedTime TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    ExpiresTime TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS ApiKeys (
    ID          INTEGER PRIMARY KEY AUTOINCREMENT,
    Name        TEXT    NOT NULL
        CONSTRAINT CK_ApiKeys_Name CHECK (Name <> ''),
    Prefix      TEXT    NOT NULL,
    Hash        TEXT    NOT NULL
        CONSTRAINT CK_ApiKeys_Hash CHECK (Hash <> ''),
    Scopes      TEXT    NOT NULL DEFAULT '',
    AllowedIPs  TEXT    NOT NULL DEFAULT '',
    RateLimit   INTEGER NOT NULL DEFAULT 0
        CONSTRAINT CK_ApiKeys_RateLimit CHECK (RateLimit >= 0),
    CreatedTime TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    RevokedTime TEXT
);

CREATE UNIQUE INDEX IF NOT EXISTS UX_ApiKeys_Name ON ApiKeys (Name);
CREATE UNIQUE INDEX IF NOT EXISTS UX_ApiKeys_Hash ON ApiKeys (Hash);
