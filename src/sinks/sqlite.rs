//! The embedded default sink: a SQLite file with the warehouse's tables and the sink's progress.
//!
//! Decimals are stored as TEXT with exactly two places and timestamps as TEXT
//! `YYYY-MM-DD HH:MM:SS.mmm` (SQLite has no exact decimal type, and its date functions read this
//! form); the business queries compare and sum them exactly with SQLite's decimal extension
//! ([`crate::query`]). A run of change sets is written as its net operations, one prepared
//! statement per key.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::types::ToSqlOutput;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, ToSql};

use super::database::{progress_sql, Database, SINK_NAME};
use super::net::NetOp;
use super::tables::{table_and_values, Kind, Table, Value, ALL};
use super::SinkError;
use crate::model::now_millis;
use crate::model::rows::Millis;
use crate::model::values::{format_cents, format_millis};
use crate::model::Time;

/// A progress statement in SQLite's form.
fn progress_statement(sql: &str) -> String {
    sql.replace("{progress}", "gridflow_progress")
        .replace('$', "?")
}

/// A SQLite database file holding the warehouse's tables.
pub struct Sqlite {
    connection: Connection,
    /// The statements of each table, rendered once.
    statements: HashMap<&'static str, Statements>,
}

/// How one table's rows are written. A key the table does not hold is inserted with a plain
/// `INSERT`, which fails on a key the table holds: the change stream says which keys are new,
/// so a change set applied twice fails loudly instead of being silently overwritten.
struct Statements {
    insert: String,
    upsert: String,
    delete: String,
}

fn placeholder(n: usize, _: Kind) -> String {
    format!("?{n}")
}

fn column_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Integer => "INTEGER",
        Kind::Text | Kind::Decimal | Kind::Timestamp | Kind::Stamp => "TEXT",
    }
}

/// A statement text for `table`.
fn for_table(sql: String, table: &Table) -> String {
    sql.replace("{table}", table.name)
}

impl ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        match self {
            Value::Integer(n) => n.to_sql(),
            Value::Text(text) => text.to_sql(),
            Value::OwnedText(text) => text.to_sql(),
            Value::Cents(cents) => Ok(ToSqlOutput::from(format_cents(*cents))),
            Value::Millis(millis) => Ok(ToSqlOutput::from(format_millis(*millis))),
            Value::Null => rusqlite::types::Null.to_sql(),
        }
    }
}

impl Sqlite {
    /// Opens (or creates) the file and its tables.
    pub fn open(path: &Path) -> Result<Sqlite, SinkError> {
        let connection = Connection::open(path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        for table in ALL {
            connection.execute(&for_table(table.create_sql(column_type), table), [])?;
        }
        connection.execute(&progress_statement(progress_sql::CREATE), [])?;
        let has_job: bool = connection.query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info('gridflow_progress') WHERE name = 'job')",
            [],
            |row| row.get(0),
        )?;
        if !has_job {
            connection.execute(&progress_statement(progress_sql::ADD_JOB), [])?;
        }
        let statements = ALL
            .iter()
            .map(|table| {
                let statements = Statements {
                    insert: for_table(table.insert_sql(placeholder), table),
                    upsert: for_table(table.upsert_sql(placeholder), table),
                    delete: for_table(table.delete_sql(placeholder), table),
                };
                (table.name, statements)
            })
            .collect();
        Ok(Sqlite {
            connection,
            statements,
        })
    }
}

impl Database for Sqlite {
    fn progress(&mut self) -> Result<Option<Time>, SinkError> {
        let upto: Option<Option<i64>> = self
            .connection
            .prepare_cached(&progress_statement(progress_sql::READ))?
            .query_row(params![SINK_NAME], |row| row.get(0))
            .optional()?;
        Ok(upto.flatten().map(|upto| upto as Time))
    }

