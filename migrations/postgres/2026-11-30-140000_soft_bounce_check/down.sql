DROP FUNCTION sesw_soft_bounce_check(integer, integer[], json, integer, bigint);
