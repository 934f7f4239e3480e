//! CSV replay: `DIR/users/*.csv` and `DIR/consumption/*.csv` as a deterministic [`Source`].
//!
//! Files are read in name order and rows in file order; no header; the columns of SPEC §1 in
//! order; an empty field is NULL; timestamps `YYYY-MM-DD HH:MM:SS[.fff]`. Row `n` of a table is
//! its `n`-th record across its files, counted whether it parses or not, and the
//! [`Interleave`] option maps row numbers of both tables to logical times — so the times, like
//! the rows, do not depend on how many workers read them. Every worker finds every record with
//! a cheap quote-aware scan and reads its key, the first field ([`crate::sources::csv_scan`]); only the
//! key's owner has the `csv` crate tokenize the record, and parses it. A malformed row becomes
//! a [`RowError`] naming file, line and reason, reported by exactly one worker, and every other
//! row is still processed.

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::model::rows::{Consumption, ConsumptionId, Millis, User, UserId};
use crate::model::values::{parse_cents, parse_millis, ValueError};
use crate::model::RowError;
use crate::model::Time;
use crate::sources::csv_scan::{self, read_records};
use crate::sources::{
    last_upsert_wins, owner_of, PositionError, Source, SourcePosition, Tick, Upsert,
};

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

/// Why a record is not a row of its table: the reason `errors.csv` gives for it.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RecordError {
    #[error("invalid UTF-8 in field {field} near byte index {valid_up_to}")]
    NotUtf8 { field: usize, valid_up_to: usize },
    #[error("the key (first field) is missing")]
    MissingKey,
    #[error("key {0:?} is not a whole number")]
    KeyNotWhole(String),
    #[error("{column}: {source}")]
    Value {
        column: &'static str,
        source: ValueError,
    },
    #[error("{column} is NULL")]
    Null { column: &'static str },
    #[error("expected {expected} fields (or 1 for a delete), found {found}")]
    FieldCount { expected: usize, found: usize },
    #[error("the record ends early when read again")]
    EndsEarly,
    /// Anything else the `csv` crate finds wrong, in its words.
    #[error("{0}")]
    Csv(String),
}

