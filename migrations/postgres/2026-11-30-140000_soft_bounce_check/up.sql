-- The first half of a group-commit batch that holds suppression triggers (see
-- crates/adapters-store/src/pg_policy.rs and docs/suppressions.md): takes the advisory locks of
-- the batch's triggering addresses, then, in a statement of its own (so with a snapshot that
-- shows what every earlier holder of those locks committed), tells whether any of its
-- soft-bounced addresses could now reach the soft-bounce limit. `false` means that none can: the
-- batch statement writes the batch, its Permanent bounces' and complaints' entries included.
-- `true` means that one may: the batch statement writes nothing, and the store runs the policy
-- in full.
--
-- The locks: `(lock_namespace, hashtext(key))` for each distinct key of `lock_keys`, in
-- ascending hash order, held until the calling transaction ends; every writer of the suppression
-- list takes its addresses' locks the same way, first (crates/adapters-store/src/pg_policy.rs,
-- `lock`). It runs only in READ COMMITTED (otherwise it raises an error): after a lock wait, a
-- snapshot of another isolation level would not show what the lock's previous holder committed.
--
-- The test is a necessary condition of the policy's (domain::suppression::SuppressionPolicy),
-- never a sufficient one: an address can reach the limit only if its soft bounces after its
-- latest delivery, within the window of one of the new ones, come from at least `limit`
-- distinct SES messages. `bounces` are the batch's soft bounces (a JSON array of objects with the
-- address `key`, `ses_message_id` and `event_time`), those that turn out to be duplicates
-- included; deliveries in the batch are ignored. Both only make `true` more likely.
CREATE FUNCTION sesw_soft_bounce_check(
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
