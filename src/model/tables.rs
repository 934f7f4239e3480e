//! The tables that leave the dataflow, as values: a row of any of them ([`TableRow`]), a
//! malformed input row ([`RowError`], which travels beside them), and all six tables at once
//! ([`Warehouse`]), as the export writes them and the batch twin computes them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::rows::{Consumption, Dashboard, Detail, RegionStats, User, UserRanking};

/// A row of any warehouse table, or a malformed input row.
///
/// The variants' order is part of the durable export log's format (`docs/durability.md`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TableRow {
    User(User),
    Consumption(Consumption),
    Detail(Detail),
    RegionStats(RegionStats),
    Ranking(UserRanking),
    Dashboard(Dashboard),
    Error(RowError),
}

/// An input row that could not be read, and why: where it is (a file and its line) and the
/// reason. It is counted and reported (`errors.csv`), never fatal.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Error, Serialize, Deserialize)]
#[error("{}:{line}: {reason}", file.display())]
pub struct RowError {
    pub file: PathBuf,
    /// The 1-based line of the record's first byte in its file.
    pub line: u64,
    pub reason: String,
}

/// The six tables of the warehouse, each sorted by its primary key (the derived Ord of its row
/// type; dashboards too sort by (region_id, stat_date) here).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Warehouse {
    pub users: Vec<User>,
    pub consumption: Vec<Consumption>,
    pub details: Vec<Detail>,
    pub region_stats: Vec<RegionStats>,
    pub rankings: Vec<UserRanking>,
    pub dashboards: Vec<Dashboard>,
}
