//! Helpers shared by the unit tests: UTC instants and timestamp columns from readable strings,
//! plain vectors from result columns, and collecting with the engine the runner uses.

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

/// `lf` collected with `engine` (a pipeline's `ENGINE`), after checking that the in-memory
/// engine computes the same rows (in any order: partials are grouped, and group-bys hand rows
/// over in no fixed order), so that every unit case of a streaming pipeline also compares the
/// two engines.
pub fn collect_with(lf: LazyFrame, engine: Engine) -> DataFrame {
    let chosen = lf
        .clone()
        .collect_with_engine(engine)
        .unwrap()
        .unwrap_single();
    let in_memory = lf
        .collect_with_engine(Engine::InMemory)
        .unwrap()
        .unwrap_single();
    let sorted = |df: &DataFrame| {
        let names: Vec<PlSmallStr> = df.get_column_names_owned();
        df.sort(names, SortMultipleOptions::default()).unwrap()
    };
    assert!(
        sorted(&chosen).equals_missing(&sorted(&in_memory)),
        "{engine}:\n{chosen}\nin-memory:\n{in_memory}"
    );
    chosen
}

pub fn i32s(df: &DataFrame, name: &str) -> Vec<i32> {
    df.column(name)
        .unwrap()
        .i32()
        .unwrap()
        .into_no_null_iter()
        .collect()
}

pub fn i64s(df: &DataFrame, name: &str) -> Vec<i64> {
    df.column(name)
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect()
}

/// A UInt32 column (customer keys), nulls included.
pub fn u32s(df: &DataFrame, name: &str) -> Vec<Option<u32>> {
    df.column(name).unwrap().u32().unwrap().iter().collect()
}

pub fn f64s(df: &DataFrame, name: &str) -> Vec<Option<f64>> {
    df.column(name).unwrap().f64().unwrap().iter().collect()
}

pub fn bools(df: &DataFrame, name: &str) -> Vec<bool> {
    df.column(name)
        .unwrap()
        .bool()
        .unwrap()
        .iter()
        .map(|b| b.unwrap())
        .collect()
}

pub fn strs(df: &DataFrame, name: &str) -> Vec<String> {
    df.column(name)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|s| s.unwrap().to_string())
        .collect()
}
