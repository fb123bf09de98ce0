-- The event history API, erasure and retention of events, as in migrations/postgres/ (same
-- version), in SQLite's types. See docs/data-contract.md.

ALTER TABLE sns_messages ADD COLUMN ses_message_id TEXT;
CREATE INDEX sns_messages_ses_message_id_idx ON sns_messages (ses_message_id);

-- Newest first by event time, with or without a time range, and retention ("older than").
-- Partial on `id > 0` (true of every row): only a query that says `id > 0` can use it, as the
-- history's and retention's queries do. The suppression policy's reads of one address's recent
-- events (`recipient_key = ? AND event_time BETWEEN ...`, or `ORDER BY event_time DESC LIMIT
-- 1`) do not, so that no planner, with or without statistics, reads every recent event through
-- this index for them instead of the address's own through (recipient_key, event_time).
CREATE INDEX email_events_event_time_id_idx ON email_events (event_time, id) WHERE id > 0;

-- SQLite has no index on the inside of a JSON document: `tag=name:value` is served by this
-- table, one row per value of each tag of each event, kept by the two triggers below (so the
-- statements that write and delete events are the same on both backends). Events are never
-- updated, so a row never goes stale.
CREATE TABLE email_event_tags (
    name        TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    event_time  TEXT    NOT NULL,
    event_id    INTEGER NOT NULL,
    -- The table is its own index: a tag's events newest first, one B-tree write per value.
    PRIMARY KEY (name, value, event_time, event_id)
) STRICT, WITHOUT ROWID;

INSERT OR IGNORE INTO email_event_tags (name, value, event_time, event_id)
SELECT t.key, v.value, e.event_time, e.id
  FROM email_events AS e, json_each(e.tags) AS t, json_each(t.value) AS v
 WHERE e.tags IS NOT NULL AND t.type = 'array' AND v.type = 'text';

CREATE TRIGGER email_events_tags_insert AFTER INSERT ON email_events
WHEN new.tags IS NOT NULL
BEGIN
    INSERT OR IGNORE INTO email_event_tags (name, value, event_time, event_id)
    SELECT t.key, v.value, new.event_time, new.id
      FROM json_each(new.tags) AS t, json_each(t.value) AS v
     WHERE t.type = 'array' AND v.type = 'text';
END;

CREATE TRIGGER email_events_tags_delete AFTER DELETE ON email_events
WHEN old.tags IS NOT NULL
BEGIN
    -- By the whole key (the event's own tags), so that each row is found through it.
    DELETE FROM email_event_tags
     WHERE (name, value, event_time, event_id) IN (
           SELECT t.key, v.value, old.event_time, old.id
             FROM json_each(old.tags) AS t, json_each(t.value) AS v
            WHERE t.type = 'array' AND v.type = 'text');
END;

CREATE TABLE erasures (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    address_hash        TEXT    NOT NULL CHECK (length(address_hash) = 64),
    actor               TEXT    NOT NULL,
    at                  TEXT    NOT NULL CHECK (julianday(at) IS NOT NULL),
    events_deleted      INTEGER NOT NULL CHECK (events_deleted >= 0),
    messages_cleared    INTEGER NOT NULL CHECK (messages_cleared >= 0),
    suppression_removed INTEGER NOT NULL CHECK (suppression_removed IN (0, 1)),
    history_deleted     INTEGER NOT NULL CHECK (history_deleted >= 0)
) STRICT;

CREATE INDEX erasures_address_hash_at_idx ON erasures (address_hash, at);
