//! Writes the dense replay (`gridflow::sources::dense_replay`) into a directory:
//!
//! ```sh
//! cargo run --release --example dense_replay -- /tmp/dense-1m 1000000
//! gridflow verify --input /tmp/dense-1m --against postgresql://…
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(rows)) = (args.next(), args.next()) else {
        eprintln!("usage: dense_replay DIR ROWS");
        return ExitCode::from(2);
    };
    let Ok(rows) = rows.parse::<u64>() else {
        eprintln!("error: ROWS must be a whole number, not {rows:?}");
        return ExitCode::from(2);
    };
    let dir = PathBuf::from(dir);
    match gridflow::sources::dense_replay::write_dense_replay(&dir, rows) {
        Ok(()) => {
            eprintln!("wrote {rows} readings to {}", dir.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: cannot write {}: {error}", dir.display());
            ExitCode::FAILURE
        }
    }
}