/// A failure to read the replay directory itself (as opposed to a bad row in it).
#[derive(Debug, Error)]
pub enum ReplayError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
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
    fn resume(&mut self, position: SourcePosition) -> Result<(), PositionError> {
        let SourcePosition::Replay { next_batch } = position else {
            return Err(PositionError::OtherSource {
                position: Box::new(position),
                kind: "a CSV replay",
            });
        };
        if next_batch > self.batches() {
            return Err(PositionError::DoesNotFit(format!(
                "the job had read {next_batch} batches, but the input has only {}",
                self.batches()
            )));
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
type ParseRow<R> = fn(&csv::StringRecord) -> Result<R, RecordError>;

/// Reads every record of one table, keeping the rows whose key this worker owns and the errors
/// it is responsible for. A record holding only its key is a delete. Returns the owned upserts
/// with their row numbers, and the row count.
///
/// Every worker finds every record ([`read_records`]) and reads its key, the first field; only
/// the key's owner has the `csv` crate read the rest ([`Owned`]). So each malformed row is
/// reported once: by worker 0 when its key cannot be read, by the key's owner otherwise.
fn read_table<R>(
    dir: &Path,
    columns: usize,
    worker: usize,
    peers: usize,
    errors: &mut Vec<RowError>,
    parse: ParseRow<R>,
) -> Result<(NumberedRows<R>, usize), ReplayError> {
    let mut rows = Vec::new();
    let mut row_number = 0;
    for path in csv_files(dir)? {
        let io = |source| ReplayError::Io {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(io)?;
        let mut owned = Owned::new(&path, columns, parse);
        read_records(file, csv_scan::CHUNK_BYTES, |record| {
            let this_row = row_number;
            row_number += 1;
            let first = csv_scan::fields(record.bytes).next().unwrap_or_default();
            let key = digits(&first).map_or_else(|| utf8(&first, 0).and_then(parse_key_field), Ok);
            match key {
                Ok(key) if owner_of(key, peers) == worker => {
                    owned.push(this_row, key, record);
                    if owned.bytes.len() >= csv_scan::CHUNK_BYTES {
                        owned.parse(&mut rows, errors);
                    }
                }
                Ok(_) => {}
                Err(reason) if worker == 0 => errors.push(RowError {
                    file: path.clone(),
                    line: record.line,
                    reason: reason.to_string(),
                }),
                Err(_) => {}
            }
        })
        .map_err(io)?;
        owned.parse(&mut rows, errors);
    }
    Ok((rows, row_number))
}

/// The records of one file that a worker owns, gathered to be parsed a chunk at a time by the
/// `csv` crate, which tokenizes them exactly as it would in the file.
struct Owned<'a, R> {
    path: &'a Path,
    columns: usize,
    parse: ParseRow<R>,
    /// The records, each with a `\n` after it (unless it ended its file without a terminator,
    /// where a `\n` would join an unclosed quoted field), after an empty line: the crate skips
    /// it, and it keeps the crate from dropping a first record's leading bytes as a BOM.
    bytes: Vec<u8>,
    /// Each record's row number, key and line, in order.
    records: Vec<(usize, i64, u64)>,
}

impl<'a, R> Owned<'a, R> {
    fn new(path: &'a Path, columns: usize, parse: ParseRow<R>) -> Owned<'a, R> {
        Owned {
            path,
            columns,
            parse,
            bytes: b"\n".to_vec(),
            records: Vec::new(),
        }
    }

    fn push(&mut self, row: usize, key: i64, record: csv_scan::Record<'_>) {
        self.bytes.extend_from_slice(record.bytes);
        if record.terminated {
            self.bytes.push(b'\n');
        }
        self.records.push((row, key, record.line));
    }

    /// Parses the gathered records into `rows` and `errors`, and forgets them.
    fn parse(&mut self, rows: &mut NumberedRows<R>, errors: &mut Vec<RowError>) {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(&self.bytes[..]);
        let mut fields = csv::StringRecord::new();
        for (row, key, line) in self.records.drain(..) {
            let columns = self.columns;
            let upsert = match reader.read_record(&mut fields) {
                Ok(true) if fields.len() == 1 => Ok((key, None)),
                Ok(true) if fields.len() != columns => Err(RecordError::FieldCount {
                    expected: columns,
                    found: fields.len(),
                }),
                Ok(true) => (self.parse)(&fields).map(|row| (key, Some(row))),
                Ok(false) => Err(RecordError::EndsEarly),
                Err(error) => Err(match error.kind() {
                    csv::ErrorKind::Utf8 { err, .. } => RecordError::NotUtf8 {
                        field: err.field(),
                        valid_up_to: err.valid_up_to(),
                    },
                    _ => RecordError::Csv(error.to_string()),
                }),
            };
            match upsert {
                Ok(upsert) => rows.push((row, upsert)),
                Err(reason) => errors.push(RowError {
                    file: self.path.to_path_buf(),
                    line,
                    reason: reason.to_string(),
                }),
            }
        }
        self.bytes.truncate(1);
    }
}

/// A key of plain decimal digits, the common case, read without the checks of
/// [`parse_key_field`]; `None` for anything else (which that function reads).
fn digits(field: &[u8]) -> Option<i64> {
    if field.is_empty() || field.len() > 18 || !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        field
            .iter()
            .fold(0, |key, digit| key * 10 + i64::from(digit - b'0')),
    )
}

/// A field as text; the error says which field is not UTF-8 (as the `csv` crate says it).
fn utf8(field: &[u8], index: usize) -> Result<&str, RecordError> {
    std::str::from_utf8(field).map_err(|error| RecordError::NotUtf8 {
        field: index,
        valid_up_to: error.valid_up_to(),
    })
}

/// The key of a record: its first field, a BIGINT that must be present.
fn parse_key(record: &csv::StringRecord) -> Result<i64, RecordError> {
    parse_key_field(record.get(0).unwrap_or(""))
}

/// A key field: a whole number, surrounding blanks allowed.
fn parse_key_field(field: &str) -> Result<i64, RecordError> {
    let field = field.trim();
    if field.is_empty() {
        return Err(RecordError::MissingKey);
    }
    field
        .parse()
        .map_err(|_| RecordError::KeyNotWhole(field.to_string()))
}

/// A nullable field: empty is NULL.
fn optional(record: &csv::StringRecord, index: usize) -> Option<&str> {
    record.get(index).filter(|field| !field.is_empty())
}

/// A nullable field parsed by `parse`, with the column name in the error.
fn optional_with<T>(
    record: &csv::StringRecord,
    index: usize,
    column: &'static str,
    parse: impl Fn(&str) -> Result<T, ValueError>,
) -> Result<Option<T>, RecordError> {
    optional(record, index)
        .map(|field| parse(field).map_err(|source| RecordError::Value { column, source }))
        .transpose()
}

/// A NOT NULL field parsed by `parse`.
fn required_with<T>(
    record: &csv::StringRecord,
    index: usize,
    column: &'static str,
    parse: impl Fn(&str) -> Result<T, ValueError>,
) -> Result<T, RecordError> {
    optional_with(record, index, column, parse)?.ok_or(RecordError::Null { column })
}

/// A whole number that fits `T`.
fn parse_whole<T: std::str::FromStr>(field: &str) -> Result<T, ValueError> {
    field
        .trim()
        .parse()
        .map_err(|_| ValueError::NotWhole(field.to_string()))
}

/// A `power_user` record (SPEC §1 column order).
pub fn parse_user(record: &csv::StringRecord) -> Result<User, RecordError> {
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
pub fn parse_consumption(record: &csv::StringRecord) -> Result<Consumption, RecordError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A replay directory of awkward files: CRLF endings, quoted keys, quoted fields holding
    /// newlines, delimiters and doubled quotes, blank lines, a BOM, an empty file, a file whose
    /// last record has no terminator, one whose last quoted field never closes, bytes that are
    /// not UTF-8 (in a key and elsewhere), malformed rows, deletes, and keys repeated in a batch.
    fn awkward_replay(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gridflow-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("users")).unwrap();
        std::fs::create_dir_all(dir.join("consumption")).unwrap();
        let user = |id: &str, name: &str| format!("{id},{name},居民,1,东城供电区,addr,123,,");
        let files: [(&str, Vec<u8>); 7] = [
            (
                "users/a.csv",
                [
                    user("1", "Ann"),
                    user("2", "\"Bob, \"\"the\"\" builder\""),
                    user("\"3\"", "\"two\r\nlines\""),
                    "4,short".to_string(),
                    "1".to_string(),
                    user("5", "Eve"),
                ]
                .join("\r\n")
                .into_bytes(),
            ),
            ("users/b.csv", Vec::new()),
            (
                "users/c.csv",
                format!("\u{feff}{}\n\n\n{}\n{}", user("6", "Fay"), user(" 7 ", "Gus"), user("2", "Bo"))
                    .into_bytes(),
            ),
            (
                "consumption/1.csv",
                [
                    "10,1,1.50,0.83,2024-01-01 00:00:01,,,\"a remark, \"\"quoted\"\",\nover lines\"",
                    "11,2,1.00,0.55,2024-01-01 00:00:02,,,",
                    "\"12\",3,2.00,1.10,2024-01-01 00:00:03,1.00,3.00,plain",
                    "13,x,2.00,1.10,2024-01-01 00:00:03,,,",
                    ",3,2.00,1.10,2024-01-01 00:00:03,,,",
                    "10,1,9.99,5.49,2024-01-01 00:00:04,,,again",
                    "14,1,1.00,0.55,2024-01-01 00:00:05,,,no terminator",
                ]
                .join("\n")
                .into_bytes(),
            ),
            (
                "consumption/2.csv",
                [
                    &b"15,1,1.00,0.55,2024-01-01 00:00:06,,,\xff\xfe"[..],
                    b"1\xff6,1,1.00,0.55,2024-01-01 00:00:06,,,",
                    b"17,1,1.00,0.55,2024-01-01 00:00:07,,,\"never closed\n18,1,1.00,0.55",
                ]
                .join(&b"\n"[..]),
            ),
            ("consumption/3.csv", b"\r\n\r\n".to_vec()),
            (
                "consumption/4.csv",
                b"19,2,1.00,0.55,2024-01-01 00:00:08,,,first\n19,2,2.00,1.10,2024-01-01 00:00:08,,,second\n11\n"
                    .to_vec(),
            ),
        ];
        for (path, content) in files {
            std::fs::write(dir.join(path), content).unwrap();
        }
        dir
    }

    fn config(dir: &Path) -> ReplayConfig {
        ReplayConfig {
            dir: dir.to_path_buf(),
            batch_rows: 2,
            interleave: Interleave::Alternate,
            start: 0,
            tick: 10,
        }
    }

    /// Everything a replay loads: each table's rows with their row numbers, the errors, and
    /// the row counts.
    type Loaded = (
        Vec<(usize, Upsert<UserId, User>)>,
        Vec<(usize, Upsert<ConsumptionId, Consumption>)>,
        Vec<RowError>,
        (usize, usize),
    );

    /// The union of what `peers` workers load, checking that each keeps only keys it owns and
    /// that all count the same rows.
    fn load_shares(dir: &Path, peers: usize) -> Loaded {
        let (mut users, mut consumption, mut errors) = (Vec::new(), Vec::new(), Vec::new());
        let mut counts = None;
        for worker in 0..peers {
            let mut replay = CsvReplay::load(config(dir), worker, peers).unwrap();
            assert!(replay
                .users
                .iter()
                .all(|(_, (k, _))| owner_of(*k, peers) == worker));
            assert!(replay
                .consumption
                .iter()
                .all(|(_, (k, _))| owner_of(*k, peers) == worker));
            let rows = (replay.user_rows, replay.consumption_rows);
            assert!(
                counts.is_none_or(|counts| counts == rows),
                "{peers} workers"
            );
            counts = Some(rows);
            errors.extend(replay.take_errors());
            users.extend(replay.users);
            consumption.extend(replay.consumption);
        }
        users.sort_by_key(|(n, _)| *n);
        consumption.sort_by_key(|(n, _)| *n);
        errors.sort();
        (users, consumption, errors, counts.unwrap())
    }

    /// The plain reading: the `csv` crate over each whole file, every record parsed.
    fn reference(dir: &Path) -> Loaded {
        let mut errors = Vec::new();
        let (users, user_rows) =
            reference_table(&dir.join("users"), USER_COLUMNS, &mut errors, parse_user);
        let (consumption, consumption_rows) = reference_table(
            &dir.join("consumption"),
            CONSUMPTION_COLUMNS,
            &mut errors,
            parse_consumption,
        );
        errors.sort();
        (users, consumption, errors, (user_rows, consumption_rows))
    }

    fn reference_table<R>(
        dir: &Path,
        columns: usize,
        errors: &mut Vec<RowError>,
        parse: ParseRow<R>,
    ) -> (NumberedRows<R>, usize) {
        let (mut rows, mut row_number) = (Vec::new(), 0);
        for path in csv_files(dir).unwrap() {
            let content = std::fs::read(&path).unwrap();
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(&content[..]);
            let mut record = csv::ByteRecord::new();
            while reader.read_byte_record(&mut record).unwrap() {
                // The line of the record's first byte: past the BOM and the terminators the
                // crate skips after its position.
                let mut first = record.position().unwrap().byte() as usize;
                if first == 0 && content.starts_with(b"\xef\xbb\xbf") {
                    first = 3;
                }
                first += content[first..]
                    .iter()
                    .take_while(|&&b| b == b'\n' || b == b'\r')
                    .count();
                let line = 1 + content[..first].iter().filter(|&&b| b == b'\n').count() as u64;
                let this_row = row_number;
                row_number += 1;
                let fields: Result<Vec<&str>, RecordError> = record
                    .iter()
                    .enumerate()
                    .map(|(index, field)| utf8(field, index))
                    .collect();
                let upsert = fields.and_then(|fields| {
                    let key = parse_key_field(fields[0])?;
                    let fields = csv::StringRecord::from(fields);
                    if fields.len() == 1 {
                        Ok((key, None))
                    } else if fields.len() != columns {
                        Err(RecordError::FieldCount {
                            expected: columns,
                            found: fields.len(),
                        })
                    } else {
                        parse(&fields).map(|row| (key, Some(row)))
                    }
                });
                match upsert {
                    Ok(upsert) => rows.push((this_row, upsert)),
                    Err(reason) => errors.push(RowError {
                        file: path.clone(),
                        line,
                        reason: reason.to_string(),
                    }),
                }
            }
        }
        (rows, row_number)
    }

    #[test]
    fn every_worker_count_loads_the_plain_reading_each_row_and_error_once() {
        let dir = awkward_replay("shares");
        let expected = reference(&dir);
        // the fixture exercises what it should
        let (users, consumption, errors, counts) = &expected;
        assert_eq!(*counts, (9, 13));
        assert_eq!(users.len(), 8);
        assert_eq!(consumption.len(), 9);
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert!(errors
            .iter()
            .any(|e| e.reason.starts_with("invalid UTF-8 in field 7")));
        assert!(errors
            .iter()
            .any(|e| e.reason.starts_with("invalid UTF-8 in field 0")));
        let bob = users.iter().find(|(_, (k, _))| *k == 2).unwrap();
        assert_eq!(
            bob.1 .1.as_ref().unwrap().user_name.as_deref(),
            Some("Bob, \"the\" builder")
        );
        // more workers than the records of most files
        for peers in 1..=7 {
            assert_eq!(load_shares(&dir, peers), expected, "{peers} workers");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_worker_count_hands_out_the_same_ticks() {
        let dir = awkward_replay("ticks");
        let ticks = |peers: usize| {
            let mut merged: Vec<Tick> = Vec::new();
            for worker in 0..peers {
                let mut replay = CsvReplay::load(config(&dir), worker, peers).unwrap();
                for (index, tick) in std::iter::from_fn(|| replay.next_tick()).enumerate() {
                    if merged.len() <= index {
                        merged.push(Tick {
                            time: tick.time,
                            ..Tick::default()
                        });
                    }
                    assert_eq!(merged[index].time, tick.time);
                    merged[index].users.extend(tick.users);
                    merged[index].consumption.extend(tick.consumption);
                }
            }
            for tick in &mut merged {
                tick.users.sort();
                tick.consumption.sort();
            }
            merged
        };
        let one = ticks(1);
        assert_eq!(one.len(), 7);
        // rows 10 and 11, one batch, are both of key 19: the later wins
        let batch_5: Vec<_> = one[5]
            .consumption
            .iter()
            .map(|(k, r)| (*k, r.as_ref().map(|r| r.remark.clone())))
            .collect();
        assert_eq!(batch_5, vec![(19, Some(Some("second".to_string())))]);
        for peers in 2..=5 {
            assert_eq!(ticks(peers), one, "{peers} workers");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
