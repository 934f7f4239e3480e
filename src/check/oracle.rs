//! PostgreSQL as an independent oracle: load an ODS state into a schema, have PostgreSQL
//! recompute every layer with the source's SQL (`docs/queries/layers.sql`), read the tables
//! back as text.
//!
//! Loading and recomputing are separate calls so each can be timed on its own (the benchmark
//! of PostgreSQL recomputing the layers, issue 10, uses them too). Values cross as the export
//! contract writes them (decimals with two places, `YYYY-MM-DD HH:MM:SS.mmm`, NULL as `None`),
//! so a comparison needs no conversion on PostgreSQL's side: the text PostgreSQL prints is
//! held against the text gridflow's rows render to.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use postgres::Client;
use thiserror::Error;

use crate::model::rows::{Cents, Consumption, Detail, Millis, User};
use crate::model::values::{format_cents, format_millis};
use crate::sinks::tables::{Kind, Table, ALL};

/// The SQL PostgreSQL runs, with `:'window'` standing for the window size.
pub const LAYERS_SQL: &str = include_str!("../../docs/queries/layers.sql");

/// A row as text, in the export's column order; `None` is NULL.
pub type TextRow = Vec<Option<String>>;

/// Every table PostgreSQL computed (and the ODS tables it was given), by table name, each in
/// no particular order.
pub type TextTables = BTreeMap<&'static str, Vec<TextRow>>;

/// A failure of the oracle itself (not a difference it found).
#[derive(Debug, Error)]
pub enum OracleError {
    #[error("{0:?} is not a plain schema name (letters, digits and _, not starting with a digit)")]
    Schema(String),
    #[error("PostgreSQL failed while {doing}: {source}")]
    Postgres {
        doing: &'static str,
        #[source]
        source: postgres::Error,
    },
    #[error("the schema {0} exists and is not one gridflow verify created: give another --against-schema")]
    NotOurs(String),
    #[error("cannot write rows to PostgreSQL's COPY: {0}")]
    Copy(#[source] std::io::Error),
}

fn failed(doing: &'static str) -> impl FnOnce(postgres::Error) -> OracleError {
    move |source| OracleError::Postgres { doing, source }
}

/// How long a load took, and how many rows it loaded.
#[derive(Clone, Copy, Debug, Default)]
pub struct Loaded {
    pub rows: u64,
    pub elapsed: Duration,
}

/// Checks that `schema` can be pasted into SQL as it is.
fn check_schema(schema: &str) -> Result<(), OracleError> {
    let mut chars = schema.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        Ok(())
    } else {
        Err(OracleError::Schema(schema.to_string()))
    }
}

/// Creates `schema` if absent and (re)creates the ODS tables in it, filled with `users`,
/// `consumption` and, under retention, the detail rows frozen windows kept as each froze
/// (`frozen`, empty without retention), each with whether the DWD table still holds it (a live
/// row of its id replaces it, SPEC §4a). Leaves the client's `search_path` at `schema`.
pub fn load_ods<'a>(
    client: &mut Client,
    schema: &str,
    users: impl IntoIterator<Item = &'a User>,
    consumption: impl IntoIterator<Item = &'a Consumption>,
    frozen: impl IntoIterator<Item = (&'a Detail, bool)>,
) -> Result<Loaded, OracleError> {
    check_schema(schema)?;
    let started = Instant::now();
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             SET search_path TO {schema};
             DROP TABLE IF EXISTS ods_power_user, ods_power_consumption, dwd_frozen_detail;
             CREATE TABLE ods_power_user (
                 user_id BIGINT PRIMARY KEY, user_name TEXT, usage_type TEXT, region_id INT,
                 region_name TEXT, address TEXT, phone TEXT,
                 create_time TIMESTAMP(3), update_time TIMESTAMP(3));
             CREATE TABLE ods_power_consumption (
                 consumption_id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL,
                 consumption_amount DECIMAL(10,2) NOT NULL, consumption_cost DECIMAL(10,2) NOT NULL,
                 consumption_date TIMESTAMP(3) NOT NULL,
                 meter_reading_before DECIMAL(10,2), meter_reading_after DECIMAL(10,2),
                 remark TEXT);
             CREATE TABLE dwd_frozen_detail (
                 consumption_id BIGINT NOT NULL, user_id BIGINT NOT NULL, user_name TEXT NOT NULL,
                 consumption_amount DECIMAL(10,2) NOT NULL, consumption_cost DECIMAL(10,2) NOT NULL,
                 consumption_date TIMESTAMP(3) NOT NULL, region_id INT NOT NULL,
                 region_name TEXT NOT NULL, usage_type TEXT NOT NULL, kept BOOLEAN NOT NULL);"
        ))
        .map_err(failed("creating the ODS tables"))?;
    let mut rows = 0;
    rows += copy(client, "ods_power_user", users, |u, line| {
        integer(line, u.user_id);
        text(line, u.user_name.as_deref());
        text(line, u.usage_type.as_deref());
        optional(line, u.region_id, integer);
        text(line, u.region_name.as_deref());
        text(line, u.address.as_deref());
        text(line, u.phone.as_deref());
        optional(line, u.create_time, timestamp);
        optional(line, u.update_time, timestamp);
    })?;
    rows += copy(client, "ods_power_consumption", consumption, |c, line| {
        integer(line, c.consumption_id);
        integer(line, c.user_id);
        decimal(line, c.consumption_amount);
        decimal(line, c.consumption_cost);
        timestamp(line, c.consumption_date);
        optional(line, c.meter_reading_before, decimal);
        optional(line, c.meter_reading_after, decimal);
        text(line, c.remark.as_deref());
    })?;
    rows += copy(client, "dwd_frozen_detail", frozen, |(d, kept), line| {
        integer(line, d.fact.consumption_id);
        integer(line, d.fact.user_id);
        text(line, Some(&d.dim.user_name));
        decimal(line, d.fact.amount);
        decimal(line, d.fact.cost);
        timestamp(line, d.fact.date);
        integer(line, d.dim.region_id);
        text(line, Some(&d.dim.region_name));
        text(line, Some(&d.dim.usage_type));
        text(line, Some(if kept { "t" } else { "f" }));
    })?;
    client
        .batch_execute("ANALYZE ods_power_user, ods_power_consumption, dwd_frozen_detail")
        .map_err(failed("analyzing the ODS tables"))?;
    Ok(Loaded {
        rows,
        elapsed: started.elapsed(),
    })
}

