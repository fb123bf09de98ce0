DROP FUNCTION sesw_soft_bounce_check(integer, text[], json, integer, bigint);
