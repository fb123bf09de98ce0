-- The suppression list, its history, and API tokens. See docs/data-contract.md and
-- docs/suppressions.md.

-- The key an event's recipient is matched by: ASCII whitespace trimmed, ASCII letters lower-cased
-- (domain::suppression::address_key computes the same for new rows; COLLATE "C" keeps lower() to
-- ASCII whatever the database's locale).
ALTER TABLE email_events ADD COLUMN recipient_key TEXT;
UPDATE email_events
   SET recipient_key = lower(btrim(recipient COLLATE "C", E' \t\n\r\f'))
 WHERE recipient IS NOT NULL;
CREATE INDEX email_events_recipient_key_idx ON email_events (recipient_key, event_type, event_time);

-- One row per suppressed address (expired rows read as absent until replaced).
CREATE TABLE suppressions (
    id              BIGSERIAL   PRIMARY KEY,
    address_key     TEXT        NOT NULL UNIQUE CHECK (address_key <> ''),
    address         TEXT        NOT NULL,
    reason          TEXT        NOT NULL
        CHECK (reason IN ('hard_bounce', 'complaint', 'soft_bounce', 'manual', 'aws_import')),
    created_at      TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ,
    ses_message_id  TEXT,
    event_key       TEXT,
    note            TEXT
);

-- The list API pages newest first by (created_at, id).
CREATE INDEX suppressions_created_at_id_idx ON suppressions (created_at, id);

-- Every change to the list, appended in the transaction that makes it.
CREATE TABLE suppression_history (
    id              BIGSERIAL   PRIMARY KEY,
    address_key     TEXT        NOT NULL,
    address         TEXT        NOT NULL,
    action          TEXT        NOT NULL CHECK (action IN ('added', 'removed')),
    reason          TEXT        NOT NULL
        CHECK (reason IN ('hard_bounce', 'complaint', 'soft_bounce', 'manual', 'aws_import')),
    actor           TEXT        NOT NULL,
    at              TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ,
    ses_message_id  TEXT,
    event_key       TEXT,
    note            TEXT
);

CREATE INDEX suppression_history_address_key_id_idx ON suppression_history (address_key, id);

-- API tokens: only the SHA-256 of each token is kept.
CREATE TABLE api_tokens (
    id              BIGSERIAL   PRIMARY KEY,
    name            TEXT        NOT NULL CHECK (name <> ''),
    scope           TEXT        NOT NULL CHECK (scope IN ('read', 'write')),
    token_hash      TEXT        NOT NULL UNIQUE,
    created_at      TIMESTAMPTZ NOT NULL,
    last_used_at    TIMESTAMPTZ,
    revoked_at      TIMESTAMPTZ
);

-- A name is unique among the tokens not revoked.
CREATE UNIQUE INDEX api_tokens_active_name_idx ON api_tokens (name) WHERE revoked_at IS NULL;