/// Runs [`LAYERS_SQL`] in `schema` (loaded by [`load_ods`]) for windows of `window` ms:
/// PostgreSQL computes the DWD, DWS and ADS tables there.
pub fn run_layers_sql(
    client: &mut Client,
    schema: &str,
    window: Millis,
) -> Result<(), OracleError> {
    check_schema(schema)?;
    let sql = LAYERS_SQL.replace(":'window'", &format!("'{window} milliseconds'"));
    client
        .batch_execute(&format!("SET search_path TO {schema};\n{sql}"))
        .map_err(failed("running docs/queries/layers.sql"))
}

/// Reads every table of `schema` back as text, in the export's column order.
pub fn read_tables(client: &mut Client, schema: &str) -> Result<TextTables, OracleError> {
    check_schema(schema)?;
    let mut tables = TextTables::new();
    for table in ALL {
        tables.insert(table.name, read_table(client, schema, table)?);
    }
    Ok(tables)
}

/// [`run_layers_sql`], then [`read_tables`]: the warehouse as PostgreSQL computes it.
pub fn recompute_layers(
    client: &mut Client,
    schema: &str,
    window: Millis,
) -> Result<TextTables, OracleError> {
    run_layers_sql(client, schema, window)?;
    read_tables(client, schema)
}

/// Drops `schema` and everything in it.
pub fn drop_schema(client: &mut Client, schema: &str) -> Result<(), OracleError> {
    check_schema(schema)?;
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .map_err(failed("dropping the schema"))
}

/// Reads one table of `schema` back as text, in the export's column order.
pub fn read_table(
    client: &mut Client,
    schema: &str,
    table: &Table,
) -> Result<Vec<TextRow>, OracleError> {
    let columns: Vec<String> = table
        .columns
        .iter()
        .filter_map(|(name, kind)| match kind {
            Kind::Stamp => None,
            Kind::Timestamp => Some(format!("to_char({name}, 'YYYY-MM-DD HH24:MI:SS.MS')")),
            Kind::Integer | Kind::Text | Kind::Decimal => Some(format!("{name}::text")),
        })
        .collect();
    let query = format!("SELECT {} FROM {schema}.{}", columns.join(", "), table.name);
    let rows = client
        .query(query.as_str(), &[])
        .map_err(failed("reading a table back"))?;
    Ok(rows
        .iter()
        .map(|row| (0..columns.len()).map(|i| row.get(i)).collect())
        .collect())
}

/// Streams `rows` into `table` with COPY (text format), each rendered by `write` one field at
/// a time (every field followed by a tab; the last tab becomes the line's end).
fn copy<I>(
    client: &mut Client,
    table: &str,
    rows: impl IntoIterator<Item = I>,
    write: impl Fn(I, &mut String),
) -> Result<u64, OracleError> {
    let mut writer = client
        .copy_in(format!("COPY {table} FROM STDIN").as_str())
        .map_err(failed("starting a COPY"))?;
    let mut line = String::new();
    let mut count = 0;
    for row in rows {
        line.clear();
        write(row, &mut line);
        line.pop();
        line.push('\n');
        writer
            .write_all(line.as_bytes())
            .map_err(OracleError::Copy)?;
        count += 1;
    }
    writer.finish().map_err(failed("finishing a COPY"))?;
    Ok(count)
}

fn integer(line: &mut String, value: impl Into<i64>) {
    line.push_str(&value.into().to_string());
    line.push('\t');
}

fn decimal(line: &mut String, value: Cents) {
    line.push_str(&format_cents(value));
    line.push('\t');
}

fn timestamp(line: &mut String, value: Millis) {
    line.push_str(&format_millis(value));
    line.push('\t');
}

fn optional<T>(line: &mut String, value: Option<T>, write: impl Fn(&mut String, T)) {
    match value {
        Some(value) => write(line, value),
        None => line.push_str("\\N\t"),
    }
}

/// Text in COPY's text format: backslash, tab, newline and carriage return escaped.
fn text(line: &mut String, value: Option<&str>) {
    let Some(value) = value else {
        line.push_str("\\N\t");
        return;
    };
    for c in value.chars() {
        match c {
            '\\' => line.push_str("\\\\"),
            '\t' => line.push_str("\\t"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            c => line.push(c),
        }
    }
    line.push('\t');
}
