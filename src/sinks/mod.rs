//! Database sinks: each completed logical time's changes applied in one transaction, together
//! with the sink's progress, so a restarted job skips what it already applied (exactly once).
//!
//! The dataflow hands a sink consolidated change sets ([`crate::dataflows::sink`]). Here a
//! change set becomes row operations per table — an upsert for each new row version, a delete
//! for each retracted key that no new version replaces — and a [`Database`] applies them and
//! the new progress atomically.

pub mod background;
mod net;
pub mod postgres;
pub mod sqlite;
pub mod tables;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

use crate::dataflows::sink::{ChangeSet, ChangeSink, TableRow};
use crate::export::dashboard_id;
use crate::metrics::Metrics;
use crate::rows::{Millis, RegionId, UserId};
use crate::source::Time;

/// Where a sink writes, from `--sink URL`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkTarget {
    /// `sqlite://PATH`: an embedded database file (the default, `./gridflow.db`).
    Sqlite(PathBuf),
    /// `postgresql://…`: a PostgreSQL server, the tables in a schema (`--sink-schema`).
    Postgres(String),
    /// `none`: the tables go nowhere (benchmarks of the dataflow alone).
    None,
}

/// The file `gridflow run` writes when no `--sink` is given.
pub const DEFAULT_SQLITE_PATH: &str = "gridflow.db";

impl SinkTarget {
    /// The sink `--sink` names; without it, the `DATABASE_URL` environment variable if set and
    /// not empty, else the SQLite file `gridflow.db`.
    pub fn resolve(sink: Option<&str>) -> Result<SinkTarget, String> {
        match sink {
            Some(url) => SinkTarget::parse(url),
            None => match std::env::var("DATABASE_URL") {
                Ok(url) if !url.is_empty() => {
                    SinkTarget::parse(&url).map_err(|error| format!("DATABASE_URL: {error}"))
                }
                _ => Ok(SinkTarget::Sqlite(DEFAULT_SQLITE_PATH.into())),
            },
        }
    }

    /// Parses a sink URL.
    pub fn parse(url: &str) -> Result<SinkTarget, String> {
        if url == "none" {
            return Ok(SinkTarget::None);
        }
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(format!("{url:?} names no file: use sqlite://PATH"));
            }
            return Ok(SinkTarget::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgresql://") || url.starts_with("postgres://") {
            return Ok(SinkTarget::Postgres(url.to_string()));
        }
        Err(format!(
            "{url:?} is not a sink URL: use sqlite://PATH, postgresql://… or none"
        ))
    }
}

/// The key of a row in its table, for deciding which retractions are deletes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RowKey {
    User(UserId),
    Consumption(i64),
    RegionStats(RegionId, Millis),
    Ranking(UserId, Millis),
    Dashboard(String),
    Error,
}

/// The key of `row` in its table.
pub fn key_of(row: &TableRow) -> RowKey {
    match row {
        TableRow::User(u) => RowKey::User(u.user_id),
        TableRow::Consumption(c) => RowKey::Consumption(c.consumption_id),
        TableRow::Detail(d) => RowKey::Consumption(d.fact.consumption_id),
        TableRow::RegionStats(s) => RowKey::RegionStats(s.region_id, s.stat_date),
        TableRow::Ranking(r) => RowKey::Ranking(r.user_id, r.stat_date),
        TableRow::Dashboard(d) => RowKey::Dashboard(dashboard_id(d.region_id, d.stat_date)),
        TableRow::Error(_) => RowKey::Error,
    }
}

/// The row operations of one change set. A sunk table holds exactly the dataflow's output as of
/// the sink's progress, one row per key, so a new version whose key has no retraction at the same
/// time is a key the table does not hold yet.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RowOps<'a> {
    /// New versions of keys the table does not hold: inserted.
    pub inserts: Vec<&'a TableRow>,
    /// New versions replacing a retracted version of the same key: updated.
    pub updates: Vec<&'a TableRow>,
    /// Retracted rows whose key no new version replaces: their keys are deleted.
    pub deletes: Vec<&'a TableRow>,
}

