//! CSV replay: `DIR/users/*.csv` and `DIR/consumption/*.csv` as a deterministic [`Source`].
//!
//! Files are read in name order and rows in file order; no header; the columns of SPEC §1 in
//! order; an empty field is NULL; timestamps `YYYY-MM-DD HH:MM:SS[.fff]`. Row `n` of a table is
//! its `n`-th record across its files, counted whether it parses or not, and the
//! [`Interleave`] option maps row numbers of both tables to logical times — so the times, like
//! the rows, do not depend on how many workers read them. Each worker fully parses only the
//! rows whose key it owns; a malformed row becomes a [`RowError`] naming file, line and reason,
//! and every other row is still processed.

use std::collections::VecDeque;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::rows::{Consumption, ConsumptionId, Millis, User, UserId};
use crate::source::{last_upsert_wins, owner_of, Source, SourcePosition, Tick, Time, Upsert};
use crate::values::{parse_cents, parse_millis};

/// The number of columns of `power_user` (SPEC §1).
pub const USER_COLUMNS: usize = 9;
/// The number of columns of `power_consumption` (SPEC §1).
pub const CONSUMPTION_COLUMNS: usize = 8;

/// How the rows of the two tables are spread over logical times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Interleave {
    /// Each logical time takes the next batch of users and the next batch of consumption rows.
    Alternate,
    /// All user batches first, then all consumption batches.
    UsersFirst,
    /// All consumption batches first, then all user batches: every user arrives late.
    ConsumptionFirst,
}

/// Options of a CSV replay.
#[derive(Clone, Debug)]
pub struct ReplayConfig {
    /// The directory holding `users/` and `consumption/`.
    pub dir: PathBuf,
    /// Rows of each table per batch (a logical time holds one batch of each table, or of one).
    pub batch_rows: usize,
    pub interleave: Interleave,
    /// The clock of the first batch; batch `b` has logical time `start + (b + 1) * tick`.
    pub start: Millis,
    pub tick: Millis,
}

/// A row that could not be read, and why. It is counted and reported, never fatal.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Error, Serialize, Deserialize)]
#[error("{}:{line}: {reason}", file.display())]
pub struct RowError {
    pub file: PathBuf,
    /// The 1-based line of the record in its file.
    pub line: u64,
    pub reason: String,
}

/// A failure to read the replay directory itself (as opposed to a bad row in it).
#[derive(Debug, Error)]
pub enum ReplayError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Csv { path: PathBuf, source: csv::Error },
}

/// One worker's share of a replay, loaded and parsed, ready to hand out tick by tick.
pub struct CsvReplay {
    config: ReplayConfig,
    /// The owned rows of each table not handed out yet, with their row numbers, in row order.
    users: VecDeque<(usize, Upsert<UserId, User>)>,
    consumption: VecDeque<(usize, Upsert<ConsumptionId, Consumption>)>,
    user_rows: usize,
    consumption_rows: usize,
    next_batch: usize,
    errors: Vec<RowError>,
}

impl CsvReplay {
    /// Reads the directory and parses the rows `worker` owns (of `peers`).
    pub fn load(
        config: ReplayConfig,
        worker: usize,
        peers: usize,
    ) -> Result<CsvReplay, ReplayError> {
        let mut errors = Vec::new();
        let users_dir = config.dir.join("users");
        let (users, user_rows) = read_table(
            &users_dir,
            USER_COLUMNS,
            worker,
            peers,
            &mut errors,
            parse_user,
        )?;
        let consumption_dir = config.dir.join("consumption");
        let (consumption, consumption_rows) = read_table(
            &consumption_dir,
            CONSUMPTION_COLUMNS,
            worker,
            peers,
            &mut errors,
            parse_consumption,
        )?;
        errors.sort();
        Ok(CsvReplay {
            config,
            users: users.into(),
            consumption: consumption.into(),
            user_rows,
            consumption_rows,
            next_batch: 0,
            errors,
        })
    }

    /// The malformed rows this worker found (each row is reported by exactly one worker).
    pub fn take_errors(&mut self) -> Vec<RowError> {
        std::mem::take(&mut self.errors)
    }

    /// How many batches (logical times) the replay has, the same on every worker.
    pub fn batches(&self) -> usize {
        let user_batches = self.user_rows.div_ceil(self.config.batch_rows);
        let consumption_batches = self.consumption_rows.div_ceil(self.config.batch_rows);
        match self.config.interleave {
            Interleave::Alternate => user_batches.max(consumption_batches),
            Interleave::UsersFirst | Interleave::ConsumptionFirst => {
                user_batches + consumption_batches
            }
        }
    }

