-- `(recipient_key, event_time)` replaces `(recipient, event_time)` and
-- `(recipient_key, event_type, event_time)`, as on PostgreSQL (see the PostgreSQL migration of
-- the same version).
DROP INDEX email_events_recipient_event_time_idx;
DROP INDEX email_events_recipient_key_idx;
CREATE INDEX email_events_recipient_key_event_time_idx ON email_events (recipient_key, event_time);
