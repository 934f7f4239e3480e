//! Conversions at the edges of the dataflow: text and `rust_decimal` / `chrono` values to the
//! fixed-point [`Cents`] and [`Millis`] carried inside it, and back to the export format.

use chrono::{DateTime, NaiveDateTime};
use rust_decimal::{Decimal, RoundingStrategy};
use thiserror::Error;

use super::rows::{Cents, Millis, RegionId};

/// A value that does not parse, or does not fit its column. Its message is what `errors.csv`
/// reports after the column's name.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ValueError {
    #[error("{0:?} is not a decimal number")]
    NotDecimal(String),
    #[error("{0} is outside DECIMAL(10,2)")]
    OutsideDecimal(Decimal),
    #[error("{0:?} is not a timestamp of the form YYYY-MM-DD HH:MM:SS[.fff]")]
    NotTimestamp(String),
    #[error("{0:?} is not a whole number in range")]
    NotWhole(String),
}

/// A duration option that is not one.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DurationError {
    #[error("{text:?} is not a duration such as 5s, 250ms, 15m, 1h or 1d ({reason})")]
    Unreadable { text: String, reason: String },
    #[error("{0:?} must be longer than zero")]
    NotPositive(String),
    #[error("{0:?} is not a whole number of milliseconds")]
    Fraction(String),
    #[error("{0:?} is too long")]
    TooLong(String),
}

/// The largest magnitude a DECIMAL(10,2) holds, in hundredths: 99,999,999.99.
pub const DECIMAL_10_2_MAX: Cents = 9_999_999_999;

/// Parses a DECIMAL(10,2) value. More than two decimal places are rounded half away from zero,
/// as PostgreSQL does when it stores into a DECIMAL(10,2) column; a value whose magnitude does
/// not fit ten digits is an error.
pub fn parse_cents(text: &str) -> Result<Cents, ValueError> {
    let value: Decimal = text
        .trim()
        .parse()
        .map_err(|_| ValueError::NotDecimal(text.to_string()))?;
    decimal_to_cents(value)
}

/// A `Decimal` as hundredths, rounded half away from zero to two places, range checked.
pub fn decimal_to_cents(value: Decimal) -> Result<Cents, ValueError> {
    let rounded = value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    let cents = rounded
        .checked_mul(Decimal::ONE_HUNDRED)
        .ok_or(ValueError::OutsideDecimal(value))?;
    let cents = i64::try_from(cents.trunc()).map_err(|_| ValueError::OutsideDecimal(value))?;
    if cents.abs() > DECIMAL_10_2_MAX {
        return Err(ValueError::OutsideDecimal(value));
    }
    Ok(cents)
}

/// Hundredths as an exact `Decimal` with scale 2.
pub fn cents_to_decimal(cents: Cents) -> Decimal {
    Decimal::new(cents, 2)
}

/// Hundredths in the export format: exactly two decimal places, a leading `-` when negative.
pub fn format_cents(cents: Cents) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let magnitude = cents.unsigned_abs();
    format!("{sign}{}.{:02}", magnitude / 100, magnitude % 100)
}

/// Parses `YYYY-MM-DD HH:MM:SS[.fff]` (UTC, no zone) into epoch milliseconds. Fractions longer
/// than milliseconds are rounded to the millisecond, as a TIMESTAMP(3) column does.
pub fn parse_millis(text: &str) -> Result<Millis, ValueError> {
    let parsed = NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M:%S%.f")
        .map_err(|_| ValueError::NotTimestamp(text.to_string()))?;
    let utc = parsed.and_utc();
    let micros = utc.timestamp_micros();
    Ok((micros + 500).div_euclid(1000))
}

/// Epoch milliseconds in the export format `YYYY-MM-DD HH:MM:SS.mmm`.
pub fn format_millis(millis: Millis) -> String {
    match DateTime::from_timestamp_millis(millis) {
        Some(time) => time.naive_utc().format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        None => format!("<out-of-range timestamp {millis}>"),
    }
}

