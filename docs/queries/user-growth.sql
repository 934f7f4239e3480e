-- 7.4 User growth: each region's distinct users per window over the last hour, with the change
-- against the region's previous window in percent (rounded to 2 places; NULL for a region's
-- first window in the range).
--
-- $1: where the range starts (`gridflow query user-growth --since 'YYYY-MM-DD HH:MM:SS'`). The
-- source uses CURRENT_TIMESTAMP - 1 hour; the default (NULL) is one hour before the newest
-- window in the table, which is the same on a live run and also works on a replay.
-- As in the source, the previous window is looked up among the rows in range.
SELECT
    region_name,
    stat_date,
    user_count,
    LAG(user_count) OVER region_windows AS prev_user_count,
    ROUND(
        (user_count - LAG(user_count) OVER region_windows) * 100.0
            / NULLIF(LAG(user_count) OVER region_windows, 0),
        2) AS growth_rate
FROM dws_region_daily_stats
WHERE stat_date >= COALESCE(
    CAST($1 AS TIMESTAMP),
    (SELECT MAX(stat_date) FROM dws_region_daily_stats) - INTERVAL '1 hour')
WINDOW region_windows AS (PARTITION BY region_id ORDER BY stat_date)
ORDER BY region_id, stat_date;
