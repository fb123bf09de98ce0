DO $$
BEGIN
    ALTER TABLE sns_messages ALTER COLUMN raw_body SET COMPRESSION default;
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
    RAISE NOTICE 'raw_body compression unchanged: %', SQLERRM;
END;
$$;
