//! Database sinks: each completed logical time's changes applied in one transaction, together
//! with the sink's progress, so a restarted job skips what it already applied (exactly once).
//!
//! The dataflow hands a sink consolidated change sets ([`crate::dataflows::sink`]). Here the
//! change sets of consecutive times are merged by key ([`net`]) into one operation per changed
//! key — an insert, an update or a delete — and a [`Database`] applies them and the new progress
//! atomically.

pub mod background;
pub mod net;
pub mod postgres;
pub mod sqlite;
pub mod tables;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use thiserror::Error;

use crate::dataflows::sink::{ChangeSink, TableRow};
use crate::metrics::Metrics;
use crate::rows::{Millis, RegionId, UserId};
use crate::source::Time;
use net::{Net, NetOp};

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

    /// The sink as a person may see it: a PostgreSQL URL's password left out.
    pub fn redacted(&self) -> String {
        match self {
            SinkTarget::Sqlite(path) => format!("sqlite://{}", path.display()),
            SinkTarget::None => "none".to_string(),
            SinkTarget::Postgres(url) => {
                let Some((scheme, rest)) = url.split_once("://") else {
                    return url.clone();
                };
                match rest.split_once('@') {
                    Some((credentials, host)) => {
                        let user = credentials.split(':').next().unwrap_or_default();
                        let hidden = if credentials.contains(':') {
                            ":***"
                        } else {
                            ""
                        };
                        format!("{scheme}://{user}{hidden}@{host}")
                    }
                    None => url.clone(),
                }
            }
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

/// The table of a row and its key there: two rows with the same `RowKey` are versions of one
/// table row. Ordered by table in layer order, then key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RowKey {
    User(UserId),
    Consumption(i64),
    Detail(i64),
    RegionStats(RegionId, Millis),
    Ranking(UserId, Millis),
    /// The dashboard's id is made of its region and window ([`crate::export::dashboard_id`]).
    Dashboard(RegionId, Millis),
    /// Malformed input rows, which no database table holds.
    Error,
}

/// The table and key of `row`.
pub fn key_of(row: &TableRow) -> RowKey {
    match row {
        TableRow::User(u) => RowKey::User(u.user_id),
        TableRow::Consumption(c) => RowKey::Consumption(c.consumption_id),
        TableRow::Detail(d) => RowKey::Detail(d.fact.consumption_id),
        TableRow::RegionStats(s) => RowKey::RegionStats(s.region_id, s.stat_date),
        TableRow::Ranking(r) => RowKey::Ranking(r.user_id, r.stat_date),
        TableRow::Dashboard(d) => RowKey::Dashboard(d.region_id, d.stat_date),
        TableRow::Error(_) => RowKey::Error,
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
    #[error(
        "the sink holds the tables of another job ({job}): give this job its own sink (another file, or --sink-schema), or clear the sink and start over with --reset"
    )]
    OtherJob { job: String },
    /// A write the sink could not make: the job stops (a change set is never dropped).
    #[error("the sink stopped at logical time {upto}: {error}")]
    Stopped { upto: Time, error: Box<SinkError> },
    /// A write that failed again after every retry: the job stops.
    #[error(
        "the sink stopped at logical time {upto} after {RETRIES} retries, writing {tables}: {error}"
    )]
    GaveUp {
        upto: Time,
        tables: String,
        error: Box<SinkError>,
    },
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
    /// Applies the net operations of a run of consecutive completed times (one per key, grouped
    /// by table, [`Net::ops`]) and records `upto`, the run's last time, as the progress — all in
    /// one transaction, and only if `owner` still holds the lease ([`SinkError::Fenced`]
    /// otherwise, with nothing written).
    fn apply(&mut self, ops: &[Vec<NetOp<'_>>], upto: Time, owner: &str) -> Result<(), SinkError>;
    /// Takes the lease for `owner` unless a job with a heartbeat after `stale_before` holds it
    /// — or, for a durable `job`, unless a process of another job holds it (a process of the
    /// same job is gone: it held the job's state dir, which this process has locked); returns
    /// whether it was taken.
    fn acquire(
        &mut self,
        owner: &str,
        stale_before: Millis,
        job: Option<&str>,
    ) -> Result<bool, SinkError>;
    /// The job holding the lease and its last heartbeat.
    fn holder(&mut self) -> Result<Option<(String, Millis)>, SinkError>;
    /// Gives the lease up (a clean exit), if `owner` holds it.
    fn release(&mut self, owner: &str) -> Result<(), SinkError>;
    /// Opens a fresh connection after a failure (a no-op where there is no connection to lose).
    fn reconnect(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    /// The job whose tables these are, if one claimed them.
    fn job(&mut self) -> Result<Option<String>, SinkError>;
    /// Claims the tables for `job` (the lease is held by `owner`).
    fn claim(&mut self, job: &str, owner: &str) -> Result<(), SinkError>;
    /// Whether any table holds a row.
    fn holds_rows(&mut self) -> Result<bool, SinkError>;
    /// Empties every table and forgets the progress and the job (`--reset`), in one transaction,
    /// if `owner` holds the lease.
    fn clear(&mut self, owner: &str) -> Result<(), SinkError>;
}

/// The progress-and-lease statements of every backend, with `{progress}` for the table and
/// `$n` parameters. One row per sink: how far it has applied, and which job holds it.
pub mod progress_sql {
    pub const CREATE: &str = "CREATE TABLE IF NOT EXISTS {progress} (sink TEXT PRIMARY KEY,
        applied_upto BIGINT, applied_at TEXT, owner TEXT, heartbeat BIGINT, job TEXT)";
    pub const READ: &str = "SELECT applied_upto FROM {progress} WHERE sink = $1";
    /// Takes the lease unless a live job holds it: `$1` sink, `$2` owner, `$3` now,
    /// `$4` the heartbeat before which a holder counts as dead, `$5` the durable job taking it
    /// (whose earlier processes are dead) or NULL. Changes one row when taken.
    pub const ACQUIRE: &str = "INSERT INTO {progress} (sink, owner, heartbeat) VALUES ($1, $2, $3)
        ON CONFLICT (sink) DO UPDATE SET owner = excluded.owner, heartbeat = excluded.heartbeat
        WHERE gridflow_progress.owner IS NULL OR gridflow_progress.owner = excluded.owner
           OR gridflow_progress.heartbeat < $4 OR gridflow_progress.job = $5";
    pub const HOLDER: &str = "SELECT owner, heartbeat FROM {progress} WHERE sink = $1";
    /// Records progress if this job still holds the lease (the fencing check): `$1` sink,
    /// `$2` time, `$3` its instant, `$4` now, `$5` owner. Changes one row, or none when fenced.
    pub const ADVANCE: &str = "UPDATE {progress} SET applied_upto = $2, applied_at = $3,
        heartbeat = $4 WHERE sink = $1 AND owner = $5";
    pub const RELEASE: &str = "UPDATE {progress} SET owner = NULL WHERE sink = $1 AND owner = $2";
    /// The job column, added to progress tables that predate it.
    pub const ADD_JOB: &str = "ALTER TABLE {progress} ADD COLUMN job TEXT";
    pub const JOB: &str = "SELECT job FROM {progress} WHERE sink = $1";
    /// `$1` sink, `$2` job, `$3` owner.
    pub const CLAIM: &str = "UPDATE {progress} SET job = $2 WHERE sink = $1 AND owner = $3";
    /// `$1` sink, `$2` owner.
    pub const FORGET: &str = "UPDATE {progress} SET applied_upto = NULL, applied_at = NULL,
        job = NULL WHERE sink = $1 AND owner = $2";
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

    fn apply(&mut self, ops: &[Vec<NetOp<'_>>], upto: Time, owner: &str) -> Result<(), SinkError> {
        (**self).apply(ops, upto, owner)
    }

    fn reconnect(&mut self) -> Result<(), SinkError> {
        (**self).reconnect()
    }

    fn acquire(
        &mut self,
        owner: &str,
        stale_before: Millis,
        job: Option<&str>,
    ) -> Result<bool, SinkError> {
        (**self).acquire(owner, stale_before, job)
    }

    fn holder(&mut self) -> Result<Option<(String, Millis)>, SinkError> {
        (**self).holder()
    }

    fn release(&mut self, owner: &str) -> Result<(), SinkError> {
        (**self).release(owner)
    }

    fn job(&mut self) -> Result<Option<String>, SinkError> {
        (**self).job()
    }

    fn claim(&mut self, job: &str, owner: &str) -> Result<(), SinkError> {
        (**self).claim(job, owner)
    }

    fn holds_rows(&mut self) -> Result<bool, SinkError> {
        (**self).holds_rows()
    }

    fn clear(&mut self, owner: &str) -> Result<(), SinkError> {
        (**self).clear(owner)
    }
}

/// A [`ChangeSink`] writing into a [`Database`], skipping every time at or below its progress.
pub struct DatabaseSink<D: Database> {
    database: D,
    /// This job's lease token.
    owner: String,
    ods_and_dwd: bool,
    applied_upto: Option<Time>,
    /// Completed change sets not yet written: merged and written together at the next flush.
    pending: Net,
    /// Change sets skipped because an earlier run had applied them.
    pub skipped: u64,
    /// Where the sink counts what it wrote, if anyone reads it.
    metrics: Option<Arc<Metrics>>,
    /// Where it tells the job how far it has committed (0: nothing yet).
    committed: Option<Arc<AtomicU64>>,
}

impl<D: Database> DatabaseSink<D> {
    /// Opens the sink, reading the progress an earlier run left. With `ods_and_dwd` it writes
    /// the ODS and DWD tables too.
    pub fn new(database: D, ods_and_dwd: bool) -> Result<DatabaseSink<D>, SinkError> {
        DatabaseSink::for_job(database, ods_and_dwd, None)
    }

    /// As [`DatabaseSink::new`], for a process of the durable job `job`, which takes the lease
    /// over at once from an earlier process of the same job (killed, or it would hold the
    /// state dir).
    pub fn for_job(
        mut database: D,
        ods_and_dwd: bool,
        job: Option<&str>,
    ) -> Result<DatabaseSink<D>, SinkError> {
        let owner = format!(
            "pid {} on {}, token {:016x}",
            std::process::id(),
            host_name(),
            rand::random::<u64>()
        );
        let now = crate::runtime::now_millis();
        if !database.acquire(&owner, now - LEASE_MILLIS, job)? {
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
            pending: Net::new(ods_and_dwd),
            skipped: 0,
            metrics: None,
            committed: None,
        })
    }

    /// Keeps `committed` at the time the sink has committed up to (0: nothing yet).
    pub fn with_committed(mut self, committed: Arc<AtomicU64>) -> DatabaseSink<D> {
        committed.store(self.applied_upto.unwrap_or(0), Ordering::Release);
        self.committed = Some(committed);
        self
    }

    /// Makes the tables `job`'s: they are already, or they are empty and no job has claimed
    /// them. Tables of another job, or rows of no recorded job, are an error: a sink never
    /// holds two jobs' rows.
    pub fn adopt(&mut self, job: &str) -> Result<(), SinkError> {
        match self.database.job()? {
            Some(holder) if holder == job => Ok(()),
            Some(holder) => Err(SinkError::OtherJob { job: holder }),
            None if self.applied_upto.is_some() || self.database.holds_rows()? => {
                Err(SinkError::OtherJob {
                    job: "rows written without a job id".to_string(),
                })
            }
            None => self.database.claim(job, &self.owner),
        }
    }

    /// Empties the tables and forgets their progress and job (`--reset`).
    pub fn reset(&mut self) -> Result<(), SinkError> {
        self.database.clear(&self.owner)?;
        self.applied_upto = None;
        if let Some(committed) = &self.committed {
            committed.store(0, Ordering::Release);
        }
        Ok(())
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

    /// Applies a run, unless a previous attempt committed it before failing to report so (then
    /// the progress already says so): a change set is never applied twice.
    fn retry_apply(&mut self, ops: &[Vec<NetOp<'_>>], upto: Time) -> Result<(), SinkError> {
        if self
            .database
            .progress()?
            .is_some_and(|applied| upto <= applied)
        {
            return Ok(());
        }
        self.database.apply(ops, upto, &self.owner)
    }

    /// The logical time applied up to.
    pub fn applied_upto(&self) -> Option<Time> {
        self.applied_upto
    }

    /// Whether the change set of `time` is yet to be written (it is above the progress an
    /// earlier run left); counts it as skipped if not.
    fn accepts(&mut self, time: Time) -> bool {
        let skip = self.applied_upto.is_some_and(|upto| time <= upto);
        self.skipped += u64::from(skip);
        !skip
    }

    /// Merges `run` and writes it in one transaction with its last time as the progress: one
    /// commit (and one disk flush) per run instead of per logical time, one write per key.
    /// Retries with backoff; a failure it cannot ride out is returned, naming the time and the
    /// tables, and stops the job, since a change set is never dropped.
    fn write(&mut self, mut run: Net) -> Result<(), SinkError> {
        let Some(last) = run.last() else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        run.merge();
        let ops = run.ops();
        let mut failures = 0;
        let mut outcome = self.database.apply(&ops, last, &self.owner);
        while let Err(error) = outcome {
            failures += 1;
            if matches!(error, SinkError::Fenced) {
                return Err(SinkError::Stopped {
                    upto: last,
                    error: Box::new(error),
                });
            }
            if failures > RETRIES {
                return Err(SinkError::GaveUp {
                    upto: last,
                    tables: tables_written(&ops),
                    error: Box::new(error),
                });
            }
            let backoff = FIRST_BACKOFF * 2u32.pow(failures - 1);
            eprintln!("sink write up to logical time {last} failed ({error}); retry {failures} of {RETRIES} in {backoff:?}");
            std::thread::sleep(backoff);
            outcome = self
                .database
                .reconnect()
                .and_then(|()| self.retry_apply(&ops, last));
        }
        self.applied_upto = Some(last);
        if let Some(committed) = &self.committed {
            committed.store(last, Ordering::Release);
        }
        if let Some(metrics) = &self.metrics {
            let written: usize = ops.iter().map(Vec::len).sum();
            Metrics::add(&metrics.sink_row_changes, written as u64);
            Metrics::add(&metrics.sink_transactions, 1);
            Metrics::add(
                &metrics.sink_busy_micros,
                started.elapsed().as_micros() as u64,
            );
        }
        Ok(())
    }
}

/// A sink dropped without [`DatabaseSink::release`] — the job failed — still gives its lease
/// up, so the next job need not wait for it to lapse (a no-op once released, or when fenced).
impl<D: Database> Drop for DatabaseSink<D> {
    fn drop(&mut self) {
        let _ = self.database.release(&self.owner);
    }
}

impl<D: Database> ChangeSink for DatabaseSink<D> {
    fn apply(&mut self, time: Time, changes: Vec<(TableRow, isize)>) {
        if self.accepts(time) {
            self.pending.push(time, changes);
        }
    }

    /// Writes the pending run of completed times in one transaction.
    fn flush(&mut self) -> Result<(), SinkError> {
        let run = std::mem::replace(&mut self.pending, Net::new(self.ods_and_dwd));
        self.write(run)
    }
}

/// The tables a run's net operations write, in layer order, for error messages.
fn tables_written(ops: &[Vec<NetOp<'_>>]) -> String {
    let written: BTreeSet<&str> = ops
        .iter()
        .filter_map(|group| group.first())
        .filter_map(|op| tables::table_and_values(op.row(), 0).map(|(table, _)| table.name))
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

    fn flush(&mut self) -> Result<(), SinkError> {
        match self {
            Some(sink) => sink.flush(),
            None => Ok(()),
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

    fn flush(&mut self) -> Result<(), SinkError> {
        self.0.flush()?;
        self.1.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataflows::sink::ChangeSet;
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

    /// The tables as a sink leaves them: key to version and its processing-time stamp.
    pub(super) type Tables = std::collections::BTreeMap<RowKey, (TableRow, Time)>;

    /// Writes one change set as its own transaction would: retracted keys go, new versions
    /// come with the change set's time as their stamp.
    pub(super) fn write_in_order(tables: &mut Tables, (time, changes): &ChangeSet) {
        for (row, diff) in changes {
            if *diff < 0 {
                tables.remove(&key_of(row));
            }
        }
        for (row, diff) in changes {
            if *diff > 0 {
                tables.insert(key_of(row), (row.clone(), *time));
            }
        }
    }

    #[test]
    fn ods_and_dwd_rows_are_written_only_when_asked() {
        let user = TableRow::User(crate::testing::user(1, "u", 1, "r"));
        for (ods_and_dwd, written) in [(false, 1), (true, 2)] {
            let mut net = Net::new(ods_and_dwd);
            net.push(1, vec![(user.clone(), 1), (stats(1, 0, 1), 1)]);
            net.merge();
            assert_eq!(net.ops().concat().len(), written);
        }
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
        let secret = SinkTarget::parse("postgresql://u:secret@h:5432/db").unwrap();
        assert_eq!(secret.redacted(), "postgresql://u:***@h:5432/db");
        assert_eq!(
            SinkTarget::parse("postgresql://u@h/db"),
            Ok(SinkTarget::Postgres("postgresql://u@h/db".into()))
        );
    }
}
