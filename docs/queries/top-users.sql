-- 7.2 High-consumption users: the top users of each region in each window, for energy-saving
-- advice. The same text runs on PostgreSQL and SQLite.
--
-- $1: how many ranks to show (`gridflow query top-users --top`, default 10).
-- The source selects region_name, user_name, total_consumption and total_cost ordered by
-- region_id, ranking; rankings are per window, so stat_date and ranking are shown too, and
-- user_id breaks ties between equal ranks.
SELECT
    region_name,
    stat_date,
    ranking,
    user_name,
    total_consumption,
    total_cost
FROM dws_user_ranking
WHERE ranking <= $1
ORDER BY region_id, stat_date, ranking, user_id;
