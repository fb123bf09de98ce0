-- The index the suppression policy reads an address's events by is now the one that serves an
-- address's history too: `(recipient_key, event_time)` replaces both `(recipient, event_time)`
-- (exact-case, so it missed `John@Example.com` when asked for `john@example.com`) and
-- `(recipient_key, event_type, event_time)`. One index less on every event written (see
-- docs/performance.md, "The suppression list"); docs/data-contract.md lists the indexes.
--
-- `sesw_soft_bounce_check` (see the migration that created it for its contract) takes its locks
-- in one statement, skips the test when the batch has no soft bounce, and tests a simpler
-- necessary condition, through that index only.
DROP INDEX email_events_recipient_event_time_idx;
DROP INDEX email_events_recipient_key_idx;
CREATE INDEX email_events_recipient_key_event_time_idx ON email_events (recipient_key, event_time);

CREATE OR REPLACE FUNCTION sesw_soft_bounce_check(
    lock_namespace integer,
    lock_keys text[],
    bounces json,
    soft_bounce_limit integer,
    window_us bigint
) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    soft_window interval := window_us * interval '1 microsecond';
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'sesw_soft_bounce_check needs READ COMMITTED, not %',
            current_setting('transaction_isolation');
    END IF;
    -- The locks: the distinct hashes in ascending order, one statement.
    PERFORM count(pg_advisory_xact_lock(lock_namespace, h))
       FROM (SELECT DISTINCT hashtext(k) AS h FROM unnest(lock_keys) AS k ORDER BY 1) AS locks;
    -- Only Permanent bounces and complaints: the locks are all the batch statement needs.
    IF json_array_length(bounces) = 0 THEN
        RETURN false;
    END IF;
    -- A cheaper necessary condition than the first version's, and still never a sufficient
    -- one: the address's stored soft bounces within the window of one of the new ones, plus the
    -- new ones, are at least `soft_bounce_limit` events. Counting events rather than distinct SES
    -- messages, ignoring the latest delivery and counting new bounces that turn out to be
    -- duplicates only make `true` more likely: the policy then runs in full and decides.
    --
    -- The read is one address's events in the window through the index on
    -- (recipient_key, event_time): the filter on event type stays outside a subquery that
    -- `OFFSET 0` keeps a subquery, so that no other index can serve it, whatever the planner
    -- believes of the table (a plan made while the table was empty or never analyzed otherwise
    -- read every bounce of the window through the index on (event_type, event_time)).
    RETURN EXISTS (
        SELECT 1
          FROM (SELECT b.key, min(b.event_time) - soft_window AS since,
                       max(b.event_time) + soft_window AS until, count(*) AS n
                  FROM json_to_recordset(bounces) AS b(key text, event_time timestamptz)
                 GROUP BY b.key) AS a
         WHERE a.n + (SELECT count(*) FROM (
                          SELECT event_type, bounce_type FROM email_events
                           WHERE recipient_key = a.key AND event_time >= a.since
                             AND event_time <= a.until OFFSET 0) AS e
                       WHERE e.event_type = 'email_bounce' AND e.bounce_type = 'soft')
               >= soft_bounce_limit
    );
END;
$$;
