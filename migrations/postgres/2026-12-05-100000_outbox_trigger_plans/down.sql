-- The outbox's trigger functions as 2026-12-03-100000_delivery_outbox wrote them.
CREATE OR REPLACE FUNCTION sesw_outbox_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
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

CREATE OR REPLACE FUNCTION sesw_outbox_suppressions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
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