impl RowOps<'_> {
    /// How many rows the operations change.
    pub fn len(&self) -> usize {
        self.inserts.len() + self.updates.len() + self.deletes.len()
    }

    /// Whether there is nothing to change.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether a database sink writes `row`: DWS and ADS always, ODS and DWD when asked, malformed
/// input rows never (they are not table rows).
fn is_sunk(row: &TableRow, ods_and_dwd: bool) -> bool {
    match row {
        TableRow::RegionStats(_) | TableRow::Ranking(_) | TableRow::Dashboard(_) => true,
        TableRow::User(_) | TableRow::Consumption(_) | TableRow::Detail(_) => ods_and_dwd,
        TableRow::Error(_) => false,
    }
}

/// Turns a consolidated change set into row operations on the tables the sink writes.
pub fn row_ops(changes: &[(TableRow, isize)], ods_and_dwd: bool) -> RowOps<'_> {
    let table_key = |row: &TableRow| (std::mem::discriminant(row), key_of(row));
    let changes: Vec<&(TableRow, isize)> = changes
        .iter()
        .filter(|(row, _)| is_sunk(row, ods_and_dwd))
        .collect();
    let (versions, retractions): (Vec<_>, Vec<_>) =
        changes.into_iter().partition(|(_, diff)| *diff > 0);
    let retracted: HashSet<_> = retractions.iter().map(|(row, _)| table_key(row)).collect();
    let versioned: HashSet<_> = versions.iter().map(|(row, _)| table_key(row)).collect();
    let mut ops = RowOps::default();
    for (row, _) in versions {
        if retracted.contains(&table_key(row)) {
            ops.updates.push(row);
        } else {
            ops.inserts.push(row);
        }
    }
    for (row, _) in retractions {
        if !versioned.contains(&table_key(row)) {
            ops.deletes.push(row);
        }
    }
    ops
}

/// A failure to write to a sink's database.
#[derive(Debug, Error)]
pub enum SinkError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgresql: {}", postgres::describe(.0))]
    Postgres(#[from] ::postgres::Error),
    #[error("{0}")]
    Config(String),
    #[error(
        "the sink is held by another running job ({owner}, last write {seconds_ago:.1} s ago): \
         stop it, or start again once its lease has lapsed ({lease_seconds} s after its last write)"
    )]
    Held {
        owner: String,
        seconds_ago: f64,
        lease_seconds: i64,
    },
    #[error("another job has taken over this sink; this job stops without writing")]
    Fenced,
    #[error("table {table}: {message}")]
    Apply {
        table: &'static str,
        message: String,
    },
}

