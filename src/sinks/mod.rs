//! Sinks: where the tables leave the dataflow and what receives them.
//!
//! [`exits`] routes the tables the warehouse lets out (`dataflows/sink.rs`) to their exits —
//! the counters, the probe, the monitor and [`handoff`], the operator that gathers every
//! table's changes on worker 0 and hands each completed logical time's consolidated change set
//! to a [`ChangeSink`]. The sinks: a [`Database`] (SQLite or PostgreSQL: each run of completed
//! times merged by key ([`net`]) and applied in one transaction with the sink's progress, so a
//! restarted job skips what it already applied), the export ([`export`], [`materialized`]),
//! and the tests'.
//!
//! May use: the model, the operators, the metrics, the UI's monitor, and — in [`exits`] alone —
//! the warehouse's tables (`dataflows/`).

pub mod background;
pub mod database;
pub mod exits;
pub mod export;
pub mod handoff;
pub mod keys;
pub mod materialized;
pub mod net;
pub mod postgres;
pub mod sqlite;
pub mod tables;
pub mod target;

use thiserror::Error;

use crate::model::{TableRow, Time};

pub use target::SinkTarget;

/// Receives the consolidated changes of each completed logical time, in time order.
pub trait ChangeSink {
    /// Applies the changes that make the tables at `time` out of the tables before it. The sink
    /// owns them from here: one that keeps them (to write later, or on another thread) does not
    /// copy them.
    fn apply(&mut self, time: Time, changes: Vec<(TableRow, isize)>);
    /// Called after a run of consecutive completed times has been applied: a sink that
    /// batches writes them now. An error stops the job: the sink cannot take more.
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// The consolidated changes of one completed logical time.
pub type ChangeSet = (Time, Vec<(TableRow, isize)>);

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

impl SinkError {
    /// The exit code of this failure ([`crate::model::exit`]).
    pub fn exit_code(&self) -> u8 {
        use crate::model::exit;
        match self {
            SinkError::Held { .. } => exit::HELD,
            SinkError::OtherJob { .. } => exit::OTHER_JOB,
            SinkError::GaveUp { .. }
            | SinkError::Stopped { .. }
            | SinkError::Fenced
            | SinkError::CannotOpen { .. } => exit::SINK_FAILED,
            _ => exit::FAILED,
        }
    }
}

impl SinkError {
    /// Whether the failure may pass if tried again: the connection was cut, refused or timed
    /// out, or the server is shutting down or starting (SQLSTATE classes 08 and 57). Not a
    /// wrong password, a missing database or table, a broken constraint, another job's sink.
    pub fn may_pass(&self) -> bool {
        let SinkError::Postgres(error) = self else {
            return false;
        };
        match error.as_db_error() {
            Some(db) => {
                let code = db.code().code();
                code.starts_with("08") || code.starts_with("57")
            }
            None => {
                error.is_closed()
                    || std::error::Error::source(error)
                        .is_some_and(|cause| cause.is::<std::io::Error>())
            }
        }
    }
}

/// A failure to write to a sink's database.
#[derive(Debug, Error)]
pub enum SinkError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgresql: {}", describe(.0))]
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
    /// Opening the sink failed again after every retry: the job does not start.
    #[error("the sink cannot be opened: {what} failed after {RETRIES} retries: {error}")]
    CannotOpen { what: String, error: Box<SinkError> },
    #[error("table {table}: {message}")]
    Apply {
        table: &'static str,
        message: String,
    },
}

/// Retries of a failed write before the job stops (the source's rule), and the first backoff.
pub const RETRIES: u32 = 3;

/// A PostgreSQL error as a person needs it: the server's own message where there is one (the
/// client's `Display` says only "db error"), else the client's error and its cause.
pub fn describe(error: &::postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return db.to_string();
    }
    match std::error::Error::source(error) {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}
