-- The suppression list, its history, and API tokens, as in migrations/postgres/ (same version),
-- in SQLite's types (see the first migration). See docs/data-contract.md and docs/suppressions.md.

-- The key an event's recipient is matched by: ASCII whitespace trimmed, ASCII letters lower-cased
-- (SQLite's lower() changes only ASCII; domain::suppression::address_key computes the same).
ALTER TABLE email_events ADD COLUMN recipient_key TEXT;
UPDATE email_events
   SET recipient_key = lower(trim(recipient, char(32, 9, 10, 13, 12)))
 WHERE recipient IS NOT NULL;
CREATE INDEX email_events_recipient_key_idx ON email_events (recipient_key, event_type, event_time);

CREATE TABLE suppressions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    address_key     TEXT    NOT NULL UNIQUE CHECK (address_key <> ''),
    address         TEXT    NOT NULL,
    reason          TEXT    NOT NULL
        CHECK (reason IN ('hard_bounce', 'complaint', 'soft_bounce', 'manual', 'aws_import')),
    created_at      TEXT    NOT NULL CHECK (julianday(created_at) IS NOT NULL),
    expires_at      TEXT    CHECK (julianday(expires_at) IS NOT NULL OR expires_at IS NULL),
    ses_message_id  TEXT,
    event_key       TEXT,
    note            TEXT
) STRICT;

CREATE INDEX suppressions_created_at_id_idx ON suppressions (created_at, id);

CREATE TABLE suppression_history (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    address_key     TEXT    NOT NULL,
    address         TEXT    NOT NULL,
    action          TEXT    NOT NULL CHECK (action IN ('added', 'removed')),
    reason          TEXT    NOT NULL
        CHECK (reason IN ('hard_bounce', 'complaint', 'soft_bounce', 'manual', 'aws_import')),
    actor           TEXT    NOT NULL,
    at              TEXT    NOT NULL CHECK (julianday(at) IS NOT NULL),
    expires_at      TEXT    CHECK (julianday(expires_at) IS NOT NULL OR expires_at IS NULL),
    ses_message_id  TEXT,
    event_key       TEXT,
    note            TEXT
) STRICT;

CREATE INDEX suppression_history_address_key_id_idx ON suppression_history (address_key, id);

CREATE TABLE api_tokens (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT    NOT NULL CHECK (name <> ''),
    scope           TEXT    NOT NULL CHECK (scope IN ('read', 'write')),
    token_hash      TEXT    NOT NULL UNIQUE,
    created_at      TEXT    NOT NULL CHECK (julianday(created_at) IS NOT NULL),
    last_used_at    TEXT    CHECK (julianday(last_used_at) IS NOT NULL OR last_used_at IS NULL),
    revoked_at      TEXT    CHECK (julianday(revoked_at) IS NOT NULL OR revoked_at IS NULL)
) STRICT;

CREATE UNIQUE INDEX api_tokens_active_name_idx ON api_tokens (name) WHERE revoked_at IS NULL;
