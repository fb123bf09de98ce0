-- The transactional outbox: what is to be delivered to the sender's systems (the `[[sinks]]`
-- of the settings), written by triggers in the transaction that stores an event or changes the
-- suppression list, whatever path stores it (the group-commit batch, `reprocess`, the API, the
-- policy). See docs/data-contract.md.

-- The configured sinks and the entry types each takes, written from the settings at start-up
-- (every server sharing the database must have the same `[[sinks]]`). `all_types`: the sink
-- has no `event_types` and takes every entry.
CREATE TABLE delivery_sinks (
    name      TEXT    PRIMARY KEY CHECK (name <> ''),
    all_types BOOLEAN NOT NULL
);

CREATE TABLE delivery_sink_types (
    sink       TEXT NOT NULL REFERENCES delivery_sinks (name) ON DELETE CASCADE,
    entry_type TEXT NOT NULL,
    PRIMARY KEY (sink, entry_type)
);

-- One row per entry and sink that takes it. `entry_id` is the id consumers deduplicate by (the
-- event key, or `suppression-` and the history row's id), the same on every attempt. The
-- payload is read at delivery from the event (`event_id`) or the suppression-list change
-- (`history_id`): an erased or purged event is never delivered.
CREATE TABLE outbox (
    id              BIGSERIAL   PRIMARY KEY,
    sink            TEXT        NOT NULL,
    entry_id        TEXT        NOT NULL,
    entry_type      TEXT        NOT NULL,
    event_id        BIGINT,
    history_id      BIGINT,
    state           TEXT        NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_until     TIMESTAMPTZ,
    last_error      TEXT,
    settled_at      TIMESTAMPTZ,
    CHECK ((event_id IS NULL) <> (history_id IS NULL)),
    UNIQUE (sink, entry_id)
);

-- The relay's claims: a sink's pending entries in order of their next attempt.
CREATE INDEX outbox_pending_idx ON outbox (sink, next_attempt_at, id) WHERE state = 'pending';
-- The purge of delivered entries, by the time they were delivered.
CREATE INDEX outbox_delivered_idx ON outbox (settled_at) WHERE state = 'delivered';

-- Statement-level triggers with transition tables: one insert per statement, whatever the
-- number of rows, and nothing at all to join when no sink is configured.
CREATE FUNCTION sesw_outbox_events() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE TRIGGER email_events_outbox AFTER INSERT ON email_events
    REFERENCING NEW TABLE AS inserted_events
    FOR EACH STATEMENT EXECUTE FUNCTION sesw_outbox_events();

CREATE FUNCTION sesw_outbox_suppressions() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE TRIGGER suppression_history_outbox AFTER INSERT ON suppression_history
    REFERENCING NEW TABLE AS inserted_history
    FOR EACH STATEMENT EXECUTE FUNCTION sesw_outbox_suppressions();
