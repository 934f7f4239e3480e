//! Business queries on the tables a PostgreSQL sink wrote, in `--sink-schema`.

use chrono::NaiveDateTime;
use postgres::types::{ToSql, Type};
use postgres::Row;
use rust_decimal::Decimal;

use super::queries::{
    format_decimal, format_timestamp, normalize_text, BusinessQuery, CellKind, Parameter,
    QueryError, QueryOptions,
};
use crate::sinks::postgres::connect_to_schema;

/// How the query sessions show in `pg_stat_activity`: this, a slash and the schema read.
const APPLICATION_NAME: &str = "gridflow-query";

/// Runs `query` on the tables in `schema` at `url`; the rows come back as formatted cells.
pub fn run(
    url: &str,
    schema: &str,
    query: BusinessQuery,
    options: &QueryOptions,
) -> Result<Vec<Vec<Option<String>>>, QueryError> {
    let application = format!("{APPLICATION_NAME}/{schema}");
    let mut client = connect_to_schema(url, schema, &application)?;
    client.batch_execute(&format!("SET search_path TO {schema}"))?;
    let parameter: Box<dyn ToSql + Sync> = match query.parameter(options) {
        Parameter::Decimal(value) => Box::new(value),
        Parameter::Integer(value) => Box::new(value),
        Parameter::Date(value) => Box::new(value),
        Parameter::Timestamp(value) => Box::new(value),
    };
    let rows = client.query(query.postgres_sql(), &[parameter.as_ref()])?;
    rows.iter()
        .map(|row| {
            query
                .columns()
                .iter()
                .enumerate()
                .map(|(index, &(column, kind))| cell(row, index, column, kind))
                .collect()
        })
        .collect()
}

/// Cell `index` of `row`, read by its PostgreSQL type and formatted as its kind.
fn cell(
    row: &Row,
    index: usize,
    column: &'static str,
    kind: CellKind,
) -> Result<Option<String>, QueryError> {
    let column_type = row.columns()[index].type_().clone();
    let text = match column_type {
        Type::INT8 => row.try_get::<_, Option<i64>>(index)?.map(|n| n.to_string()),
        Type::INT4 => row.try_get::<_, Option<i32>>(index)?.map(|n| n.to_string()),
        Type::NUMERIC => row
            .try_get::<_, Option<Decimal>>(index)?
            .map(format_decimal),
        Type::TIMESTAMP => row
            .try_get::<_, Option<NaiveDateTime>>(index)?
            .map(format_timestamp),
        _ => row.try_get::<_, Option<String>>(index)?,
    };
    text.map(|text| normalize_text(column, kind, &text))
        .transpose()
}
