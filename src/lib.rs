//! gridflow: the power-grid real-time warehouse of `SPEC.md` (ODS → DWD → DWS → ADS) as
//! exact incrementally maintained views on timely + differential dataflow.
//!
//! The warehouse itself lives in [`dataflows`], one module per layer in the source's order;
//! everything under `src/` is the engine around it: row types, sources, the runtime, export.

#[path = "../dataflows/mod.rs"]
pub mod dataflows;

pub mod bench;
pub mod cases;
pub mod cli;
pub mod coalesce;
pub mod csv_input;
pub mod csv_scan;
pub mod dense_replay;
pub mod durable;
pub mod earliest;
pub mod export;
pub mod faults;
pub mod generator;
pub mod late;
pub mod latency;
pub mod metrics;
pub mod oracle;
pub mod planted;
pub mod query;
pub mod reduce;
pub mod reference;
pub mod report;
pub mod retention;
pub mod rows;
pub mod runtime;
pub mod sinks;
pub mod source;
#[doc(hidden)]
pub mod testing;
pub mod ui;
pub mod upsert;
pub mod values;
pub mod verify;
