//! Helpers shared by the unit tests: UTC instants and timestamp columns from readable strings.

use chrono::NaiveDateTime;
use polars::prelude::*;

/// Microseconds since the epoch of a UTC `YYYY-MM-DD HH:MM:SS`.
pub fn us(s: &str) -> i64 {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .unwrap()
        .and_utc()
        .timestamp_micros()
}

/// A `Datetime(us, UTC)` column from epoch microseconds.
pub fn utc(name: &str, v: Vec<Option<i64>>) -> Column {
    Column::new(name.into(), v)
        .cast(&DataType::Datetime(
            TimeUnit::Microseconds,
            Some(TimeZone::UTC),
        ))
        .unwrap()
}