    fn acquire(
        &mut self,
        owner: &str,
        stale_before: Millis,
        job: Option<&str>,
    ) -> Result<bool, SinkError> {
        let changed = self
            .connection
            .prepare_cached(&progress_statement(progress_sql::ACQUIRE))?
            .execute(params![SINK_NAME, owner, now_millis(), stale_before, job])?;
        Ok(changed == 1)
    }

    fn holder(&mut self) -> Result<Option<(String, Millis)>, SinkError> {
        let holder: Option<(Option<String>, Option<i64>)> = self
            .connection
            .prepare_cached(&progress_statement(progress_sql::HOLDER))?
            .query_row(params![SINK_NAME], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        Ok(holder.and_then(|(owner, heartbeat)| owner.zip(heartbeat)))
    }

    fn release(&mut self, owner: &str) -> Result<(), SinkError> {
        self.connection
            .prepare_cached(&progress_statement(progress_sql::RELEASE))?
            .execute(params![SINK_NAME, owner])?;
        Ok(())
    }

    fn job(&mut self) -> Result<Option<String>, SinkError> {
        let job: Option<Option<String>> = self
            .connection
            .prepare_cached(&progress_statement(progress_sql::JOB))?
            .query_row(params![SINK_NAME], |row| row.get(0))
            .optional()?;
        Ok(job.flatten())
    }

    fn claim(&mut self, job: &str, owner: &str) -> Result<(), SinkError> {
        let changed = self
            .connection
            .prepare_cached(&progress_statement(progress_sql::CLAIM))?
            .execute(params![SINK_NAME, job, owner])?;
        if changed != 1 {
            return Err(SinkError::Fenced);
        }
        Ok(())
    }

    fn holds_rows(&mut self) -> Result<bool, SinkError> {
        for table in ALL {
            let sql = format!("SELECT EXISTS (SELECT 1 FROM {})", table.name);
            if self.connection.query_row(&sql, [], |row| row.get(0))? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn clear(&mut self, owner: &str) -> Result<(), SinkError> {
        let transaction = self.connection.transaction()?;
        for table in ALL {
            transaction.execute(&format!("DELETE FROM {}", table.name), [])?;
        }
        let changed = transaction.execute(
            &progress_statement(progress_sql::FORGET),
            params![SINK_NAME, owner],
        )?;
        if changed != 1 {
            return Err(SinkError::Fenced);
        }
        transaction.commit()?;
        Ok(())
    }

    fn apply(&mut self, ops: &[Vec<NetOp<'_>>], last: Time, owner: &str) -> Result<(), SinkError> {
        let Sqlite {
            connection,
            statements,
        } = self;
        let transaction = connection.transaction()?;
        for &op in ops.iter().flatten() {
            let stamp = match op {
                NetOp::Insert(_, time) | NetOp::Update(_, time) => time as Millis,
                NetOp::Delete(_) => 0,
            };
            let Some((table, values)) = table_and_values(op.row(), stamp) else {
                continue;
            };
            let statements = &statements[table.name];
            let executed = match op {
                NetOp::Delete(_) => {
                    let key = table.key_positions().into_iter().map(|i| &values[i]);
                    transaction
                        .prepare_cached(&statements.delete)?
                        .execute(params_from_iter(key))
                }
                NetOp::Insert(..) if !table.keys_reused => transaction
                    .prepare_cached(&statements.insert)?
                    .execute(params_from_iter(&values)),
                NetOp::Insert(..) | NetOp::Update(..) => transaction
                    .prepare_cached(&statements.upsert)?
                    .execute(params_from_iter(&values)),
            };
            executed.map_err(|error| SinkError::Apply {
                table: table.name,
                message: error.to_string(),
            })?;
        }
        let stamp = format_millis(last as i64);
        let advanced = transaction
            .prepare_cached(&progress_statement(progress_sql::ADVANCE))?
            .execute(params![SINK_NAME, last as i64, stamp, now_millis(), owner])?;
        if advanced != 1 {
            return Err(SinkError::Fenced);
        }
        fault_point!("commit");
        transaction.commit()?;
        fault_point!("committed");
        Ok(())
    }
}