/// A database that applies row operations and the sink's progress in one transaction.
pub trait Database {
    /// The logical time the sink has applied up to, if it applied anything.
    fn progress(&mut self) -> Result<Option<Time>, SinkError>;
    /// Applies the row operations of a run of consecutive completed times, in time order, and
    /// records the last time as the progress — all in one transaction, and only if `owner` still
    /// holds the lease ([`SinkError::Fenced`] otherwise, with nothing written).
    fn apply(&mut self, batch: &[(Time, RowOps<'_>)], owner: &str) -> Result<(), SinkError>;
    /// Takes the lease for `owner` unless a job with a heartbeat after `stale_before` holds it;
    /// returns whether it was taken.
    fn acquire(&mut self, owner: &str, stale_before: Millis) -> Result<bool, SinkError>;
    /// The job holding the lease and its last heartbeat.
    fn holder(&mut self) -> Result<Option<(String, Millis)>, SinkError>;
    /// Gives the lease up (a clean exit), if `owner` holds it.
    fn release(&mut self, owner: &str) -> Result<(), SinkError>;
    /// Opens a fresh connection after a failure (a no-op where there is no connection to lose).
    fn reconnect(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// The progress-and-lease statements of every backend, with `{progress}` for the table and
/// `$n` parameters. One row per sink: how far it has applied, and which job holds it.
pub mod progress_sql {
    pub const CREATE: &str = "CREATE TABLE IF NOT EXISTS {progress} (sink TEXT PRIMARY KEY,
        applied_upto BIGINT, applied_at TEXT, owner TEXT, heartbeat BIGINT)";
    pub const READ: &str = "SELECT applied_upto FROM {progress} WHERE sink = $1";
    /// Takes the lease unless a live job holds it: `$1` sink, `$2` owner, `$3` now,
    /// `$4` the heartbeat before which a holder counts as dead. Changes one row when taken.
    pub const ACQUIRE: &str = "INSERT INTO {progress} (sink, owner, heartbeat) VALUES ($1, $2, $3)
        ON CONFLICT (sink) DO UPDATE SET owner = excluded.owner, heartbeat = excluded.heartbeat
        WHERE gridflow_progress.owner IS NULL OR gridflow_progress.owner = excluded.owner
           OR gridflow_progress.heartbeat < $4";
    pub const HOLDER: &str = "SELECT owner, heartbeat FROM {progress} WHERE sink = $1";
    /// Records progress if this job still holds the lease (the fencing check): `$1` sink,
    /// `$2` time, `$3` its instant, `$4` now, `$5` owner. Changes one row, or none when fenced.
    pub const ADVANCE: &str = "UPDATE {progress} SET applied_upto = $2, applied_at = $3,
        heartbeat = $4 WHERE sink = $1 AND owner = $5";
    pub const RELEASE: &str = "UPDATE {progress} SET owner = NULL WHERE sink = $1 AND owner = $2";
}

/// How long a job's lease on a sink outlives its last write: a job that died is taken over
/// after this long; a live one keeps it by writing.
pub const LEASE_MILLIS: Millis = 10_000;

/// The progress row of the warehouse's sink.
pub const SINK_NAME: &str = "warehouse";

/// Retries of a failed write before the job stops (the source's rule), and the first backoff.
pub const RETRIES: u32 = 3;
/// Backoffs of 1, 2 and 4 s: together long enough to ride out a server restart, short enough
/// that a dead server stops the job within seconds.
const FIRST_BACKOFF: std::time::Duration = std::time::Duration::from_secs(1);

impl Database for Box<dyn Database + Send> {
    fn progress(&mut self) -> Result<Option<Time>, SinkError> {
        (**self).progress()
    }

    fn apply(&mut self, batch: &[(Time, RowOps<'_>)], owner: &str) -> Result<(), SinkError> {
        (**self).apply(batch, owner)
    }

    fn reconnect(&mut self) -> Result<(), SinkError> {
        (**self).reconnect()
    }

    fn acquire(&mut self, owner: &str, stale_before: Millis) -> Result<bool, SinkError> {
        (**self).acquire(owner, stale_before)
    }

    fn holder(&mut self) -> Result<Option<(String, Millis)>, SinkError> {
        (**self).holder()
    }

    fn release(&mut self, owner: &str) -> Result<(), SinkError> {
        (**self).release(owner)
    }
}

/// A [`ChangeSink`] writing into a [`Database`], skipping every time at or below its progress.
pub struct DatabaseSink<D: Database> {
    database: D,
    /// This job's lease token.
    owner: String,
    ods_and_dwd: bool,
    applied_upto: Option<Time>,
    /// Completed change sets not yet written: written together at the next flush.
    pending: Vec<ChangeSet>,
    /// Change sets skipped because an earlier run had applied them.
    pub skipped: u64,
    /// Where the sink counts what it wrote, if anyone reads it.
    metrics: Option<Arc<Metrics>>,
}

impl<D: Database> DatabaseSink<D> {
    /// Opens the sink, reading the progress an earlier run left. With `ods_and_dwd` it writes
    /// the ODS and DWD tables too.
    pub fn new(mut database: D, ods_and_dwd: bool) -> Result<DatabaseSink<D>, SinkError> {
        let owner = format!(
            "pid {} on {}, token {:016x}",
            std::process::id(),
            host_name(),
            rand::random::<u64>()
        );
        let now = crate::runtime::now_millis();
        if !database.acquire(&owner, now - LEASE_MILLIS)? {
            let (holder, heartbeat) = database.holder()?.unwrap_or_default();
            return Err(SinkError::Held {
                owner: holder,
                seconds_ago: (now - heartbeat) as f64 / 1000.0,
                lease_seconds: LEASE_MILLIS / 1000,
            });
        }
        let applied_upto = database.progress()?;
        Ok(DatabaseSink {
            database,
            owner,
            ods_and_dwd,
            applied_upto,
            pending: Vec::new(),
            skipped: 0,
            metrics: None,
        })
    }

    /// Counts the sink's row changes, transactions and write time into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> DatabaseSink<D> {
        self.metrics = Some(metrics);
        self
    }

    /// Gives the lease up, so the next job need not wait for it to lapse.
    pub fn release(&mut self) -> Result<(), SinkError> {
        self.database.release(&self.owner)
    }

    /// Applies one change set, unless a previous attempt committed it before failing to report
    /// so (then the progress already says so): a change set is never applied twice.
    fn retry_apply(&mut self, last: Time, batch: &[(Time, RowOps<'_>)]) -> Result<(), SinkError> {
        if self.database.progress()?.is_some_and(|upto| last <= upto) {
            return Ok(());
        }
        self.database.apply(batch, &self.owner)
    }

    /// The logical time applied up to.
    pub fn applied_upto(&self) -> Option<Time> {
        self.applied_upto
    }
}

impl<D: Database> ChangeSink for DatabaseSink<D> {
    fn apply(&mut self, time: Time, changes: Vec<(TableRow, isize)>) {
        if self.applied_upto.is_some_and(|upto| time <= upto) {
            self.skipped += 1;
            return;
        }
        self.pending.push((time, changes));
    }

    /// Writes the pending run of completed times in one transaction: one commit (and one disk
    /// flush) per run instead of per logical time.
    fn flush(&mut self) {
        let Some(&(last, _)) = self.pending.last() else {
            return;
        };
        let pending = std::mem::take(&mut self.pending);
        let batch: Vec<(Time, RowOps<'_>)> = pending
            .iter()
            .map(|(time, changes)| (*time, row_ops(changes, self.ods_and_dwd)))
            .collect();
        let started = std::time::Instant::now();
        let mut failures = 0;
        let mut outcome = self.database.apply(&batch, &self.owner);
        while let Err(error) = outcome {
            failures += 1;
            if matches!(error, SinkError::Fenced) {
                panic!("the sink stopped at logical time {last}: {error}");
            }
            if failures > RETRIES {
                // A change set is never dropped: the job stops, and the panic ends the worker
                // with this message, which the run reports.
                let tables = tables_written(&batch);
                panic!(
                    "the sink stopped at logical time {last} after {RETRIES} retries, writing \
                     {tables}: {error}"
                );
            }
            let backoff = FIRST_BACKOFF * 2u32.pow(failures - 1);
            eprintln!("sink write up to logical time {last} failed ({error}); retry {failures} of {RETRIES} in {backoff:?}");
            std::thread::sleep(backoff);
            outcome = self
                .database
                .reconnect()
                .and_then(|()| self.retry_apply(last, &batch));
        }
        self.applied_upto = Some(last);
        if let Some(metrics) = &self.metrics {
            let changes: usize = batch.iter().map(|(_, ops)| ops.len()).sum();
            Metrics::add(&metrics.sink_row_changes, changes as u64);
            Metrics::add(&metrics.sink_transactions, 1);
            Metrics::add(
                &metrics.sink_busy_micros,
                started.elapsed().as_micros() as u64,
            );
        }
    }
}

/// The tables a run of row operations writes, in layer order, for error messages.
fn tables_written(batch: &[(Time, RowOps<'_>)]) -> String {
    let written: HashSet<&str> = batch
        .iter()
        .flat_map(|(_, ops)| ops.inserts.iter().chain(&ops.updates).chain(&ops.deletes))
        .filter_map(|row| tables::table_and_values(row, 0).map(|(table, _)| table.name))
        .collect();
    let names: Vec<&str> = tables::ALL
        .iter()
        .map(|table| table.name)
        .filter(|name| written.contains(name))
        .collect();
    let noun = if names.len() == 1 { "table" } else { "tables" };
    format!("{noun} {}", names.join(", "))
}

impl<S: ChangeSink> ChangeSink for Option<S> {
    fn apply(&mut self, time: Time, changes: Vec<(TableRow, isize)>) {
        if let Some(sink) = self {
            sink.apply(time, changes);
        }
    }

    fn flush(&mut self) {
        if let Some(sink) = self {
            sink.flush();
        }
    }
}

/// This machine's name, for lease tokens a person can read.
fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map_or_else(|_| "this host".to_string(), |name| name.trim().to_string())
}

/// Two sinks fed the same change sets (the export and a database, say).
pub struct Tee<A, B>(pub A, pub B);

impl<A: ChangeSink, B: ChangeSink> ChangeSink for Tee<A, B> {
    /// The first sink gets a copy, the second the change set itself.
    fn apply(&mut self, time: Time, changes: Vec<(TableRow, isize)>) {
        self.0.apply(time, changes.clone());
        self.1.apply(time, changes);
    }

    fn flush(&mut self) {
        self.0.flush();
        self.1.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::{RegionStats, Text};

    /// A region-stats row, the test rows of this module and its children.
    pub(super) fn stats(region_id: RegionId, stat_date: Millis, total: i64) -> TableRow {
        TableRow::RegionStats(RegionStats {
            region_id,
            stat_date,
            region_name: Text::from("r"),
            total_consumption: total,
            total_cost: 0,
            user_count: 1,
            avg_consumption: total,
            max_consumption: total,
            min_consumption: total,
            peak_hour: 0,
        })
    }

    #[test]
    fn a_new_key_is_an_insert_a_new_version_an_update_and_a_lone_retraction_a_delete() {
        let changes = vec![
            (stats(1, 0, 100), -1),
            (stats(1, 0, 150), 1),
            (stats(2, 0, 70), -1),
            (stats(3, 5_000, 10), 1),
        ];
        let ops = row_ops(&changes, false);
        assert_eq!(ops.updates, vec![&changes[1].0]);
        assert_eq!(ops.inserts, vec![&changes[3].0]);
        assert_eq!(ops.deletes, vec![&changes[2].0]);
    }

    #[test]
    fn ods_and_dwd_rows_are_written_only_when_asked() {
        let user = crate::rows::User {
            user_id: 1,
            user_name: None,
            usage_type: None,
            region_id: None,
            region_name: None,
            address: None,
            phone: None,
            create_time: None,
            update_time: None,
        };
        let changes = vec![(TableRow::User(user), 1), (stats(1, 0, 1), 1)];
        assert_eq!(row_ops(&changes, false).len(), 1);
        assert_eq!(row_ops(&changes, true).len(), 2);
    }

    #[test]
    fn sink_urls() {
        assert_eq!(
            SinkTarget::parse("sqlite://a/b.db"),
            Ok(SinkTarget::Sqlite("a/b.db".into()))
        );
        assert_eq!(SinkTarget::parse("none"), Ok(SinkTarget::None));
        assert!(SinkTarget::parse("sqlite://").is_err());
        assert!(SinkTarget::parse("mysql://x").is_err());
        assert_eq!(
            SinkTarget::parse("postgresql://u@h/db"),
            Ok(SinkTarget::Postgres("postgresql://u@h/db".into()))
        );
    }
}
