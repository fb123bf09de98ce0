DROP INDEX email_events_recipient_key_event_time_idx;
CREATE INDEX email_events_recipient_event_time_idx ON email_events (recipient, event_time);
CREATE INDEX email_events_recipient_key_idx ON email_events (recipient_key, event_type, event_time);

-- The function as the migration 2026-11-30-140000_soft_bounce_check created it.
CREATE OR REPLACE FUNCTION sesw_soft_bounce_check(
    lock_namespace integer,
    lock_keys text[],
    bounces json,
    soft_bounce_limit integer,
    window_us bigint
) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    lock_id integer;
    soft_window interval := window_us * interval '1 microsecond';
BEGIN
    -- After a lock wait, only READ COMMITTED shows what the lock's previous holder committed.
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'sesw_soft_bounce_check needs READ COMMITTED, not %',
            current_setting('transaction_isolation');
    END IF;
    FOR lock_id IN SELECT DISTINCT hashtext(k) FROM unnest(lock_keys) AS k ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(lock_namespace, lock_id);
    END LOOP;
    RETURN EXISTS (
        WITH batch AS (
            SELECT b.key, b.ses_message_id, b.event_time
              FROM json_to_recordset(bounces) AS b(key text, ses_message_id text, event_time timestamptz)
        ), addresses AS (
            SELECT a.key, a.since, a.until,
                   (SELECT max(e.event_time) FROM email_events AS e
                     WHERE e.recipient_key = a.key AND e.event_type = 'email_delivered') AS delivered
              FROM (SELECT key, min(event_time) - soft_window AS since,
                           max(event_time) + soft_window AS until
                      FROM batch GROUP BY key) AS a
        )
        SELECT 1 FROM addresses AS a
         WHERE (SELECT count(DISTINCT m.ses_message_id) FROM (
                    SELECT e.ses_message_id FROM email_events AS e
                     WHERE e.recipient_key = a.key AND e.event_type = 'email_bounce'
                       AND e.event_time >= a.since AND e.event_time <= a.until
                       AND e.bounce_type = 'soft'
                       AND (a.delivered IS NULL OR e.event_time > a.delivered)
                    UNION ALL
                    SELECT b.ses_message_id FROM batch AS b
                     WHERE b.key = a.key AND (a.delivered IS NULL OR b.event_time > a.delivered)
                ) AS m) >= soft_bounce_limit
    );
END;
$$;
