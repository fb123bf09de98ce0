-- The transactional outbox: what is to be delivered to the sender's systems (the `[[sinks]]`
-- of the settings), written by triggers in the transaction that stores an event or changes the
-- suppression list, whatever path stores it (the group-commit batch, `reprocess`, the API, the
-- policy). See docs/data-contract.md.

-- The configured sinks and the entry types each takes, written from the settings at start-up.
-- `all_types`: the sink has no `event_types` and takes every entry.
CREATE TABLE delivery_sinks (
    name      TEXT    NOT NULL PRIMARY KEY CHECK (name <> ''),
    all_types INTEGER NOT NULL CHECK (all_types IN (0, 1))
) STRICT;

CREATE TABLE delivery_sink_types (
    sink       TEXT NOT NULL REFERENCES delivery_sinks (name) ON DELETE CASCADE,
    entry_type TEXT NOT NULL,
    PRIMARY KEY (sink, entry_type)
) STRICT, WITHOUT ROWID;

-- One row per entry and sink that takes it (see the PostgreSQL migration). Instants are
-- fixed-width RFC 3339 text with microseconds, like every instant of this schema.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    sink            TEXT    NOT NULL,
    entry_id        TEXT    NOT NULL,
    entry_type      TEXT    NOT NULL,
    event_id        INTEGER,
    history_id      INTEGER,
    state           TEXT    NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at      TEXT    NOT NULL CHECK (julianday(created_at) IS NOT NULL),
    next_attempt_at TEXT    NOT NULL CHECK (julianday(next_attempt_at) IS NOT NULL),
    lease_until     TEXT,
    last_error      TEXT,
    settled_at      TEXT,
    CHECK ((event_id IS NULL) <> (history_id IS NULL)),
    UNIQUE (sink, entry_id)
) STRICT;

CREATE INDEX outbox_pending_idx ON outbox (sink, next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX outbox_delivered_idx ON outbox (settled_at) WHERE state = 'delivered';

-- Row triggers (SQLite has no other kind); `strftime(..., 'now')` is the same for every row of
-- one statement.
CREATE TRIGGER email_events_outbox AFTER INSERT ON email_events
BEGIN
    INSERT INTO outbox (sink, entry_id, entry_type, event_id, created_at, next_attempt_at)
    SELECT s.name, NEW.event_key, NEW.event_type, NEW.id,
           strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z',
           strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'
      FROM delivery_sinks s
     WHERE s.all_types OR EXISTS (SELECT 1 FROM delivery_sink_types t
                                   WHERE t.sink = s.name AND t.entry_type = NEW.event_type)
        ON CONFLICT (sink, entry_id) DO NOTHING;
END;

CREATE TRIGGER suppression_history_outbox AFTER INSERT ON suppression_history
BEGIN
    INSERT INTO outbox (sink, entry_id, entry_type, history_id, created_at, next_attempt_at)
    SELECT s.name, 'suppression-' || NEW.id, 'suppression.' || NEW.action, NEW.id,
           strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z',
           strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'
      FROM delivery_sinks s
     WHERE s.all_types OR EXISTS (SELECT 1 FROM delivery_sink_types t
                                   WHERE t.sink = s.name
                                     AND t.entry_type = 'suppression.' || NEW.action)
        ON CONFLICT (sink, entry_id) DO NOTHING;
END;
