//! Checks: everything that holds gridflow against an answer it did not compute itself — the
//! plain batch twin of every layer ([`twin`]), the generator of adversarial cases the property
//! tests and `verify --random` share ([`cases`]), PostgreSQL recomputing the layers with the
//! source's SQL ([`oracle`]), `gridflow verify` ([`verify`]), and the test hooks: bugs planted
//! to see verify catch them ([`planted`]) and fault points for the crash tests ([`faults`]).
//!
//! May use: anything. Nothing but the tests, `verify` and the benchmarks' baselines uses the
//! twin; the engine reaches the test hooks only through `planted!` and `fault_point!`
//! (`lib.rs`), which are nothing without the `test-hooks` feature.

pub mod cases;
#[cfg(feature = "test-hooks")]
pub mod faults;
pub mod oracle;
pub mod planted;
#[doc(hidden)]
pub mod testing;
pub mod twin;
pub mod verify;
