-- Nothing on SQLite, which does not compress (see the PostgreSQL migration of the same version).
-- The version exists so that both backends carry the same ones.
SELECT 1;
