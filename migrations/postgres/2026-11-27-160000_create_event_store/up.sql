-- The event store: archived SNS messages, platform email events and SNS subscriptions.
-- This schema is a data contract read by other systems; see docs/data-contract.md.

CREATE TABLE sns_messages (
    id              BIGSERIAL   PRIMARY KEY,
    sns_message_id  TEXT        NOT NULL UNIQUE,
    message_type    TEXT        NOT NULL
        CHECK (message_type IN ('Notification', 'SubscriptionConfirmation', 'UnsubscribeConfirmation')),
    topic_arn       TEXT        NOT NULL,
    sns_timestamp   TIMESTAMPTZ NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL,
    ses_type        TEXT,
    outcome         TEXT        NOT NULL
        CHECK (outcome IN ('processed', 'no_events', 'not_ses', 'failed', 'subscription')),
    error_count     INTEGER     NOT NULL DEFAULT 0 CHECK (error_count >= 0),
    error_detail    TEXT,
    raw_body        TEXT,
    events_stored   INTEGER     NOT NULL DEFAULT 0 CHECK (events_stored >= 0)
);

-- Re-processing ("every failed message of the last day") and retention ("older than N days").
CREATE INDEX sns_messages_outcome_received_at_idx ON sns_messages (outcome, received_at);
CREATE INDEX sns_messages_received_at_idx ON sns_messages (received_at);

CREATE TABLE email_events (
    id                      BIGSERIAL   PRIMARY KEY,
    event_key               TEXT        NOT NULL UNIQUE CHECK (event_key <> ''),
    event_type              TEXT        NOT NULL
        CHECK (event_type IN ('email_delivered', 'email_bounce', 'email_spam_report', 'email_open', 'email_click')),
    recipient               TEXT,
    bounce_type             TEXT        CHECK (bounce_type IN ('hard', 'soft')),
    ses_message_id          TEXT        NOT NULL,
    sns_message_id          TEXT        NOT NULL,
    event_time              TIMESTAMPTZ NOT NULL,
    mail_time               TIMESTAMPTZ,
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
    processing_time_ms      BIGINT,
    link                    TEXT,
    link_tags               JSONB,
    user_agent              TEXT,
    ip_address              TEXT,
    tags                    JSONB,
    created_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- A bounce always says hard or soft; no other event type carries a bounce type.
    CONSTRAINT email_events_bounce_type_iff_bounce
        CHECK ((event_type = 'email_bounce') = (bounce_type IS NOT NULL))
);

CREATE INDEX email_events_recipient_event_time_idx ON email_events (recipient, event_time);
CREATE INDEX email_events_ses_message_id_idx ON email_events (ses_message_id);
CREATE INDEX email_events_event_type_event_time_idx ON email_events (event_type, event_time);

CREATE TABLE sns_subscriptions (
    topic_arn       TEXT        PRIMARY KEY,
    state           TEXT        NOT NULL CHECK (state IN ('pending', 'confirmed', 'unsubscribed')),
    subscribe_url   TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    confirmed_at    TIMESTAMPTZ,
    unsubscribed_at TIMESTAMPTZ
);
