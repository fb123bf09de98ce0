DROP TRIGGER suppression_history_outbox ON suppression_history;
DROP FUNCTION sesw_outbox_suppressions();
DROP TRIGGER email_events_outbox ON email_events;
DROP FUNCTION sesw_outbox_events();
DROP TABLE outbox;
DROP TABLE delivery_sink_types;
DROP TABLE delivery_sinks;
