//! SQLite's decimal extension, the part the SQLite query files use: `decimal_cmp(A, B)`,
//! the aggregate `decimal_sum(X)` and the `decimal` collation, all exact on the text decimals
//! the SQLite sink stores. The sqlite3 shell has the same functions built in, so the files in
//! `docs/queries/sqlite/` run there unchanged.

use std::cmp::Ordering;

use rusqlite::functions::{Aggregate, Context, FunctionFlags};
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use rust_decimal::Decimal;

/// Registers the functions and the collation on `connection`.
pub fn register(connection: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    connection.create_scalar_function("decimal_cmp", 2, flags, |context| {
        match (argument(context, 0)?, argument(context, 1)?) {
            (Some(a), Some(b)) => Ok(Some(ordering_number(a.cmp(&b)))),
            _ => Ok(None),
        }
    })?;
    connection.create_aggregate_function("decimal_sum", 1, flags, DecimalSum)?;
    connection.create_collation("decimal", compare_text)?;
    Ok(())
}

fn ordering_number(ordering: Ordering) -> i64 {
    match ordering {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    }
}

/// Argument `index` as a decimal; NULL is `None`, anything else not a number is an error.
fn argument(context: &Context<'_>, index: usize) -> rusqlite::Result<Option<Decimal>> {
    let value = match context.get_raw(index) {
        ValueRef::Null => return Ok(None),
        ValueRef::Integer(n) => Decimal::from(n),
        ValueRef::Real(f) => parse(&f.to_string())?,
        ValueRef::Text(text) => parse(&String::from_utf8_lossy(text))?,
        ValueRef::Blob(_) => return Err(not_a_decimal("a blob")),
    };
    Ok(Some(value))
}

fn parse(text: &str) -> rusqlite::Result<Decimal> {
    text.trim().parse().map_err(|_| not_a_decimal(text))
}

fn not_a_decimal(what: &str) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(format!("{what:?} is not a decimal").into())
}

/// The collation: numbers by value, before any text that is not a number (compared as text).
fn compare_text(a: &str, b: &str) -> Ordering {
    match (a.trim().parse::<Decimal>(), b.trim().parse::<Decimal>()) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// `decimal_sum(X)`: the exact sum of the non-NULL values, as text; NULL when there are none.
struct DecimalSum;

impl Aggregate<Option<Decimal>, Option<String>> for DecimalSum {
    fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<Option<Decimal>> {
        Ok(None)
    }

    fn step(&self, context: &mut Context<'_>, sum: &mut Option<Decimal>) -> rusqlite::Result<()> {
        if let Some(value) = argument(context, 0)? {
            let total = sum.unwrap_or_default().checked_add(value).ok_or_else(|| {
                rusqlite::Error::UserFunctionError("decimal_sum overflowed".into())
            })?;
            *sum = Some(total);
        }
        Ok(())
    }

    fn finalize(
        &self,
        _: &mut Context<'_>,
        sum: Option<Option<Decimal>>,
    ) -> rusqlite::Result<Option<String>> {
        Ok(sum.flatten().map(|sum| sum.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_comparisons_are_exact() {
        let connection = Connection::open_in_memory().unwrap();
        register(&connection).unwrap();
        connection
            .execute_batch(
                "CREATE TABLE t (x TEXT);
                 INSERT INTO t VALUES ('0.10'), ('0.20'), ('100.00'), ('9.99'), (NULL);",
            )
            .unwrap();
        let sum: String = connection
            .query_row("SELECT decimal_sum(x) FROM t", [], |row| row.get(0))
            .unwrap();
        assert_eq!(sum, "110.29");
        let above: i64 = connection
            .query_row(
                "SELECT COUNT(*) FROM t WHERE decimal_cmp(x, '9.990') > 0",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(above, 1, "as text, '9.99' < '9.990' and '100.00' < '9.990'");
        let sorted: Vec<String> = connection
            .prepare("SELECT x FROM t WHERE x IS NOT NULL ORDER BY x COLLATE decimal DESC")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(sorted, ["100.00", "9.99", "0.20", "0.10"]);
    }
}
