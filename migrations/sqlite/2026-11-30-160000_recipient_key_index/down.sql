DROP INDEX email_events_recipient_key_event_time_idx;
CREATE INDEX email_events_recipient_event_time_idx ON email_events (recipient, event_time);
CREATE INDEX email_events_recipient_key_idx ON email_events (recipient_key, event_type, event_time);
