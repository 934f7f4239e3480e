//! The embedded default sink: a SQLite file with the warehouse's tables and the sink's progress.
//!
//! Decimals are stored as TEXT with exactly two places and timestamps as TEXT
//! `YYYY-MM-DD HH:MM:SS.mmm` (SQLite has no exact decimal type, and its date functions read this
//! form); `CAST(total_consumption AS NUMERIC)` does arithmetic on them.

use std::path::Path;

use rusqlite::{params, Connection, Transaction};

use super::{Database, RowOps, SinkError};
use crate::dataflows::sink::TableRow;
use crate::export::dashboard_id;
use crate::source::Time;
use crate::values::{format_cents, format_millis};

/// The tables, created if absent, with the primary keys of SPEC §3.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ods_power_user (
    user_id INTEGER PRIMARY KEY, user_name TEXT, usage_type TEXT, region_id INTEGER,
    region_name TEXT, address TEXT, phone TEXT, create_time TEXT, update_time TEXT);
CREATE TABLE IF NOT EXISTS ods_power_consumption (
    consumption_id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, consumption_amount TEXT NOT NULL,
    consumption_cost TEXT NOT NULL, consumption_date TEXT NOT NULL, meter_reading_before TEXT,
    meter_reading_after TEXT, remark TEXT);
