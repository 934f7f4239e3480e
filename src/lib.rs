//! gridflow: the power-grid real-time warehouse of `SPEC.md` (ODS → DWD → DWS → ADS) as
//! exact incrementally maintained views on timely + differential dataflow.
//!
//! The warehouse itself lives in [`dataflows`], one module per layer in the source's order;
//! everything under `src/` is the engine around it, one folder per concern, listed here from
//! the bottom up: each may use the ones above it (`docs/architecture.md` draws the tree).

/// Whether the planted bug `Bug::$bug` ([`check::planted`]) is switched on: one relaxed atomic
/// load in a build with the `test-hooks` feature, the constant `false` in any other.
#[cfg(feature = "test-hooks")]
macro_rules! planted {
    ($bug:ident) => {
        $crate::check::planted::planted($crate::check::planted::Bug::$bug)
    };
}
#[cfg(not(feature = "test-hooks"))]
macro_rules! planted {
    ($bug:ident) => {
        false
    };
}

/// A fault point named `$name` ([`check::faults`]): the crash tests' `GRIDFLOW_KILL_AT` kills
/// the process there. Nothing at all without the `test-hooks` feature.
#[cfg(feature = "test-hooks")]
macro_rules! fault_point {
    ($name:literal) => {
        $crate::check::faults::point($name)
    };
}
#[cfg(not(feature = "test-hooks"))]
macro_rules! fault_point {
    ($name:literal) => {
        ()
    };
}

pub mod bench;
pub mod check;
pub mod cli;
#[path = "../dataflows/mod.rs"]
pub mod dataflows;
pub mod durable;
pub mod metrics;
pub mod model;
pub mod operators;
pub mod query;
pub mod runtime;
pub mod sinks;
pub mod sources;
pub mod ui;