    /// The batch of each table that falls into batch number `batch`, as row-number ranges.
    fn row_ranges(&self, batch: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let size = self.config.batch_rows;
        let rows = |b: usize| b * size..(b + 1) * size;
        let none = 0..0;
        let user_batches = self.user_rows.div_ceil(size);
        let consumption_batches = self.consumption_rows.div_ceil(size);
        match self.config.interleave {
            Interleave::Alternate => (rows(batch), rows(batch)),
            Interleave::UsersFirst if batch < user_batches => (rows(batch), none),
            Interleave::UsersFirst => (none, rows(batch - user_batches)),
            Interleave::ConsumptionFirst if batch < consumption_batches => (none, rows(batch)),
            Interleave::ConsumptionFirst => (rows(batch - consumption_batches), none),
        }
    }

    /// The logical time of batch number `batch`.
    pub fn time_of_batch(&self, batch: usize) -> Time {
        (self.config.start + (batch as Millis + 1) * self.config.tick) as Time
    }
}

impl Source for CsvReplay {
    fn position(&self) -> SourcePosition {
        SourcePosition::Replay {
            next_batch: self.next_batch,
        }
    }

    /// Hands out (and drops) every batch before the position's.
    fn resume(&mut self, position: SourcePosition) -> Result<(), String> {
        let SourcePosition::Replay { next_batch } = position else {
            return Err(format!("{position:?} is not a position of a CSV replay"));
        };
        if next_batch > self.batches() {
            return Err(format!(
                "the job had read {next_batch} batches, but the input has only {}",
                self.batches()
            ));
        }
        while self.next_batch < next_batch {
            self.next_tick();
        }
        Ok(())
    }

    fn next_tick(&mut self) -> Option<Tick> {
        if self.next_batch >= self.batches() {
            return None;
        }
        let batch = self.next_batch;
        self.next_batch += 1;
        let (user_range, consumption_range) = self.row_ranges(batch);
        let time = self.time_of_batch(batch);
        Some(Tick {
            time,
            users: last_upsert_wins(take_before(&mut self.users, user_range.end)),
            consumption: last_upsert_wins(take_before(
                &mut self.consumption,
                consumption_range.end,
            )),
        })
    }
}

/// Takes the rows numbered below `end` out of `rows` (sorted by row number). Batches are handed
/// out in row order, so these are exactly the rows of the batch, and each row is moved out once
/// instead of being copied while the whole replay stays loaded.
fn take_before<K, R>(rows: &mut VecDeque<(usize, Upsert<K, R>)>, end: usize) -> Vec<Upsert<K, R>> {
    let count = rows.partition_point(|(n, _)| *n < end);
    rows.drain(..count).map(|(_, upsert)| upsert).collect()
}

/// A short description of a replay's files — how many, their bytes, a checksum of their
/// names and contents — so a job can tell its input from a changed one.
pub fn fingerprint(dir: &Path) -> Result<String, ReplayError> {
    let mut hasher = crc32fast::Hasher::new();
    let (mut files, mut bytes) = (0, 0);
    for table in ["users", "consumption"] {
        for path in csv_files(&dir.join(table))? {
            let content = std::fs::read(&path).map_err(|source| ReplayError::Io {
                path: path.clone(),
                source,
            })?;
            hasher.update(table.as_bytes());
            hasher.update(path.file_name().map_or(&[][..], |n| n.as_encoded_bytes()));
            hasher.update(&content);
            files += 1;
            bytes += content.len();
        }
    }
    Ok(format!(
        "{files} files, {bytes} bytes, crc32 {:08x}",
        hasher.finalize()
    ))
}

/// The `*.csv` files of a directory in name order; a missing directory is an empty table.
fn csv_files(dir: &Path) -> Result<Vec<PathBuf>, ReplayError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ReplayError::Io {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| ReplayError::Io {
                path: dir.to_path_buf(),
                source,
            })?
            .path();
        if path.extension().is_some_and(|ext| ext == "csv") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Upserts with their row numbers, in row order.
type NumberedRows<R> = Vec<(usize, Upsert<i64, R>)>;

/// A parser of one table's records: the fields of a record into its row.
type ParseRow<R> = fn(&csv::StringRecord) -> Result<R, String>;

