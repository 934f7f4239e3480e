//! `gridflow verify`: the dataflow held equal to the batch twin (and PostgreSQL) at every
//! logical time ([`crate::check::verify`]); its report goes to stdout.

use std::process::ExitCode;

use super::args::VerifyArgs;
use super::error::CommandError;
use crate::check::planted;
use crate::check::verify::random::{verify_random, RandomVerdict};
use crate::check::verify::{verify as verify_run, Against, Options, Verdict};
use crate::model::exit;

/// Verifies what `args` says; a difference is exit 1 with its report, not a failure.
pub fn verify(args: VerifyArgs) -> Result<ExitCode, CommandError> {
    if let Some(bug) = args.plant_bug {
        if !planted::plant(bug) {
            return Err(CommandError::NoTestHooks);
        }
        tracing::warn!("planted bug {bug:?} (--plant-bug): verify must catch it");
    }
    let progress = !args.no_progress;
    let against = args
        .against
        .clone()
        .filter(|url| !url.is_empty())
        .map(|url| Against {
            url,
            schema: args.against_schema.clone(),
        });
    if args.random {
        let verdict = verify_random(
            args.cases,
            args.job.seed,
            &args.failure_dir,
            against,
            progress,
        )?;
        return Ok(match verdict {
            RandomVerdict::Passed {
                cases,
                times_checked,
                elapsed,
            } => {
                report(&format!(
                    "verified: {cases} random cases (seed {}), {times_checked} logical times \
                     checked, in {:.3} s\n",
                    args.job.seed,
                    elapsed.as_secs_f64()
                ));
                ExitCode::SUCCESS
            }
            RandomVerdict::Failed {
                difference,
                params,
                ticks,
                dir,
                command,
                elapsed,
            } => {
                report(&format!(
                    "{difference}a random case (seed {}) failed; shrunk to {ticks} logical times \
                     under {params:?} in {:.3} s, written to {}. Reproduce with:\n{command}\n",
                    args.job.seed,
                    elapsed.as_secs_f64(),
                    dir.display()
                ));
                ExitCode::from(exit::DIFFERENCE)
            }
        });
    }
    let config = args.job.run_config(true)?;
    let options = Options {
        every: args.every.unwrap_or(1),
        against,
        postgres_every: args.every,
        progress,
    };
    Ok(match verify_run(config, args.job.source(), &options)? {
        Verdict::Equal(summary) => {
            report(&format!("{}\n", summary.line()));
            ExitCode::SUCCESS
        }
        Verdict::Differs(difference, summary) => {
            report(&format!(
                "{difference}({} logical times compared equal before it)\n",
                summary.checked.saturating_sub(1),
            ));
            ExitCode::from(exit::DIFFERENCE)
        }
        Verdict::NotProcessZero => {
            tracing::info!(
                "process {} ran its workers; process 0 compares the tables",
                args.job.process
            );
            ExitCode::SUCCESS
        }
    })
}

/// Prints verify's report on stdout; a reader that stopped early (`| head`) is no error.
fn report(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}
