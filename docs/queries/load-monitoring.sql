-- 7.1 Real-time load monitoring: the dashboard's region windows whose consumption exceeds an
-- alert threshold, the largest first.
--
-- $1: the threshold in kWh (`gridflow query load-monitoring --threshold`, default 50000).
-- The source selects region_name, total_consumption, peak_hour and update_time; the dashboard
-- holds one row per region and window, so stat_date (the window) is shown too, and ties are
-- ordered by region and window so the output is deterministic.
SELECT
    region_name,
    stat_date,
    total_consumption,
    peak_hour,
    update_time
FROM ads_power_dashboard
WHERE total_consumption > $1
ORDER BY total_consumption DESC, region_id, stat_date;