/// Reads every record of one table, keeping the rows whose key this worker owns and the errors
/// it is responsible for (a row whose key cannot be read is worker 0's). A record holding only
/// its key is a delete. Returns the owned upserts with their row numbers, and the row count.
fn read_table<R>(
    dir: &Path,
    columns: usize,
    worker: usize,
    peers: usize,
    errors: &mut Vec<RowError>,
    parse: ParseRow<R>,
) -> Result<(NumberedRows<R>, usize), ReplayError> {
    let mut owned = Vec::new();
    let mut row_number = 0;
    for path in csv_files(dir)? {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_path(&path)
            .map_err(|source| ReplayError::Csv {
                path: path.clone(),
                source,
            })?;
        let mut record = csv::StringRecord::new();
        loop {
            let line = reader.position().line();
            match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(error) => {
                    // A broken record (bad UTF-8, say) still takes its row number.
                    if worker == 0 {
                        errors.push(RowError {
                            file: path.clone(),
                            line,
                            reason: error.to_string(),
                        });
                    }
                    row_number += 1;
                    continue;
                }
            }
            let line = record.position().map_or(line, |p| p.line());
            let this_row = row_number;
            row_number += 1;
            let key = match parse_key(&record) {
                Ok(key) => key,
                Err(reason) => {
                    if worker == 0 {
                        errors.push(RowError {
                            file: path.clone(),
                            line,
                            reason,
                        });
                    }
                    continue;
                }
            };
            if owner_of(key, peers) != worker {
                continue;
            }
            let upsert = if record.len() == 1 {
                Ok((key, None))
            } else if record.len() != columns {
                Err(format!(
                    "expected {columns} fields (or 1 for a delete), found {}",
                    record.len()
                ))
            } else {
                parse(&record).map(|row| (key, Some(row)))
            };
            match upsert {
                Ok(upsert) => owned.push((this_row, upsert)),
                Err(reason) => errors.push(RowError {
                    file: path.clone(),
                    line,
                    reason,
                }),
            }
        }
    }
    Ok((owned, row_number))
}

/// The key of a record: its first field, a BIGINT that must be present.
fn parse_key(record: &csv::StringRecord) -> Result<i64, String> {
    let field = record.get(0).unwrap_or("").trim();
    if field.is_empty() {
        return Err("the key (first field) is missing".to_string());
    }
    field
        .parse()
        .map_err(|_| format!("key {field:?} is not a whole number"))
}

/// A nullable field: empty is NULL.
fn optional(record: &csv::StringRecord, index: usize) -> Option<&str> {
    record.get(index).filter(|field| !field.is_empty())
}

/// A nullable field parsed by `parse`, with the column name in the error.
fn optional_with<T>(
    record: &csv::StringRecord,
    index: usize,
    column: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    optional(record, index)
        .map(|field| parse(field).map_err(|reason| format!("{column}: {reason}")))
        .transpose()
}

/// A NOT NULL field parsed by `parse`.
fn required_with<T>(
    record: &csv::StringRecord,
    index: usize,
    column: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<T, String> {
    optional_with(record, index, column, parse)?.ok_or_else(|| format!("{column} is NULL"))
}

fn parse_whole<T: std::str::FromStr>(field: &str) -> Result<T, String> {
    field
        .trim()
        .parse()
        .map_err(|_| format!("{field:?} is not a whole number in range"))
}

/// A `power_user` record (SPEC §1 column order).
pub fn parse_user(record: &csv::StringRecord) -> Result<User, String> {
    let text = |index: usize| optional(record, index).map(str::to_string);
    Ok(User {
        user_id: parse_key(record)?,
        user_name: text(1),
        usage_type: text(2),
        region_id: optional_with(record, 3, "region_id", parse_whole)?,
        region_name: text(4),
        address: text(5),
        phone: text(6),
        create_time: optional_with(record, 7, "create_time", parse_millis)?,
        update_time: optional_with(record, 8, "update_time", parse_millis)?,
    })
}

/// A `power_consumption` record (SPEC §1 column order).
pub fn parse_consumption(record: &csv::StringRecord) -> Result<Consumption, String> {
    Ok(Consumption {
        consumption_id: parse_key(record)?,
        user_id: required_with(record, 1, "user_id", parse_whole)?,
        consumption_amount: required_with(record, 2, "consumption_amount", parse_cents)?,
        consumption_cost: required_with(record, 3, "consumption_cost", parse_cents)?,
        consumption_date: required_with(record, 4, "consumption_date", parse_millis)?,
        meter_reading_before: optional_with(record, 5, "meter_reading_before", parse_cents)?,
        meter_reading_after: optional_with(record, 6, "meter_reading_after", parse_cents)?,
        remark: optional(record, 7).map(str::to_string),
    })
}

impl fmt::Display for Interleave {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Interleave::Alternate => "alternate",
            Interleave::UsersFirst => "users-first",
            Interleave::ConsumptionFirst => "consumption-first",
        };
        f.write_str(name)
    }
}
