DROP TABLE api_tokens;
DROP TABLE suppression_history;
DROP TABLE suppressions;
DROP INDEX email_events_recipient_key_idx;
ALTER TABLE email_events DROP COLUMN recipient_key;
