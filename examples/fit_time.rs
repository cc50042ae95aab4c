//! Times the two CLV model fits alone, for `make bench` (pipelines do no logging, so the run
//! log only has the whole `ltv_segments` stage). Reads a `customer_ltv.parquet` written by
//! `cxmetrics run`, takes its frequency, recency, t and monetary_value columns (the model
//! inputs), and fits BG/NBD on grouped data and Gamma-Gamma on the repeat buyers, exactly as
//! the pipeline does. Prints one JSON line.
//!
//! Usage: fit_time CUSTOMER_LTV.parquet

use std::time::Instant;

use cxmetrics::clv::{bgnbd, gamma_gamma};
use polars::prelude::*;

fn column(df: &DataFrame, name: &str) -> PolarsResult<Vec<f64>> {
    Ok(df
        .column(name)?
        .cast(&DataType::Float64)?
        .f64()?
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: fit_time CUSTOMER_LTV.parquet")?;
    let df = ParquetReader::new(std::fs::File::open(&path)?).finish()?;
    let x = column(&df, "frequency")?;
    let t_x = column(&df, "recency")?;
    let t = column(&df, "t")?;
    let m = column(&df, "monetary_value")?;

    let start = Instant::now();
    let groups = bgnbd::group(&x, &t_x, &t);
    let grouped = start.elapsed();
    let bg = bgnbd::fit(&groups);
    let bg_time = start.elapsed() - grouped;

    let (gx, gm): (Vec<f64>, Vec<f64>) = x
        .iter()
        .zip(&m)
        .filter(|(x, m)| **x > 0.0 && **m > 0.0)
        .map(|(x, m)| (*x, *m))
        .unzip();
    let start = Instant::now();
    let gg = gamma_gamma::fit(&gx, &gm);
    let gg_time = start.elapsed();

    println!(
        "{{\"customers\": {}, \"groups\": {}, \"group_s\": {:.3}, \"bgnbd_fit_s\": {:.3}, \"bgnbd_ok\": {}, \"gamma_gamma_customers\": {}, \"gamma_gamma_fit_s\": {:.3}, \"gamma_gamma_ok\": {}}}",
        x.len(),
        groups.len(),
        grouped.as_secs_f64(),
        bg_time.as_secs_f64(),
        bg.is_ok(),
        gx.len(),
        gg_time.as_secs_f64(),
        gg.is_ok()
    );
    Ok(())
}
