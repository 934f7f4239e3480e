//! The dense replay of issue 7: a CSV replay directory whose 5 s windows hold hundreds of
//! readings each (~580 at 1M rows), the input of the throughput benchmark and of
//! `gridflow verify`'s large measurements (docs/verify.md). Kept in the library so the bench
//! and `cargo run --release --example dense_replay -- DIR ROWS` write the same bytes.

use std::path::Path;

/// Writes the dense replay of issue 7 into `dir`: 1,000 users inserted, then 50 of them moved to
/// another region; `rows` readings of uniformly chosen users with `consumption_date` uniform
/// over 2.4 hours (~580 readings per 5 s window at 1M rows). Deterministic (a fixed LCG).
pub fn write_dense_replay(dir: &Path, rows: u64) -> std::io::Result<()> {
    use std::io::Write;
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move |bound: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % bound
    };
    std::fs::create_dir_all(dir.join("users"))?;
    std::fs::create_dir_all(dir.join("consumption"))?;
    let mut users = std::io::BufWriter::new(std::fs::File::create(dir.join("users/users.csv"))?);
    let user = |id: u64, region: u64| {
        let name = crate::sources::generator::region_name(region as i32 + 1);
        format!(
            "{id},用户{id:04},居民,{},{name},{}路{id}号,13800000000,2024-01-01 00:00:00.000,2024-01-01 00:00:00.000\n",
            region + 1,
            name.chars().take(2).collect::<String>()
        )
    };
    for id in 1..=1_000 {
        users.write_all(user(id, next(10)).as_bytes())?;
    }
    for _ in 0..50 {
        users.write_all(user(1 + next(1_000), next(10)).as_bytes())?;
    }
    users.flush()?;
    let mut readings =
        std::io::BufWriter::new(std::fs::File::create(dir.join("consumption/readings.csv"))?);
    for id in 1..=rows {
        let amount = 100 + next(99_900);
        let cost = (amount * 55 + 50) / 100;
        let offset = next(8_640_000);
        let (minutes, millis) = (offset / 60_000, offset % 60_000);
        writeln!(
            readings,
            "{id},{},{}.{:02},{}.{:02},2024-01-01 {:02}:{:02}:{:02}.{:03},,,",
            1 + next(1_000),
            amount / 100,
            amount % 100,
            cost / 100,
            cost % 100,
            minutes / 60,
            minutes % 60,
            millis / 1_000,
            millis % 1_000,
        )?;
    }
    readings.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::csv_replay::{CsvReplay, Interleave, ReplayConfig};
    use crate::sources::Source;

    #[test]
    fn the_dense_replay_is_deterministic_and_every_row_parses() {
        let base = std::env::temp_dir().join(format!("gridflow-dense-{}", std::process::id()));
        let (a, b) = (base.join("a"), base.join("b"));
        write_dense_replay(&a, 2_000).unwrap();
        write_dense_replay(&b, 2_000).unwrap();
        for file in ["users/users.csv", "consumption/readings.csv"] {
            let left = std::fs::read(a.join(file)).unwrap();
            assert_eq!(left, std::fs::read(b.join(file)).unwrap(), "{file}");
        }
        let config = ReplayConfig {
            dir: a,
            batch_rows: 10_000,
            interleave: Interleave::Alternate,
            start: 0,
            tick: 1_000,
        };
        let mut replay = CsvReplay::load(config, 0, 1).unwrap();
        assert!(replay.take_errors().is_empty());
        let tick = replay.next_tick().unwrap();
        // 1,050 user rows of 1,000 ids (the moves replace inserts of the same batch).
        assert_eq!(tick.users.len(), 1_000);
        assert_eq!(tick.consumption.len(), 2_000);
        let _ = std::fs::remove_dir_all(base);
    }
}
