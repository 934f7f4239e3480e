//! The `gridflow` binary: parses the command line, sets up logging, runs the command
//! ([`gridflow::cli`]) and turns a failure into one line and its exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use gridflow::cli::{execute, Cli};

/// mimalloc: the arrangements allocate and free many small batches and strings; glibc's
/// allocator spent a fifth of the run consolidating free lists (measured in docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match execute(cli) {
        Ok(code) => code,
        Err(error) => {
            // One line: a server's multi-line message folded into it.
            let message = error.to_string();
            eprintln!(
                "error: {}",
                message.split_whitespace().collect::<Vec<_>>().join(" ")
            );
            ExitCode::from(error.exit_code())
        }
    }
}

/// Logs to stderr at `info` (gridflow's status lines, recovery and sink notes), or as
/// `RUST_LOG` says (`RUST_LOG=gridflow=debug`, `RUST_LOG=warn`, …), in [`Plain`] lines.
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .event_format(Plain)
        .init();
}

/// Log lines as a command-line tool writes them: an `info` event is its message (the status
/// line, `done in …`), a warning starts `warning:`, an error `error:`, and the finer levels
/// name their level and module. Structured fields follow the message as `name=value`.
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let metadata = event.metadata();
        match *metadata.level() {
            Level::ERROR => write!(writer, "error: ")?,
            Level::WARN => write!(writer, "warning: ")?,
            Level::INFO => {}
            level => write!(writer, "{level} {}: ", metadata.target())?,
        }
        context
            .field_format()
            .format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
