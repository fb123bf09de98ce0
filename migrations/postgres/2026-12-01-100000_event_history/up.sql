-- The event history API (GET /api/v1/events, GET /api/v1/messages/{sesMessageId}), erasure of an
-- address (DELETE /api/v1/recipients/{address}) and retention of events. See
-- docs/data-contract.md.
--
-- Creating the indexes reads the whole table and blocks writes to it meanwhile (they are not
-- built CONCURRENTLY: a migration runs in a transaction); on a large table, run `ses-webhook
-- migrate` in a quiet hour. SNS retries what is refused meanwhile.

-- SES `mail.messageId` of the record an archived message carried (NULL for messages that are not
-- SES records, and for messages archived before this migration): the timeline of one email
-- lists every SNS message about it, and erasure clears them all.
ALTER TABLE sns_messages ADD COLUMN ses_message_id TEXT;
CREATE INDEX sns_messages_ses_message_id_idx ON sns_messages (ses_message_id);

-- Newest first by event time, with or without a time range, and retention ("older than").
-- Partial on `id > 0` (true of every row): only a query that says `id > 0` can use it, as the
-- history's and retention's queries do. The suppression policy's reads of one address's recent
-- events (`recipient_key = ? AND event_time BETWEEN ...`, or `ORDER BY event_time DESC LIMIT
-- 1`) do not, so that no planner, with or without statistics, reads every recent event through
-- this index for them instead of the address's own through (recipient_key, event_time).
CREATE INDEX email_events_event_time_id_idx ON email_events (event_time, id) WHERE id > 0;

-- `tag=name:value` and `configurationSet=`: containment (`tags @> '{"name": ["value"]}'`).
CREATE INDEX email_events_tags_idx ON email_events USING gin (tags jsonb_path_ops);

-- One row per erasure that deleted or cleared something. Never the address: `address_hash` is
-- the lower-case hex SHA-256 of the address's key (trimmed, ASCII lower-cased), so that a later
-- request about the same address can be told it was erased, without the table naming anyone.
CREATE TABLE erasures (
    id                  BIGSERIAL   PRIMARY KEY,
    address_hash        TEXT        NOT NULL CHECK (length(address_hash) = 64),
    actor               TEXT        NOT NULL,
    at                  TIMESTAMPTZ NOT NULL,
    events_deleted      INTEGER     NOT NULL CHECK (events_deleted >= 0),
    messages_cleared    INTEGER     NOT NULL CHECK (messages_cleared >= 0),
    suppression_removed BOOLEAN     NOT NULL,
    history_deleted     INTEGER     NOT NULL CHECK (history_deleted >= 0)
);

CREATE INDEX erasures_address_hash_at_idx ON erasures (address_hash, at);
