-- The dead entries per sink, which every server counts for its gauges every 10 seconds.
CREATE INDEX outbox_dead_idx ON outbox (sink) WHERE state = 'dead';
