-- What the PostgreSQL batch statement counts is appended to `email_count_deltas` (one row
-- per UTC hour and configuration set a batch adds to; no index, so no conflict and no row lock)
-- instead of upserted into `email_counts`: as an upsert, the counting's part of a batch cost
-- about three times as much (docs/performance.md). The server folds the deltas into
-- `email_counts` (shard 0) every second, in statements that delete them and add their sums.
-- Readers sum both tables. See docs/data-contract.md.
CREATE TABLE email_count_deltas (
    hour              TIMESTAMPTZ NOT NULL,
    configuration_set TEXT        NOT NULL,
    sent              BIGINT      NOT NULL DEFAULT 0 CHECK (sent >= 0),
    delivered         BIGINT      NOT NULL DEFAULT 0 CHECK (delivered >= 0),
    hard_bounces      BIGINT      NOT NULL DEFAULT 0 CHECK (hard_bounces >= 0),
    soft_bounces      BIGINT      NOT NULL DEFAULT 0 CHECK (soft_bounces >= 0),
    complaints        BIGINT      NOT NULL DEFAULT 0 CHECK (complaints >= 0),
    rejects           BIGINT      NOT NULL DEFAULT 0 CHECK (rejects >= 0),
    delivery_delays   BIGINT      NOT NULL DEFAULT 0 CHECK (delivery_delays >= 0),
    opens             BIGINT      NOT NULL DEFAULT 0 CHECK (opens >= 0),
    clicks            BIGINT      NOT NULL DEFAULT 0 CHECK (clicks >= 0)
);

-- The writer shards of the past, folded into shard 0 once: from now on only shard 0 is
-- written (by the fold, `reprocess` and the migration's backfill).
WITH moved AS (DELETE FROM email_counts WHERE shard <> 0 RETURNING *)
INSERT INTO email_counts AS c (hour, configuration_set, shard, sent, delivered, hard_bounces, soft_bounces, complaints, rejects, delivery_delays, opens, clicks)
SELECT hour, configuration_set, 0, sum(sent), sum(delivered), sum(hard_bounces), sum(soft_bounces), sum(complaints), sum(rejects), sum(delivery_delays), sum(opens), sum(clicks)
FROM moved GROUP BY hour, configuration_set ORDER BY hour, configuration_set COLLATE "C"
ON CONFLICT (hour, configuration_set, shard) DO UPDATE SET
    sent = c.sent + excluded.sent,
    delivered = c.delivered + excluded.delivered,
    hard_bounces = c.hard_bounces + excluded.hard_bounces,
    soft_bounces = c.soft_bounces + excluded.soft_bounces,
    complaints = c.complaints + excluded.complaints,
    rejects = c.rejects + excluded.rejects,
    delivery_delays = c.delivery_delays + excluded.delivery_delays,
    opens = c.opens + excluded.opens,
    clicks = c.clicks + excluded.clicks;