CREATE TABLE IF NOT EXISTS dwd_power_consumption_detail (
    consumption_id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, user_name TEXT NOT NULL,
    consumption_amount TEXT NOT NULL, consumption_cost TEXT NOT NULL, consumption_date TEXT NOT NULL,
    region_id INTEGER NOT NULL, region_name TEXT NOT NULL, usage_type TEXT NOT NULL, etl_time TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dws_region_daily_stats (
    region_id INTEGER NOT NULL, region_name TEXT NOT NULL, stat_date TEXT NOT NULL,
    total_consumption TEXT NOT NULL, total_cost TEXT NOT NULL, user_count INTEGER NOT NULL,
    avg_consumption TEXT NOT NULL, max_consumption TEXT NOT NULL, min_consumption TEXT NOT NULL,
    PRIMARY KEY (region_id, stat_date));
CREATE TABLE IF NOT EXISTS dws_user_ranking (
    user_id INTEGER NOT NULL, user_name TEXT NOT NULL, region_id INTEGER NOT NULL,
    region_name TEXT NOT NULL, stat_date TEXT NOT NULL, total_consumption TEXT NOT NULL,
    total_cost TEXT NOT NULL, ranking INTEGER NOT NULL, PRIMARY KEY (user_id, stat_date));
CREATE TABLE IF NOT EXISTS ads_power_dashboard (
    dashboard_id TEXT PRIMARY KEY, stat_date TEXT NOT NULL, region_id INTEGER NOT NULL,
    region_name TEXT NOT NULL, total_consumption TEXT NOT NULL, total_cost TEXT NOT NULL,
    user_count INTEGER NOT NULL, avg_consumption TEXT NOT NULL, peak_hour INTEGER NOT NULL,
    peak_consumption TEXT NOT NULL, top_user_id INTEGER NOT NULL, top_user_name TEXT NOT NULL,
    top_user_consumption TEXT NOT NULL, update_time TEXT NOT NULL, UNIQUE (region_id, stat_date));
CREATE TABLE IF NOT EXISTS gridflow_progress (
    sink TEXT PRIMARY KEY, applied_upto INTEGER NOT NULL, applied_at TEXT NOT NULL);
";

/// The progress row this sink owns.
const SINK_NAME: &str = "warehouse";

/// A SQLite database file holding the warehouse's tables.
pub struct Sqlite {
    connection: Connection,
}

impl Sqlite {
    /// Opens (or creates) the file and its tables.
    pub fn open(path: &Path) -> Result<Sqlite, SinkError> {
        let connection = Connection::open(path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.execute_batch(SCHEMA)?;
        Ok(Sqlite { connection })
    }

    /// The connection, to query the tables.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }
}

impl Database for Sqlite {
    fn progress(&mut self) -> Result<Option<Time>, SinkError> {
        let mut statement = self
            .connection
            .prepare("SELECT applied_upto FROM gridflow_progress WHERE sink = ?1")?;
        let mut rows = statement.query(params![SINK_NAME])?;
        match rows.next()? {
            Some(row) => Ok(Some(row.get::<_, i64>(0)? as Time)),
            None => Ok(None),
        }
    }

    fn apply(&mut self, time: Time, ops: &RowOps<'_>) -> Result<(), SinkError> {
        let stamp = format_millis(time as i64);
        let transaction = self.connection.transaction()?;
        for row in &ops.deletes {
            delete(&transaction, row)?;
        }
        for row in &ops.upserts {
            upsert(&transaction, row, &stamp)?;
        }
        transaction
            .prepare_cached(
                "INSERT INTO gridflow_progress (sink, applied_upto, applied_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (sink) DO UPDATE SET applied_upto = excluded.applied_upto,
                 applied_at = excluded.applied_at",
            )?
            .execute(params![SINK_NAME, time as i64, stamp])?;
        transaction.commit()?;
        Ok(())
    }
}

/// Deletes the row with `row`'s key from its table.
fn delete(transaction: &Transaction<'_>, row: &TableRow) -> rusqlite::Result<()> {
    match row {
        TableRow::User(u) => transaction
            .prepare_cached("DELETE FROM ods_power_user WHERE user_id = ?1")?
            .execute(params![u.user_id]),
        TableRow::Consumption(c) => transaction
            .prepare_cached("DELETE FROM ods_power_consumption WHERE consumption_id = ?1")?
            .execute(params![c.consumption_id]),
        TableRow::Detail(d) => transaction
            .prepare_cached("DELETE FROM dwd_power_consumption_detail WHERE consumption_id = ?1")?
            .execute(params![d.fact.consumption_id]),
        TableRow::RegionStats(s) => transaction
            .prepare_cached(
                "DELETE FROM dws_region_daily_stats WHERE region_id = ?1 AND stat_date = ?2",
            )?
            .execute(params![s.region_id, format_millis(s.stat_date)]),
        TableRow::Ranking(r) => transaction
            .prepare_cached("DELETE FROM dws_user_ranking WHERE user_id = ?1 AND stat_date = ?2")?
            .execute(params![r.user_id, format_millis(r.stat_date)]),
        TableRow::Dashboard(d) => transaction
            .prepare_cached("DELETE FROM ads_power_dashboard WHERE dashboard_id = ?1")?
            .execute(params![dashboard_id(d.region_id, d.stat_date)]),
        TableRow::Error(_) => Ok(0),
    }
    .map(|_| ())
}

/// Inserts `row`, or replaces the row with its key. `stamp` is the logical time's instant, for
/// the processing-time columns.
fn upsert(transaction: &Transaction<'_>, row: &TableRow, stamp: &str) -> rusqlite::Result<()> {
    let cents = |c: &Option<i64>| c.map(format_cents);
    let millis = |m: &Option<i64>| m.map(format_millis);
    match row {
        TableRow::User(u) => transaction
            .prepare_cached(
                "INSERT INTO ods_power_user VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (user_id) DO UPDATE SET user_name = excluded.user_name,
                 usage_type = excluded.usage_type, region_id = excluded.region_id,
                 region_name = excluded.region_name, address = excluded.address,
                 phone = excluded.phone, create_time = excluded.create_time,
                 update_time = excluded.update_time",
            )?
            .execute(params![
                u.user_id,
                u.user_name,
                u.usage_type,
                u.region_id,
                u.region_name,
                u.address,
                u.phone,
                millis(&u.create_time),
                millis(&u.update_time)
            ]),
        TableRow::Consumption(c) => transaction
            .prepare_cached(
                "INSERT INTO ods_power_consumption VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (consumption_id) DO UPDATE SET user_id = excluded.user_id,
                 consumption_amount = excluded.consumption_amount,
                 consumption_cost = excluded.consumption_cost,
                 consumption_date = excluded.consumption_date,
                 meter_reading_before = excluded.meter_reading_before,
                 meter_reading_after = excluded.meter_reading_after, remark = excluded.remark",
            )?
            .execute(params![
                c.consumption_id,
                c.user_id,
                format_cents(c.consumption_amount),
                format_cents(c.consumption_cost),
                format_millis(c.consumption_date),
                cents(&c.meter_reading_before),
                cents(&c.meter_reading_after),
                c.remark
            ]),
        TableRow::Detail(d) => transaction
            .prepare_cached(
                "INSERT INTO dwd_power_consumption_detail VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (consumption_id) DO UPDATE SET user_id = excluded.user_id,
                 user_name = excluded.user_name, consumption_amount = excluded.consumption_amount,
                 consumption_cost = excluded.consumption_cost,
                 consumption_date = excluded.consumption_date, region_id = excluded.region_id,
                 region_name = excluded.region_name, usage_type = excluded.usage_type,
                 etl_time = excluded.etl_time",
            )?
            .execute(params![
                d.fact.consumption_id,
                d.fact.user_id,
                &*d.dim.user_name,
                format_cents(d.fact.amount),
                format_cents(d.fact.cost),
                format_millis(d.fact.date),
                d.dim.region_id,
                &*d.dim.region_name,
                &*d.dim.usage_type,
                stamp
            ]),
        TableRow::RegionStats(s) => transaction
            .prepare_cached(
                "INSERT INTO dws_region_daily_stats VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (region_id, stat_date) DO UPDATE SET region_name = excluded.region_name,
                 total_consumption = excluded.total_consumption, total_cost = excluded.total_cost,
                 user_count = excluded.user_count, avg_consumption = excluded.avg_consumption,
                 max_consumption = excluded.max_consumption, min_consumption = excluded.min_consumption",
            )?
            .execute(params![
                s.region_id,
                &*s.region_name,
                format_millis(s.stat_date),
                format_cents(s.total_consumption),
                format_cents(s.total_cost),
                s.user_count,
                format_cents(s.avg_consumption),
                format_cents(s.max_consumption),
                format_cents(s.min_consumption)
            ]),
        TableRow::Ranking(r) => transaction
            .prepare_cached(
                "INSERT INTO dws_user_ranking VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (user_id, stat_date) DO UPDATE SET user_name = excluded.user_name,
                 region_id = excluded.region_id, region_name = excluded.region_name,
                 total_consumption = excluded.total_consumption, total_cost = excluded.total_cost,
                 ranking = excluded.ranking",
            )?
            .execute(params![
                r.user_id,
                &*r.user_name,
                r.region_id,
                &*r.region_name,
                format_millis(r.stat_date),
                format_cents(r.total_consumption),
                format_cents(r.total_cost),
                r.ranking as i64
            ]),
        TableRow::Dashboard(d) => transaction
            .prepare_cached(
                "INSERT INTO ads_power_dashboard
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                 ON CONFLICT (dashboard_id) DO UPDATE SET region_name = excluded.region_name,
                 total_consumption = excluded.total_consumption, total_cost = excluded.total_cost,
                 user_count = excluded.user_count, avg_consumption = excluded.avg_consumption,
                 peak_hour = excluded.peak_hour, peak_consumption = excluded.peak_consumption,
                 top_user_id = excluded.top_user_id, top_user_name = excluded.top_user_name,
                 top_user_consumption = excluded.top_user_consumption,
                 update_time = excluded.update_time",
            )?
            .execute(params![
                dashboard_id(d.region_id, d.stat_date),
                format_millis(d.stat_date),
                d.region_id,
                &*d.region_name,
                format_cents(d.total_consumption),
                format_cents(d.total_cost),
                d.user_count,
                format_cents(d.avg_consumption),
                d.peak_hour,
                format_cents(d.peak_consumption),
                d.top_user_id,
                &*d.top_user_name,
                format_cents(d.top_user_consumption),
                stamp
            ]),
        TableRow::Error(_) => Ok(0),
    }
    .map(|_| ())
}
