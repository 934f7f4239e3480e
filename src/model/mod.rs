//! The model: the rows of every table, the values they hold and the logical time they carry —
//! what the warehouse (`dataflows/`) and every part of the engine share — and the exit codes
//! failures map to.
//!
//! May use: nothing else in the crate. Everything else may use it.

pub mod exit;
pub mod rows;
pub mod tables;
pub mod time;
pub mod values;

pub use tables::{RowError, TableRow, Warehouse};
pub use time::{now_millis, Time};
