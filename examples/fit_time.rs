//! Times the two CLV model fits alone, for `make bench` (pipelines do no logging, so the run
//! log only has the whole `ltv_segments` stage). Reads a `customer_ltv.parquet` written by
//! `cxmetrics run`, takes the model inputs from it with the pipeline's own `ModelInputs`, and
//! fits BG/NBD on grouped data and Gamma-Gamma on the repeat buyers, as the pipeline does.
//! Prints one JSON line.
//!
//! Usage: fit_time CUSTOMER_LTV.parquet

use std::time::Instant;

use cxmetrics::clv::{bgnbd, gamma_gamma};
use cxmetrics::pipelines::ltv_segments::ModelInputs;
use polars::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: fit_time CUSTOMER_LTV.parquet")?;
    let df = ParquetReader::new(std::fs::File::open(&path)?).finish()?;
    let inputs = ModelInputs::from_history(&df)?;
    let x = &inputs.x;

    let start = Instant::now();
    let groups = bgnbd::group(x, &inputs.t_x, &inputs.t);
    let grouped = start.elapsed();
    let bg = bgnbd::fit(&groups);
    let bg_time = start.elapsed() - grouped;

    let (gx, gm) = inputs.repeat_buyers();
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
