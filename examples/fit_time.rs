//! Times the two CLV model fits alone, for `make bench` (pipelines do no logging, so the run
//! log only has the whole `ltv_segments` stage). Reads a `customer_ltv.parquet` written by
//! `cxmetrics run`, takes the model inputs from it (frequency, recency, t, monetary_value),
//! and fits BG/NBD on grouped data and Gamma-Gamma on the repeat buyers, as the pipeline does.
//! Prints one JSON line.
//!
//! Usage: fit_time CUSTOMER_LTV.parquet

use std::time::Instant;

use cxmetrics::clv::{bgnbd, gamma_gamma};
use polars::prelude::*;

fn f64s(df: &DataFrame, name: &str) -> Result<Vec<f64>, PolarsError> {
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
    let x = f64s(&df, "frequency")?;
    let t_x = f64s(&df, "recency")?;
    let t = f64s(&df, "t")?;
    let m = f64s(&df, "monetary_value")?;

    let start = Instant::now();
    let mut groups = bgnbd::group(&x, &t_x, &t);
    groups.sort_by(|a, b| {
        a.x.total_cmp(&b.x)
            .then(a.t_x.total_cmp(&b.t_x))
            .then(a.t.total_cmp(&b.t))
    });
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
