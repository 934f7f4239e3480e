//! `gridflow bench`: the research benchmarks, regenerating `docs/benchmarks.md` ([`crate::bench`]).

use super::args::BenchArgs;
use super::error::CommandError;
use crate::bench::machine::Machine;
use crate::bench::{Bench, Scenario};

/// Runs the scenarios `args` names (all of them by default).
pub fn bench(args: BenchArgs) -> Result<(), CommandError> {
    let binary = match args.binary {
        Some(binary) => binary,
        None => std::env::current_exe().map_err(CommandError::CurrentExe)?,
    };
    let bench = Bench {
        binary,
        quick: args.quick,
        runs: args.runs.unwrap_or(if args.quick { 1 } else { 3 }) as usize,
        out: args.out,
        database_url: args.against,
        machine: Machine::this(),
    };
    let scenarios = if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenarios
    };
    crate::bench::run(&bench, &scenarios, &args.doc).map_err(CommandError::Bench)
}
