DROP TABLE IF EXISTS sns_subscriptions;
DROP TABLE IF EXISTS email_events;
DROP TABLE IF EXISTS sns_messages;
