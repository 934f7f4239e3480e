//! The command line: its options ([`args`]), what each command does ([`run`], [`verify`],
//! [`query`], [`bench`]), and the exit code of every failure ([`error`]). The binary
//! (`src/main.rs`) only parses, sets up logging, calls [`execute`] and prints a failure.
//!
//! May use: anything.

pub mod args;
pub mod bench;
pub mod error;
pub mod query;
pub mod run;
pub mod status;
pub mod verify;

use std::process::ExitCode;

pub use args::{Cli, Command, DEFAULT_SIMULATED_START};
pub use error::CommandError;

/// Runs the command `cli` names.
pub fn execute(cli: Cli) -> Result<ExitCode, CommandError> {
    match cli.command {
        Command::Run(args) => run::run(*args).map(|()| ExitCode::SUCCESS),
        Command::Query(args) => query::query(args).map(|()| ExitCode::SUCCESS),
        Command::Verify(args) => verify::verify(*args),
        Command::Bench(args) => bench::bench(args).map(|()| ExitCode::SUCCESS),
    }
}
