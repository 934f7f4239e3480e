//! A case of `gridflow verify --random` written as a CSV replay directory that
//! `gridflow verify --input DIR` reproduces: tick `k` becomes replay batch `k`, which the replay
//! clock puts at the same logical time (`start + (k + 1) × 1 s`, SPEC §4a's replay contract).
//!
//! A replay batch holds the same number of rows of each table, so every tick's rows are padded
//! to the largest tick's with deletes of a key no case uses ([`PADDING_KEY`]): a delete of a
//! key the state does not hold changes nothing. The CSV format has no empty string apart from
//! NULL, so cases are run with empty strings already read as NULL ([`as_replayed`]).

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::Path;

use crate::check::cases::{Params, SECOND, START};
use crate::model::rows::{Consumption, User};
use crate::model::values::{format_cents, format_millis};
use crate::sources::Tick;

/// The key of the padding deletes.
pub const PADDING_KEY: i64 = i64::MIN;

/// `ticks` as a replay would read them back: empty strings are NULL.
pub fn as_replayed(mut ticks: Vec<Tick>) -> Vec<Tick> {
    let null_if_empty = |text: &mut Option<String>| {
        if text.as_deref() == Some("") {
            *text = None;
        }
    };
    for tick in &mut ticks {
        for user in tick.users.iter_mut().filter_map(|(_, row)| row.as_mut()) {
            null_if_empty(&mut user.user_name);
            null_if_empty(&mut user.usage_type);
            null_if_empty(&mut user.region_name);
            null_if_empty(&mut user.address);
            null_if_empty(&mut user.phone);
        }
        for row in tick
            .consumption
            .iter_mut()
            .filter_map(|(_, row)| row.as_mut())
        {
            null_if_empty(&mut row.remark);
        }
    }
    ticks
}

/// Writes `ticks` (times `START + (k + 1) s`, as [`crate::check::cases::ticks`] makes them) into
/// `dir` and returns the command that verifies them as they ran under `params`.
pub fn write_case(dir: &Path, ticks: &[Tick], params: &Params) -> io::Result<String> {
    for (k, tick) in ticks.iter().enumerate() {
        if tick.time != (START + (k as i64 + 1) * SECOND) as u64 {
            return Err(io::Error::other(format!(
                "tick {k} is at {}, not one second after the previous one",
                tick.time
            )));
        }
    }
    let batch = ticks
        .iter()
        .map(|t| t.users.len().max(t.consumption.len()))
        .max()
        .unwrap_or(0)
        .max(1);
    std::fs::create_dir_all(dir.join("users"))?;
    std::fs::create_dir_all(dir.join("consumption"))?;
    let mut users = String::new();
    let mut consumption = String::new();
    for tick in ticks {
        for (key, row) in &tick.users {
            match row {
                Some(user) => user_line(&mut users, user),
                None => writeln!(users, "{key}").map_err(io::Error::other)?,
            }
        }
        for _ in tick.users.len()..batch {
            writeln!(users, "{PADDING_KEY}").map_err(io::Error::other)?;
        }
        for (key, row) in &tick.consumption {
            match row {
                Some(c) => consumption_line(&mut consumption, c),
                None => writeln!(consumption, "{key}").map_err(io::Error::other)?,
            }
        }
        for _ in tick.consumption.len()..batch {
            writeln!(consumption, "{PADDING_KEY}").map_err(io::Error::other)?;
        }
    }
    std::fs::write(dir.join("users/part-0.csv"), users)?;
    std::fs::write(dir.join("consumption/part-0.csv"), consumption)?;
    let mut command = format!(
        "gridflow verify --input {} --replay-batch {batch} --tick 1s --start '{}' --window {}ms \
         -w {} --max-inflight {} --progress-rows {}",
        dir.display(),
        format_millis(START),
        params.window,
        params.workers,
        params.max_inflight,
        params.progress_rows,
    );
    if let Some(retention) = params.retention {
        command.push_str(&format!(" --retention {retention}ms"));
    }
    if params.serialize {
        command.push_str(" -z");
    }
    let mut readme = std::fs::File::create(dir.join("README.md"))?;
    writeln!(
        readme,
        "# A failing case of `gridflow verify --random`\n\n\
         {} logical times; each replay batch is one of them (padded with deletes of key {PADDING_KEY},\n\
         which change nothing). Reproduce with:\n\n```sh\n{command}\n```\n\n\
         The configuration it failed under: {params:?}",
        ticks.len()
    )?;
    Ok(command)
}

/// A CSV field: NULL empty, quoted when it must be.
fn field(out: &mut String, value: Option<&str>) {
    if let Some(text) = value {
        if text.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&text.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(text);
        }
    }
}

fn user_line(out: &mut String, u: &User) {
    let millis = |m: Option<i64>| m.map(format_millis);
    let region = u.region_id.map(|r| r.to_string());
    let fields = [
        Some(u.user_id.to_string()),
        u.user_name.clone(),
        u.usage_type.clone(),
        region,
        u.region_name.clone(),
        u.address.clone(),
        u.phone.clone(),
        millis(u.create_time),
        millis(u.update_time),
    ];
    line(out, &fields);
}

fn consumption_line(out: &mut String, c: &Consumption) {
    let fields = [
        Some(c.consumption_id.to_string()),
        Some(c.user_id.to_string()),
        Some(format_cents(c.consumption_amount)),
        Some(format_cents(c.consumption_cost)),
        Some(format_millis(c.consumption_date)),
        c.meter_reading_before.map(format_cents),
        c.meter_reading_after.map(format_cents),
        c.remark.clone(),
    ];
    line(out, &fields);
}

fn line(out: &mut String, fields: &[Option<String>]) {
    for (i, value) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        field(out, value.as_deref());
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::cases::{params, ticks};
    use crate::sources::csv_replay::{CsvReplay, Interleave, ReplayConfig};
    use crate::sources::{last_upsert_wins, Source};
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;

    /// A tick's rows as a replay hands them out: the last row of each key, padding gone,
    /// sorted by key.
    fn replayed(tick: Tick) -> Tick {
        let mut users = last_upsert_wins(tick.users);
        let mut consumption = last_upsert_wins(tick.consumption);
        users.retain(|(key, _)| *key != PADDING_KEY);
        consumption.retain(|(key, _)| *key != PADDING_KEY);
        users.sort_by_key(|(key, _)| *key);
        consumption.sort_by_key(|(key, _)| *key);
        Tick {
            time: tick.time,
            users,
            consumption,
        }
    }

    #[test]
    fn a_written_case_replays_as_the_same_rows_at_the_same_times() {
        let dir = std::env::temp_dir().join(format!("gridflow-case-{}", std::process::id()));
        let mut runner = TestRunner::deterministic();
        for _ in 0..20 {
            let cases = as_replayed(ticks().new_tree(&mut runner).unwrap().current());
            let params = params().new_tree(&mut runner).unwrap().current();
            let _ = std::fs::remove_dir_all(&dir);
            let command = write_case(&dir, &cases, &params).unwrap();
            let batch: usize = command
                .split("--replay-batch ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap();
            let config = ReplayConfig {
                dir: dir.clone(),
                batch_rows: batch,
                interleave: Interleave::Alternate,
                start: START,
                tick: SECOND,
            };
            let mut replay = CsvReplay::load(config, 0, 1).unwrap();
            assert_eq!(replay.take_errors(), vec![]);
            let mut read = Vec::new();
            while let Some(tick) = replay.next_tick() {
                read.push(replayed(tick));
            }
            let expected: Vec<Tick> = cases.into_iter().map(replayed).collect();
            assert_eq!(read, expected, "{command}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
