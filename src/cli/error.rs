//! What a command can fail with, and the exit code each failure has (`docs/durability.md`):
//! decided from the failure's type — and, for the state dir, the sinks and the runtime, from
//! their own `exit_code()` — never from its text.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use super::args::OptionError;
use crate::check::verify::VerifyError;
use crate::durable::StateError;
use crate::model::exit;
use crate::query::QueryError;
use crate::runtime::RunError;
use crate::sinks::target::TargetError;
use crate::sinks::SinkError;
use crate::sources::csv_replay::ReplayError;

/// A command that failed. Its message is one line (the binary folds a server's multi-line
/// message into it) that says what failed and, where there is one, what to do.
#[derive(Debug, Error)]
pub enum CommandError {
    #[error("--export needs bounded input: give --consumptions N or --input DIR")]
    ExportNeedsBoundedInput,
    #[error(transparent)]
    Options(#[from] OptionError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot read the input: {0}")]
    Input(#[source] ReplayError),
    #[error("cannot install the Ctrl-C handler: {0}")]
    CtrlC(#[from] ctrlc::Error),
    #[error("cannot open the sink {}: {source}", path.display())]
    OpenSqlite { path: PathBuf, source: SinkError },
    #[error("cannot open the PostgreSQL sink: {0}")]
    OpenPostgres(#[source] SinkError),
    #[error("cannot read the sink's progress: {0}")]
    SinkProgress(#[source] SinkError),
    #[error("cannot clear the sink's tables: {0}")]
    SinkReset(#[source] SinkError),
    #[error("cannot release the sink's lease: {0}")]
    SinkRelease(#[source] SinkError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("cannot start the report's sampler: {0}")]
    Sampler(#[source] io::Error),
    #[error("cannot write the report {}: {source}", path.display())]
    Report { path: PathBuf, source: io::Error },
    #[error("cannot write {what} to {}: {source}", dir.display())]
    Export {
        what: &'static str,
        dir: PathBuf,
        source: io::Error,
    },
    #[error("{0} rows had a multiplicity other than 0 or 1")]
    Multiplicity(usize),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(
        "--plant-bug needs a build with test hooks: cargo build --features test-hooks \
         (docs/verify.md)"
    )]
    NoTestHooks,
    #[error("query {name} failed: {source}")]
    Query { name: String, source: QueryError },
    #[error("cannot print the result: {0}")]
    Print(#[source] io::Error),
    #[error("cannot find this binary's path: {0}")]
    CurrentExe(#[source] io::Error),
    /// The benchmark driver's failure, with its chain of causes.
    #[error("{0:#}")]
    Bench(anyhow::Error),
}

impl CommandError {
    /// The exit code of this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::State(error) => error.exit_code(),
            CommandError::Run(error) => error.exit_code(),
            CommandError::Sink(error)
            | CommandError::OpenSqlite { source: error, .. }
            | CommandError::OpenPostgres(error)
            | CommandError::SinkProgress(error)
            | CommandError::SinkReset(error)
            | CommandError::SinkRelease(error) => error.exit_code(),
            CommandError::Verify(_) => exit::CANNOT_VERIFY,
            CommandError::NoTestHooks => exit::BAD_OPTIONS,
            _ => exit::FAILED,
        }
    }
}
