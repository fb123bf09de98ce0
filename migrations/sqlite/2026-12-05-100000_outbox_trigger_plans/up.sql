-- Nothing to change on SQLite: its outbox triggers are row triggers with no JIT to avoid (the
-- PostgreSQL migration of this version replans that backend's statement triggers). Both
-- backends carry the same versions.
SELECT 1;
