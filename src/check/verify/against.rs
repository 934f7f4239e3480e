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
use crate::check::oracle::{
    drop_schema, load_ods, read_table, run_layers_sql, OracleError, TextRow,
};
use crate::check::twin::RetainedJob;
use crate::model::TableRow;
use crate::model::Warehouse;
use crate::sinks::tables::ALL;

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
            twin.frozen_details(),
        )?;
        let load = started.elapsed();
        let started = Instant::now();
        run_layers_sql(&mut self.client, &self.schema, twin.window())?;
        let recompute = started.elapsed();

        // gridflow's side (equal to the twin's at this time) against PostgreSQL's, as text, one
        // table at a time so only one table's text is in memory at once.
        let mut differences = Vec::new();
        let mut rows = 0;
        let mut read = Duration::ZERO;
        for table in ALL {
            let mut gridflow_rows: Vec<TextRow> = Vec::new();
            let mut push = |row: TableRow| {
                if let Some((_, text)) = text_row(&row, false) {
                    gridflow_rows.push(text);
                }
            };
            match table.name {
                "ods_power_user" => live
                    .users
                    .iter()
                    .cloned()
                    .for_each(|r| push(TableRow::User(r))),
                // Frozen windows' ODS rows are not in the maintained state PostgreSQL is given.
                "ods_power_consumption" => live
                    .consumption
                    .iter()
                    .cloned()
                    .for_each(|r| push(TableRow::Consumption(r))),
                "dwd_power_consumption_detail" => live
                    .details
                    .iter()
                    .chain(
                        twin.frozen_details()
                            .filter_map(|(d, kept)| kept.then_some(d)),
                    )
                    .cloned()
                    .for_each(|r| push(TableRow::Detail(r))),
                "dws_region_daily_stats" => live
                    .region_stats
                    .iter()
                    .chain(&frozen.region_stats)
                    .cloned()
                    .for_each(|r| push(TableRow::RegionStats(r))),
                "dws_user_ranking" => live
                    .rankings
                    .iter()
                    .chain(&frozen.rankings)
                    .cloned()
                    .for_each(|r| push(TableRow::Ranking(r))),
                _ => live
                    .dashboards
                    .iter()
                    .chain(&frozen.dashboards)
                    .cloned()
                    .for_each(|r| push(TableRow::Dashboard(r))),
            }
            let started = Instant::now();
            let mut postgres_rows = read_table(&mut self.client, &self.schema, table)?;
            read += started.elapsed();
            rows += gridflow_rows.len() as u64;
            gridflow_rows.sort_unstable();
            postgres_rows.sort_unstable();
            diff_sorted(table.name, &gridflow_rows, &postgres_rows, &mut differences);
        }
        let recompute = recompute + read;
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
