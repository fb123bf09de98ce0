-- The deltas not folded yet are added to `email_counts` before their table goes; the lock keeps
-- a batch from appending one in between (it waits, then fails on the dropped table: 5xx, SNS
-- retries).
LOCK TABLE email_count_deltas IN EXCLUSIVE MODE;
INSERT INTO email_counts AS c (hour, configuration_set, shard, sent, delivered, hard_bounces, soft_bounces, complaints, rejects, delivery_delays, opens, clicks)
SELECT hour, configuration_set, 0, sum(sent), sum(delivered), sum(hard_bounces), sum(soft_bounces), sum(complaints), sum(rejects), sum(delivery_delays), sum(opens), sum(clicks)
FROM email_count_deltas GROUP BY hour, configuration_set ORDER BY hour, configuration_set COLLATE "C"
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
DROP TABLE email_count_deltas;
