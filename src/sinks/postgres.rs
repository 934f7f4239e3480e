//! The PostgreSQL sink: the warehouse's tables in a schema (created if absent) with exact types
//! (NUMERIC, TIMESTAMP(3)), and the sink's progress in the same transaction as each change set.
//!
//! A run of change sets is written as its net operations (one per key, [`super::net`]): one
//! `COPY` per table into a session-local staging table, then from it one `DELETE … USING` for the
//! deleted keys, one `INSERT … ON CONFLICT DO UPDATE` for the updated ones and one plain `INSERT`
//! for the new ones — a few round trips per table and run instead of one per row. A new key skips
//! the conflict check (a third of the server's time when every row took that path); a table that
//! somehow holds it already fails the transaction loudly instead of being overwritten. COPY's text format carries values exactly as the export writes them, and the
//! server parses them into NUMERIC and TIMESTAMP(3).

use std::collections::HashMap;
use std::io::Write;

use postgres::{Client, NoTls, Statement};

use super::database::{progress_sql, Database, SINK_NAME};
use super::net::NetOp;
use super::tables::{table_and_values, Kind, Table, Value, ALL};
use super::{describe, SinkError};
use crate::model::now_millis;
use crate::model::rows::Millis;
use crate::model::values::format_millis;
use crate::model::Time;

/// How the sink's sessions show in `pg_stat_activity`: this, a slash and the schema written.
pub const APPLICATION_NAME: &str = "gridflow-sink";

/// A PostgreSQL schema holding the warehouse's tables.
pub struct Postgres {
    url: String,
    schema: String,
    client: Client,
    /// The staging statements of each table, prepared once per session.
    statements: HashMap<&'static str, Staging>,
    progress: Progress,
}

/// How a table's net operations reach it: COPY into the session's staging table, then delete
/// and merge from there. The staging table empties itself at each commit.
struct Staging {
    copy: String,
    delete: Statement,
    update: Statement,
    insert: Statement,
}

/// The prepared statements of the progress row and its lease.
struct Progress {
    read: Statement,
    acquire: Statement,
    holder: Statement,
    advance: Statement,
    release: Statement,
    job: Statement,
    claim: Statement,
    forget: Statement,
}

fn column_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Integer => "BIGINT",
        Kind::Text => "TEXT",
        Kind::Decimal => "NUMERIC(20,2)",
        Kind::Timestamp | Kind::Stamp => "TIMESTAMP(3)",
    }
}

/// Connects to `url` as `application` (how the session shows in `pg_stat_activity`), after
/// checking that `schema` is a plain identifier, safe to put into statements.
pub fn connect_to_schema(url: &str, schema: &str, application: &str) -> Result<Client, SinkError> {
    if !is_identifier(schema) {
        return Err(SinkError::Config(format!(
            "{schema:?} is not a plain schema name"
        )));
    }
    let client = url
        .parse::<postgres::Config>()?
        .application_name(application)
        .connect(NoTls)?;
    Ok(client)
}

/// Whether `name` is a plain identifier, safe to put into statements unquoted.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Timestamps already rendered in COPY's text form: a run's rows share few distinct windows
/// and logical times.
#[derive(Default)]
struct Timestamps(HashMap<Millis, String>);

impl Timestamps {
    fn render(&mut self, millis: Millis) -> &str {
        self.0
            .entry(millis)
            .or_insert_with(|| format_millis(millis))
    }
}

/// Appends `values` as one line of COPY's text format, with the op (`i`, `u`, `d`) last. With
/// `only`, just the values at those positions are sent and the rest are NULL (a delete carries
/// only its key).
fn copy_line(
    out: &mut Vec<u8>,
    timestamps: &mut Timestamps,
    values: &[Value<'_>],
    only: Option<&[usize]>,
    op: u8,
) {
    for (index, value) in values.iter().enumerate() {
        match value {
            _ if only.is_some_and(|only| !only.contains(&index)) => out.extend_from_slice(b"\\N"),
            Value::Null => out.extend_from_slice(b"\\N"),
            Value::Integer(n) => {
                let _ = write!(out, "{n}");
            }
            Value::Cents(cents) => {
                let sign = if *cents < 0 { "-" } else { "" };
                let magnitude = cents.unsigned_abs();
                let _ = write!(out, "{sign}{}.{:02}", magnitude / 100, magnitude % 100);
            }
            Value::Millis(millis) => out.extend_from_slice(timestamps.render(*millis).as_bytes()),
            Value::Text(text) => escape(out, text),
            Value::OwnedText(text) => escape(out, text),
        }
        out.push(b'\t');
    }
    out.extend_from_slice(&[op, b'\n']);
}

/// `text` with COPY's text-format escapes.
fn escape(out: &mut Vec<u8>, text: &str) {
    for byte in text.bytes() {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            other => out.push(other),
        }
    }
}

