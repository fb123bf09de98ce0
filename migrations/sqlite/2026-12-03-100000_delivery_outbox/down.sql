DROP TRIGGER suppression_history_outbox;
DROP TRIGGER email_events_outbox;
DROP TABLE outbox;
DROP TABLE delivery_sink_types;
DROP TABLE delivery_sinks;
