-- CancelMessage: cancels a message that has not been handed to a channel yet.
--
--   SELECT hermod.CancelMessage(42);
--
-- It returns true when the message was SCHEDULED or QUEUED and is now
-- CANCELLED, false when its status no longer allows it (it is already being
-- sent, or finished). A message that does not exist raises no_data_found.
CREATE OR REPLACE FUNCTION CancelMessage(ID BIGINT) RETURNS BOOLEAN
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    v_status VARCHAR;
BEGIN
    UPDATE Messages m
    SET Status = 'CANCELLED',
        TriggerStatus = '',
        LeaseOwner = NULL,
        LeaseExpires = NULL,
        NextAttemptTime = NULL,
        StatusDetails = 'cancelled with CancelMessage',
        LastUpdate = now() AT TIME ZONE 'UTC',
        Trace = m.Trace || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS')
                || ' CANCELLED cancelled with CancelMessage' || E'\n'
    WHERE m.ID = CancelMessage.ID AND m.Status IN ('SCHEDULED', 'QUEUED');
    IF FOUND THEN
        RETURN TRUE;
    END IF;

    SELECT m.Status INTO v_status FROM Messages m WHERE m.ID = CancelMessage.ID;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'CancelMessage: message % does not exist', CancelMessage.ID
            USING ERRCODE = 'no_data_found';
    END IF;
    RAISE NOTICE 'CancelMessage: message % is % and can no longer be cancelled', CancelMessage.ID, v_status;
    RETURN FALSE;
END
$$;
