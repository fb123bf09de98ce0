-- The counts' deltas (see the PostgreSQL migration). SQLite's single writer adds to
-- `email_counts` directly, so this table stays empty; it exists so that the reads are the same
-- on both backends.
CREATE TABLE email_count_deltas (
    hour              TEXT    NOT NULL CHECK (julianday(hour) IS NOT NULL),
    configuration_set TEXT    NOT NULL,
    sent              INTEGER NOT NULL DEFAULT 0 CHECK (sent >= 0),
    delivered         INTEGER NOT NULL DEFAULT 0 CHECK (delivered >= 0),
    hard_bounces      INTEGER NOT NULL DEFAULT 0 CHECK (hard_bounces >= 0),
    soft_bounces      INTEGER NOT NULL DEFAULT 0 CHECK (soft_bounces >= 0),
    complaints        INTEGER NOT NULL DEFAULT 0 CHECK (complaints >= 0),
    rejects           INTEGER NOT NULL DEFAULT 0 CHECK (rejects >= 0),
    delivery_delays   INTEGER NOT NULL DEFAULT 0 CHECK (delivery_delays >= 0),
    opens             INTEGER NOT NULL DEFAULT 0 CHECK (opens >= 0),
    clicks            INTEGER NOT NULL DEFAULT 0 CHECK (clicks >= 0)
) STRICT;
