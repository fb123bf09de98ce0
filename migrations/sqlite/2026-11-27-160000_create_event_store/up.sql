-- The event store on SQLite: the tables, columns, constraints and indexes of the PostgreSQL
-- schema (migrations/postgres/, same version), in SQLite's types. See docs/data-contract.md.
--   TIMESTAMPTZ -> TEXT, RFC 3339 in UTC with microseconds ('2024-05-01T12:00:00.000000Z'):
--                  fixed width, so text order is time order.
--   JSONB       -> TEXT holding a JSON document (json_valid).
--   BIGSERIAL   -> INTEGER PRIMARY KEY AUTOINCREMENT (increasing, never reused).
-- STRICT tables refuse a value of the wrong type, as PostgreSQL does.

CREATE TABLE sns_messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    sns_message_id  TEXT    NOT NULL UNIQUE,
    message_type    TEXT    NOT NULL
        CHECK (message_type IN ('Notification', 'SubscriptionConfirmation', 'UnsubscribeConfirmation')),
    topic_arn       TEXT    NOT NULL,
    sns_timestamp   TEXT    NOT NULL CHECK (julianday(sns_timestamp) IS NOT NULL),
    received_at     TEXT    NOT NULL CHECK (julianday(received_at) IS NOT NULL),
    ses_type        TEXT,
    outcome         TEXT    NOT NULL
        CHECK (outcome IN ('processed', 'no_events', 'not_ses', 'failed', 'subscription')),
    error_count     INTEGER NOT NULL DEFAULT 0 CHECK (error_count >= 0),
    error_detail    TEXT,
    raw_body        TEXT,
    events_stored   INTEGER NOT NULL DEFAULT 0 CHECK (events_stored >= 0)
) STRICT;

-- Re-processing ("every failed message of the last day") and retention ("older than N days").
CREATE INDEX sns_messages_outcome_received_at_idx ON sns_messages (outcome, received_at);
CREATE INDEX sns_messages_received_at_idx ON sns_messages (received_at);

CREATE TABLE email_events (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    event_key               TEXT    NOT NULL UNIQUE CHECK (event_key <> ''),
    event_type              TEXT    NOT NULL
        CHECK (event_type IN ('email_delivered', 'email_bounce', 'email_spam_report', 'email_open', 'email_click')),
    recipient               TEXT,
    bounce_type             TEXT    CHECK (bounce_type IN ('hard', 'soft')),
    ses_message_id          TEXT    NOT NULL,
    sns_message_id          TEXT    NOT NULL,
    event_time              TEXT    NOT NULL CHECK (julianday(event_time) IS NOT NULL),
    mail_time               TEXT    CHECK (julianday(mail_time) IS NOT NULL OR mail_time IS NULL),
    source                  TEXT,
    subject                 TEXT,
    ses_bounce_type         TEXT,
    bounce_subtype          TEXT,
    bounce_action           TEXT,
    bounce_status           TEXT,
    diagnostic_code         TEXT,
    feedback_id             TEXT,
    complaint_feedback_type TEXT,
    complaint_subtype       TEXT,
    smtp_response           TEXT,
    reporting_mta           TEXT,
    remote_mta_ip           TEXT,
    processing_time_ms      INTEGER,
    link                    TEXT,
    link_tags               TEXT    CHECK (link_tags IS NULL OR json_valid(link_tags)),
    user_agent              TEXT,
    ip_address              TEXT,
    tags                    TEXT    CHECK (tags IS NULL OR json_valid(tags)),
    -- PostgreSQL's now() is the transaction's start; SQLite's 'now' is the statement's.
    created_at              TEXT    NOT NULL
        DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    -- A bounce always says hard or soft; no other event type carries a bounce type.
    CONSTRAINT email_events_bounce_type_iff_bounce
        CHECK ((event_type = 'email_bounce') = (bounce_type IS NOT NULL))
) STRICT;

CREATE INDEX email_events_recipient_event_time_idx ON email_events (recipient, event_time);
CREATE INDEX email_events_ses_message_id_idx ON email_events (ses_message_id);
CREATE INDEX email_events_event_type_event_time_idx ON email_events (event_type, event_time);

CREATE TABLE sns_subscriptions (
    topic_arn       TEXT    PRIMARY KEY NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'confirmed', 'unsubscribed')),
    subscribe_url   TEXT,
    created_at      TEXT    NOT NULL CHECK (julianday(created_at) IS NOT NULL),
    updated_at      TEXT    NOT NULL CHECK (julianday(updated_at) IS NOT NULL),
    confirmed_at    TEXT    CHECK (julianday(confirmed_at) IS NOT NULL OR confirmed_at IS NULL),
    unsubscribed_at TEXT    CHECK (julianday(unsubscribed_at) IS NOT NULL OR unsubscribed_at IS NULL)
) STRICT;
