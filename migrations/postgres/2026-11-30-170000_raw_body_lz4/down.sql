DO $$
BEGIN
    -- EXECUTE, so that a server without the syntax (before 14) fails here, where it is caught.
    EXECUTE 'ALTER TABLE sns_messages ALTER COLUMN raw_body SET COMPRESSION default';
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
    RAISE NOTICE 'raw_body compression unchanged: %', SQLERRM;
END;
$$;
