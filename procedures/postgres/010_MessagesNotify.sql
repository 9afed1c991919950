-- MessagesNotify: the function of the statement-level AFTER INSERT trigger
-- TR_Messages_Notify (created by the migrations). It wakes every Hermod node
-- listening on the channel hermod_messages; the payload is the schema name so
-- that installations sharing one database only wake their own nodes.
CREATE OR REPLACE FUNCTION MessagesNotify() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    PERFORM pg_notify('hermod_messages', TG_TABLE_SCHEMA);
    RETURN NULL;
END
$$;
