-- SendMessage: the in-database API for sending a text message.
--
--   SELECT hermod.SendMessage('+31612345678', 'hello');
--   SELECT hermod.SendMessage(ToAddress => '+31612345678', Body => 'hello',
--                             Channel => 'smpp1', Priority => 5,
--                             ClientReference => 'order-1234');
--
-- Channel is a channel NAME (NULL: routing chooses); ScheduledTime is UTC
-- (NULL: now). It returns the new message's ID. When ClientReference is given
-- and a message with it already exists, that message's ID is returned and
-- nothing is inserted, also when two sessions call it at the same time (the
-- unique index UX_Messages_ClientReference is the guard).
CREATE OR REPLACE FUNCTION SendMessage(
    ToAddress       VARCHAR,
    Body            TEXT,
    FromAddress     VARCHAR   DEFAULT NULL,
    Channel         VARCHAR   DEFAULT NULL,
    ScheduledTime   TIMESTAMP DEFAULT NULL,
    Priority        INT       DEFAULT 0,
    ClientReference VARCHAR   DEFAULT NULL
) RETURNS BIGINT
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    v_channel INT;
    v_id      BIGINT;
    v_ref     VARCHAR := NULLIF(SendMessage.ClientReference, '');
BEGIN
    IF COALESCE(SendMessage.Channel, '') <> '' THEN
        SELECT c.ID INTO v_channel FROM Channels c WHERE c.Name = SendMessage.Channel;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'SendMessage: channel % does not exist', quote_literal(SendMessage.Channel)
                USING ERRCODE = 'foreign_key_violation',
                      HINT = 'Pass the Name of a row of Channels, or NULL to let the routing choose.';
        END IF;
    END IF;

    LOOP
        IF v_ref IS NOT NULL THEN
            SELECT m.ID INTO v_id FROM Messages m WHERE m.ClientReference = v_ref;
            IF FOUND THEN
                RETURN v_id;
            END IF;
        END IF;

        INSERT INTO Messages (ToAddress, Body, FromAddress, ChannelID, ScheduledTime, Priority, ClientReference)
        VALUES (SendMessage.ToAddress, COALESCE(SendMessage.Body, ''), NULLIF(SendMessage.FromAddress, ''),
                v_channel, SendMessage.ScheduledTime, COALESCE(SendMessage.Priority, 0), v_ref)
        ON CONFLICT DO NOTHING
        RETURNING Messages.ID INTO v_id;
        IF v_id IS NOT NULL THEN
            RETURN v_id;
        END IF;
        -- Another session inserted the same ClientReference and committed
        -- after our first look: loop to read its ID.
    END LOOP;
END
$$;
