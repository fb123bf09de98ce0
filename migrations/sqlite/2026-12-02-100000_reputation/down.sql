DROP INDEX sns_messages_topic_arn_received_at_idx;
DROP TABLE counted_records;
DROP TABLE email_counts;
