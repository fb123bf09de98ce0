DROP TABLE erasures;
DROP TRIGGER email_events_tags_delete;
DROP TRIGGER email_events_tags_insert;
DROP TABLE email_event_tags;
DROP INDEX email_events_event_time_id_idx;
DROP INDEX sns_messages_ses_message_id_idx;
ALTER TABLE sns_messages DROP COLUMN ses_message_id;