/// `to_char(stat_date, 'YYYYMMDDHH24MISS')`, as used in `dashboard_id`.
pub fn format_compact_seconds(millis: Millis) -> String {
    match DateTime::from_timestamp_millis(millis) {
        Some(time) => time.naive_utc().format("%Y%m%d%H%M%S").to_string(),
        None => format!("<out-of-range timestamp {millis}>"),
    }
}

/// `'DASHBOARD_' || region_id || '_' || to_char(stat_date, 'YYYYMMDDHH24MISS')`.
pub fn dashboard_id(region_id: RegionId, stat_date: Millis) -> String {
    format!(
        "DASHBOARD_{region_id}_{}",
        format_compact_seconds(stat_date)
    )
}

/// Parses a duration such as `5s`, `250ms`, `15m`, `1h`, `1d` or `1h 30m` into milliseconds,
/// with `humantime` (its units: ms, s, m, h, d, w, and their long names).
pub fn parse_duration_millis(text: &str) -> Result<Millis, DurationError> {
    let duration =
        humantime::parse_duration(text.trim()).map_err(|error| DurationError::Unreadable {
            text: text.to_string(),
            reason: error.to_string(),
        })?;
    if duration.subsec_nanos() % 1_000_000 != 0 {
        return Err(DurationError::Fraction(text.to_string()));
    }
    let millis = Millis::try_from(duration.as_millis())
        .map_err(|_| DurationError::TooLong(text.to_string()))?;
    if millis <= 0 {
        return Err(DurationError::NotPositive(text.to_string()));
    }
    Ok(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_round_trip_with_two_places() {
        assert_eq!(parse_cents("141.35"), Ok(14135));
        assert_eq!(parse_cents("-0.5"), Ok(-50));
        assert_eq!(parse_cents("1.005"), Ok(101));
        assert_eq!(parse_cents("-1.005"), Ok(-101));
        assert_eq!(format_cents(14135), "141.35");
        assert_eq!(format_cents(-50), "-0.50");
        assert_eq!(format_cents(7), "0.07");
        assert_eq!(cents_to_decimal(14135).to_string(), "141.35");
    }

    #[test]
    fn decimals_outside_decimal_10_2_are_rejected() {
        assert_eq!(parse_cents("99999999.99"), Ok(DECIMAL_10_2_MAX));
        assert!(parse_cents("100000000").is_err());
        assert!(parse_cents("99999999.995").is_err());
        assert!(parse_cents("abc").is_err());
        assert!(parse_cents("").is_err());
    }

    #[test]
    fn timestamps_round_trip_at_millisecond_precision() {
        let millis = parse_millis("2024-01-01 01:14:00.376").unwrap();
        assert_eq!(format_millis(millis), "2024-01-01 01:14:00.376");
        assert_eq!(
            parse_millis("2024-01-01 00:00:00").unwrap(),
            1_704_067_200_000
        );
        assert_eq!(
            parse_millis("2024-01-01 00:00:00.5").unwrap(),
            1_704_067_200_500
        );
        assert_eq!(
            parse_millis("2024-01-01 00:00:00.0004").unwrap(),
            1_704_067_200_000
        );
        assert!(parse_millis("2024-13-01 00:00:00").is_err());
        assert!(parse_millis("yesterday").is_err());
        assert_eq!(format_compact_seconds(1_704_067_245_000), "20240101000045");
    }

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration_millis("5s"), Ok(5_000));
        assert_eq!(parse_duration_millis("1h"), Ok(3_600_000));
        assert_eq!(parse_duration_millis("1d"), Ok(86_400_000));
        assert_eq!(parse_duration_millis("250ms"), Ok(250));
        assert_eq!(parse_duration_millis("15m"), Ok(900_000));
        assert_eq!(parse_duration_millis("1h 30m"), Ok(5_400_000));
        assert!(parse_duration_millis("5").is_err());
        assert!(parse_duration_millis("0s").is_err());
        assert!(parse_duration_millis("5 parsecs").is_err());
        assert!(parse_duration_millis("1500us").is_err());
    }
}