impl Postgres {
    /// Connects, and creates the schema and its tables if absent.
    pub fn connect(url: &str, schema: &str) -> Result<Postgres, SinkError> {
        let application = format!("{APPLICATION_NAME}/{schema}");
        let mut client = connect_to_schema(url, schema, &application)?;
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
        client.batch_execute(
            &progress_statement(progress_sql::ADD_JOB)
                .replace("ADD COLUMN", "ADD COLUMN IF NOT EXISTS"),
        )?;
        let mut statements = HashMap::new();
        for table in ALL {
            let stage = format!("gridflow_stage_{}", table.name);
            client.batch_execute(&format!(
                "CREATE TEMPORARY TABLE {stage} (LIKE {}, gridflow_op TEXT NOT NULL) \
                 ON COMMIT DELETE ROWS",
                qualified(table)
            ))?;
            let render = |sql: String| {
                sql.replace("{table}", &qualified(table))
                    .replace("{stage}", &stage)
            };
            let columns: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
            let staging = Staging {
                copy: format!(
                    "COPY {stage} ({}, gridflow_op) FROM STDIN",
                    columns.join(", ")
                ),
                delete: client.prepare(&render(table.delete_from_stage_sql('d')))?,
                update: client.prepare(&render(table.insert_from_stage_sql('u', true)))?,
                insert: client
                    .prepare(&render(table.insert_from_stage_sql('i', table.keys_reused)))?,
            };
            statements.insert(table.name, staging);
        }
        let progress = Progress {
            read: client.prepare(&progress_statement(progress_sql::READ))?,
            acquire: client.prepare(&progress_statement(progress_sql::ACQUIRE))?,
            holder: client.prepare(&progress_statement(progress_sql::HOLDER))?,
            advance: client.prepare(&progress_statement(progress_sql::ADVANCE))?,
            release: client.prepare(&progress_statement(progress_sql::RELEASE))?,
            job: client.prepare(&progress_statement(progress_sql::JOB))?,
            claim: client.prepare(&progress_statement(progress_sql::CLAIM))?,
            forget: client.prepare(&progress_statement(progress_sql::FORGET))?,
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

    fn acquire(
        &mut self,
        owner: &str,
        stale_before: Millis,
        job: Option<&str>,
    ) -> Result<bool, SinkError> {
        let changed = self.client.execute(
            &self.progress.acquire,
            &[&SINK_NAME, &owner, &now_millis(), &stale_before, &job],
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

    fn job(&mut self) -> Result<Option<String>, SinkError> {
        let row = self.client.query_opt(&self.progress.job, &[&SINK_NAME])?;
        Ok(row.and_then(|row| row.get::<_, Option<String>>(0)))
    }

    fn claim(&mut self, job: &str, owner: &str) -> Result<(), SinkError> {
        let changed = self
            .client
            .execute(&self.progress.claim, &[&SINK_NAME, &job, &owner])?;
        if changed != 1 {
            return Err(SinkError::Fenced);
        }
        Ok(())
    }

    fn holds_rows(&mut self) -> Result<bool, SinkError> {
        for table in ALL {
            let sql = format!(
                "SELECT EXISTS (SELECT 1 FROM {}.{})",
                self.schema, table.name
            );
            if self.client.query_one(&sql, &[])?.get::<_, bool>(0) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn clear(&mut self, owner: &str) -> Result<(), SinkError> {
        let tables: Vec<String> = ALL
            .iter()
            .map(|table| format!("{}.{}", self.schema, table.name))
            .collect();
        let mut transaction = self.client.transaction()?;
        transaction.batch_execute(&format!("TRUNCATE {}", tables.join(", ")))?;
        let changed = transaction.execute(&self.progress.forget, &[&SINK_NAME, &owner])?;
        if changed != 1 {
            return Err(SinkError::Fenced);
        }
        transaction.commit()?;
        Ok(())
    }

    fn apply(&mut self, ops: &[Vec<NetOp<'_>>], last: Time, owner: &str) -> Result<(), SinkError> {
        let Postgres {
            client,
            statements,
            progress,
            ..
        } = self;
        let mut transaction = client.transaction()?;
        let mut lines = Vec::new();
        let mut timestamps = Timestamps::default();
        for ops in ops {
            let Some(table) = ops.first().and_then(|op| table_and_values(op.row(), 0)) else {
                continue;
            };
            let table = table.0;
            let key = table.key_positions();
            let staging = &statements[table.name];
            let failed = |error: postgres::Error| SinkError::Apply {
                table: table.name,
                message: describe(&error),
            };
            lines.clear();
            for &op in ops {
                let (stamp, op_code) = match op {
                    NetOp::Insert(_, time) => (time as Millis, b'i'),
                    NetOp::Update(_, time) => (time as Millis, b'u'),
                    NetOp::Delete(_) => (0, b'd'),
                };
                let Some((_, values)) = table_and_values(op.row(), stamp) else {
                    continue;
                };
                let only = (op_code == b'd').then_some(key.as_slice());
                copy_line(&mut lines, &mut timestamps, &values, only, op_code);
            }
            let mut copy = transaction.copy_in(&staging.copy).map_err(failed)?;
            copy.write_all(&lines).map_err(|error| SinkError::Apply {
                table: table.name,
                message: error.to_string(),
            })?;
            copy.finish().map_err(failed)?;
            for statement in [&staging.delete, &staging.update, &staging.insert] {
                transaction.execute(statement, &[]).map_err(failed)?;
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
        fault_point!("commit");
        transaction.commit()?;
        fault_point!("committed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_lines_escape_text_render_numbers_and_send_only_a_deletes_key() {
        let values = [
            Value::Integer(7),
            Value::Text("a\tb\\c\nd"),
            Value::Null,
            Value::Cents(-5),
            Value::Millis(1_704_067_200_500),
        ];
        let mut timestamps = Timestamps::default();
        let mut line = Vec::new();
        copy_line(&mut line, &mut timestamps, &values, None, b'i');
        assert_eq!(
            String::from_utf8(line.clone()).unwrap(),
            "7\ta\\tb\\\\c\\nd\t\\N\t-0.05\t2024-01-01 00:00:00.500\ti\n"
        );
        line.clear();
        copy_line(&mut line, &mut timestamps, &values, Some(&[0]), b'd');
        assert_eq!(line, b"7\t\\N\t\\N\t\\N\t\\N\td\n");
    }
}
