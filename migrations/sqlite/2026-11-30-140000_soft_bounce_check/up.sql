-- Nothing on SQLite: its single writer runs the suppression policy in full (see the PostgreSQL
-- migration of the same version). The version exists so that both backends carry the same ones.
SELECT 1;
