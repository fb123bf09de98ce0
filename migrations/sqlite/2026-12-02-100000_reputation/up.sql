-- Sending reputation (GET /api/v1/reputation, the status page, the reputation gauges). See
-- docs/reputation.md and docs/data-contract.md.

-- Counts per UTC hour and configuration set (the `ses:configuration-set` mail tag; '' for
-- messages without one: SES configuration set names are never empty). `hour` is the instant
-- text of the hour's start. SQLite has one writer: every row is shard 0. Event counts come
-- from the events newly inserted (a duplicate never counts); `sent`, `rejects` and
-- `delivery_delays` from SES `Send`, `Reject` and `DeliveryDelay` records, once per key in
-- `counted_records`.
CREATE TABLE email_counts (
    hour              TEXT    NOT NULL CHECK (julianday(hour) IS NOT NULL),
    configuration_set TEXT    NOT NULL,
    shard             INTEGER NOT NULL CHECK (shard >= 0),
    sent              INTEGER NOT NULL DEFAULT 0 CHECK (sent >= 0),
    delivered         INTEGER NOT NULL DEFAULT 0 CHECK (delivered >= 0),
    hard_bounces      INTEGER NOT NULL DEFAULT 0 CHECK (hard_bounces >= 0),
    soft_bounces      INTEGER NOT NULL DEFAULT 0 CHECK (soft_bounces >= 0),
    complaints        INTEGER NOT NULL DEFAULT 0 CHECK (complaints >= 0),
    rejects           INTEGER NOT NULL DEFAULT 0 CHECK (rejects >= 0),
    delivery_delays   INTEGER NOT NULL DEFAULT 0 CHECK (delivery_delays >= 0),
    opens             INTEGER NOT NULL DEFAULT 0 CHECK (opens >= 0),
    clicks            INTEGER NOT NULL DEFAULT 0 CHECK (clicks >= 0),
    PRIMARY KEY (hour, configuration_set, shard)
) WITHOUT ROWID;

-- The `Send`, `Reject` and `DeliveryDelay` records already counted (the key is derived from the
-- SES record: see `domain::reputation::record_key`), kept while a body of their age can be
-- processed again (three days longer than the shorter of the raw-body and message retentions),
-- by `at`.
CREATE TABLE counted_records (
    record_key TEXT NOT NULL PRIMARY KEY CHECK (length(record_key) = 64),
    kind       TEXT NOT NULL CHECK (kind IN ('send', 'reject', 'delivery_delay')),
    at         TEXT NOT NULL CHECK (julianday(at) IS NOT NULL)
) WITHOUT ROWID;
CREATE INDEX counted_records_at_idx ON counted_records (at);

-- The time of each topic's last notification (the status page, the silence gauge).
CREATE INDEX sns_messages_topic_arn_received_at_idx ON sns_messages (topic_arn, received_at);

-- The events stored before this migration, counted once. Archived `Send` records are counted
-- by `ses-webhook reprocess` (they are archived with outcome `no_events`).
INSERT INTO email_counts (hour, configuration_set, shard, delivered, hard_bounces, soft_bounces,
                          complaints, opens, clicks)
SELECT strftime('%Y-%m-%dT%H:00:00.000000Z', event_time),
       coalesce(json_extract(tags, '$."ses:configuration-set"[0]'), ''),
       0,
       sum(event_type = 'email_delivered'),
       sum(event_type = 'email_bounce' AND bounce_type = 'hard'),
       sum(event_type = 'email_bounce' AND bounce_type IS NOT 'hard'),
       sum(event_type = 'email_spam_report'),
       sum(event_type = 'email_open'),
       sum(event_type = 'email_click')
FROM email_events
GROUP BY 1, 2;
