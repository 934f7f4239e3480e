//! Conversions at the edges of the dataflow: text and `rust_decimal` / `chrono` values to the
//! fixed-point [`Cents`] and [`Millis`] carried inside it, and back to the export format.

use chrono::{DateTime, NaiveDateTime};
use rust_decimal::{Decimal, RoundingStrategy};

use crate::rows::{Cents, Millis};

/// The largest magnitude a DECIMAL(10,2) holds, in hundredths: 99,999,999.99.
pub const DECIMAL_10_2_MAX: Cents = 9_999_999_999;

/// Parses a DECIMAL(10,2) value. More than two decimal places are rounded half away from zero,
/// as PostgreSQL does when it stores into a DECIMAL(10,2) column; a value whose magnitude does
/// not fit ten digits is an error.
pub fn parse_cents(text: &str) -> Result<Cents, String> {
    let value: Decimal = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a decimal number"))?;
    decimal_to_cents(value)
}

/// A `Decimal` as hundredths, rounded half away from zero to two places, range checked.
pub fn decimal_to_cents(value: Decimal) -> Result<Cents, String> {
    let rounded = value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    let cents = rounded * Decimal::ONE_HUNDRED;
    let cents =
        i64::try_from(cents.trunc()).map_err(|_| format!("{value} is outside DECIMAL(10,2)"))?;
    if cents.abs() > DECIMAL_10_2_MAX {
        return Err(format!("{value} is outside DECIMAL(10,2)"));
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
pub fn parse_millis(text: &str) -> Result<Millis, String> {
    let parsed =
        NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M:%S%.f").map_err(|_| {
            format!("{text:?} is not a timestamp of the form YYYY-MM-DD HH:MM:SS[.fff]")
        })?;
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

/// Parses a duration such as `5s`, `250ms`, `1h`, `1d` or `15m` into milliseconds.
pub fn parse_duration_millis(text: &str) -> Result<Millis, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} needs a unit: ms, s, m, h or d"))?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a whole number"))?;
    let unit_millis = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "{text:?} has an unknown unit {unit:?}: use ms, s, m, h or d"
            ))
        }
    };
    let millis = number
        .checked_mul(unit_millis)
        .ok_or_else(|| format!("{text:?} is too long"))?;
    if millis <= 0 {
        return Err(format!("{text:?} must be longer than zero"));
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
        assert!(parse_duration_millis("5").is_err());
        assert!(parse_duration_millis("0s").is_err());
        assert!(parse_duration_millis("5y").is_err());
    }
}
