//! A [`ChangeSink`] writing into a [`Database`]: the change sets of consecutive completed times
//! merged by key ([`super::net`]) and applied in one transaction with the sink's progress, so a
//! restarted job skips what it already applied (exactly once); a lease keeps two jobs from
//! writing one sink, and failed writes are retried before the job stops.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::net::{Net, NetOp};
use super::{tables, ChangeSink, SinkError, RETRIES};
use crate::metrics::Metrics;
use crate::model::rows::Millis;
use crate::model::{now_millis, TableRow, Time};

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
    pub(super) ods_and_dwd: bool,
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
        let now = now_millis();
        // The same owner token on every attempt: a lease taken before a cut connection is ours.
        let acquired = retrying(&mut database, "taking the sink's lease", |database| {
            database.acquire(&owner, now - LEASE_MILLIS, job)
        })?;
        if !acquired {
            let (holder, heartbeat) =
                retrying(&mut database, "reading the sink's lease", Database::holder)?
                    .unwrap_or_default();
            return Err(SinkError::Held {
                owner: holder,
                seconds_ago: (now - heartbeat) as f64 / 1000.0,
                lease_seconds: LEASE_MILLIS / 1000,
            });
        }
        let applied_upto = retrying(
            &mut database,
            "reading the sink's progress",
            Database::progress,
        )?;
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
        let database = &mut self.database;
        match retrying(database, "reading the sink's job", Database::job)? {
            Some(holder) if holder == job => Ok(()),
            Some(holder) => Err(SinkError::OtherJob { job: holder }),
            None if self.applied_upto.is_some()
                || retrying(database, "reading the sink's tables", Database::holds_rows)? =>
            {
                Err(SinkError::OtherJob {
                    job: "rows written without a job id".to_string(),
                })
            }
            None => retrying(database, "claiming the sink", |database| {
                database.claim(job, &self.owner)
            }),
        }
    }

    /// Empties the tables and forgets their progress and job (`--reset`).
    pub fn reset(&mut self) -> Result<(), SinkError> {
        let owner = &self.owner;
        retrying(&mut self.database, "clearing the sink", |database| {
            database.clear(owner)
        })?;
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
    pub(super) fn write(&mut self, mut run: Net) -> Result<(), SinkError> {
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
            tracing::warn!(
                "sink write up to logical time {last} failed ({error}); retry {failures} of {RETRIES} in {backoff:?}"
            );
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

/// Runs `step` against `database`; a failure the server may recover from (see
/// [`SinkError::may_pass`]) is retried with the backoff of a failed write, on a fresh
/// connection, up to [`RETRIES`] times. `what` names the step in the log and the final error.
fn retrying<D: Database, T>(
    database: &mut D,
    what: &str,
    mut step: impl FnMut(&mut D) -> Result<T, SinkError>,
) -> Result<T, SinkError> {
    retry(what, database, &mut step, |database| database.reconnect())
}

/// Connects with `connect`, retrying as [`retrying`] does: a sink opens through a cut or
/// refused connection, or a server restarting, as its writes go through them.
pub fn connect_retrying<D>(
    mut connect: impl FnMut() -> Result<D, SinkError>,
) -> Result<D, SinkError> {
    retry("opening the sink", &mut (), |()| connect(), |()| Ok(()))
}

/// The retry loop of [`retrying`] and [`connect_retrying`]: `attempt`, and `recover` before
/// each retry (its own failure shows in the next attempt's).
fn retry<S, T>(
    what: &str,
    state: &mut S,
    mut attempt: impl FnMut(&mut S) -> Result<T, SinkError>,
    mut recover: impl FnMut(&mut S) -> Result<(), SinkError>,
) -> Result<T, SinkError> {
    let mut failures = 0;
    loop {
        let error = match attempt(state) {
            Err(error) if error.may_pass() => error,
            done => return done,
        };
        failures += 1;
        if failures > RETRIES {
            return Err(SinkError::CannotOpen {
                what: what.to_string(),
                error: Box::new(error),
            });
        }
        let backoff = FIRST_BACKOFF * 2u32.pow(failures - 1);
        tracing::warn!("{what} failed ({error}); retry {failures} of {RETRIES} in {backoff:?}");
        std::thread::sleep(backoff);
        let _ = recover(state);
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

/// This machine's name, for lease tokens a person can read.
fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map_or_else(|_| "this host".to_string(), |name| name.trim().to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::rows::RegionId;
    use crate::model::rows::{RegionStats, Text};
    use crate::sinks::keys::{key_of, RowKey};
    use crate::sinks::ChangeSet;

    /// A region-stats row, the test rows of this module and its children.
    pub(crate) fn stats(region_id: RegionId, stat_date: Millis, total: i64) -> TableRow {
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
    pub(crate) type Tables = std::collections::BTreeMap<RowKey, (TableRow, Time)>;

    /// Writes one change set as its own transaction would: retracted keys go, new versions
    /// come with the change set's time as their stamp.
    pub(crate) fn write_in_order(tables: &mut Tables, (time, changes): &ChangeSet) {
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
        let user = TableRow::User(crate::check::testing::user(1, "u", 1, "r"));
        for (ods_and_dwd, written) in [(false, 1), (true, 2)] {
            let mut net = Net::new(ods_and_dwd);
            net.push(1, vec![(user.clone(), 1), (stats(1, 0, 1), 1)]);
            net.merge();
            assert_eq!(net.ops().concat().len(), written);
        }
    }
}
