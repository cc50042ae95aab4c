//! Tables of one row per customer, kept bucket by bucket and put together in customer_id
//! order.

use polars::prelude::*;

/// The runs (each a bucket's rows) as one frame sorted by `customer_id`. Every customer is in
/// exactly one run, so the order does not depend on how customers were split into buckets.
pub fn concat_sorted(runs: Vec<DataFrame>) -> PolarsResult<DataFrame> {
    let mut runs = runs.into_iter();
    let Some(mut all) = runs.next() else {
        return Err(polars_err!(ComputeError: "no bucket kept any rows"));
    };
    for df in runs {
        all.vstack_mut_owned(df)?;
    }
    let mut sorted = all
        .lazy()
        .sort(
            ["customer_id"],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .collect()?;
    sorted.rechunk_mut_par();
    Ok(sorted)
}
