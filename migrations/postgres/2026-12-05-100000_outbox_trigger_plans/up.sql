-- The outbox's triggers, planned cheaply. Their inserts join `delivery_sinks`, a table of a few
-- rows that autovacuum never analyzes (it changes by fewer rows than its threshold), so the
-- planner guessed about 1,300 sinks, priced the insert of a batch's suppression-list changes
-- above `jit_above_cost` and JIT-compiled it on every call: 10 to 50 ms of each batch
-- statement, spent by the single writer, which halved the webhook's throughput under load
-- whenever a sink was configured (docs/performance.md, "Event delivery"). These statements
-- touch tens of rows: they run without JIT, and return at once when no sink is configured.
CREATE OR REPLACE FUNCTION sesw_outbox_events() RETURNS trigger LANGUAGE plpgsql
SET jit = off AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM delivery_sinks) THEN
        RETURN NULL;
    END IF;
    INSERT INTO outbox (sink, entry_id, entry_type, event_id)
    SELECT s.name, n.event_key, n.event_type, n.id
      FROM delivery_sinks s
      JOIN inserted_events n
        ON s.all_types OR EXISTS (SELECT 1 FROM delivery_sink_types t
                                   WHERE t.sink = s.name AND t.entry_type = n.event_type)
     ORDER BY s.name, n.event_key
        ON CONFLICT (sink, entry_id) DO NOTHING;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION sesw_outbox_suppressions() RETURNS trigger LANGUAGE plpgsql
SET jit = off AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM delivery_sinks) THEN
        RETURN NULL;
    END IF;
    INSERT INTO outbox (sink, entry_id, entry_type, history_id)
    SELECT s.name, 'suppression-' || n.id, 'suppression.' || n.action, n.id
      FROM delivery_sinks s
      JOIN inserted_history n
        ON s.all_types OR EXISTS (SELECT 1 FROM delivery_sink_types t
                                   WHERE t.sink = s.name
                                     AND t.entry_type = 'suppression.' || n.action)
     ORDER BY s.name, n.id
        ON CONFLICT (sink, entry_id) DO NOTHING;
    RETURN NULL;
END
$$;
