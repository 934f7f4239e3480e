//! The PostgreSQL side of `gridflow verify --against`: at a time the twin has found equal to
//! gridflow, the ODS state goes to PostgreSQL, `docs/queries/layers.sql` recomputes the layers,
//! and the text of every table is held against the text of the twin's (hence gridflow's).
//!
//! Under retention (SPEC §4a) PostgreSQL is given what the maintained state holds — the users
//! and the live windows' consumption rows — plus the detail rows frozen windows kept, from
//! which it recomputes those windows' DWS and ADS rows. So `ods_power_consumption` is compared
//! for live windows only (frozen windows' ODS rows are the twin's), and every other table in
//! full (`docs/verify.md`).

use std::time::{Duration, Instant};

use postgres::{Client, NoTls};

use super::report::{layer_order, text_row, DifferingRow};
use crate::dataflows::sink::TableRow;
use crate::oracle::postgres::{
    drop_schema, load_ods, read_tables, run_layers_sql, OracleError, TextRow,
};
use crate::reference::{RetainedJob, Warehouse};

/// A table that marks a schema as verify's own: verify drops and recreates tables only there.
const MARKER: &str = "gridflow_verify_oracle";

/// A connection to the oracle and the schema it computes in.
pub struct Postgres {
    client: Client,
    schema: String,
}

/// What one comparison found.
pub struct Compared {
    pub differences: Vec<DifferingRow>,
    pub rows: u64,
    pub load: Duration,
    pub recompute: Duration,
}

impl Postgres {
    /// Connects, and claims `schema`: created with a marker table if absent; an existing schema
    /// without the marker is someone else's and is refused.
    pub fn open(url: &str, schema: &str) -> Result<Postgres, OracleError> {
        let failed = |doing| move |source| OracleError::Postgres { doing, source };
        let mut client = Client::connect(url, NoTls).map_err(failed("connecting"))?;
        let exists: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM information_schema.schemata WHERE schema_name = $1)",
                &[&schema],
            )
            .map_err(failed("looking for the schema"))?
            .get(0);
        let ours: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM information_schema.tables
                                WHERE table_schema = $1 AND table_name = $2)",
                &[&schema, &MARKER],
            )
            .map_err(failed("looking for the schema's marker"))?
            .get(0);
        if exists && !ours {
            return Err(OracleError::NotOurs(schema.to_string()));
        }
        // An empty load creates the schema (and checks its name) before the marker goes in.
        load_ods(&mut client, schema, [], [], [])?;
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {schema}.{MARKER} (created timestamptz DEFAULT now())"
            ))
            .map_err(failed("marking the schema"))?;
        Ok(Postgres {
            client,
            schema: schema.to_string(),
        })
    }

    /// Loads the twin's ODS state, recomputes in PostgreSQL and compares with the twin's
    /// tables (`live`: its live tables, sorted).
    pub fn compare(
        &mut self,
        twin: &RetainedJob,
        live: &Warehouse,
    ) -> Result<Compared, OracleError> {
        let frozen = twin.frozen();
        let started = Instant::now();
        load_ods(
            &mut self.client,
            &self.schema,
            twin.users().values(),
            twin.live_consumption().values(),
            frozen.details.iter(),
        )?;
        let load = started.elapsed();
        let started = Instant::now();
        run_layers_sql(&mut self.client, &self.schema, twin.window())?;
        let theirs = read_tables(&mut self.client, &self.schema)?;
        let recompute = started.elapsed();

        // gridflow's side (equal to the twin's at this time), as text.
        let ours: Vec<TableRow> = live
            .users
            .iter()
            .cloned()
            .map(TableRow::User)
            .chain(live.consumption.iter().cloned().map(TableRow::Consumption))
            .chain(
                live.details
                    .iter()
                    .chain(&frozen.details)
                    .cloned()
                    .map(TableRow::Detail),
            )
            .chain(
                live.region_stats
                    .iter()
                    .chain(&frozen.region_stats)
                    .cloned()
                    .map(TableRow::RegionStats),
            )
            .chain(
                live.rankings
                    .iter()
                    .chain(&frozen.rankings)
                    .cloned()
                    .map(TableRow::Ranking),
            )
            .chain(
                live.dashboards
                    .iter()
                    .chain(&frozen.dashboards)
                    .cloned()
                    .map(TableRow::Dashboard),
            )
            .collect();
        let mut by_table: std::collections::BTreeMap<&'static str, Vec<TextRow>> =
            Default::default();
        for row in &ours {
            if let Some((table, text)) = text_row(row, false) {
                by_table.entry(table.name).or_default().push(text);
            }
        }
        let mut differences = Vec::new();
        let mut rows = 0;
        for (name, mut postgres_rows) in theirs {
            let mut gridflow_rows = by_table.remove(name).unwrap_or_default();
            rows += gridflow_rows.len() as u64;
            gridflow_rows.sort();
            postgres_rows.sort();
            diff_sorted(name, &gridflow_rows, &postgres_rows, &mut differences);
        }
        differences.sort_by(|a, b| {
            (layer_order(a.table), &a.row, a.surplus).cmp(&(
                layer_order(b.table),
                &b.row,
                b.surplus,
            ))
        });
        Ok(Compared {
            differences,
            rows,
            load,
            recompute,
        })
    }

    /// After a verification that passed: the schema is dropped (after a difference it stays,
    /// for a person to look at).
    pub fn finish(mut self) -> Result<(), OracleError> {
        drop_schema(&mut self.client, &self.schema)
    }
}

/// The rows only one of two sorted tables has, with how many more copies gridflow has.
fn diff_sorted(
    table: &'static str,
    gridflow: &[TextRow],
    postgres: &[TextRow],
    out: &mut Vec<DifferingRow>,
) {
    let (mut i, mut j) = (0, 0);
    let mut push = |row: &TextRow, surplus: isize| {
        out.push(DifferingRow {
            table,
            row: row.clone(),
            surplus,
        })
    };
    while i < gridflow.len() || j < postgres.len() {
        match (gridflow.get(i), postgres.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                push(a, 1);
                i += 1;
            }
            (Some(_), Some(b)) => {
                push(b, -1);
                j += 1;
            }
            (Some(a), None) => {
                push(a, 1);
                i += 1;
            }
            (None, Some(b)) => {
                push(b, -1);
                j += 1;
            }
            (None, None) => break,
        }
    }
}
