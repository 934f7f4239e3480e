-- 7.1 Real-time load monitoring, SQLite form: decimals are stored as exact text, so they are
-- compared with decimal_cmp and sorted with the decimal collation (SQLite's decimal extension;
-- the sqlite3 shell has it built in, and `gridflow query` provides the same functions).
--
-- $1: the threshold in kWh (`gridflow query load-monitoring --threshold`, default 50000).
SELECT
    region_name,
    stat_date,
    total_consumption,
    peak_hour,
    update_time
FROM ads_power_dashboard
WHERE decimal_cmp(total_consumption, $1) > 0
ORDER BY total_consumption COLLATE decimal DESC, region_id, stat_date;
