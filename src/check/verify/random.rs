//! `gridflow verify --random`: adversarial cases from [`crate::check::cases`] (the property tests'
//! generator), each verified at every logical time under its own window, worker count,
//! serialization, pacing and retention; the first failure is shrunk with proptest's
//! `TestRunner` and written as a replay directory ([`super::case_dir`]).

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use proptest::strategy::Strategy;
use proptest::test_runner::{
    Config as ProptestConfig, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner,
};

use super::case_dir::{as_replayed, write_case};
use super::report::Difference;
use super::{verify, Against, Options, Verdict, VerifyError};
use crate::check::cases::{params, ticks, Params};
use crate::runtime::SourceSpec;
use crate::sources::Tick;

/// What `--random` found.
pub enum RandomVerdict {
    /// Every case passed.
    Passed {
        cases: u32,
        times_checked: u64,
        elapsed: Duration,
    },
    /// A case failed: its shrunk form, the difference it shows, and where it was written.
    Failed {
        difference: Box<Difference>,
        params: Params,
        ticks: usize,
        dir: PathBuf,
        command: String,
        elapsed: Duration,
    },
}

/// The generator's rng for `seed`.
fn rng(seed: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

/// Verifies one case; `Err` on a failure to verify.
fn verify_case(
    ticks: &[Tick],
    params: &Params,
    against: &Option<Against>,
) -> Result<Verdict, VerifyError> {
    let options = Options {
        every: 1,
        against: against.clone(),
        postgres_every: None,
        progress: false,
    };
    verify(
        params.run_config(),
        SourceSpec::Scripted(ticks.to_vec()),
        &options,
    )
}

/// Verifies `cases` cases drawn from `seed`; a failing one is shrunk and written to
/// `failure_dir`.
pub fn verify_random(
    cases: u32,
    seed: u64,
    failure_dir: &Path,
    against: Option<Against>,
    progress: bool,
) -> Result<RandomVerdict, VerifyError> {
    let started = Instant::now();
    let config = ProptestConfig {
        cases,
        max_shrink_iters: 1024,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new_with_rng(config, rng(seed));
    let strategy = (ticks(), params()).prop_map(|(ticks, params)| (as_replayed(ticks), params));
    let bar = if progress {
        ProgressBar::new(cases.into())
    } else {
        ProgressBar::hidden()
    };
    let failure: RefCell<Option<VerifyError>> = RefCell::new(None);
    let times_checked = Cell::new(0u64);
    let passed = Cell::new(0u32);
    let shrinking = Cell::new(false);
    let result = runner.run(&strategy, |(ticks, params)| {
        if failure.borrow().is_some() {
            // A failure to verify ends the run: nothing more is tried.
            return Err(TestCaseError::reject("verify failed"));
        }
        match verify_case(&ticks, &params, &against) {
            Ok(Verdict::Differs(difference, _)) => {
                if !shrinking.replace(true) {
                    bar.set_message("a case failed: shrinking it");
                }
                Err(TestCaseError::fail(difference.to_string()))
            }
            Ok(Verdict::Equal(summary)) => {
                if !shrinking.get() {
                    passed.set(passed.get() + 1);
                    times_checked.set(times_checked.get() + summary.checked);
                    bar.inc(1);
                }
                Ok(())
            }
            Ok(Verdict::NotProcessZero) => Ok(()),
            Err(error) => {
                *failure.borrow_mut() = Some(error);
                Err(TestCaseError::reject("verify failed"))
            }
        }
    });
    bar.finish_and_clear();
    if let Some(error) = failure.into_inner() {
        return Err(error);
    }
    match result {
        Ok(()) => Ok(RandomVerdict::Passed {
            cases: passed.get(),
            times_checked: times_checked.get(),
            elapsed: started.elapsed(),
        }),
        Err(TestError::Fail(_, (ticks, params))) => {
            // The shrunk case, verified once more for its difference.
            let difference = match verify_case(&ticks, &params, &against)? {
                Verdict::Differs(difference, _) => difference,
                _ => {
                    return Err(VerifyError::Checker(
                        "the shrunk case passed when verified again: the failure is not \
                         deterministic"
                            .into(),
                    ))
                }
            };
            let command = write_case(failure_dir, &ticks, &params).map_err(|e| {
                VerifyError::Checker(format!(
                    "cannot write the failing case to {}: {e}",
                    failure_dir.display()
                ))
            })?;
            Ok(RandomVerdict::Failed {
                difference,
                params,
                ticks: ticks.len(),
                dir: failure_dir.to_path_buf(),
                command,
                elapsed: started.elapsed(),
            })
        }
        Err(TestError::Abort(reason)) => Err(VerifyError::Checker(format!(
            "the case generator gave up: {reason}"
        ))),
    }
}
