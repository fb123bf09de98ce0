DROP TABLE email_count_deltas;
