-- 7.3 Peak-hour analysis: for one day of dashboard updates, how many region windows peak in each
-- hour of the day and how much they consume at their peaks.
--
-- $1: the day (`gridflow query peak-hours --date YYYY-MM-DD`). The source uses CURRENT_DATE;
-- update_time is the logical time of the update, which on the simulated clock or a replay is
-- not today, so the default (NULL) is the newest day present in the table — today, on a live run.
SELECT
    peak_hour AS hour,
    COUNT(*) AS region_count,
    SUM(peak_consumption) AS total_peak_cons
FROM ads_power_dashboard
WHERE DATE(update_time) = COALESCE(
    CAST($1 AS DATE),
    (SELECT MAX(DATE(update_time)) FROM ads_power_dashboard))
GROUP BY peak_hour
ORDER BY total_peak_cons DESC, hour;
