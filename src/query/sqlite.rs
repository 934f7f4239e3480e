//! Business queries on the SQLite file a sink wrote, opened read-only.

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, ToSql};

use super::decimal_functions;
use super::queries::{
    normalize_text, BusinessQuery, Parameter, QueryError, QueryOptions, TIMESTAMP_FORMAT,
};

/// Runs `query` on the file at `path`; the rows come back as formatted cells.
pub fn run(
    path: &Path,
    query: BusinessQuery,
    options: &QueryOptions,
) -> Result<Vec<Vec<Option<String>>>, QueryError> {
    if !path.exists() {
        return Err(QueryError::Config(format!(
            "{} does not exist: `gridflow run` writes it (or give --sink)",
            path.display()
        )));
    }
    let connection = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    decimal_functions::register(&connection)?;
    let parameter: Box<dyn ToSql> = match query.parameter(options) {
        Parameter::Decimal(value) => Box::new(value.to_string()),
        Parameter::Integer(value) => Box::new(value),
        Parameter::Date(value) => Box::new(value.map(|d| d.format("%Y-%m-%d").to_string())),
        Parameter::Timestamp(value) => {
            Box::new(value.map(|t| t.format(TIMESTAMP_FORMAT).to_string()))
        }
    };
    let columns = query.columns();
    let mut statement = connection.prepare(query.sqlite_sql())?;
    let mut rows = statement.query(&[("$1", parameter.as_ref())])?;
    let mut table = Vec::new();
    while let Some(row) = rows.next()? {
        let mut cells = Vec::with_capacity(columns.len());
        for (index, &(column, kind)) in columns.iter().enumerate() {
            let text = match row.get_ref(index)? {
                ValueRef::Null => None,
                ValueRef::Integer(n) => Some(n.to_string()),
                ValueRef::Real(f) => Some(f.to_string()),
                ValueRef::Text(text) | ValueRef::Blob(text) => {
                    Some(String::from_utf8_lossy(text).into_owned())
                }
            };
            cells.push(
                text.map(|text| normalize_text(column, kind, &text))
                    .transpose()?,
            );
        }
        table.push(cells);
    }
    Ok(table)
}
