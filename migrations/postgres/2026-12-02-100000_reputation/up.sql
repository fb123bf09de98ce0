-- Sending reputation (GET /api/v1/reputation, the status page, the reputation gauges). See
-- docs/reputation.md and docs/data-contract.md.

-- Counts per UTC hour and configuration set (the `ses:configuration-set` mail tag; '' for
-- messages without one: SES configuration set names are never empty). Each writer adds to its
-- own shard (its connection's backend pid modulo 16), so concurrent batches do not queue on
-- one row; readers sum the shards. Event counts come from the events newly inserted (a
-- duplicate never counts); `sent`, `rejects` and `delivery_delays` from SES `Send`, `Reject`
-- and `DeliveryDelay` records, once per key in `counted_records`.
CREATE TABLE email_counts (
    hour              TIMESTAMPTZ NOT NULL,
    configuration_set TEXT        NOT NULL,
    shard             SMALLINT    NOT NULL CHECK (shard >= 0),
    sent              BIGINT      NOT NULL DEFAULT 0 CHECK (sent >= 0),
    delivered         BIGINT      NOT NULL DEFAULT 0 CHECK (delivered >= 0),
    hard_bounces      BIGINT      NOT NULL DEFAULT 0 CHECK (hard_bounces >= 0),
    soft_bounces      BIGINT      NOT NULL DEFAULT 0 CHECK (soft_bounces >= 0),
    complaints        BIGINT      NOT NULL DEFAULT 0 CHECK (complaints >= 0),
    rejects           BIGINT      NOT NULL DEFAULT 0 CHECK (rejects >= 0),
    delivery_delays   BIGINT      NOT NULL DEFAULT 0 CHECK (delivery_delays >= 0),
    opens             BIGINT      NOT NULL DEFAULT 0 CHECK (opens >= 0),
    clicks            BIGINT      NOT NULL DEFAULT 0 CHECK (clicks >= 0),
    PRIMARY KEY (hour, configuration_set, shard)
);

-- The `Send`, `Reject` and `DeliveryDelay` records already counted (the key is derived from the
-- SES record: see `domain::reputation::record_key`), kept while a body of their age can be
-- processed again (three days longer than the shorter of the raw-body and message retentions),
-- by `at`.
CREATE TABLE counted_records (
    record_key TEXT        PRIMARY KEY CHECK (length(record_key) = 64),
    kind       TEXT        NOT NULL CHECK (kind IN ('send', 'reject', 'delivery_delay')),
    at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX counted_records_at_idx ON counted_records (at);

-- The time of each topic's last notification (the status page, the silence gauge): one
-- backward index scan per topic.
CREATE INDEX sns_messages_topic_arn_received_at_idx ON sns_messages (topic_arn, received_at);

-- The events stored before this migration, counted once. Archived `Send` records are counted
-- by `ses-webhook reprocess` (they are archived with outcome `no_events`).
INSERT INTO email_counts (hour, configuration_set, shard, delivered, hard_bounces, soft_bounces,
                          complaints, opens, clicks)
SELECT date_trunc('hour', event_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
       coalesce(tags -> 'ses:configuration-set' ->> 0, ''),
       0,
       count(*) FILTER (WHERE event_type = 'email_delivered'),
       count(*) FILTER (WHERE event_type = 'email_bounce' AND bounce_type = 'hard'),
       count(*) FILTER (WHERE event_type = 'email_bounce' AND bounce_type IS DISTINCT FROM 'hard'),
       count(*) FILTER (WHERE event_type = 'email_spam_report'),
       count(*) FILTER (WHERE event_type = 'email_open'),
       count(*) FILTER (WHERE event_type = 'email_click')
FROM email_events
GROUP BY 1, 2;
