-- New raw bodies are compressed with lz4 instead of PostgreSQL's default pglz: pglz_compress was
-- the largest single function in PostgreSQL's CPU profile under the load test (11% of its samples;
-- see docs/performance.md, "The suppression list"). Rows already stored keep pglz
-- (both read back the same). A server built without lz4 (PostgreSQL 14 and later have it as a
-- build option), or older than 14, keeps pglz, and says so.
DO $$
BEGIN
    -- EXECUTE, so that a server without the syntax (before 14) fails here, where it is caught.
    EXECUTE 'ALTER TABLE sns_messages ALTER COLUMN raw_body SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
    RAISE NOTICE 'raw_body stays compressed with pglz: %', SQLERRM;
END;
$$;
