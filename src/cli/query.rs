//! `gridflow query NAME`: one of the source's business queries on a sink's tables, printed.

use clap::ValueEnum;

use super::args::QueryArgs;
use super::error::CommandError;
use crate::query::{render, run_query};

/// Runs the query and prints its result; a reader that stops early (`| head`) is no error.
pub fn query(args: QueryArgs) -> Result<(), CommandError> {
    let target = args.sink_target()?;
    let result =
        run_query(&target, &args.sink_schema, args.name, &args.options()).map_err(|source| {
            let name = args.name.to_possible_value();
            CommandError::Query {
                name: name.map_or_else(String::new, |value| value.get_name().to_string()),
                source,
            }
        })?;
    let stdout = std::io::stdout();
    match render::write(&result, args.format, &mut stdout.lock()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        printed => printed.map_err(CommandError::Print),
    }
}
