//! The source's business queries (section 7) against a sink's tables: each query's SQL lives in
//! `docs/queries/` (PostgreSQL, with SQLite variants where the dialect differs), and its result
//! comes back as text cells formatted like the export, whichever database holds the tables.

mod decimal_functions;
mod postgres;
mod queries;
pub mod render;
mod sqlite;

use crate::sinks::target::SinkTarget;

pub use queries::{BusinessQuery, CellKind, Parameter, QueryError, QueryOptions, ResultTable};

/// Runs `query` against the tables a sink wrote at `target` (`schema` on PostgreSQL).
pub fn run_query(
    target: &SinkTarget,
    schema: &str,
    query: BusinessQuery,
    options: &QueryOptions,
) -> Result<ResultTable, QueryError> {
    let rows = match target {
        SinkTarget::Sqlite(path) => sqlite::run(path, query, options)?,
        SinkTarget::Postgres(url) => postgres::run(url, schema, query, options)?,
        SinkTarget::None => {
            return Err(QueryError::Config(
                "`--sink none` holds no tables to query".into(),
            ))
        }
    };
    Ok(ResultTable {
        columns: query.columns().iter().map(|(name, _)| *name).collect(),
        rows,
    })
}
