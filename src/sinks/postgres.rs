//! The PostgreSQL sink: the warehouse's tables in a schema (created if absent) with exact types
//! (NUMERIC, TIMESTAMP(3)), and the sink's progress in the same transaction as each change set.
//!
//! Values travel as text and are cast by the server (`$1::text::numeric`), so decimals and
//! timestamps arrive exactly as the export writes them.

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{Client, NoTls, Statement};

use super::tables::{table_and_values, Kind, Table, Value, ALL};
use super::{progress_sql, Database, RowOps, SinkError, SINK_NAME};
use crate::rows::Millis;
use crate::runtime::now_millis;
use crate::source::Time;
use crate::values::format_millis;

/// How the sink's sessions show in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "gridflow-sink";

/// A PostgreSQL schema holding the warehouse's tables.
pub struct Postgres {
    url: String,
    schema: String,
    client: Client,
    /// The upsert and delete statement of each table, prepared once.
    statements: HashMap<&'static str, (Statement, Statement)>,
    progress: Progress,
}

/// The prepared statements of the progress row and its lease.
struct Progress {
    read: Statement,
    acquire: Statement,
    holder: Statement,
    advance: Statement,
    release: Statement,
}

fn placeholder(n: usize, kind: Kind) -> String {
    match kind {
        Kind::Integer => format!("${n}::bigint"),
        Kind::Text => format!("${n}::text"),
        Kind::Decimal => format!("${n}::text::numeric"),
        Kind::Timestamp => format!("${n}::text::timestamp(3)"),
    }
}

fn column_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Integer => "BIGINT",
        Kind::Text => "TEXT",
        Kind::Decimal => "NUMERIC(20,2)",
        Kind::Timestamp => "TIMESTAMP(3)",
    }
}

/// Whether `name` is a plain identifier, safe to put into statements unquoted.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A value as a statement parameter of the column's kind (NULLs typed to match).
fn parameter(value: &Value, kind: Kind) -> Box<dyn ToSql + Sync> {
    match (value, kind) {
        (Value::Integer(n), _) => Box::new(*n),
        (Value::Text(text), _) => Box::new(text.clone()),
        (Value::Null, Kind::Integer) => Box::new(None::<i64>),
        (Value::Null, _) => Box::new(None::<String>),
    }
}

impl Postgres {
    /// Connects, and creates the schema and its tables if absent.
    pub fn connect(url: &str, schema: &str) -> Result<Postgres, SinkError> {
        if !is_identifier(schema) {
            return Err(SinkError::Config(format!(
                "{schema:?} is not a plain schema name"
            )));
        }
        let mut client = url
            .parse::<postgres::Config>()?
            .application_name(APPLICATION_NAME)
            .connect(NoTls)?;
        client.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))?;
        let qualified = |table: &Table| format!("{schema}.{}", table.name);
        for table in ALL {
            client.batch_execute(
                &table
                    .create_sql(column_type)
                    .replace("{table}", &qualified(table)),
            )?;
        }
        let progress_table = format!("{schema}.gridflow_progress");
        let progress_statement = |sql: &str| sql.replace("{progress}", &progress_table);
        client.batch_execute(&progress_statement(progress_sql::CREATE))?;
        let mut statements = HashMap::new();
        for table in ALL {
            let upsert = client.prepare(
                &table
                    .upsert_sql(placeholder)
                    .replace("{table}", &qualified(table)),
            )?;
            let delete = client.prepare(
                &table
                    .delete_sql(placeholder)
                    .replace("{table}", &qualified(table)),
            )?;
            statements.insert(table.name, (upsert, delete));
        }
        let progress = Progress {
            read: client.prepare(&progress_statement(progress_sql::READ))?,
            acquire: client.prepare(&progress_statement(progress_sql::ACQUIRE))?,
            holder: client.prepare(&progress_statement(progress_sql::HOLDER))?,
            advance: client.prepare(&progress_statement(progress_sql::ADVANCE))?,
            release: client.prepare(&progress_statement(progress_sql::RELEASE))?,
        };
        let postgres = Postgres {
            url: url.to_string(),
            schema: schema.to_string(),
            client,
            statements,
            progress,
        };
        Ok(postgres)
    }
}

impl Database for Postgres {
    fn reconnect(&mut self) -> Result<(), SinkError> {
        *self = Postgres::connect(&self.url, &self.schema)?;
        Ok(())
    }

    fn progress(&mut self) -> Result<Option<Time>, SinkError> {
        let row = self.client.query_opt(&self.progress.read, &[&SINK_NAME])?;
        Ok(row
            .and_then(|row| row.get::<_, Option<i64>>(0))
            .map(|upto| upto as Time))
    }

    fn acquire(&mut self, owner: &str, stale_before: Millis) -> Result<bool, SinkError> {
        let changed = self.client.execute(
            &self.progress.acquire,
            &[&SINK_NAME, &owner, &now_millis(), &stale_before],
        )?;
        Ok(changed == 1)
    }

    fn holder(&mut self) -> Result<Option<(String, Millis)>, SinkError> {
        let row = self
            .client
            .query_opt(&self.progress.holder, &[&SINK_NAME])?;
        Ok(row.and_then(|row| {
            let owner: Option<String> = row.get(0);
            let heartbeat: Option<i64> = row.get(1);
            owner.zip(heartbeat)
        }))
    }

    fn release(&mut self, owner: &str) -> Result<(), SinkError> {
        self.client
            .execute(&self.progress.release, &[&SINK_NAME, &owner])?;
        Ok(())
    }

    fn apply(&mut self, batch: &[(Time, RowOps<'_>)], owner: &str) -> Result<(), SinkError> {
        let Some(&(last, _)) = batch.last() else {
            return Ok(());
        };
        let Postgres {
            client,
            statements,
            progress,
            ..
        } = self;
        let mut transaction = client.transaction()?;
        for (time, ops) in batch {
            let stamp = format_millis(*time as i64);
            for (rows, is_delete) in [(&ops.deletes, true), (&ops.upserts, false)] {
                for row in rows.iter() {
                    let Some((table, values)) = table_and_values(row, &stamp) else {
                        continue;
                    };
                    let (upsert, delete) = &statements[table.name];
                    let (statement, width) = if is_delete {
                        (delete, table.key_len)
                    } else {
                        (upsert, values.len())
                    };
                    let parameters: Vec<Box<dyn ToSql + Sync>> = values[..width]
                        .iter()
                        .zip(table.columns)
                        .map(|(value, (_, kind))| parameter(value, *kind))
                        .collect();
                    let references: Vec<&(dyn ToSql + Sync)> =
                        parameters.iter().map(|p| p.as_ref()).collect();
                    transaction
                        .execute(statement, &references)
                        .map_err(|error| SinkError::Apply {
                            table: table.name,
                            message: error.to_string(),
                        })?;
                }
            }
        }
        let stamp = format_millis(last as i64);
        let advanced = transaction.execute(
            &progress.advance,
            &[&SINK_NAME, &(last as i64), &stamp, &now_millis(), &owner],
        )?;
        if advanced != 1 {
            return Err(SinkError::Fenced);
        }
        transaction.commit()?;
        Ok(())
    }
}
