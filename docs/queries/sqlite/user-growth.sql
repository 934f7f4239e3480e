-- 7.4 User growth, SQLite form: the hour is subtracted with strftime (timestamps are text
-- `YYYY-MM-DD HH:MM:SS.mmm`, which sorts as time).
--
-- $1: where the range starts, as text `YYYY-MM-DD HH:MM:SS.mmm`; NULL for one hour before the
-- newest window in the table.
SELECT
    region_name,
    stat_date,
    user_count,
    lag(user_count) OVER region_windows AS prev_user_count,
    round(
        (user_count - lag(user_count) OVER region_windows) * 100.0
            / nullif(lag(user_count) OVER region_windows, 0),
        2) AS growth_rate
FROM dws_region_daily_stats
WHERE stat_date >= coalesce(
    $1,
    (SELECT strftime('%Y-%m-%d %H:%M:%f', max(stat_date), '-1 hour')
     FROM dws_region_daily_stats))
WINDOW region_windows AS (PARTITION BY region_id ORDER BY stat_date)
ORDER BY region_id, stat_date;
