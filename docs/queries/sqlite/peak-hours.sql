-- 7.3 Peak-hour analysis, SQLite form: exact sums with decimal_sum and the decimal collation
-- (SQLite's decimal extension), date() for DATE.
--
-- $1: the day as text `YYYY-MM-DD` (`gridflow query peak-hours --date`); NULL for the newest
-- day present in the table.
SELECT
    peak_hour AS hour,
    COUNT(*) AS region_count,
    decimal_sum(peak_consumption) AS total_peak_cons
FROM ads_power_dashboard
WHERE date(update_time) = coalesce(
    $1,
    (SELECT max(date(update_time)) FROM ads_power_dashboard))
GROUP BY peak_hour
ORDER BY total_peak_cons COLLATE decimal DESC, hour;
