-- The warehouse's layers (SPEC §3) recomputed by PostgreSQL from the ODS tables, in batch.
--
-- This is the oracle of `gridflow verify --against postgresql://…` (docs/verify.md): it shares
-- no code with gridflow. gridflow loads the ODS state into the schema it verifies in and runs
-- this file with `:'window'` replaced by the window size; you can run it yourself on tables you
-- loaded, in a schema of your own:
--
--   psql "$DATABASE_URL" -v window='5 seconds' \
--        -c 'SET search_path TO my_schema' -f docs/queries/layers.sql
--
-- Inputs (created by gridflow's loader, `src/check/oracle.rs`):
--   ods_power_user          the current user rows (key user_id)
--   ods_power_consumption   the current consumption rows of live windows (key consumption_id)
--   dwd_frozen_detail       with retention (SPEC §4a), the detail rows of frozen windows as they
--                           were when each froze, and whether the DWD table still holds each
--                           (`kept`: false once a live row of its consumption id replaced it;
--                           the frozen window's DWS rows still count it); empty without retention
-- Outputs: dwd_power_consumption_detail, dws_region_daily_stats, dws_user_ranking,
-- ads_power_dashboard (processing-time columns left out). Windows are aligned to
-- 1970-01-01 00:00:00; timestamps are UTC without a time zone.

DROP TABLE IF EXISTS ads_power_dashboard, dws_user_ranking, dws_region_daily_stats,
    dws_peak_hour, dwd_power_consumption_detail;

-- DWD: every consumption row LEFT JOINed with the current row of its user, plus the frozen
-- windows' rows as they froze (a window is either live or frozen, never both). The DWS and ADS
-- layers group all of these; the table keeps only the `kept` ones (see its end).
CREATE TABLE dwd_power_consumption_detail AS
SELECT c.consumption_id,
       c.user_id,
       COALESCE(u.user_name, '未知用户')   AS user_name,
       c.consumption_amount,
       c.consumption_cost,
       c.consumption_date,
       COALESCE(u.region_id, 0)            AS region_id,
       COALESCE(u.region_name, '未知地区') AS region_name,
       COALESCE(u.usage_type, '未知')      AS usage_type,
       TRUE                                AS kept
FROM ods_power_consumption AS c
LEFT JOIN ods_power_user AS u ON c.user_id = u.user_id
UNION ALL
SELECT consumption_id, user_id, user_name, consumption_amount, consumption_cost,
       consumption_date, region_id, region_name, usage_type, kept
FROM dwd_frozen_detail;

-- DWS: per region and window. The source groups by region_name too; gridflow keeps one row per
-- (region_id, stat_date) and reports the greatest name (byte order) when the input names one
-- region id with two names (docs/semantics.md), hence MAX(... COLLATE "C").
CREATE TABLE dws_region_daily_stats AS
SELECT region_id,
       MAX(region_name COLLATE "C")                                  AS region_name,
       date_bin(:'window'::interval, consumption_date, TIMESTAMP '1970-01-01') AS stat_date,
       SUM(consumption_amount)                                       AS total_consumption,
       SUM(consumption_cost)                                         AS total_cost,
       COUNT(DISTINCT user_id)                                       AS user_count,
       ROUND(SUM(consumption_amount) / COUNT(*), 2)                  AS avg_consumption,
       MAX(consumption_amount)                                       AS max_consumption,
       MIN(consumption_amount)                                       AS min_consumption
FROM dwd_power_consumption_detail
GROUP BY region_id, date_bin(:'window'::interval, consumption_date, TIMESTAMP '1970-01-01');

-- DWS: per user and window, ranked within (stat_date, region_id); ties by the smaller user_id.
CREATE TABLE dws_user_ranking AS
SELECT user_id, user_name, region_id, region_name, stat_date, total_consumption, total_cost,
       ROW_NUMBER() OVER (PARTITION BY stat_date, region_id
                          ORDER BY total_consumption DESC, user_id ASC) AS ranking
FROM (SELECT user_id, user_name, region_id, region_name,
             date_bin(:'window'::interval, consumption_date, TIMESTAMP '1970-01-01') AS stat_date,
             SUM(consumption_amount) AS total_consumption,
             SUM(consumption_cost)   AS total_cost
      FROM dwd_power_consumption_detail
      GROUP BY user_id, user_name, region_id, region_name,
               date_bin(:'window'::interval, consumption_date, TIMESTAMP '1970-01-01')) AS per_user;

-- The hour of the day with the largest summed amount per region and window; ties: the earliest.
CREATE TABLE dws_peak_hour AS
SELECT region_id, stat_date, hour AS peak_hour
FROM (SELECT region_id, stat_date, hour,
             ROW_NUMBER() OVER (PARTITION BY region_id, stat_date
                                ORDER BY amount DESC, hour ASC) AS position
      FROM (SELECT region_id,
                   date_bin(:'window'::interval, consumption_date, TIMESTAMP '1970-01-01') AS stat_date,
                   EXTRACT(HOUR FROM consumption_date)::int AS hour,
                   SUM(consumption_amount) AS amount
            FROM dwd_power_consumption_detail
            GROUP BY 1, 2, 3) AS hourly) AS ranked
WHERE position = 1;

-- ADS: one row per region and window, with its peak hour and its rank-1 user.
CREATE TABLE ads_power_dashboard AS
SELECT 'DASHBOARD_' || r.region_id || '_' || to_char(r.stat_date, 'YYYYMMDDHH24MISS') AS dashboard_id,
       r.stat_date, r.region_id, r.region_name, r.total_consumption, r.total_cost,
       r.user_count, r.avg_consumption,
       p.peak_hour,
       r.max_consumption   AS peak_consumption,
       t.user_id           AS top_user_id,
       t.user_name         AS top_user_name,
       t.total_consumption AS top_user_consumption
FROM dws_region_daily_stats AS r
JOIN dws_peak_hour AS p ON p.region_id = r.region_id AND p.stat_date = r.stat_date
JOIN dws_user_ranking AS t
  ON t.region_id = r.region_id AND t.stat_date = r.stat_date AND t.ranking = 1;

-- DWD as a keyed table: one row per consumption id, a frozen row gone once a live row of its id
-- replaced it (its frozen window's DWS and ADS rows, computed above, still count it).
DELETE FROM dwd_power_consumption_detail WHERE NOT kept;
ALTER TABLE dwd_power_consumption_detail DROP COLUMN kept;
